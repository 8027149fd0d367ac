package payments

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tally-billing/tally/billing"
)

// TestStripeSubscriptionCheckoutAgainstStripeMock: the plan's Price is
// looked up by its lookup key (stripe-mock's fixture price has another, so
// it is created, with the key, a recurring interval and the plan's name),
// then a subscription-mode Checkout Session for it carries Tally's metadata
// on the subscription. stripe-mock checks every parameter against Stripe's
// OpenAPI description.
func TestStripeSubscriptionCheckoutAgainstStripeMock(t *testing.T) {
	base := startStripeMock(t)
	p, rec := newRecordedStripe(t, base)
	plan := billing.Plan{Key: "pro", Name: "Pro", Interval: billing.IntervalMonth, Price: billing.Money{Amount: 4900, Currency: "usd"},
		Credits: billing.CreditsOf(6000)}
	setup, err := p.StartSubscriptionCheckout(context.Background(), SubscriptionCheckoutRequest{ProviderCustomerID: "cus_T", Customer: "cus_tally1",
		Plan: plan, PriceVersion: 3, IdempotencyKey: "click-1", SuccessURL: "https://tally.example/portal/plan/return", CancelURL: "https://tally.example/portal/plan"})
	mustNoErr(t, err)
	if setup.URL == "" || !strings.HasPrefix(setup.ProviderID, "cs_") {
		t.Fatalf("setup = %+v", setup)
	}
	reqs := rec.take()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (list prices, create the price, create the session): %+v", len(reqs), reqs)
	}
	if r := reqs[0]; r.Method != http.MethodGet || r.Path != "/v1/prices" || r.Form.Get("lookup_keys[0]") != "tally/pro/month/4900usd" {
		t.Errorf("lookup = %+v", r)
	}
	want := map[string]string{"lookup_key": "tally/pro/month/4900usd", "recurring[interval]": "month", "unit_amount": "4900", "currency": "usd",
		"product_data[name]": "Pro", "metadata[tally_plan]": "pro"}
	if r := reqs[1]; r.Method != http.MethodPost || r.Path != "/v1/prices" || r.IdempotencyKey == "" {
		t.Errorf("create price = %+v", r)
	} else {
		for k, v := range want {
			if got := r.Form.Get(k); got != v {
				t.Errorf("price %s = %q, want %q", k, got, v)
			}
		}
	}
	want = map[string]string{"mode": "subscription", "customer": "cus_T", "line_items[0][quantity]": "1",
		"subscription_data[metadata][tally_customer]": "cus_tally1", "subscription_data[metadata][tally_plan]": "pro",
		"subscription_data[metadata][tally_price_version]": "3", "success_url": "https://tally.example/portal/plan/return?session_id={CHECKOUT_SESSION_ID}"}
	if r := reqs[2]; r.Method != http.MethodPost || r.Path != "/v1/checkout/sessions" || r.IdempotencyKey == "" || r.Form.Get("line_items[0][price]") == "" {
		t.Errorf("session = %+v", r)
	} else {
		for k, v := range want {
			if got := r.Form.Get(k); got != v {
				t.Errorf("session %s = %q, want %q", k, got, v)
			}
		}
	}
	if _, err := p.StartSubscriptionCheckout(context.Background(), SubscriptionCheckoutRequest{Plan: plan}); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("a checkout without a customer: %v", err)
	}

	// Canceling at the period's end, and taking it back.
	for _, cancel := range []bool{true, false} {
		mustNoErr(t, p.SetCancelAtPeriodEnd(context.Background(), "sub_T", cancel, "click-c"))
		reqs := rec.take()
		if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Path != "/v1/subscriptions/sub_T" || reqs[0].IdempotencyKey == "" ||
			reqs[0].Form.Get("cancel_at_period_end") != fmt.Sprint(cancel) {
			t.Fatalf("cancel %v: %+v", cancel, reqs)
		}
	}
	if err := p.SetCancelAtPeriodEnd(context.Background(), "in_T", true, "k"); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("not a subscription id: %v", err)
	}
}

// TestParseSubscriptionEvents reads signed invoice and subscription events:
// the period is the subscription line's, not the invoice's own.
func TestParseSubscriptionEvents(t *testing.T) {
	p, err := NewStripe(StripeConfig{SecretKey: testSecretKey, WebhookSecret: testWebhookSecret})
	mustNoErr(t, err)
	sign := func(b []byte) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: b, Secret: testWebhookSecret, Timestamp: time.Now()}).Header
	}
	event := func(id, typ, obj string) []byte {
		return []byte(`{"id":"` + id + `","object":"event","type":"` + typ + `","created":1767225600,"data":{"object":` + obj + `}}`)
	}
	inv := `{"id":"in_1","object":"invoice","customer":"cus_T","subscription":"sub_1","billing_reason":"subscription_cycle","amount_paid":4900,
		"amount_due":4900,"currency":"usd","attempt_count":2,"next_payment_attempt":null,"period_start":1764547200,"period_end":1767225600,
		"subscription_details":{"metadata":{"tally_customer":"cus_x","tally_plan":"pro"}},
		"lines":{"data":[{"proration":true,"period":{"start":1,"end":2}},
		{"proration":false,"period":{"start":1767225600,"end":1769904000},"price":{"id":"price_1","lookup_key":"tally/pro/month/4900usd"}}]}}`
	b := event("evt_1", "invoice.paid", inv)
	ev, ok, err := p.ParseEvent(b, sign(b))
	mustNoErr(t, err)
	in := ev.Invoice
	if !ok || in == nil || in.ID != "in_1" || in.Subscription != "sub_1" || in.Amount != (billing.Money{Amount: 4900, Currency: "usd"}) ||
		!in.PeriodStart.Equal(time.Unix(1767225600, 0)) || !in.PeriodEnd.Equal(time.Unix(1769904000, 0)) || !in.Final || in.Attempt != 2 ||
		billing.PlanKeyOf(in.PlanRef) != "pro" || in.Metadata["tally_customer"] != "cus_x" {
		t.Fatalf("invoice = %+v, ok %v", in, ok)
	}
	b = event("evt_2", "invoice.paid", `{"id":"in_2","object":"invoice","subscription":null,"lines":{"data":[]}}`)
	if _, ok, err := p.ParseEvent(b, sign(b)); err != nil || ok {
		t.Fatalf("an invoice of no subscription: ok %v, %v", ok, err)
	}
	sub := `{"id":"sub_1","object":"subscription","customer":{"id":"cus_T"},"status":"past_due","cancel_at_period_end":true,
		"current_period_start":1767225600,"current_period_end":1769904000,"items":{"data":[{"price":{"lookup_key":"tally/pro/month/4900usd"}}]}}`
	b = event("evt_3", "customer.subscription.updated", sub)
	ev, ok, err = p.ParseEvent(b, sign(b))
	mustNoErr(t, err)
	if s := ev.Subscription; !ok || s == nil || s.ID != "sub_1" || s.Customer != "cus_T" || s.Status != "past_due" || !s.CancelAtPeriodEnd ||
		s.PlanRef != "tally/pro/month/4900usd" || !s.PeriodEnd.Equal(time.Unix(1769904000, 0)) {
		t.Fatalf("subscription = %+v", ev.Subscription)
	}
}
