package billing

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// projNow is the projections' fixed "now": midnight UTC, so that day counts
// are easy to read in the tables.
var projNow = time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// at is projNow plus a duration, as a pointer (for ExpiresAt).
func projAt(d time.Duration) *time.Time { t := projNow.Add(d); return &t }

// lot makes a live lot: source, whole credits, expiry (nil: never).
func projLot(id int64, source string, credits int64, expires *time.Time) Lot {
	return Lot{ID: id, Source: source, Priority: DefaultPriority[source], Amount: CreditsOf(credits),
		Remaining: CreditsOf(credits), ExpiresAt: expires, CreatedAt: projNow.Add(-days(1)).Add(time.Duration(id) * time.Second)}
}

// steady is n days of usage at perDay whole credits ending on the day
// before `now`'s day, plus today's usage.
func steady(now time.Time, n int, perDay, today int64) []UsageDay {
	var out []UsageDay
	d0 := now.UTC().Truncate(24 * time.Hour)
	for i := n; i >= 1; i-- {
		out = append(out, UsageDay{Day: d0.AddDate(0, 0, -i).Format(time.DateOnly), Feature: "chat", Credits: CreditsOf(perDay)})
	}
	if today > 0 {
		out = append(out, UsageDay{Day: d0.Format(time.DateOnly), Feature: "chat", Credits: CreditsOf(today)})
	}
	return out
}

func TestRateOver(t *testing.T) {
	noon := projNow.Add(12 * time.Hour)
	tests := []struct {
		name       string
		days       []UsageDay
		window     int
		now        time.Time
		wantUsed   Credits
		wantPerDay Credits
		wantSpan   time.Duration
	}{
		{"steady at midnight: the six whole days before today", steady(projNow, 40, 300, 0), 7, projNow,
			CreditsOf(1800), CreditsOf(300), days(6)},
		{"steady at noon: today counts for half a day", steady(noon, 40, 300, 150), 7, noon,
			CreditsOf(1950), CreditsOf(300), days(6) + 12*time.Hour},
		{"thirty days", steady(noon, 40, 300, 150), 30, noon,
			CreditsOf(29*300 + 150), CreditsOf(300), days(29) + 12*time.Hour},
		{"started two days ago: averaged since then", steady(noon, 2, 300, 150), 30, noon,
			CreditsOf(750), CreditsOf(300), days(2) + 12*time.Hour},
		{"started an hour ago: at least a day", []UsageDay{{Day: "2026-03-10", Credits: CreditsOf(10)}}, 7, projNow.Add(time.Hour),
			CreditsOf(10), CreditsOf(10), days(1)},
		{"no usage", nil, 7, noon, 0, 0, 0},
		{"usage only before the window", []UsageDay{{Day: "2026-02-01", Credits: CreditsOf(500)}}, 7, noon, 0, 0, 0},
		{"before the window sets when usage began", append([]UsageDay{{Day: "2026-02-01", Credits: CreditsOf(500)}},
			steady(projNow, 1, 70, 0)...), 7, projNow, CreditsOf(70), 11666, days(6)},
		{"rounds down to the millicredit", []UsageDay{{Day: "2026-03-07", Credits: 1000}}, 7, projNow,
			1000, 333, days(3)},
		{"future and malformed days are ignored", []UsageDay{{Day: "2026-03-11", Credits: CreditsOf(99)},
			{Day: "yesterday", Credits: CreditsOf(99)}, {Day: "2026-03-09", Credits: CreditsOf(20)}}, 7, projNow,
			CreditsOf(20), CreditsOf(20), days(1)},
		{"several features a day add up", []UsageDay{{Day: "2026-03-09", Feature: "a", Credits: CreditsOf(20)},
			{Day: "2026-03-09", Feature: "b", Credits: 500}}, 7, projNow, 20500, 20500, days(1)},
		{"zero window", steady(projNow, 10, 300, 0), 0, projNow, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := RateOver(tt.days, tt.window, tt.now)
			if r.Used != tt.wantUsed || r.PerDay != tt.wantPerDay || r.Span != tt.wantSpan {
				t.Fatalf("RateOver = used %s, per day %s, span %s; want %s, %s, %s",
					r.Used, r.PerDay, r.Span, tt.wantUsed, tt.wantPerDay, tt.wantSpan)
			}
		})
	}
}

