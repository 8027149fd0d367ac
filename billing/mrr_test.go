package billing

import (
	"testing"
	"time"
)

func TestMonthEnds(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	got := MonthEnds(now, 3)
	want := []time.Time{
		time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond), // end of January
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond), // end of February
		now,
	}
	if len(got) != len(want) {
		t.Fatalf("MonthEnds = %v", got)
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("MonthEnds[%d] = %s, want %s", i, got[i], want[i])
		}
	}
}

// TestMRRHistory: hand-computed MRR at month ends from the periods
// granted. Periods renew on the 15th; a's Starter ($19) upgraded to Pro
// ($49) on 1 Feb mid-period; b's yearly plan ($120/year) counts $10; c's
// free period counts nothing; d was ended by its provider on 20 Feb,
// mid-period; e's period ended on 15 Feb and was not renewed (it ended);
// f pays in euros.
func TestMRRHistory(t *testing.T) {
	d := func(m time.Month, day int) time.Time { return time.Date(2026, m, day, 0, 0, 0, 0, time.UTC) }
	usd := func(a int64) Money { return Money{Amount: a, Currency: "usd"} }
	canceled := d(2, 20)
	periods := []MRRPeriod{
		{Subscription: "a", Start: d(1, 15), End: d(2, 15), Monthly: usd(1900)},
		{Subscription: "a", Start: d(2, 1), End: d(2, 15), Monthly: usd(4900)}, // the upgrade
		{Subscription: "a", Start: d(2, 15), End: d(3, 15), Monthly: usd(4900)},
		{Subscription: "b", Start: d(1, 3), End: time.Date(2027, 1, 3, 0, 0, 0, 0, time.UTC), Monthly: MonthlyPrice(Plan{Interval: IntervalYear, Price: usd(12000)})},
		{Subscription: "c", Start: d(1, 15), End: d(2, 15), Monthly: usd(1900)},
		{Subscription: "c", Start: d(2, 15), End: d(3, 15), Monthly: usd(0)}, // free
		{Subscription: "d", Start: d(2, 10), End: d(3, 10), Monthly: usd(4900), CanceledAt: &canceled},
		{Subscription: "e", Start: d(1, 15), End: d(2, 15), Monthly: usd(1900)},
		{Subscription: "f", Start: d(1, 20), End: d(2, 20), Monthly: Money{Amount: 900, Currency: "eur"}},
	}
	endOf := func(m time.Month) time.Time { return d(m+1, 1).Add(-time.Microsecond) }
	cases := []struct {
		name string
		at   time.Time
		usd  int64
		eur  int64
		subs int
	}{
		{"end of December: nothing yet", endOf(12 - 12), 0, 0, 0},
		{"end of January", endOf(1), 1900 + 1000 + 1900 + 1900, 900, 5},
		{"end of February", endOf(2), 4900 + 1000 + 0, 0, 3},
		{"10 Feb: the upgrade counts, d started", d(2, 10), 4900 + 1000 + 1900 + 4900 + 1900, 900, 6},
		{"end of March", endOf(3), 1000, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := MRRHistory(periods, []time.Time{c.at})[0]
			if p.Amounts["usd"] != c.usd || p.Amounts["eur"] != c.eur || p.Subscribers != c.subs {
				t.Fatalf("MRR = %v (%d subscriptions), want usd %d eur %d (%d)", p.Amounts, p.Subscribers, c.usd, c.eur, c.subs)
			}
		})
	}
	if h := MRRHistory(nil, MonthEnds(d(3, 1), 12)); len(h) != 12 || h[11].Amounts["usd"] != 0 {
		t.Fatalf("no periods: %+v", h)
	}
}
