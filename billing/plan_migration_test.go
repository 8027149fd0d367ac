package billing

import "testing"

// TestNewMigrationImpact: per older version, the subscribers and the
// difference per period (price and credits, new minus old, times the
// subscribers); MRR is the monthly change (a yearly plan's / 12, rounded
// down); ending subscribers, those changing plan and those on the version
// already are left alone; another interval is refused.
func TestNewMigrationImpact(t *testing.T) {
	month := func(price int64, credits int64) Plan {
		return Plan{Key: "pro", Name: "Pro", Interval: IntervalMonth, Price: Money{Amount: price, Currency: "usd"}, Credits: CreditsOf(credits)}
	}
	sub := func(v int64, f ...func(*Subscription)) Subscription {
		s := Subscription{Plan: "pro", PriceVersion: v, Status: SubActive}
		for _, g := range f {
			g(&s)
		}
		return s
	}
	to := month(5000, 6000)
	cands := []MigrationCandidate{
		{sub(1), month(4000, 5000)},
		{sub(1), month(4000, 5000)},
		{sub(2), month(5500, 5500)},
		{sub(2, func(s *Subscription) { s.CancelAtPeriodEnd = true }), month(5500, 5500)},
		{sub(2, func(s *Subscription) { s.NextPlan, s.NextPriceVersion = "starter", 3 }), month(5500, 5500)},
		{sub(2, func(s *Subscription) { s.NextPlan, s.NextPriceVersion = "pro", 3 }), month(5500, 5500)}, // migrated already
		{sub(3), to},
	}
	im, err := NewMigrationImpact(to, 3, cands)
	if err != nil {
		t.Fatal(err)
	}
	want := []MigrationGroup{
		{Version: 1, Subscribers: 2, Old: month(4000, 5000), Revenue: Money{Amount: 2000, Currency: "usd"}, Credits: CreditsOf(2000)},
		{Version: 2, Subscribers: 1, Old: month(5500, 5500), Revenue: Money{Amount: -500, Currency: "usd"}, Credits: CreditsOf(500)},
	}
	if len(im.Groups) != len(want) {
		t.Fatalf("groups = %+v", im.Groups)
	}
	for i, g := range want {
		if im.Groups[i] != g {
			t.Errorf("group %d = %+v, want %+v", i, im.Groups[i], g)
		}
	}
	if im.Subscribers != 3 || im.Skipped != 2 || im.MRR.Amount != 1500 || im.Credits != CreditsOf(2500) {
		t.Fatalf("impact = %+v", im)
	}

	year := func(price int64) Plan { p := month(price, 1000); p.Interval = IntervalYear; return p }
	im, err = NewMigrationImpact(year(60000), 2, []MigrationCandidate{{sub(1), year(48000)}})
	if err != nil || im.MRR.Amount != 1000 || im.Groups[0].Revenue.Amount != 12000 {
		t.Fatalf("yearly: %+v, %v; want +$120.00 a period, +$10.00 MRR", im, err)
	}
	if _, err := NewMigrationImpact(to, 3, []MigrationCandidate{{sub(1), year(48000)}}); ErrorCode(err) != CodeValidation {
		t.Fatalf("another interval: %v", err)
	}
}