func TestProject(t *testing.T) {
	c := CreditsOf
	tests := []struct {
		name      string
		lots      []Lot
		available Credits // 0: the lots' sum
		rate      Credits
		want      Outlook
		runsOut   time.Duration // from projNow
		lost      []ExpiryLoss
	}{
		{name: "one lot, steady use", lots: []Lot{projLot(1, SourcePurchase, 1000, nil)}, rate: c(100),
			want: OutlookRunsOut, runsOut: days(10)},
		{name: "a fractional rate runs out mid-day", lots: []Lot{projLot(1, SourcePurchase, 100, nil)}, rate: c(40),
			want: OutlookRunsOut, runsOut: days(2) + 12*time.Hour},
		{name: "no usage", lots: []Lot{projLot(1, SourcePurchase, 1000, nil)}, rate: 0, want: OutlookNoUsage},
		{name: "no usage still loses what expires", lots: []Lot{projLot(1, SourcePromo, 50, projAt(days(3))), projLot(2, SourcePurchase, 10, nil)},
			rate: 0, want: OutlookNoUsage, lost: []ExpiryLoss{{1, projNow.Add(days(3)), c(50)}}},
		{name: "nothing available", lots: nil, available: -1, rate: c(100), want: OutlookDepleted},
		{name: "debt", lots: nil, available: c(-50), rate: c(100), want: OutlookDepleted},
		{name: "all held", lots: []Lot{projLot(1, SourcePurchase, 100, nil)}, available: -1, rate: 0, want: OutlookDepleted},
		{name: "beyond a year", lots: []Lot{projLot(1, SourcePurchase, 1000, nil)}, rate: c(2), want: OutlookBeyond},
		{name: "exactly a year is not beyond", lots: []Lot{projLot(1, SourcePurchase, 365, nil)}, rate: c(1),
			want: OutlookRunsOut, runsOut: days(365)},
		{name: "a promo burns first and expires part-used",
			lots: []Lot{projLot(1, SourcePurchase, 1000, nil), projLot(2, SourcePromo, 100, projAt(days(2)))}, rate: c(10),
			want: OutlookRunsOut, runsOut: days(102), lost: []ExpiryLoss{{2, projNow.Add(days(2)), c(80)}}},
		{name: "a lot later in burn order expires before it is reached",
			lots: []Lot{projLot(1, SourcePromo, 50, nil), projLot(2, SourcePurchase, 100, projAt(days(3)))}, rate: c(10),
			want: OutlookRunsOut, runsOut: days(5), lost: []ExpiryLoss{{2, projNow.Add(days(3)), c(100)}}},
		{name: "the expiry is what ends it",
			lots: []Lot{projLot(1, SourcePurchase, 1000, projAt(days(5)))}, rate: c(10),
			want: OutlookRunsOut, runsOut: days(5), lost: []ExpiryLoss{{1, projNow.Add(days(5)), c(950)}}},
		{name: "used up the instant it expires: nothing lost",
			lots: []Lot{projLot(1, SourcePromo, 30, projAt(days(3))), projLot(2, SourcePurchase, 10, nil)}, rate: c(10),
			want: OutlookRunsOut, runsOut: days(4)},
		{name: "holds come off first", lots: []Lot{projLot(1, SourcePurchase, 1000, nil)}, available: c(880), rate: c(100),
			want: OutlookRunsOut, runsOut: days(8) + 19*time.Hour + 12*time.Minute},
		{name: "holds take the expiring promo, so nothing is lost",
			lots: []Lot{projLot(1, SourcePromo, 100, projAt(days(1))), projLot(2, SourcePurchase, 1000, nil)}, available: c(1000), rate: c(100),
			want: OutlookRunsOut, runsOut: days(10)},
		{name: "more available than lots (counted as never expiring)", lots: nil, available: c(100), rate: c(10),
			want: OutlookRunsOut, runsOut: days(10)},
		{name: "expired and frozen lots count for nothing",
			lots:      []Lot{projLot(1, SourcePurchase, 100, nil), projLot(2, SourcePromo, 500, projAt(-time.Hour)), {ID: 3, Remaining: c(900), Frozen: true}},
			available: c(100), rate: c(50), want: OutlookRunsOut, runsOut: days(2)},
		{name: "two expiring lots, one lost whole, one in part",
			lots: []Lot{projLot(1, SourceSubscription, 100, projAt(days(4))), projLot(2, SourcePromo, 60, projAt(days(2))), projLot(3, SourcePurchase, 40, nil)},
			rate: c(20), want: OutlookRunsOut, runsOut: days(6),
			lost: []ExpiryLoss{{2, projNow.Add(days(2)), c(20)}, {1, projNow.Add(days(4)), c(60)}}},
		{name: "a huge rate", lots: []Lot{projLot(1, SourcePurchase, 1_000_000_000_000, nil)}, rate: MaxCredits,
			want: OutlookRunsOut, runsOut: days(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			avail := tt.available
			if avail == 0 {
				for _, l := range tt.lots {
					if l.Live(projNow) {
						avail += l.Remaining
					}
				}
			}
			p := Project(projNow, tt.lots, avail, tt.rate)
			if p.Outlook != tt.want {
				t.Fatalf("outlook = %s, want %s (%+v)", p.Outlook, tt.want, p)
			}
			if tt.want == OutlookRunsOut && !p.RunsOut.Equal(projNow.Add(tt.runsOut)) {
				t.Errorf("runs out at %s (+%s), want +%s", p.RunsOut, p.RunsOut.Sub(projNow), tt.runsOut)
			}
			if fmt.Sprint(p.Lost) != fmt.Sprint(tt.lost) {
				t.Errorf("lost = %v, want %v", p.Lost, tt.lost)
			}
		})
	}
}

