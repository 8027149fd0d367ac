package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/internal/stripemock"
	"github.com/tally-billing/tally/payments"
)

// newStripeMockAPI serves Tally with a Stripe provider talking to
// stripe-mock (skipped without it, unless TALLY_REQUIRE_STRIPE_MOCK=1).
func newStripeMockAPI(t *testing.T) *payAPI {
	t.Helper()
	const key = "sk_test_tallyhandlers0123456789"
	base := stripemock.Start(t, key)
	return newPayAPIWith(t, func(string) billing.PaymentProvider {
		p, err := payments.NewStripe(payments.StripeConfig{SecretKey: key, WebhookSecret: testWebhookSecret, APIBase: base})
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
}

// stripeSubscriptionMeta is a subscription event whose metadata Tally set
// with a price change (tally_plan, tally_price_version, tally_effective).
func stripeSubscriptionMeta(id string, start, end time.Time, lookup, plan, version, effective string, change ...string) string {
	extra := ""
	if len(change) == 2 {
		extra = fmt.Sprintf(`,"tally_change":%q,"tally_change_at":%q`, change[0], change[1])
	}
	return fmt.Sprintf(`{"id":%q,"object":"subscription","customer":"cus_T","status":"active","cancel_at_period_end":false,
		"current_period_start":%d,"current_period_end":%d,"metadata":{"tally_plan":%q,"tally_price_version":%q,"tally_effective":%q%s},
		"items":{"object":"list","data":[{"id":"si_1","object":"subscription_item","price":{"id":"price_T","object":"price","lookup_key":%q}}]}}`,
		id, start.Unix(), end.Unix(), plan, version, effective, extra, lookup)
}

// TestStripePlanChangeThroughThePortal: a Stripe subscriber (started by a
// signed invoice.paid) upgrades from the Plan tab against stripe-mock. The
// confirmation says what happens, hand computed: ten days into a 30-day
// period, Starter ($19, 2,000 credits) to Pro ($49, 6,000): $30.00 * 20/30
// = $20.00, which buys 4,000 * 20/30 = 2,666.7 -> 2,667 credits. The credits arrive
// once: the same confirmation posted again, the proration invoice's
// invoice.paid and the subscription's updated event (replayed) add
// nothing. The downgrade back waits for the period's end although Stripe's
// price changes at once: Stripe's event (tally_effective period_end) keeps
// Pro, the new period's event brings Starter in, and its invoice grants
// Starter's credits. Cancel and keep talk to Stripe too.
func TestStripePlanChangeThroughThePortal(t *testing.T) {
	p := newStripeMockAPI(t)
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	id, v := p.shopper(t, "acme")
	now := p.Clock.Now().UTC().Truncate(time.Second)
	p1 := now.Add(-10 * 24 * time.Hour)
	p2 := p1.Add(30 * 24 * time.Hour)
	p3 := p2.Add(30 * 24 * time.Hour)
	p.deliver(t, stripeEvent("evt_inv1", "invoice.paid", stripeInvoice("in_1", "sub_S", id, "subscription_create", p1, p2, 1900, 1, "null")))
	if got := p.available(t, id); got != billing.CreditsOf(2000) {
		t.Fatalf("after subscribing: %s", got)
	}
	page := v.get("/portal/plan").want(t, http.StatusOK)
	if doc(t, page).Find(`[data-testid="plan-choice"] [data-testid="choose-pro"]`).Length() != 1 {
		t.Fatalf("no upgrade offered to a Stripe subscriber:\n%s", page.Raw)
	}

	dlg := v.choosePlan("change", "pro")
	if got := testID(t, dlg, "plan-confirm-text"); !strings.HasPrefix(got, "You will get 2,667 credits now and pay $20.00 today. From ") {
		t.Fatalf("upgrade confirmation: %q", got)
	}
	if p.available(t, id) != billing.CreditsOf(2000) {
		t.Fatal("the confirmation wrote something")
	}
	form := planForm(t, dlg)
	if form.Get("at") != fmt.Sprint(now.Unix()) {
		t.Fatalf("the confirmation's proration time %q, want %d", form.Get("at"), now.Unix())
	}
	v.location(v.post("/portal/plan", form), http.StatusSeeOther)
	if got := p.available(t, id); got != billing.CreditsOf(2000+2667) {
		t.Fatalf("after the upgrade: %s credits", got)
	}
	if f := testID(t, v.get("/portal/plan"), "flash"); !strings.Contains(f, "2,667 credits were added and $20.00 was charged") {
		t.Fatalf("upgrade flash: %q", f)
	}
	// A retried request, the proration invoice's invoice.paid and Stripe's
	// subscription event, each twice.
	p.Clock.Advance(time.Minute)
	v.post("/portal/plan", form)
	for _, evt := range []string{"evt_up_a", "evt_up_b"} {
		p.deliver(t, stripeEvent(evt+"_inv", "invoice.paid", stripeInvoice("in_up", "sub_S", id, "subscription_update", now, p2, 2000, 1, "null")))
		p.deliver(t, stripeEvent(evt+"_sub", "customer.subscription.updated", stripeSubscriptionMeta("sub_S", p1, p2, "tally/pro/month/4900usd", "pro", "2", "now")))
	}
	if got := p.available(t, id); got != billing.CreditsOf(2000+2667) {
		t.Fatalf("after replays: %s credits, want %s", got, billing.CreditsOf(2000+2667))
	}
	sub, err := p.DB.FindSubscription(ctx, id)
	if err != nil || sub.Plan != "pro" || sub.NextPlan != "" {
		t.Fatalf("after the upgrade: %+v, %v", sub, err)
	}

	// Back to Starter at the period's end.
	dlg = v.choosePlan("change", "starter")
	if got := testID(t, dlg, "plan-confirm-text"); !strings.HasPrefix(got, "Nothing changes today.") {
		t.Fatalf("downgrade confirmation: %q", got)
	}
	v.location(v.post("/portal/plan", planForm(t, dlg)), http.StatusSeeOther)
	// Stripe's price is Starter's now; its event says from the period's end.
	p.deliver(t, stripeEvent("evt_down_sub", "customer.subscription.updated", stripeSubscriptionMeta("sub_S", p1, p2, "tally/starter/month/1900usd", "starter", "2", "period_end")))
	if sub, _ = p.DB.FindSubscription(ctx, id); sub.Plan != "pro" || sub.NextPlan != "starter" {
		t.Fatalf("after Stripe's event of the downgrade: plan %q, next %q; want pro then starter", sub.Plan, sub.NextPlan)
	}
	if got := testID(t, v.get("/portal/plan"), "plan-status"); !strings.HasPrefix(got, "Switches to Starter on") {
		t.Fatalf("status after the downgrade: %q", got)
	}
	// Keep Pro after all (Stripe's price goes back), then switch again.
	v.location(v.post("/portal/plan", planForm(t, v.choosePlan("resume", ""))), http.StatusSeeOther)
	if sub, _ = p.DB.FindSubscription(ctx, id); sub.NextPlan != "" {
		t.Fatalf("after keeping Pro: next %q", sub.NextPlan)
	}
	v.location(v.post("/portal/plan", planForm(t, v.choosePlan("change", "starter"))), http.StatusSeeOther)

	// The new period: Stripe's event first, then its invoice.
	p.Clock.Advance(20 * 24 * time.Hour)
	p.deliver(t, stripeEvent("evt_cycle_sub", "customer.subscription.updated", stripeSubscriptionMeta("sub_S", p2, p3, "tally/starter/month/1900usd", "starter", "2", "period_end")))
	if sub, _ = p.DB.FindSubscription(ctx, id); sub.Plan != "starter" || sub.NextPlan != "" || !sub.CurrentPeriodStart.Equal(p2) {
		t.Fatalf("at the new period: %+v", sub)
	}
	p.deliver(t, stripeEvent("evt_inv2", "invoice.paid", stripeInvoice("in_2", "sub_S", id, "subscription_cycle", p2, p3, 1900, 1, "null")))
	grants := p.sqlCount(t, `SELECT COUNT(*) FROM subscription_periods WHERE subscription_id = ? AND plan_key = 'starter' AND period_start = ?`,
		sub.ID, p2.UnixMicro())
	if grants != 1 {
		t.Fatalf("%d Starter grants for the new period, want 1", grants)
	}

	// Cancel at the period's end and take it back.
	v.location(v.post("/portal/plan", planForm(t, v.choosePlan("cancel", ""))), http.StatusSeeOther)
	if sub, _ = p.DB.FindSubscription(ctx, id); !sub.CancelAtPeriodEnd {
		t.Fatalf("not canceled: %+v", sub)
	}
	v.location(v.post("/portal/plan", planForm(t, v.choosePlan("resume", ""))), http.StatusSeeOther)
	if sub, _ = p.DB.FindSubscription(ctx, id); sub.CancelAtPeriodEnd {
		t.Fatalf("still canceled: %+v", sub)
	}
	p.verify(t)
}

// TestStripeUpgradeWebhookFirst: Stripe's customer.subscription.updated
// for the upgrade arrives before the request that made it records it (the
// webhook raced Stripe's answer): its metadata names the click, so the
// event grants the prorated credits under the click's key, and the request
// (and its retry) grant nothing more. The same event replayed, or a later
// one with the old click in its metadata, grants nothing either.
func TestStripeUpgradeWebhookFirst(t *testing.T) {
	p := newStripeMockAPI(t)
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	id, v := p.shopper(t, "acme")
	now := p.Clock.Now().UTC().Truncate(time.Second)
	p1 := now.Add(-10 * 24 * time.Hour)
	p2 := p1.Add(30 * 24 * time.Hour)
	p.deliver(t, stripeEvent("evt_inv1", "invoice.paid", stripeInvoice("in_1", "sub_S", id, "subscription_create", p1, p2, 1900, 1, "null")))
	form := planForm(t, v.choosePlan("change", "pro"))
	up := stripeEvent("evt_up_sub", "customer.subscription.updated", stripeSubscriptionMeta("sub_S", p1, p2, "tally/pro/month/4900usd", "pro", "2", "now",
		form.Get("key"), form.Get("at")))
	p.deliver(t, up)
	if sub, _ := p.DB.FindSubscription(ctx, id); sub.Plan != "pro" {
		t.Fatalf("the webhook did not switch the plan: %+v", sub)
	}
	if got := p.available(t, id); got != billing.CreditsOf(2000+2667) {
		t.Fatalf("after the webhook: %s credits, want %s", got, billing.CreditsOf(2000+2667))
	}
	p.deliver(t, up)
	p.deliver(t, stripeEvent("evt_up_sub2", "customer.subscription.updated", stripeSubscriptionMeta("sub_S", p1, p2, "tally/pro/month/4900usd", "pro", "2", "now",
		form.Get("key"), form.Get("at"))))
	v.location(v.post("/portal/plan", form), http.StatusSeeOther)
	v.post("/portal/plan", form)
	if got := p.available(t, id); got != billing.CreditsOf(2000+2667) {
		t.Fatalf("after the upgrade: %s credits, want %s", got, billing.CreditsOf(2000+2667))
	}
	p.verify(t)
}
