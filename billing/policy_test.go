package billing

import (
	"strings"
	"testing"
	"time"
)

func TestPolicyValidate(t *testing.T) {
	if errs := DefaultPolicy.Validate(); len(errs) != 0 {
		t.Fatalf("the default policy: %v", errs)
	}
	d := 24 * time.Hour
	for name, c := range map[string]struct {
		change func(*Policy)
		field  string
	}{
		"negative refund window":      {func(p *Policy) { p.RefundWindow = -d }, "refund_window"},
		"refund window in hours":      {func(p *Policy) { p.RefundWindow = 36 * time.Hour }, "refund_window"},
		"refund window past expiry":   {func(p *Policy) { p.PurchaseExpiry, p.RefundWindow = 10*d, 20*d }, "refund_window"},
		"expiry over ten years":       {func(p *Policy) { p.PurchaseExpiry = 3651 * d }, "purchase_expiry"},
		"promo expiry in hours":       {func(p *Policy) { p.PromoExpiry = time.Hour }, "promo_expiry"},
		"zero custom min":             {func(p *Policy) { p.CustomMin = 0 }, "custom_min"},
		"custom max under min":        {func(p *Policy) { p.CustomMax = p.CustomMin - 1 }, "custom_max"},
		"custom max too large":        {func(p *Policy) { p.CustomMax = MaxTopUp + 1 }, "custom_max"},
		"zero percent":                {func(p *Policy) { p.LowBalancePercent = 0 }, "low_balance_percent"},
		"101 percent":                 {func(p *Policy) { p.LowBalancePercent = 101 }, "low_balance_percent"},
		"hold ttl zero":               {func(p *Policy) { p.HoldTTL = 0 }, "hold_ttl"},
		"hold ttl over its max":       {func(p *Policy) { p.HoldTTL, p.HoldMaxTTL = time.Hour, time.Minute }, "hold_ttl"},
		"hold max over a day":         {func(p *Policy) { p.HoldMaxTTL = 25 * time.Hour }, "hold_max_ttl"},
		"negative refills":            {func(p *Policy) { p.RefillMaxPerMonth = -1 }, "refill_max_per_month"},
		"refills over the portal max": {func(p *Policy) { p.RefillMaxPerMonth = 1001 }, "refill_max_per_month"},
		"negative overdraft":          {func(p *Policy) { p.DefaultOverdraft = -1 }, "default_overdraft"},
		"negative refill amount":      {func(p *Policy) { p.RefillMaxAmountPerMonth = -1 }, "refill_max_amount_per_month"},
		"refill amount too large":     {func(p *Policy) { p.RefillMaxAmountPerMonth = MaxTopUp + 1 }, "refill_max_amount_per_month"},
	} {
		t.Run(name, func(t *testing.T) {
			p := DefaultPolicy
			c.change(&p)
			errs := p.Validate()
			if errs[c.field] == "" {
				t.Fatalf("no error for %s: %v", c.field, errs)
			}
		})
	}
}

func TestPolicyLines(t *testing.T) {
	p := DefaultPolicy
	for _, c := range []struct {
		pct  int
		last Credits
		want Credits
	}{{10, CreditsOf(1000), CreditsOf(100)}, {10, 999, 99}, {25, CreditsOf(100), CreditsOf(25)}, {100, MaxCredits, MaxCredits}, {0, CreditsOf(50), CreditsOf(5)}} {
		p.LowBalancePercent = c.pct
		if got := p.LowBalanceLine(c.last); got != c.want {
			t.Errorf("%d%% of %s = %s, want %s", c.pct, c.last, got, c.want)
		}
	}
	// The built-in line agrees with CustomerSettings.Threshold.
	if DefaultPolicy.LowBalanceLine(12345) != (CustomerSettings{}).Threshold(12345) {
		t.Fatal("the default line is not 10% of the last top-up")
	}

	p = DefaultPolicy
	p.HoldTTL, p.HoldMaxTTL = 2*time.Minute, time.Hour
	r := HoldRequest{}
	if err := p.HoldExpiry(&r); err != nil || r.TTLSeconds != 120 {
		t.Fatalf("default lifetime: %d %v", r.TTLSeconds, err)
	}
	r = HoldRequest{TTLSeconds: 3601}
	if err := p.HoldExpiry(&r); ErrorCode(err) != CodeValidation || !strings.Contains(err.Error(), "3600") {
		t.Fatalf("past the longest: %v", err)
	}

	n := 4
	if most, ok := RefillCountCap(RefillSettings{MaxRefillsPerMonth: &n}, PaymentPolicy{RefillMaxPerMonth: 2}); !ok || most != 4 {
		t.Fatal("the customer's own cap comes first")
	}
	if most, ok := RefillCountCap(RefillSettings{}, PaymentPolicy{RefillMaxPerMonth: 2}); !ok || most != 2 {
		t.Fatal("the policy's cap applies when the customer set none")
	}
	if _, ok := RefillCountCap(RefillSettings{}, PaymentPolicy{}); ok {
		t.Fatal("no cap anywhere is no cap")
	}
	own := int64(50_00)
	if most, ok := RefillAmountCap(RefillSettings{MaxAmountPerMonth: &own}, PaymentPolicy{RefillMaxAmountPerMonth: 200_00}); !ok || most != 50_00 {
		t.Fatal("the customer's own amount cap comes first")
	}
	if most, ok := RefillAmountCap(RefillSettings{}, PaymentPolicy{RefillMaxAmountPerMonth: 200_00}); !ok || most != 200_00 {
		t.Fatal("the policy's amount cap applies when the customer set none")
	}
	if _, ok := RefillAmountCap(RefillSettings{}, Policy{}.Payment()); ok {
		t.Fatal("no amount cap anywhere is no cap")
	}
	if got := (Policy{RefillMaxAmountPerMonth: 300_00}).Payment().RefillMaxAmountPerMonth; got != 300_00 {
		t.Fatalf("the payment policy lost the amount cap: %d", got)
	}
}

func TestDiffPolicy(t *testing.T) {
	money := func(a int64) string { return "$" + formatInt(a/100) }
	a := DefaultPolicy
	b := a
	b.RefundWindow, b.HoldTTL, b.CustomMax = 14*24*time.Hour, time.Minute, 2000_00
	ch := DiffPolicy(a, b, money)
	if len(ch) != 3 {
		t.Fatalf("changes: %+v", ch)
	}
	want := []PolicyChange{
		{Field: "refund_window", Label: "Refund window", Before: "30 days", After: "14 days", Money: true},
		{Field: "custom_max", Label: "Largest custom top-up", Before: "$1,000", After: "$2,000", Money: true},
		{Field: "hold_ttl", Label: "Default hold lifetime", Before: "600 s", After: "60 s"},
	}
	for i := range want {
		if ch[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, ch[i], want[i])
		}
	}
	if len(DiffPolicy(a, a, money)) != 0 {
		t.Fatal("no change is no diff")
	}
}