func TestProjectDoesNotModifyLots(t *testing.T) {
	lots := []Lot{projLot(2, SourcePurchase, 100, nil), projLot(1, SourcePromo, 50, projAt(days(1)))}
	before := fmt.Sprint(lots)
	Project(projNow, lots, CreditsOf(150), CreditsOf(10))
	TopUpFor(projNow, lots, CreditsOf(150), CreditsOf(10), projNow.Add(days(60)))
	if fmt.Sprint(lots) != before {
		t.Fatalf("lots changed:\n%s\n%s", before, fmt.Sprint(lots))
	}
}

func TestTopUpFor(t *testing.T) {
	c := CreditsOf
	month := projNow.Add(days(30))
	tests := []struct {
		name      string
		lots      []Lot
		available Credits
		rate      Credits
		until     time.Time
		want      Credits
	}{
		{"covers the usage until then", []Lot{projLot(1, SourcePurchase, 100, nil)}, c(100), c(10), month, c(200)},
		{"and what expires unused on the way", []Lot{projLot(1, SourcePromo, 100, projAt(days(2)))}, c(100), c(10), month, c(280)},
		{"already lasts", []Lot{projLot(1, SourcePurchase, 1000, nil)}, c(1000), c(10), month, 0},
		{"exactly lasts", []Lot{projLot(1, SourcePurchase, 300, nil)}, c(300), c(10), month, 0},
		{"debt first", nil, c(-50), c(10), month, c(350)},
		{"holds first", []Lot{projLot(1, SourcePurchase, 100, nil)}, c(40), c(10), month, c(260)},
		{"rounds up to a whole credit", []Lot{projLot(1, SourcePurchase, 100, nil)}, c(100), 10_001, month, c(201)},
		{"no usage", []Lot{projLot(1, SourcePurchase, 100, nil)}, c(100), 0, month, 0},
		{"a date in the past", []Lot{projLot(1, SourcePurchase, 100, nil)}, c(100), c(10), projNow.Add(-time.Hour), 0},
		{"lots burned after the purchase may expire unused", []Lot{{ID: 1, Source: SourcePurchase, Priority: 60,
			Amount: c(100), Remaining: c(100), ExpiresAt: projAt(days(20))}}, c(100), c(10), month, c(300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TopUpFor(projNow, tt.lots, tt.available, tt.rate, tt.until)
			if got != tt.want {
				t.Fatalf("TopUpFor = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestForecast(t *testing.T) {
	c := CreditsOf
	now := projNow
	// 30 days at 250 a day, the last 7 at 300: the 7-day and 30-day averages differ.
	irregular := steady(now, 30, 250, 0)
	for i := len(irregular) - 6; i < len(irregular); i++ {
		irregular[i].Credits = c(300)
	}
	until := now.Add(days(30))
	lots := []Lot{projLot(1, SourcePurchase, 3000, nil)}

	f := NewForecast(now, irregular, lots, c(3000), until)
	if f.Week.PerDay != c(300) {
		t.Fatalf("7-day rate = %s, want 300", f.Week.PerDay)
	}
	if !f.Range() {
		t.Fatalf("no range for %s vs %s", f.AtWeek.RunsOut, f.AtMonth.RunsOut)
	}
	if !f.Earliest().RunsOut.Equal(now.Add(days(10))) || !f.Latest().RunsOut.After(f.Earliest().RunsOut) {
		t.Fatalf("range %s .. %s", f.Earliest().RunsOut, f.Latest().RunsOut)
	}
	if f.TopUp != c(6000) { // at the higher rate, 300 a day for 30 days
		t.Fatalf("top-up = %s, want 6000", f.TopUp)
	}

	f = NewForecast(now, steady(now, 30, 300, 0), lots, c(3000), until)
	if f.Range() {
		t.Fatalf("steady usage shows a range: %s vs %s", f.AtWeek.RunsOut, f.AtMonth.RunsOut)
	}

	// No usage this week: the 30-day projection leads.
	quiet := steady(now.Add(-days(10)), 20, 100, 0)
	f = NewForecast(now, quiet, lots, c(3000), until)
	if f.Week.PerDay != 0 || f.Month.PerDay == 0 || f.Primary().Rate != f.Month.PerDay || f.Range() {
		t.Fatalf("quiet week: %+v", f)
	}

	// One end beyond the horizon is a range; both beyond is not.
	slow := steady(now, 30, 1, 0)
	slow[len(slow)-1].Credits = c(200)
	f = NewForecast(now, slow, lots, c(3000), until)
	if f.AtWeek.Outlook != OutlookRunsOut || f.AtMonth.Outlook != OutlookBeyond || !f.Range() || f.Latest().Outlook != OutlookBeyond {
		t.Fatalf("one end beyond: %s %s range=%v", f.AtWeek.Outlook, f.AtMonth.Outlook, f.Range())
	}
	f = NewForecast(now, steady(now, 30, 1, 0), lots, c(3000), until)
	if f.Range() || f.TopUp != 0 || !f.TopUpAlreadyLast {
		t.Fatalf("both beyond: range=%v top-up %s", f.Range(), f.TopUp)
	}

	f = NewForecast(now, nil, lots, c(3000), until)
	if f.Primary().Outlook != OutlookNoUsage || f.TopUp != 0 || f.TopUpAlreadyLast || f.Range() {
		t.Fatalf("no usage: %+v", f)
	}
}

func TestMulDiv(t *testing.T) {
	tests := []struct{ a, b, c, floor, ceil int64 }{
		{10, 3, 4, 7, 8},
		{0, 5, 3, 0, 0},
		{5, 0, 3, 0, 0},
		{-5, 3, 3, 0, 0},
		{9, 9, 0, 0, 0},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{math.MaxInt64, 2, 1, math.MaxInt64, math.MaxInt64},
		{1 << 62, 1 << 40, 1 << 41, 1 << 61, 1 << 61},
		{int64(MaxCredits), dayMicros, 7 * dayMicros, 142857142857142, 142857142857143},
		{int64(MaxCredits), dayMicros, 7, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := mulDiv(tt.a, tt.b, tt.c); got != tt.floor {
			t.Errorf("mulDiv(%d, %d, %d) = %d, want %d", tt.a, tt.b, tt.c, got, tt.floor)
		}
		if got := ceilMulDiv(tt.a, tt.b, tt.c); got != tt.ceil {
			t.Errorf("ceilMulDiv(%d, %d, %d) = %d, want %d", tt.a, tt.b, tt.c, got, tt.ceil)
		}
	}
}

// oracleStep is the fuzz oracle's step: an hour. The fuzz puts every expiry
// on the hour, so within a step only usage happens.
const oracleStep = time.Hour

// oracle runs the wallet forward an hour at a time, the slow and obvious
// way: at each hour, lots due expire (lost); then the hour's usage burns
// lots in burn order. It returns when the credits ran out as an interval
// [lo, hi] (an hour when usage used them up, or the very instant expiries
// emptied the wallet), whether they did within the horizon, and the losses.
func oracle(now time.Time, lots []Lot, available, rate Credits) (lo, hi time.Time, ran bool, lost []ExpiryLoss) {
	live := []Lot{}
	var sum Credits
	for _, l := range lots {
		if l.Live(now) {
			live = append(live, l)
			sum += l.Remaining
		}
	}
	SortLots(live)
	if reserved := sum - available; reserved < 0 {
		live = append(live, Lot{ID: -1, Remaining: -reserved})
	} else {
		for i := range live {
			take := min(live[i].Remaining, reserved)
			live[i].Remaining -= take
			reserved -= take
		}
	}
	steps := int(ProjectionHorizon / oracleStep)
	usedBy := func(k int) Credits {
		return Credits(mulDiv(int64(rate), int64(k)*oracleStep.Microseconds(), dayMicros))
	}
	for k := 0; k <= steps; k++ {
		start := now.Add(time.Duration(k) * oracleStep)
		left := Credits(0)
		for i := range live {
			if live[i].Remaining > 0 && live[i].ExpiresAt != nil && !live[i].ExpiresAt.After(start) {
				lost = append(lost, ExpiryLoss{live[i].ID, *live[i].ExpiresAt, live[i].Remaining})
				live[i].Remaining = 0
			}
			left += live[i].Remaining
		}
		if left == 0 {
			return start, start, true, lost
		}
		if k == steps { // the horizon itself: expiries only
			break
		}
		use := usedBy(k+1) - usedBy(k)
		for i := range live {
			take := min(live[i].Remaining, use)
			live[i].Remaining -= take
			use -= take
			left -= take
		}
		if use > 0 || left == 0 {
			return start, start.Add(oracleStep), true, lost
		}
	}
	return time.Time{}, time.Time{}, false, lost
}

// fuzzWallet reads lots from fuzz bytes, 5 bytes a lot: source, a 16-bit
// amount (whole credits when the source byte's top bit is set, else
// millicredits), and an expiry in whole hours (0: never; up to ~1.2 years).
func fuzzWallet(b []byte) []Lot {
	var lots []Lot
	for i := 0; i+5 <= len(b) && len(lots) < 12; i += 5 {
		src := fuzzSources[int(b[i]&3)]
		amount := Credits(b[i+1])<<8 | Credits(b[i+2])
		if b[i]&0x80 != 0 {
			amount *= Milli
		}
		if amount == 0 {
			continue
		}
		l := Lot{ID: int64(len(lots) + 1), Source: src, Priority: DefaultPriority[src], Amount: amount, Remaining: amount,
			CreatedAt: projNow.Add(-time.Duration(len(lots)) * time.Minute)}
		if b[i]&0x40 != 0 {
			l.Priority = int(b[i]>>2&0x0F) * 5
		}
		if h := int(b[i+3])<<8 | int(b[i+4]); h != 0 {
			exp := projNow.Add(time.Duration(h%10_500) * time.Hour)
			l.ExpiresAt = &exp
		}
		lots = append(lots, l)
	}
	return lots
}

// FuzzProjection checks projections against the hour-by-hour oracle and
// their invariants: a projected date is never before now nor beyond the
// horizon, a zero rate gives no date, more credits never run out sooner, a
// faster rate never lasts longer, losses never exceed what was available,
// and TopUpFor is the least top-up that lasts.
func FuzzProjection(f *testing.F) {
	f.Add(uint32(100_000), uint16(0), uint16(0), []byte{0x80, 0, 100, 0, 0})                         // 100 credits, 100 a day
	f.Add(uint32(10_000), uint16(0), uint16(0), []byte{0x80, 0x03, 0xE8, 0, 0, 0x82, 0, 100, 0, 48}) // purchase + promo expiring in 2 days
	f.Add(uint32(0), uint16(0), uint16(0), []byte{0x80, 0, 50, 0, 72})                               // no usage, an expiring lot
	f.Add(uint32(5_000), uint16(120), uint16(0), []byte{0x80, 0x10, 0, 0, 0})                        // holds
	f.Add(uint32(5_000), uint16(0), uint16(1), []byte{})                                             // nothing left
	f.Add(uint32(1), uint16(0), uint16(0), []byte{0x80, 0xFF, 0xFF, 0, 0})                           // beyond a year
	f.Add(uint32(20_000), uint16(0), uint16(0), []byte{0x81, 0, 100, 0, 96, 0x82, 0, 60, 0, 48, 0x83, 0, 40, 0, 0})
	f.Add(uint32(4_000_000_000), uint16(3), uint16(0), []byte{0xC3, 0xFF, 0xFF, 0x29, 0x04, 0x40, 0, 1, 0, 1})
	f.Add(uint32(7_777), uint16(0), uint16(0), []byte{0xC0, 0x01, 0x00, 0x01, 0x00, 0x83, 0x00, 0x20, 0x00, 0x10, 0x80, 0x00, 0x05, 0x00, 0x30})
	f.Fuzz(func(t *testing.T, rate uint32, held uint16, debt uint16, data []byte) {
		now := projNow
		lots := fuzzWallet(data)
		var sum Credits
		for _, l := range lots {
			sum += l.Remaining
		}
		available := sum - CreditsOf(int64(held)) - CreditsOf(int64(debt))
		r := Credits(rate)
		p := Project(now, lots, available, r)

		switch {
		case available <= 0:
			if p.Outlook != OutlookDepleted || !p.RunsOut.Equal(now) {
				t.Fatalf("available %s: %+v", available, p)
			}
			return
		case r == 0:
			if p.Outlook != OutlookNoUsage || !p.RunsOut.IsZero() {
				t.Fatalf("rate 0 gave a date: %+v", p)
			}
		case p.Outlook == OutlookRunsOut:
			if p.RunsOut.Before(now) || p.RunsOut.After(now.Add(ProjectionHorizon)) {
				t.Fatalf("runs out at %s, outside [now, now+horizon]", p.RunsOut)
			}
		case p.Outlook != OutlookBeyond:
			t.Fatalf("outlook %s with rate %s and %s available", p.Outlook, r, available)
		}
		if p.LostCredits() > available || p.LostCredits() < 0 {
			t.Fatalf("lost %s of %s", p.LostCredits(), available)
		}
		for _, l := range p.Lost {
			if l.Credits <= 0 || l.At.Before(now) || (p.Outlook == OutlookRunsOut && l.At.After(p.RunsOut)) {
				t.Fatalf("loss %+v (runs out %s)", l, p.RunsOut)
			}
		}
		if r == 0 {
			return
		}

		// The oracle agrees on the hour and the losses.
		lo, hi, ran, lost := oracle(now, lots, available, r)
		if ran != (p.Outlook == OutlookRunsOut) {
			t.Fatalf("oracle ran out %v at %s; projection %s at %s", ran, lo, p.Outlook, p.RunsOut)
		}
		if ran && (p.RunsOut.Before(lo) || p.RunsOut.After(hi)) {
			t.Fatalf("runs out at %s, oracle says between %s and %s", p.RunsOut, lo, hi)
		}
		if fmt.Sprint(lost) != fmt.Sprint(p.Lost) {
			t.Fatalf("lost %v, oracle %v", p.Lost, lost)
		}
		if ran {
			// Every credit is used or lost by then, and not much sooner.
			used := Credits(mulDiv(int64(r), p.RunsOut.Sub(now).Microseconds(), dayMicros))
			if used+p.LostCredits() < available {
				t.Fatalf("ran out at %s having used %s and lost %s of %s", p.RunsOut, used, p.LostCredits(), available)
			}
		}

		// More credits never run out sooner.
		for _, extra := range []Credits{1, CreditsOf(1), CreditsOf(int64(held) + 17)} {
			q := Project(now, withPurchase(now, lots, extra), available+extra, r)
			if p.Outlook == OutlookBeyond && q.Outlook != OutlookBeyond || q.Outlook == OutlookRunsOut && q.RunsOut.Before(p.RunsOut) {
				t.Fatalf("%s more credits run out sooner: %s %s, was %s %s", extra, q.Outlook, q.RunsOut, p.Outlook, p.RunsOut)
			}
		}
		// A faster rate never lasts longer (give or take the time one
		// millicredit takes: usage is counted in whole millicredits when a
		// lot expires, so a fraction may carry over to the next lot).
		fast := r*2 + 1
		q := Project(now, lots, available, fast)
		slack := time.Duration(ceilMulDiv(1, dayMicros, int64(fast))) * time.Microsecond
		if p.Outlook == OutlookRunsOut && (q.Outlook != OutlookRunsOut || q.RunsOut.After(p.RunsOut.Add(slack))) {
			t.Fatalf("a faster rate lasts longer: %s %s, was %s", q.Outlook, q.RunsOut, p.RunsOut)
		}

		// TopUpFor is the least whole number of credits that lasts.
		until := now.Add(time.Duration(int(rate%1400)+1) * 6 * time.Hour) // within the horizon
		lasts := func(extra Credits) bool {
			q := Project(now, withPurchase(now, lots, extra), available+extra, r)
			return q.Outlook == OutlookBeyond || q.Outlook == OutlookRunsOut && !q.RunsOut.Before(until)
		}
		need := TopUpFor(now, lots, available, r, until)
		if need < 0 || need%Milli != 0 || !lasts(need) || need > 0 && lasts(need-Milli) {
			t.Fatalf("TopUpFor(until %s) = %s: lasts %v, one less lasts %v", until, need, lasts(need), lasts(need-Milli))
		}
	})
}

// FuzzRateOver checks usage rates: never negative, the 30-day window holds
// at least the 7-day one's credits, the average times the span is the
// usage (to the millicredit), and more usage never lowers the rate.
func FuzzRateOver(f *testing.F) {
	f.Add(int64(12*3600), []byte{1, 10, 2, 20, 3, 30})
	f.Add(int64(0), []byte{})
	f.Add(int64(86399), []byte{0, 255, 29, 1, 6, 7, 40, 9})
	f.Fuzz(func(t *testing.T, secs int64, data []byte) {
		now := projNow.Add(time.Duration(secs%86400) * time.Second)
		var ds []UsageDay
		for i := 0; i+1 < len(data); i += 2 {
			ago := int(data[i] % 45)
			ds = append(ds, UsageDay{Day: now.AddDate(0, 0, -ago).Format(time.DateOnly), Credits: Credits(data[i+1]) * 1234})
		}
		w, m := RateOver(ds, 7, now), RateOver(ds, 30, now)
		for _, r := range []UsageRate{w, m} {
			if r.PerDay < 0 || r.Used < 0 || (r.Used > 0) != (r.PerDay > 0 || r.Span > 0) {
				t.Fatalf("rate %+v", r)
			}
			if r.Used > 0 {
				if r.Span < 24*time.Hour || r.Span > time.Duration(r.Window)*24*time.Hour {
					t.Fatalf("span %s for a %d-day window", r.Span, r.Window)
				}
				// PerDay is Used per day of Span, rounded down.
				back := mulDiv(int64(r.PerDay), r.Span.Microseconds(), dayMicros)
				next := mulDiv(int64(r.PerDay+1), r.Span.Microseconds(), dayMicros)
				if back > int64(r.Used) || next < int64(r.Used) {
					t.Fatalf("per day %s over %s does not give %s", r.PerDay, r.Span, r.Used)
				}
			}
		}
		if m.Used < w.Used {
			t.Fatalf("30 days hold %s, 7 days %s", m.Used, w.Used)
		}
		more := append(ds, UsageDay{Day: now.Format(time.DateOnly), Credits: 1})
		if r := RateOver(more, 7, now); r.PerDay < w.PerDay {
			t.Fatalf("more usage lowered the rate: %s < %s", r.PerDay, w.PerDay)
		}
	})
}

// TestDaysSinceStart: a rate whose usage began inside its window names the
// days it averages over (today counting as one); a full window names none.
func TestDaysSinceStart(t *testing.T) {
	now := time.Date(2026, 3, 11, 6, 0, 0, 0, time.UTC)
	day := func(d int) string { return now.AddDate(0, 0, -d).Format(time.DateOnly) }
	for _, tc := range []struct {
		name     string
		first    int // days ago of the first usage
		window   int
		wantDays int
	}{
		{"today only", 0, 7, 1},
		{"three days", 2, 7, 3},
		{"the whole week", 6, 7, 0},
		{"before the week", 20, 7, 0},
		{"ten days of thirty", 9, 30, 10},
		{"the whole month", 40, 30, 0},
	} {
		r := RateOver([]UsageDay{{Day: day(tc.first), Credits: CreditsOf(10)}, {Day: day(0), Credits: CreditsOf(10)}}, tc.window, now)
		if got := r.DaysSinceStart(); got != tc.wantDays {
			t.Errorf("%s: DaysSinceStart = %d (span %v), want %d", tc.name, got, r.Span, tc.wantDays)
		}
	}
	if got := (UsageRate{Window: 7}).DaysSinceStart(); got != 0 {
		t.Errorf("no usage: %d, want 0", got)
	}
}

func TestLossSplit(t *testing.T) {
	d1 := time.Date(2026, 12, 7, 10, 12, 0, 0, time.UTC)
	d2 := d1.AddDate(0, 1, 0)
	p := Projection{Lost: []ExpiryLoss{{LotID: 1, At: d1, Credits: CreditsOf(500)}, {LotID: 2, At: d1, Credits: CreditsOf(29)}, {LotID: 3, At: d2, Credits: CreditsOf(251)}}}
	at, first, later := p.LossSplit()
	if !at.Equal(d1) || first != CreditsOf(529) || later != CreditsOf(251) || first+later != p.LostCredits() {
		t.Fatalf("LossSplit = %v %s %s", at, first, later)
	}
	if first != p.LostFrom(1)+p.LostFrom(2) {
		t.Fatal("the first figure is not its lots' LostFrom")
	}
	if at, first, later := (Projection{}).LossSplit(); !at.IsZero() || first != 0 || later != 0 {
		t.Fatal("no loss")
	}
}
