package payments

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// TestStripeChangePlanPriceAgainstStripeMock: an upgrade reads the
// subscription's item, finds (or creates) the new plan's price and updates
// the item with proration invoiced now at Tally's quote time, failing
// rather than leaving the proration unpaid; a downgrade changes the price
// with no proration. The metadata names the plan and version; every write
// carries an idempotency key made of the subscription and the click, so a
// retried click sends the same key. stripe-mock checks every parameter
// against Stripe's OpenAPI description.
func TestStripeChangePlanPriceAgainstStripeMock(t *testing.T) {
	base := startStripeMock(t)
	p, rec := newRecordedStripe(t, base)
	ctx := context.Background()
	pro := billing.Plan{Key: "pro", Name: "Pro", Interval: billing.IntervalMonth, Price: billing.Money{Amount: 4900, Currency: "usd"}, Credits: billing.CreditsOf(6000)}
	at := time.Date(2026, 12, 16, 0, 0, 0, 0, time.UTC)
	for _, prorate := range []bool{true, false} {
		req := PlanPriceChange{Subscription: "sub_T", Plan: pro, PriceVersion: 4, Prorate: prorate, ProrateAt: at, Key: "click_1"}
		inv, err := p.ChangePlanPrice(ctx, req)
		mustNoErr(t, err)
		if !prorate && inv != "" {
			t.Fatalf("a downgrade returned invoice %q", inv)
		}
		reqs := rec.take()
		if len(reqs) != 4 {
			t.Fatalf("prorate %v: %d requests, want 4 (read the subscription, look the price up, create it, update): %+v", prorate, len(reqs), reqs)
		}
		if r := reqs[0]; r.Method != http.MethodGet || r.Path != "/v1/subscriptions/sub_T" {
			t.Errorf("read = %+v", r)
		}
		up := reqs[3]
		if up.Method != http.MethodPost || up.Path != "/v1/subscriptions/sub_T" || up.IdempotencyKey == "" {
			t.Fatalf("update = %+v", up)
		}
		want := map[string]string{"metadata[tally_plan]": "pro", "metadata[tally_price_version]": "4", "proration_behavior": "none",
			"payment_behavior": "", "proration_date": ""}
		if prorate {
			want["proration_behavior"], want["payment_behavior"], want["proration_date"] = "always_invoice", "error_if_incomplete", fmt.Sprint(at.Unix())
		}
		for k, v := range want {
			if got := up.Form.Get(k); got != v {
				t.Errorf("prorate %v: %s = %q, want %q", prorate, k, got, v)
			}
		}
		if up.Form.Get("items[0][id]") == "" || up.Form.Get("items[0][price]") == "" {
			t.Errorf("items = %v", up.Form)
		}
		// The same click again sends the same idempotency key.
		if _, err := p.ChangePlanPrice(ctx, req); err != nil {
			t.Fatal(err)
		}
		again := rec.take()
		if last := again[len(again)-1]; last.IdempotencyKey != up.IdempotencyKey {
			t.Errorf("a retried click's key %q differs from %q", last.IdempotencyKey, up.IdempotencyKey)
		}
	}
	if _, err := p.ChangePlanPrice(ctx, PlanPriceChange{Subscription: "in_T", Plan: pro, Key: "k"}); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("not a subscription id: %v", err)
	}
}
