package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The portal saves a customer's caps and threshold in one write that keeps
// the overdraft limit the product set; the spend it shows is what the caps
// are checked against.
func TestUpdateSpendControls(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "alpha", 100)
	credits := func(n int64) *billing.Credits { c := billing.CreditsOf(n); return &c }
	if _, err := d.SetLimits(ctx, id, billing.Limits{OverdraftLimit: billing.CreditsOf(20)}); err != nil {
		t.Fatal(err)
	}
	debit := func(key string) error {
		_, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(1), IdempotencyKey: key})
		return err
	}
	if err := debit("yesterday"); err != nil {
		t.Fatal(err)
	}
	clk.Add(24 * time.Hour)
	if err := debit("today"); err != nil {
		t.Fatal(err)
	}

	if err := d.UpdateSpendControls(ctx, "alpha", billing.SpendControls{DailyCap: credits(8), MonthlyCap: credits(50), LowBalanceThreshold: credits(30)}); err != nil {
		t.Fatal(err)
	}
	c, err := d.FindCustomer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if *c.Limits.DailyCap != billing.CreditsOf(8) || *c.Limits.MonthlyCap != billing.CreditsOf(50) || c.Limits.OverdraftLimit != billing.CreditsOf(20) {
		t.Fatalf("limits %+v: want caps 8 and 50 and the overdraft of 20 kept", c.Limits)
	}
	set, err := d.FindCustomerSettings(ctx, id)
	if err != nil || *set.LowBalanceThreshold != billing.CreditsOf(30) {
		t.Fatalf("threshold %v (%v), want 30", set.LowBalanceThreshold, err)
	}
	spent, err := d.CustomerSpend(ctx, id)
	if err != nil || spent != (billing.Spend{Day: billing.CreditsOf(5), Month: billing.CreditsOf(10)}) {
		t.Fatalf("spend %+v (%v), want 5 today and 10 this month", spent, err)
	}
	// The cap it shows is the cap the writer applies: 5 + 5 > 8.
	if err := debit("over-the-cap"); billing.ErrorCode(err) != billing.CodeSpendLimitExceeded {
		t.Fatalf("debit over the daily cap: %v, want spend_limit_exceeded", err)
	}

	// Invalid controls change nothing.
	for _, sc := range []billing.SpendControls{
		{DailyCap: credits(-1)},
		{DailyCap: credits(60), MonthlyCap: credits(50)},
		{LowBalanceThreshold: credits(-1)},
	} {
		if err := d.UpdateSpendControls(ctx, id, sc); billing.ErrorCode(err) != billing.CodeValidation {
			t.Fatalf("%+v: %v, want validation_failed", sc, err)
		}
	}
	if err := d.UpdateSpendControls(ctx, "ghost", billing.SpendControls{}); billing.ErrorCode(err) != billing.CodeCustomerNotFound {
		t.Fatalf("unknown customer: %v", err)
	}
	c, _ = d.FindCustomer(ctx, id)
	if *c.Limits.DailyCap != billing.CreditsOf(8) {
		t.Fatalf("a refused update changed the caps: %+v", c.Limits)
	}
	// Nil removes the caps and restores the default threshold.
	if err := d.UpdateSpendControls(ctx, id, billing.SpendControls{}); err != nil {
		t.Fatal(err)
	}
	c, _ = d.FindCustomer(ctx, id)
	set, _ = d.FindCustomerSettings(ctx, id)
	if c.Limits.DailyCap != nil || c.Limits.MonthlyCap != nil || set.LowBalanceThreshold != nil || c.Limits.OverdraftLimit != billing.CreditsOf(20) {
		t.Fatalf("after clearing: %+v threshold %v", c.Limits, set.LowBalanceThreshold)
	}
	mustVerify(t, d)
}
