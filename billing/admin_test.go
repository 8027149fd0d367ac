package billing

import (
	"testing"
	"time"
)

func TestFrozenAccountRefusesDebitsAndHolds(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := DebitSnapshot{State: WalletState{Customer: "cus_1", Wallet: Wallet{Balance: CreditsOf(100)},
		Lots: []Lot{{ID: 1, Source: SourcePurchase, Amount: CreditsOf(100), Remaining: CreditsOf(100), CreatedAt: now}}}, Now: now}
	if _, err := PlanUsage(s, CreditsOf(1)); err != nil {
		t.Fatalf("an active account's debit: %v", err)
	}
	s.State.Frozen = true
	if _, err := PlanUsage(s, CreditsOf(1)); ErrorCode(err) != CodeAccountFrozen {
		t.Errorf("debit: %v, want account_frozen", err)
	}
	if err := PlanHold(s, CreditsOf(1)); ErrorCode(err) != CodeAccountFrozen {
		t.Errorf("hold: %v, want account_frozen", err)
	}
	if _, err := PlanDebitChange(&s, Usage{Charge: CreditsOf(1)}); ErrorCode(err) != CodeAccountFrozen {
		t.Errorf("debit change: %v, want account_frozen", err)
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		role, min string
		want      bool
	}{
		{RoleOwner, RoleSupport, true}, {RoleOwner, RoleOwner, true}, {RoleAdmin, RoleOwner, false},
		{RoleAdmin, RoleAdmin, true}, {RoleSupport, RoleAdmin, false}, {"", RoleSupport, false}, {"root", RoleSupport, false},
	} {
		if got := RoleAtLeast(tc.role, tc.min); got != tc.want {
			t.Errorf("RoleAtLeast(%q, %q) = %v", tc.role, tc.min, got)
		}
	}
}
