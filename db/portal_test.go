package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The portal saves a customer's caps and threshold in one write that keeps
// the overdraft limit the product set; the spend it shows is what the caps
// are checked against.
func TestUpdateCustomerCaps(t *testing.T) {
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

	if err := d.UpdateCustomerCaps(ctx, "alpha", billing.CustomerCapsInput{DailyCap: credits(8), MonthlyCap: credits(50), LowBalanceThreshold: credits(30)}); err != nil {
		t.Fatal(err)
	}
	c, err := d.FindCustomer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if *c.CustomerCaps.DailyCap != billing.CreditsOf(8) || *c.CustomerCaps.MonthlyCap != billing.CreditsOf(50) ||
		c.Limits.OverdraftLimit != billing.CreditsOf(20) || c.Limits.DailyCap != nil || c.Limits.MonthlyCap != nil {
		t.Fatalf("caps %+v, limits %+v: want the customer's caps 8 and 50, no operator caps and the overdraft of 20 kept", c.CustomerCaps, c.Limits)
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
	for _, sc := range []billing.CustomerCapsInput{
		{DailyCap: credits(-1)},
		{DailyCap: credits(60), MonthlyCap: credits(50)},
		{LowBalanceThreshold: credits(-1)},
	} {
		if err := d.UpdateCustomerCaps(ctx, id, sc); billing.ErrorCode(err) != billing.CodeValidation {
			t.Fatalf("%+v: %v, want validation_failed", sc, err)
		}
	}
	if err := d.UpdateCustomerCaps(ctx, "ghost", billing.CustomerCapsInput{}); billing.ErrorCode(err) != billing.CodeCustomerNotFound {
		t.Fatalf("unknown customer: %v", err)
	}
	c, _ = d.FindCustomer(ctx, id)
	if *c.CustomerCaps.DailyCap != billing.CreditsOf(8) {
		t.Fatalf("a refused update changed the caps: %+v", c.CustomerCaps)
	}
	// Nil removes the caps and restores the default threshold.
	if err := d.UpdateCustomerCaps(ctx, id, billing.CustomerCapsInput{}); err != nil {
		t.Fatal(err)
	}
	c, _ = d.FindCustomer(ctx, id)
	set, _ = d.FindCustomerSettings(ctx, id)
	if c.CustomerCaps.Set() || set.LowBalanceThreshold != nil || c.Limits.OverdraftLimit != billing.CreditsOf(20) {
		t.Fatalf("after clearing: %+v threshold %v", c.CustomerCaps, set.LowBalanceThreshold)
	}
	mustVerify(t, d)
}

// The operator's caps (API) and the customer's own (portal) are two sets:
// neither writes the other, both apply, the tighter refuses, and a customer
// cannot set a cap above the operator's.
func TestOperatorAndCustomerCaps(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "alpha", 1000)
	credits := func(n int64) *billing.Credits { c := billing.CreditsOf(n); return &c }
	if _, err := d.SetLimits(ctx, id, billing.Limits{DailyCap: credits(20), MonthlyCap: credits(100)}); err != nil {
		t.Fatal(err)
	}
	// Above the operator's cap: refused beside its field, nothing saved.
	err := d.UpdateCustomerCaps(ctx, id, billing.CustomerCapsInput{DailyCap: credits(50)})
	var be *billing.Error
	if !errors.As(err, &be) || be.Code != billing.CodeValidation || be.Details["param"] != "daily_cap" {
		t.Fatalf("customer cap above the operator's: %v, want validation_failed on daily_cap", err)
	}
	// Clearing their own caps does not clear the operator's.
	if err := d.UpdateCustomerCaps(ctx, id, billing.CustomerCapsInput{}); err != nil {
		t.Fatal(err)
	}
	c, _ := d.FindCustomer(ctx, id)
	if c.Limits.DailyCap == nil || *c.Limits.DailyCap != billing.CreditsOf(20) || c.CustomerCaps.Set() {
		t.Fatalf("after the customer cleared theirs: limits %+v, own %+v", c.Limits, c.CustomerCaps)
	}
	// A lower cap of their own applies, and the operator's update keeps it.
	if err := d.UpdateCustomerCaps(ctx, id, billing.CustomerCapsInput{DailyCap: credits(12)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetLimits(ctx, id, billing.Limits{DailyCap: credits(20), MonthlyCap: credits(100), OverdraftLimit: billing.CreditsOf(1)}); err != nil {
		t.Fatal(err)
	}
	c, _ = d.FindCustomer(ctx, id)
	if c.CustomerCaps.DailyCap == nil || *c.CustomerCaps.DailyCap != billing.CreditsOf(12) {
		t.Fatalf("the operator's update changed the customer's cap: %+v", c.CustomerCaps)
	}
	debit := func(n int64) error {
		_, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(n)})
		return err
	}
	if err := debit(2); err != nil { // 10 credits
		t.Fatal(err)
	}
	scope := func(err error) any {
		var be *billing.Error
		if !errors.As(err, &be) || be.Code != billing.CodeSpendLimitExceeded {
			t.Fatalf("%v, want spend_limit_exceeded", err)
		}
		return be.Details["scope"]
	}
	if s := scope(debit(1)); s != billing.CapScopeCustomerSelf { // 15 > own 12
		t.Fatalf("refused by %v, want the customer's own cap", s)
	}
	// The operator lowers theirs under the customer's: now it refuses first.
	if _, err := d.SetLimits(ctx, id, billing.Limits{DailyCap: credits(11)}); err != nil {
		t.Fatal(err)
	}
	if s := scope(debit(1)); s != billing.CapScopeCustomer {
		t.Fatalf("refused by %v, want the operator's cap", s)
	}
	// The quote agrees with the debit.
	q, err := d.Quote(ctx, id, "image.generate", qty(1), nil, nil)
	if err != nil || q.Affordable || q.Reason != billing.CodeSpendLimitExceeded {
		t.Fatalf("quote = %+v, %v; want unaffordable by a spend limit", q, err)
	}
	mustVerify(t, d)
}
