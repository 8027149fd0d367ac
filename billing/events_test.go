package billing

import (
	"slices"
	"testing"
)

func TestBalanceEventsFireOncePerCrossing(t *testing.T) {
	c := CreditsOf
	for _, tc := range []struct {
		name                     string
		before, after, threshold Credits
		announced                bool
		want                     []string
	}{
		{"above to above", c(50), c(40), c(10), false, nil},
		{"crosses the line", c(50), c(10), c(10), false, []string{EventBalanceLow}},
		{"below to further below: no repeat", c(10), c(5), c(10), true, nil},
		{"to zero from below the line", c(5), c(0), c(10), true, []string{EventBalanceDepleted}},
		{"straight through both", c(50), -c(3), c(10), false, []string{EventBalanceLow, EventBalanceDepleted}},
		{"no threshold: only depleted", c(5), c(0), 0, false, []string{EventBalanceDepleted}},
		{"negative to less negative", -c(5), -c(1), c(10), true, nil},
		{"recovers after a low", c(5), c(50), c(10), true, []string{EventBalanceRecovered}},
		{"first grant recovers from nothing", 0, c(50), c(10), false, nil},
		{"up but still below", c(2), c(8), c(10), true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range BalanceEvents("cus_1", tc.before, tc.after, tc.threshold, tc.announced) {
				got = append(got, e.Type)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("BalanceEvents(%v -> %v, line %v) = %v, want %v", tc.before, tc.after, tc.threshold, got, tc.want)
			}
		})
	}
	if !LowAnnounced([]string{EventGrantCreated, EventBalanceLow, EventGrantCreated}) || LowAnnounced([]string{EventBalanceDepleted, EventBalanceRecovered}) || LowAnnounced(nil) {
		t.Fatal("LowAnnounced reads the last threshold event wrong")
	}
}

func TestCapsReached(t *testing.T) {
	c := func(n int64) *Credits { v := CreditsOf(n); return &v }
	uses := []CapUse{{Scope: CapScopeCustomer, Caps: SpendCaps{DailyCap: c(10), MonthlyCap: c(100)}, Spent: Spend{Day: CreditsOf(8), Month: CreditsOf(98)}}}
	if evs := CapsReached("cus_1", uses, CreditsOf(1)); len(evs) != 0 {
		t.Fatalf("under both caps: %v", evs)
	}
	evs := CapsReached("cus_1", uses, CreditsOf(2))
	if len(evs) != 2 || evs[0].Data["limit_type"] != "daily" || evs[1].Data["limit_type"] != "monthly" {
		t.Fatalf("reaching both caps: %+v", evs)
	}
	uses[0].Spent = Spend{Day: CreditsOf(10), Month: CreditsOf(100)}
	if evs := CapsReached("cus_1", uses, 0); len(evs) != 0 {
		t.Fatalf("already at the caps fires again: %v", evs)
	}
}

func TestNoticeRules(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		data map[string]any
		want bool
	}{
		{EventAutoRefillFailed, map[string]any{"failures": float64(1)}, true},
		{EventAutoRefillFailed, map[string]any{"failures": float64(2)}, false}, // the same streak: the first notice stands
		{EventAutoRefillFailed, map[string]any{"reason": RefillSkipNoCard}, true},
		{EventAutoRefillPaused, nil, true},
		{EventAutoRefillActionRequired, nil, true},
		{EventDisputeOpened, nil, true},
		{EventBalanceLow, nil, false},
		{EventTopUpSucceeded, nil, false},
	} {
		if got := IsNotice(tc.typ, tc.data); got != tc.want {
			t.Errorf("IsNotice(%s, %v) = %v", tc.typ, tc.data, got)
		}
	}
	if !ResolvedBy(EventAutoRefillPaused, EventAutoRefillSucceeded) || ResolvedBy(EventDisputeOpened, EventAutoRefillSucceeded) ||
		ResolvedBy(EventAutoRefillFailed, EventTopUpSucceeded) {
		t.Error("ResolvedBy: a successful auto-refill resolves refill notices, nothing else")
	}
}
