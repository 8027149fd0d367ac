package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestProviderPlanChange: a Stripe subscriber's upgrade (Starter $10, 1,000
// credits, to Pro $40, 5,000, half-way through a 30-day period: 2,000
// credits and $15.00) is granted once per click key, whether the request
// comes twice or Stripe's customer.subscription.updated (naming the click)
// comes first; a change without a key is refused; a downgrade scheduled
// twice is one change. The period moving on at Stripe brings the
// downgrade in, and the renewal is pending until its invoice is paid.
func TestProviderPlanChange(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: start.Add(15 * 24 * time.Hour)}
	d := mustPlanDB(t, clk)
	pol := billing.DefaultPaymentPolicy
	sub := func(ext, provID string) string {
		id := mustCustomer(t, d, ext, 0)
		if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "starter", Provider: db.ProviderStripe, ProviderID: provID,
			Invoice: "in_" + ext, Start: start, End: start.Add(30 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	at := clk.Now()

	a := sub("a", "sub_A")
	if _, err := d.ChangeSubscriptionPlan(ctx, db.PlanChangeInput{Customer: a, Plan: "pro", At: at}); billing.ErrorCode(err) != billing.CodeInvalidRequest {
		t.Fatalf("a Stripe upgrade without a key: %v", err)
	}
	for i := range 2 {
		res, err := d.ChangeSubscriptionPlan(ctx, db.PlanChangeInput{Customer: a, Plan: "pro", Key: "click_1", At: at, Actor: billing.CustomerActor(a)})
		if err != nil || res.Quote == nil || res.Quote.CreditsNow != billing.CreditsOf(2000) || res.Quote.AmountNow.Amount != 1500 || res.Replayed != (i == 1) {
			t.Fatalf("upgrade %d: %+v %+v, %v", i, res, res.Quote, err)
		}
	}
	mustBalance(t, d, a, 3000)

	// Stripe's event first: it grants; the request then finds it granted.
	b := sub("b", "sub_B")
	ev := billing.PaymentEvent{ID: "evt_b", Type: billing.EventProviderSubscriptionUpdated, Subscription: &billing.ProviderSubscription{ID: "sub_B",
		Status: "active", PeriodStart: start, PeriodEnd: start.Add(30 * 24 * time.Hour), PlanRef: "tally/pro/month/4000usd",
		Metadata: map[string]string{"tally_plan": "pro", "tally_price_version": "2", "tally_effective": "now", "tally_change": "click_2",
			"tally_change_at": "1776297600"}}} // 16 Apr 2026, half-way
	if _, err := d.ApplyPaymentEvent(ctx, db.ProviderStripe, ev, pol); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, d, b, 3000)
	res, err := d.ChangeSubscriptionPlan(ctx, db.PlanChangeInput{Customer: b, Plan: "pro", Key: "click_2", At: at})
	if err != nil || !res.Replayed {
		t.Fatalf("the request after the event: %+v, %v", res, err)
	}
	mustBalance(t, d, b, 3000)

	// A downgrade, twice: one change, one event.
	before := eventCounts(t, d, a)[billing.EventSubscriptionUpdated]
	for range 2 {
		if _, err := d.ChangeSubscriptionPlan(ctx, db.PlanChangeInput{Customer: a, Plan: "basic", Key: "click_3", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	if n := eventCounts(t, d, a)[billing.EventSubscriptionUpdated] - before; n != 1 {
		t.Fatalf("%d subscription.updated events for one downgrade, want 1", n)
	}
	// Stripe moves the period on before its invoice: Basic now, renewal pending.
	p2 := start.Add(30 * 24 * time.Hour)
	clk.Add(p2.Add(time.Hour).Sub(clk.Now()))
	ev = billing.PaymentEvent{ID: "evt_a2", Type: billing.EventProviderSubscriptionUpdated, Subscription: &billing.ProviderSubscription{ID: "sub_A",
		Status: "active", PeriodStart: p2, PeriodEnd: p2.Add(30 * 24 * time.Hour), PlanRef: "tally/basic/month/500usd",
		Metadata: map[string]string{"tally_plan": "basic", "tally_price_version": "2", "tally_effective": "period_end"}}}
	if _, err := d.ApplyPaymentEvent(ctx, db.ProviderStripe, ev, pol); err != nil {
		t.Fatal(err)
	}
	s, _ := d.FindSubscription(ctx, a)
	u, err := d.SubscriptionCredits(ctx, *s)
	if err != nil || s.Plan != "basic" || s.NextPlan != "" || u.Renewed || !billing.RenewalPending(s, u.Renewed, clk.Now()) {
		t.Fatalf("at the new period: %+v, %+v, %v", s, u, err)
	}
	if _, err := d.RenewSubscription(ctx, db.RenewInput{Subscription: "sub_A", Invoice: "in_a2", Start: p2, End: p2.Add(30 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s, _ = d.FindSubscription(ctx, a)
	if u, _ := d.SubscriptionCredits(ctx, *s); !u.Renewed || u.Granted != billing.CreditsOf(300) {
		t.Fatalf("after the invoice: %+v, want Basic's 300 credits granted", u)
	}
}
