package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// TestStripeRenewalGap: between a Stripe period's end and its late
// invoice.paid, the ended period's Starter credits expire as the plan says
// (up to 1,000 roll over, 1,000 expire), the portal says "renewal pending"
// on the Plan tab and the overview rather than a renewal date that passed,
// whether or not Stripe's customer.subscription.updated has moved the
// period on; the late invoice grants the new period's 2,000 once (a replay
// and an older event change nothing), and the forecast counts the next
// renewal again.
func TestStripeRenewalGap(t *testing.T) {
	p := newStripeAPI(t)
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	id, v := p.shopper(t, "acme")
	now := p.Clock.Now().UTC().Truncate(time.Second)
	p1 := now.Add(-20 * 24 * time.Hour)
	p2 := p1.Add(30 * 24 * time.Hour)
	p3 := p2.Add(30 * 24 * time.Hour)
	p.deliver(t, stripeEvent("evt_inv1", "invoice.paid", stripeInvoice("in_1", "sub_S", id, "subscription_create", p1, p2, 1900, 1, "null")))
	if got := testID(t, v.get("/portal"), "plan-renewal"); !strings.Contains(got, "Your plan renews on") {
		t.Fatalf("overview mid-period: %q", got)
	}

	pending := func(when string) {
		t.Helper()
		plan := v.get("/portal/plan").want(t, http.StatusOK)
		if got := testID(t, plan, "plan-status"); !strings.HasPrefix(got, "Renewal pending. Your new period's 2,000 credits arrive") {
			t.Fatalf("%s: plan status %q", when, got)
		}
		if doc(t, plan).Find(`[data-testid="choose-pro"]`).Length() != 0 {
			t.Fatalf("%s: an upgrade is offered while the renewal waits for its payment", when)
		}
		r := v.post("/portal/plan/confirm", url.Values{"_csrf": {v.csrf("/portal/plan")}, "action": {"change"}, "plan": {"pro"}}, "HX-Request", "true")
		if r.Status != http.StatusConflict {
			t.Fatalf("%s: a plan change while the renewal is pending: %d", when, r.Status)
		}
		if r := p.do("GET", "/api/v1/customers/acme/subscription", p.Read, nil).want(t, http.StatusOK); r.Body["renewal_pending"] != true {
			t.Fatalf("%s: the API does not say the renewal is pending: %s", when, r.Raw)
		}
		home := v.get("/portal").want(t, http.StatusOK)
		d := doc(t, home)
		if d.Find(`[data-testid="plan-renewal-pending"]`).Length() != 1 || d.Find(`[data-testid="plan-renewal"]`).Length() != 0 {
			t.Fatalf("%s: the overview does not say the renewal is pending:\n%s", when, testID(t, home, "projection"))
		}
	}

	// The period ends; Stripe has said nothing yet.
	p.Clock.Advance(10*24*time.Hour + time.Hour)
	if _, err := p.DB.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.available(t, id); got != billing.CreditsOf(1000) {
		t.Fatalf("after the period's end: %s credits, want 1,000 (rolled over)", got)
	}
	pending("period ended, no event")

	// Stripe moves the period on; the invoice is still a draft.
	p.deliver(t, stripeEvent("evt_sub2", "customer.subscription.updated", stripeSubscription("sub_S", "active", false, p2, p3, "tally/starter/month/1900usd")))
	pending("period moved on, no invoice")
	if got := p.available(t, id); got != billing.CreditsOf(1000) {
		t.Fatalf("the period's move granted: %s credits", got)
	}

	// The invoice is paid an hour later, then replayed, and an older event arrives.
	p.Clock.Advance(time.Hour)
	inv := stripeEvent("evt_inv2", "invoice.paid", stripeInvoice("in_2", "sub_S", id, "subscription_cycle", p2, p3, 1900, 1, "null"))
	p.deliver(t, inv)
	p.deliver(t, inv)
	p.deliver(t, stripeEvent("evt_inv2_again", "invoice.paid", stripeInvoice("in_2", "sub_S", id, "subscription_cycle", p2, p3, 1900, 1, "null")))
	p.deliver(t, stripeEvent("evt_sub1_late", "customer.subscription.updated", stripeSubscription("sub_S", "active", false, p1, p2, "tally/starter/month/1900usd")))
	if got := p.available(t, id); got != billing.CreditsOf(3000) {
		t.Fatalf("after the late invoice: %s credits, want 3,000", got)
	}
	if got := testID(t, v.get("/portal/plan"), "plan-status"); !strings.HasPrefix(got, "Renews on") {
		t.Fatalf("plan status after the invoice: %q", got)
	}
	if got := testID(t, v.get("/portal"), "plan-renewal"); !strings.Contains(got, "Your plan renews on") {
		t.Fatalf("overview after the invoice: %q", got)
	}
	if r := p.do("GET", "/api/v1/customers/acme/subscription", p.Read, nil).want(t, http.StatusOK); r.Body["renewal_pending"] != false {
		t.Fatalf("the API still says the renewal is pending: %s", r.Raw)
	}
	p.verify(t)
}

// TestStripeRenewalInvoiceFirst: the new period's invoice.paid before
// Stripe's customer.subscription.updated: the credits arrive once, nothing
// is pending, and the later event changes nothing.
func TestStripeRenewalInvoiceFirst(t *testing.T) {
	p := newStripeAPI(t)
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	id, v := p.shopper(t, "acme")
	now := p.Clock.Now().UTC().Truncate(time.Second)
	p1 := now.Add(-29 * 24 * time.Hour)
	p2 := p1.Add(30 * 24 * time.Hour)
	p3 := p2.Add(30 * 24 * time.Hour)
	p.deliver(t, stripeEvent("evt_inv1", "invoice.paid", stripeInvoice("in_1", "sub_S", id, "subscription_create", p1, p2, 1900, 1, "null")))
	p.Clock.Advance(24*time.Hour + time.Minute)
	p.deliver(t, stripeEvent("evt_inv2", "invoice.paid", stripeInvoice("in_2", "sub_S", id, "subscription_cycle", p2, p3, 1900, 1, "null")))
	p.deliver(t, stripeEvent("evt_sub2", "customer.subscription.updated", stripeSubscription("sub_S", "active", false, p2, p3, "tally/starter/month/1900usd")))
	if got := p.available(t, id); got != billing.CreditsOf(3000) {
		t.Fatalf("%s credits, want 3,000 (1,000 rolled over and the new 2,000)", got)
	}
	if got := testID(t, v.get("/portal/plan"), "plan-status"); !strings.HasPrefix(got, "Renews on") {
		t.Fatalf("plan status: %q", got)
	}
	p.verify(t)
}
