package billing

import (
	"testing"
	"time"
)

// TestPlanSyncScheduledChanges: a provider's price change that Tally made
// for the period's end (tally_effective period_end) waits as NextPlan; the
// provider's new period brings it in (so the period's invoice, arriving
// later, grants the new plan); a change without the marker (the provider's
// dashboard, an upgrade) switches at once; an event changing nothing is no
// change.
func TestPlanSyncScheduledChanges(t *testing.T) {
	p1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	p2, p3 := p1.AddDate(0, 1, 0), p1.AddDate(0, 2, 0)
	s := &WalletState{Customer: "cus_1"}
	sub := Subscription{ID: "sub_1", Customer: "cus_1", Plan: "pro", PriceVersion: 3, Status: SubActive, CurrentPeriodStart: p1, CurrentPeriodEnd: p2}
	ps := func(start, end time.Time, effective string) ProviderSubscription {
		return ProviderSubscription{ID: "sub_S", Status: "active", PeriodStart: start, PeriodEnd: end, Metadata: map[string]string{MetaEffective: effective}}
	}
	cases := []struct {
		name     string
		sub      Subscription
		ps       ProviderSubscription
		plan     Plan
		version  int64
		changed  bool
		wantPlan string
		wantVer  int64
		wantNext string
		wantFrom time.Time
	}{
		{"downgrade waits", sub, ps(p1, p2, EffectivePeriodEnd), testStarter, 4, true, "pro", 3, "starter", p1},
		{"dashboard change now", sub, ps(p1, p2, ""), testStarter, 4, true, "starter", 4, "", p1},
		{"nothing differs", sub, ps(p1, p2, EffectivePeriodEnd), Plan{}, 3, false, "pro", 3, "", p1},
		{"new period brings the downgrade", func() Subscription { x := sub; x.NextPlan, x.NextPriceVersion = "starter", 4; return x }(),
			ps(p2, p3, EffectivePeriodEnd), testStarter, 4, true, "starter", 4, "", p2},
		{"new period brings a migration", func() Subscription { x := sub; x.NextPlan, x.NextPriceVersion = "pro", 5; return x }(),
			ps(p2, p3, ""), Plan{}, 3, true, "pro", 5, "", p2},
		{"an old event moves nothing back", func() Subscription { x := sub; x.NextPlan, x.NextPriceVersion = "starter", 4; return x }(),
			ps(p1.AddDate(0, -1, 0), p1, EffectivePeriodEnd), testStarter, 4, false, "pro", 3, "starter", p1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, ok := PlanSync(s, c.sub, c.ps, c.plan, c.version, p1)
			if ok != c.changed {
				t.Fatalf("changed = %v, want %v", ok, c.changed)
			}
			got := c.sub
			if ok {
				got = *ch.Subscription
				if len(ch.Entries) != 0 {
					t.Fatalf("a sync wrote entries: %+v", ch.Entries)
				}
			}
			if got.Plan != c.wantPlan || got.PriceVersion != c.wantVer || got.NextPlan != c.wantNext || !got.CurrentPeriodStart.Equal(c.wantFrom) {
				t.Fatalf("got plan %s v%d next %q from %s; want %s v%d next %q from %s", got.Plan, got.PriceVersion, got.NextPlan,
					got.CurrentPeriodStart, c.wantPlan, c.wantVer, c.wantNext, c.wantFrom)
			}
		})
	}
}

// TestRenewalPending: between a period's end and its paid invoice, and
// while the provider has moved the period on without it, the renewal is
// pending; a plan ending, past due or canceled renews nothing.
func TestRenewalPending(t *testing.T) {
	p1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	p2 := p1.AddDate(0, 1, 0)
	sub := Subscription{Status: SubActive, CurrentPeriodStart: p1, CurrentPeriodEnd: p2}
	with := func(f func(*Subscription)) *Subscription { x := sub; f(&x); return &x }
	cases := []struct {
		name    string
		sub     *Subscription
		renewed bool
		now     time.Time
		want    bool
	}{
		{"mid-period, granted", &sub, true, p1.Add(time.Hour), false},
		{"period moved on by the provider, no invoice yet", &sub, false, p1.Add(time.Hour), true},
		{"period ended, no event yet", &sub, true, p2, true},
		{"period ended long ago", &sub, true, p2.AddDate(0, 0, 3), true},
		{"ending at the period's end", with(func(s *Subscription) { s.CancelAtPeriodEnd = true }), true, p2.Add(time.Hour), false},
		{"past due", with(func(s *Subscription) { s.Status = SubPastDue }), false, p2.Add(time.Hour), false},
		{"canceled", with(func(s *Subscription) { s.Status = SubCanceled }), false, p2.Add(time.Hour), false},
		{"no subscription", nil, false, p2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := RenewalPending(c.sub, c.renewed, c.now); got != c.want {
				t.Fatalf("RenewalPending = %v, want %v", got, c.want)
			}
		})
	}
}
