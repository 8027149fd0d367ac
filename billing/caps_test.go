package billing

import (
	"testing"
	"time"
)

func TestSpendCapsTighterAndCheckUnder(t *testing.T) {
	c := func(n int64) *Credits { v := CreditsOf(n); return &v }
	got := SpendCaps{DailyCap: c(10)}.Tighter(SpendCaps{DailyCap: c(5), MonthlyCap: c(100)})
	if *got.DailyCap != CreditsOf(5) || *got.MonthlyCap != CreditsOf(100) {
		t.Fatalf("Tighter = %+v", got)
	}
	if got := (SpendCaps{}).Tighter(SpendCaps{}); got.Set() {
		t.Fatalf("no caps made %+v", got)
	}
	op := SpendCaps{DailyCap: c(10)}
	for _, tc := range []struct {
		own  SpendCaps
		want string
	}{
		{SpendCaps{}, ""},
		{SpendCaps{DailyCap: c(10)}, ""},
		{SpendCaps{DailyCap: c(9), MonthlyCap: c(1000)}, ""},
		{SpendCaps{DailyCap: c(11)}, CodeValidation},
	} {
		err := tc.own.CheckUnder(op)
		if (tc.want == "" && err != nil) || (tc.want != "" && ErrorCode(err) != tc.want) {
			t.Errorf("CheckUnder(%+v) = %v, want %q", tc.own, err, tc.want)
		}
	}
}

func TestCheckSpendCapsEveryPartyApplies(t *testing.T) {
	c := func(n int64) *Credits { v := CreditsOf(n); return &v }
	uses := []CapUse{
		{Scope: CapScopeCustomer, Caps: SpendCaps{DailyCap: c(100)}, Spent: Spend{Day: CreditsOf(50)}},
		{Scope: CapScopeCustomerSelf, Caps: SpendCaps{MonthlyCap: c(60)}, Spent: Spend{Month: CreditsOf(50)}},
	}
	if err := CheckSpendCaps(uses, CreditsOf(10)); err != nil {
		t.Fatalf("10 within both: %v", err)
	}
	err := CheckSpendCaps(uses, CreditsOf(11))
	var e *Error
	if ErrorCode(err) != CodeSpendLimitExceeded || !asError(err, &e) || e.Details["scope"] != CapScopeCustomerSelf {
		t.Fatalf("11 passes the customer's own monthly cap: %v", err)
	}
}

func asError(err error, e **Error) bool {
	v, ok := err.(*Error)
	*e = v
	return ok
}

func TestPlanCaptureBounds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lots := []Lot{{ID: 1, Source: SourcePurchase, Amount: CreditsOf(30), Remaining: CreditsOf(30)}}
	snap := DebitSnapshot{State: WalletState{Wallet: Wallet{Balance: CreditsOf(30), Held: CreditsOf(10), OverdraftLimit: CreditsOf(5)}, Lots: lots}, Now: now}
	// Hold 10 + available 20 + overdraft 5 = 25... plus the hold: at most 35.
	if _, err := PlanCapture(snap, CreditsOf(10), CreditsOf(35)); err != nil {
		t.Fatalf("capture at the bound: %v", err)
	}
	_, err := PlanCapture(snap, CreditsOf(10), CreditsOf(35)+1)
	var e *Error
	if !asError(err, &e) || e.Code != CodeInsufficientCredits || e.Details["max_capture"] != CreditsOf(35) {
		t.Fatalf("capture past the bound: %v", err)
	}
	// The hold's own credits stay capturable when expiries took available below zero.
	low := DebitSnapshot{State: WalletState{Wallet: Wallet{Balance: CreditsOf(5), Held: CreditsOf(10)}, Lots: []Lot{{ID: 1, Amount: CreditsOf(5), Remaining: CreditsOf(5)}}}, Now: now}
	if p, err := PlanCapture(low, CreditsOf(10), CreditsOf(10)); err != nil || p.BalanceAfter != -CreditsOf(5) {
		t.Fatalf("capture of the held amount with available below zero: %+v %v", p, err)
	}
	// Only what passes the hold counts against the caps (the hold already does).
	capped := snap
	capped.Caps = []CapUse{{Scope: CapScopeCustomer, Caps: SpendCaps{DailyCap: ptr(CreditsOf(15))}, Spent: Spend{Day: CreditsOf(10)}}}
	if _, err := PlanCapture(capped, CreditsOf(10), CreditsOf(15)); err != nil {
		t.Fatalf("capture passing the hold by 5 under a cap with 5 left: %v", err)
	}
	if _, err := PlanCapture(capped, CreditsOf(10), CreditsOf(16)); ErrorCode(err) != CodeSpendLimitExceeded {
		t.Fatalf("capture passing the cap: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestPlanGrantBoundsTheBalance(t *testing.T) {
	if _, err := PlanGrant(Wallet{Balance: MaxBalance - CreditsOf(1)}, CreditsOf(1)); err != nil {
		t.Fatalf("grant up to the bound: %v", err)
	}
	if _, err := PlanGrant(Wallet{Balance: MaxBalance - CreditsOf(1)}, CreditsOf(1)+1); ErrorCode(err) != CodeOutOfRange {
		t.Fatalf("grant past the bound: %v", err)
	}
}

func TestCapsAlreadyReached(t *testing.T) {
	now := time.Date(2026, 12, 31, 23, 59, 0, 0, time.FixedZone("x", 3600))
	day, month := CapWindowEnds(now)
	if want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC); !day.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC).Add(24*time.Hour)) || !month.Equal(want) {
		t.Fatalf("windows end %v and %v", day, month)
	}
	c := func(n int64) *Credits { v := CreditsOf(n); return &v }
	got := CapsAlreadyReached(SpendCaps{DailyCap: c(10), MonthlyCap: c(100)}, Spend{Day: CreditsOf(10), Month: CreditsOf(99)}, now)
	if len(got) != 1 || got[0].Param != "daily_cap" || got[0].Spent != CreditsOf(10) || !got[0].Resets.Equal(day) {
		t.Fatalf("at the daily cap: %+v", got)
	}
	// The check agrees with CheckCaps: a reached cap refuses the smallest charge, one not reached takes it.
	if err := CheckCaps("customer", Limits{DailyCap: c(10)}, Spend{Day: CreditsOf(10)}, 1); err == nil {
		t.Fatal("CheckCaps takes a charge at a reached cap")
	}
	if got := CapsAlreadyReached(SpendCaps{DailyCap: c(10)}, Spend{Day: CreditsOf(10) - 1}, now); len(got) != 0 {
		t.Fatalf("below the cap: %+v", got)
	}
	if got := CapsAlreadyReached(SpendCaps{MonthlyCap: c(5)}, Spend{Month: CreditsOf(6)}, now); len(got) != 1 || !got[0].Resets.Equal(month) {
		t.Fatalf("above the monthly cap: %+v", got)
	}
}
