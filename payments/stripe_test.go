package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/tally-billing/tally/billing"
)

func TestNewStripeConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  StripeConfig
		want string // part of the error; "" means valid
	}{
		{"valid", StripeConfig{SecretKey: "sk_test_1", WebhookSecret: "whsec_1"}, ""},
		{"restricted key", StripeConfig{SecretKey: "rk_live_1", WebhookSecret: "whsec_1", APIBase: "http://localhost:12111/"}, ""},
		{"no key", StripeConfig{WebhookSecret: "whsec_1"}, "TALLY_STRIPE_SECRET_KEY"},
		{"publishable key", StripeConfig{SecretKey: "pk_test_1", WebhookSecret: "whsec_1"}, "publishable"},
		{"no webhook secret", StripeConfig{SecretKey: "sk_test_1"}, "TALLY_STRIPE_WEBHOOK_SECRET"},
		{"bad API base", StripeConfig{SecretKey: "sk_test_1", WebhookSecret: "whsec_1", APIBase: "localhost:12111"}, "TALLY_STRIPE_API_BASE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewStripe(tt.cfg)
			if tt.want == "" {
				mustNoErr(t, err)
				if p.Name() != "stripe" {
					t.Errorf("Name = %q", p.Name())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestStripeSecretsDoNotPrint(t *testing.T) {
	cfg := StripeConfig{SecretKey: "sk_live_PRINTME", WebhookSecret: "whsec_PRINTME", APIBase: "http://localhost:1"}
	p, err := NewStripe(cfg)
	mustNoErr(t, err)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p), fmt.Sprintf("%v", &cfg)} {
		if strings.Contains(s, "PRINTME") {
			t.Errorf("printed a secret: %s", s)
		}
	}
}

// TestStripeAgainstStripeMock checks every call's wire format against
// stripe-mock, which validates parameters with Stripe's OpenAPI spec (an
// unknown or malformed parameter is a 400). stripe-mock answers with
// fixtures and keeps no state nor idempotency, so the outcome mapping is
// checked against canned answers in TestStripeChargeOutcomes and friends.
func TestStripeAgainstStripeMock(t *testing.T) {
	base := startStripeMock(t)
	p, rec := newRecordedStripe(t, base)
	ctx := context.Background()

	// one returns the only request since the last call.
	one := func(t *testing.T) recorded {
		t.Helper()
		reqs := rec.take()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1: %+v", len(reqs), reqs)
		}
		return reqs[0]
	}
	wantPost := func(t *testing.T, r recorded, path string, form map[string]string) {
		t.Helper()
		if r.Method != http.MethodPost || r.Path != path {
			t.Errorf("request = %s %s, want POST %s", r.Method, r.Path, path)
		}
		if r.IdempotencyKey == "" {
			t.Errorf("POST %s without an Idempotency-Key", r.Path)
		}
		for k, v := range form {
			if got := r.Form.Get(k); got != v {
				t.Errorf("%s = %q, want %q (form %v)", k, got, v, r.Form)
			}
		}
	}

	t.Run("customer", func(t *testing.T) {
		c := billing.Customer{ID: "cus_tally1", Email: "ada@example.com", Name: "Ada"}
		id, err := p.EnsureCustomer(ctx, c, "")
		mustNoErr(t, err)
		if !strings.HasPrefix(id, "cus_") {
			t.Errorf("id = %q", id)
		}
		r := one(t)
		wantPost(t, r, "/v1/customers", map[string]string{"email": "ada@example.com", "name": "Ada", "metadata[tally_customer]": "cus_tally1"})
		if r.IdempotencyKey != "tally-customer-cus_tally1" {
			t.Errorf("key = %q", r.IdempotencyKey)
		}
		// A retry sends the same key: Stripe returns the first customer.
		_, err = p.EnsureCustomer(ctx, c, "")
		mustNoErr(t, err)
		if r2 := one(t); r2.IdempotencyKey != r.IdempotencyKey {
			t.Errorf("retry key %q, first %q", r2.IdempotencyKey, r.IdempotencyKey)
		}
		// An existing customer costs no call.
		got, err := p.EnsureCustomer(ctx, c, "cus_existing")
		mustNoErr(t, err)
		if got != "cus_existing" || len(rec.take()) != 0 {
			t.Errorf("existing: %q", got)
		}
	})

	t.Run("checkout session in setup mode", func(t *testing.T) {
		setup, err := p.StartCardSetup(ctx, "cus_1", "https://tally.example/portal/cards/added", "https://tally.example/portal/cards")
		mustNoErr(t, err)
		if !strings.HasPrefix(setup.ProviderID, "cs_") || !strings.HasPrefix(setup.URL, "https://") {
			t.Errorf("setup = %+v", setup)
		}
		r := one(t)
		wantPost(t, r, "/v1/checkout/sessions", map[string]string{
			"mode":                    "setup",
			"customer":                "cus_1",
			"payment_method_types[0]": "card",
			"success_url":             "https://tally.example/portal/cards/added?session_id={CHECKOUT_SESSION_ID}",
			"cancel_url":              "https://tally.example/portal/cards",
		})
		if !strings.HasPrefix(r.IdempotencyKey, "tally-setup-") {
			t.Errorf("key = %q", r.IdempotencyKey)
		}
		// Each setup is a new request.
		_, err = p.StartCardSetup(ctx, "cus_1", "https://tally.example/a", "https://tally.example/b")
		mustNoErr(t, err)
		if r2 := one(t); r2.IdempotencyKey == r.IdempotencyKey || !strings.HasPrefix(r2.IdempotencyKey, "tally-setup-") {
			t.Errorf("second setup key %q, first %q", r2.IdempotencyKey, r.IdempotencyKey)
		}
	})

	t.Run("checkout session in payment mode", func(t *testing.T) {
		req := CheckoutRequest{ProviderCustomerID: "cus_1", Amount: billing.Money{Amount: 1000, Currency: "usd"}, Description: "Starter: 1,000 credits",
			Metadata: map[string]string{MetadataTopUp: "top_1", MetadataCustomer: "cus_tally1"}, IdempotencyKey: "tally_checkout_top_1",
			SuccessURL: "https://tally.example/portal/top-ups/checkout", CancelURL: "https://tally.example/portal/top-up"}
		setup, err := p.StartCheckout(ctx, req)
		mustNoErr(t, err)
		if !strings.HasPrefix(setup.ProviderID, "cs_") || !strings.HasPrefix(setup.URL, "https://") {
			t.Errorf("setup = %+v", setup)
		}
		r := one(t)
		wantPost(t, r, "/v1/checkout/sessions", map[string]string{
			"mode":                                   "payment",
			"customer":                               "cus_1",
			"line_items[0][quantity]":                "1",
			"line_items[0][price_data][currency]":    "usd",
			"line_items[0][price_data][unit_amount]": "1000",
			"line_items[0][price_data][product_data][name]": "Starter: 1,000 credits",
			"payment_intent_data[setup_future_usage]":       "off_session",
			"payment_intent_data[metadata][tally_top_up]":   "top_1",
			"metadata[tally_top_up]":                        "top_1",
			"success_url":                                   "https://tally.example/portal/top-ups/checkout?session_id={CHECKOUT_SESSION_ID}",
			"cancel_url":                                    "https://tally.example/portal/top-up",
		})
		if r.IdempotencyKey != "tally_checkout_top_1" {
			t.Errorf("key = %q: the same top-up must give the same session", r.IdempotencyKey)
		}
		_, err = p.StartCheckout(ctx, CheckoutRequest{ProviderCustomerID: "cus_1", Amount: billing.Money{Amount: 0, Currency: "usd"}, IdempotencyKey: "k",
			SuccessURL: "https://a.example/", CancelURL: "https://a.example/"})
		wantCode(t, err, billing.CodeValidation)
		if len(rec.take()) != 0 {
			t.Error("an invalid checkout reached Stripe")
		}
	})

	t.Run("complete card setup", func(t *testing.T) {
		// stripe-mock's session fixture names no customer (and its setup
		// intent has not succeeded): it is no customer's setup.
		_, err := p.CompleteCardSetup(ctx, "cus_1", "cs_test_123")
		wantCode(t, err, billing.CodeNotFound)
		r := one(t)
		if r.Method != http.MethodGet || r.Path != "/v1/checkout/sessions/cs_test_123" || r.Form.Get("expand[0]") != "setup_intent.payment_method" {
			t.Errorf("request = %+v", r)
		}
	})

	t.Run("charge", func(t *testing.T) {
		req := billing.ChargeRequest{
			ProviderCustomerID: "cus_1",
			PaymentMethodID:    "pm_1",
			Amount:             billing.Money{Amount: 2500, Currency: "usd"},
			Description:        "Top-up: 2,500 credits",
			IdempotencyKey:     "top_abc:charge",
			Metadata:           map[string]string{MetadataTopUp: "top_abc"},
			ReturnURL:          "https://tally.example/portal/top-ups/top_abc",
		}
		pay, err := p.Charge(ctx, req)
		mustNoErr(t, err)
		if !strings.HasPrefix(pay.ProviderID, "pi_") {
			t.Errorf("payment = %+v", pay)
		}
		r := one(t)
		wantPost(t, r, "/v1/payment_intents", map[string]string{
			"amount": "2500", "currency": "usd", "customer": "cus_1", "payment_method": "pm_1",
			"confirm": "true", "payment_method_types[0]": "card", "description": "Top-up: 2,500 credits",
			"metadata[tally_top_up]": "top_abc", "return_url": req.ReturnURL, "off_session": "",
		})
		if r.IdempotencyKey != "top_abc:charge" {
			t.Errorf("key = %q, want the request's", r.IdempotencyKey)
		}
		// The same request again carries the same key.
		_, err = p.Charge(ctx, req)
		mustNoErr(t, err)
		if r2 := one(t); r2.IdempotencyKey != r.IdempotencyKey {
			t.Errorf("second charge key %q, first %q", r2.IdempotencyKey, r.IdempotencyKey)
		}

		off := req
		off.OffSession, off.ReturnURL, off.IdempotencyKey = true, "", "refill_1:charge"
		_, err = p.Charge(ctx, off)
		mustNoErr(t, err)
		wantPost(t, one(t), "/v1/payment_intents", map[string]string{"off_session": "true", "return_url": "", "confirm": "true"})
	})

	t.Run("find payment", func(t *testing.T) {
		pay, err := p.FindPayment(ctx, "pi_123")
		mustNoErr(t, err)
		if !strings.HasPrefix(pay.ProviderID, "pi_") {
			t.Errorf("payment = %+v", pay)
		}
		r := one(t)
		if r.Method != http.MethodGet || r.Path != "/v1/payment_intents/pi_123" {
			t.Errorf("request = %+v", r)
		}
	})

	t.Run("refund", func(t *testing.T) {
		ref, err := p.Refund(ctx, "pi_123", billing.Money{Amount: 700, Currency: "usd"}, "top_abc:refund:1")
		mustNoErr(t, err)
		if !strings.HasPrefix(ref.ProviderID, "re_") || ref.Status != "succeeded" {
			t.Errorf("refund = %+v", ref)
		}
		r := one(t)
		wantPost(t, r, "/v1/refunds", map[string]string{"payment_intent": "pi_123", "amount": "700"})
		if r.IdempotencyKey != "top_abc:refund:1" {
			t.Errorf("key = %q", r.IdempotencyKey)
		}
	})

	t.Run("default card", func(t *testing.T) {
		mustNoErr(t, p.SetDefaultCard(ctx, "cus_1", "pm_2"))
		r := one(t)
		wantPost(t, r, "/v1/customers/cus_1", map[string]string{"invoice_settings[default_payment_method]": "pm_2"})
		if !strings.HasPrefix(r.IdempotencyKey, "tally-default-card-") {
			t.Errorf("key = %q", r.IdempotencyKey)
		}
	})

	t.Run("detach", func(t *testing.T) {
		mustNoErr(t, p.DetachCard(ctx, "pm_2"))
		r := one(t)
		wantPost(t, r, "/v1/payment_methods/pm_2/detach", nil)
		if !strings.HasPrefix(r.IdempotencyKey, "tally-detach-") {
			t.Errorf("key = %q", r.IdempotencyKey)
		}
	})

	t.Run("a rejected key does not leak", func(t *testing.T) {
		// stripe-mock quotes the Authorization header of a request whose key
		// does not look like a test key.
		const live = "sk_live_DO_NOT_LEAK_0123456789"
		leaky, err := NewStripe(StripeConfig{SecretKey: live, WebhookSecret: testWebhookSecret, APIBase: base})
		mustNoErr(t, err)
		_, err = leaky.EnsureCustomer(ctx, billing.Customer{ID: "cus_leak"}, "")
		be := wantCode(t, err, billing.CodePaymentProvider)
		if be.Cause == nil || !strings.Contains(be.Cause.Error(), "[redacted key]") {
			t.Fatalf("cause %v: want stripe-mock's message with the key scrubbed (has stripe-mock changed its message?)", be.Cause)
		}
		for e := error(be); e != nil; e = errors.Unwrap(e) {
			if strings.Contains(e.Error(), "DO_NOT_LEAK") || strings.Contains(fmt.Sprintf("%+v", e), "DO_NOT_LEAK") {
				t.Fatalf("the key leaks: %v", e)
			}
		}
	})
}

// stubStripe serves canned Stripe answers: routes maps "METHOD /path" to a
// status and a JSON body. Unrouted requests are a 404 the test reports.
func stubStripe(t *testing.T, routes map[string]stubAnswer) (*StripeProvider, *recorder) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_stub")
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return newRecordedStripe(t, srv.URL)
}

type stubAnswer struct {
	status int
	body   string
}

const (
	piSucceeded = `{"id":"pi_ok","object":"payment_intent","status":"succeeded","amount":2500,"currency":"usd",
		"payment_method":{"id":"pm_visa","object":"payment_method","type":"card","card":{"brand":"visa","last4":"4242","exp_month":12,"exp_year":2030}},
		"latest_charge":{"id":"ch_1","object":"charge","receipt_url":"https://pay.stripe.com/receipts/ch_1","payment_method":"pm_visa"}}`
	piRequiresAction = `{"id":"pi_3ds","object":"payment_intent","status":"requires_action",
		"next_action":{"type":"redirect_to_url","redirect_to_url":{"url":"https://hooks.stripe.com/3d_secure_2/hosted?id=pi_3ds","return_url":"https://tally.example/back"}},
		"payment_method":"pm_3ds","latest_charge":null}`
	cardDeclined = `{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds.",
		"charge":"ch_2","payment_intent":{"id":"pi_declined","object":"payment_intent","status":"requires_payment_method"},
		"payment_method":{"id":"pm_poor","object":"payment_method","type":"card","card":{"brand":"mastercard","last4":"9995","exp_month":1,"exp_year":2031}}}}`
	authRequired = `{"error":{"type":"card_error","code":"authentication_required","decline_code":"authentication_required",
		"message":"Your card was declined. This transaction requires authentication.",
		"payment_intent":{"id":"pi_auth","object":"payment_intent","status":"requires_payment_method"},
		"payment_method":{"id":"pm_3ds","object":"payment_method","type":"card","card":{"brand":"visa","last4":"3184","exp_month":12,"exp_year":2030}}}}`
	piAuthAfterConfirm = `{"id":"pi_auth","object":"payment_intent","status":"requires_action",
		"next_action":{"type":"redirect_to_url","redirect_to_url":{"url":"https://hooks.stripe.com/3d_secure_2/hosted?id=pi_auth","return_url":"https://tally.example/back"}},
		"payment_method":"pm_3ds"}`
)

func baseCharge(key string) billing.ChargeRequest {
	return billing.ChargeRequest{
		ProviderCustomerID: "cus_1", PaymentMethodID: "pm_1",
		Amount:         billing.Money{Amount: 2500, Currency: "usd"},
		IdempotencyKey: key, Metadata: map[string]string{MetadataTopUp: "top_1"},
		ReturnURL: "https://tally.example/back",
	}
}

func TestStripeChargeOutcomes(t *testing.T) {
	ctx := context.Background()

	t.Run("succeeded, with receipt and card", func(t *testing.T) {
		p, _ := stubStripe(t, map[string]stubAnswer{"POST /v1/payment_intents": {200, piSucceeded}})
		pay, err := p.Charge(ctx, baseCharge("k1"))
		mustNoErr(t, err)
		want := billing.Payment{ProviderID: "pi_ok", Status: billing.PaymentSucceeded, ReceiptURL: "https://pay.stripe.com/receipts/ch_1",
			Card: &billing.Card{ProviderID: "pm_visa", Brand: "visa", Last4: "4242", ExpMonth: 12, ExpYear: 2030}}
		if pay.Card == nil || *pay.Card != *want.Card {
			t.Fatalf("card = %+v", pay.Card)
		}
		pay.Card, want.Card = nil, nil
		if pay != want {
			t.Errorf("payment = %+v\nwant      %+v", pay, want)
		}
	})

	t.Run("requires action on-session", func(t *testing.T) {
		p, _ := stubStripe(t, map[string]stubAnswer{"POST /v1/payment_intents": {200, piRequiresAction}})
		pay, err := p.Charge(ctx, baseCharge("k2"))
		mustNoErr(t, err)
		if pay.Status != billing.PaymentRequiresAction || pay.NextActionURL != "https://hooks.stripe.com/3d_secure_2/hosted?id=pi_3ds" || pay.ProviderID != "pi_3ds" || pay.ReceiptURL != "" {
			t.Errorf("payment = %+v", pay)
		}
		if pay.Card == nil || pay.Card.ProviderID != "pm_3ds" {
			t.Errorf("card = %+v", pay.Card)
		}
	})

	t.Run("decline is an outcome, not an error", func(t *testing.T) {
		p, _ := stubStripe(t, map[string]stubAnswer{"POST /v1/payment_intents": {402, cardDeclined}})
		pay, err := p.Charge(ctx, baseCharge("k3"))
		mustNoErr(t, err)
		if pay.Status != billing.PaymentFailed || pay.ProviderID != "pi_declined" || pay.FailureCode != "insufficient_funds" || pay.FailureReason != "Your card has insufficient funds." {
			t.Errorf("payment = %+v", pay)
		}
		if pay.Card == nil || pay.Card.Last4 != "9995" || pay.Card.Brand != "mastercard" {
			t.Errorf("card = %+v", pay.Card)
		}
	})

	t.Run("decline before a payment intent exists", func(t *testing.T) {
		p, _ := stubStripe(t, map[string]stubAnswer{"POST /v1/payment_intents": {402, `{"error":{"type":"card_error","code":"expired_card","message":"Your card has expired."}}`}})
		pay, err := p.Charge(ctx, baseCharge("k4"))
		mustNoErr(t, err)
		if pay.Status != billing.PaymentFailed || pay.ProviderID != "" || pay.FailureCode != "expired_card" || pay.FailureReason != "Your card has expired." {
			t.Errorf("payment = %+v", pay)
		}
	})

	t.Run("off-session authentication_required asks the customer back", func(t *testing.T) {
		p, rec := stubStripe(t, map[string]stubAnswer{
			"POST /v1/payment_intents":                 {402, authRequired},
			"POST /v1/payment_intents/pi_auth/confirm": {200, piAuthAfterConfirm},
		})
		req := baseCharge("refill_9:charge")
		req.OffSession = true
		pay, err := p.Charge(ctx, req)
		mustNoErr(t, err)
		if pay.Status != billing.PaymentRequiresAction || pay.ProviderID != "pi_auth" || pay.NextActionURL != "https://hooks.stripe.com/3d_secure_2/hosted?id=pi_auth" {
			t.Errorf("payment = %+v", pay)
		}
		if pay.Card == nil || pay.Card.Last4 != "3184" {
			t.Errorf("card = %+v", pay.Card)
		}
		reqs := rec.take()
		if len(reqs) != 2 {
			t.Fatalf("%d requests, want create and confirm", len(reqs))
		}
		if reqs[0].Form.Get("off_session") != "true" || reqs[0].IdempotencyKey != "refill_9:charge" {
			t.Errorf("create = %+v", reqs[0])
		}
		c := reqs[1]
		if c.IdempotencyKey != "refill_9:charge:authenticate" || c.Form.Get("return_url") != req.ReturnURL || c.Form.Get("off_session") != "" || c.Form.Get("payment_method") != "pm_1" {
			t.Errorf("confirm = %+v", c)
		}
	})

	t.Run("off-session authentication_required without return URL", func(t *testing.T) {
		p, rec := stubStripe(t, map[string]stubAnswer{"POST /v1/payment_intents": {402, authRequired}})
		req := baseCharge("k5")
		req.OffSession, req.ReturnURL = true, ""
		pay, err := p.Charge(ctx, req)
		mustNoErr(t, err)
		if pay.Status != billing.PaymentRequiresAction || pay.ProviderID != "pi_auth" || pay.NextActionURL != "" || pay.FailureCode != "authentication_required" || pay.FailureReason != msgAuthRequired {
			t.Errorf("payment = %+v", pay)
		}
		if n := len(rec.take()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})

	t.Run("authentication_required whose confirm fails keeps requires_action", func(t *testing.T) {
		p, _ := stubStripe(t, map[string]stubAnswer{
			"POST /v1/payment_intents":                 {402, authRequired},
			"POST /v1/payment_intents/pi_auth/confirm": {400, `{"error":{"type":"invalid_request_error","message":"nope"}}`},
		})
		req := baseCharge("k6")
		req.OffSession = true
		pay, err := p.Charge(ctx, req)
		mustNoErr(t, err)
		if pay.Status != billing.PaymentRequiresAction || pay.ProviderID != "pi_auth" || pay.NextActionURL != "" {
			t.Errorf("payment = %+v", pay)
		}
	})

	t.Run("long idempotency keys are hashed, deterministically", func(t *testing.T) {
		p, rec := stubStripe(t, map[string]stubAnswer{"POST /v1/payment_intents": {200, piSucceeded}})
		long := strings.Repeat("k", 300)
		for range 2 {
			_, err := p.Charge(ctx, baseCharge(long))
			mustNoErr(t, err)
		}
		reqs := rec.take()
		if len(reqs[0].IdempotencyKey) > 255 || !strings.HasPrefix(reqs[0].IdempotencyKey, "tally-sha256-") || reqs[0].IdempotencyKey != reqs[1].IdempotencyKey {
			t.Errorf("keys %q and %q", reqs[0].IdempotencyKey, reqs[1].IdempotencyKey)
		}
	})
}

func TestStripeIntentStatuses(t *testing.T) {
	tests := []struct {
		status, wantStatus string
		lastError          *stripe.Error
		wantReason         string
	}{
		{"succeeded", billing.PaymentSucceeded, nil, ""},
		{"requires_action", billing.PaymentRequiresAction, nil, ""},
		{"processing", billing.PaymentProcessing, nil, ""},
		{"requires_capture", billing.PaymentProcessing, nil, ""},
		{"canceled", billing.PaymentFailed, nil, msgPaymentCanceled},
		{"requires_payment_method", billing.PaymentFailed, &stripe.Error{Type: stripe.ErrorTypeCard, Code: "card_declined", Msg: "Your card was declined."}, "Your card was declined."},
		{"requires_payment_method", billing.PaymentFailed, nil, msgNotCompleted},
	}
	for _, tt := range tests {
		pay := paymentFromIntent(&stripe.PaymentIntent{ID: "pi_1", Status: stripe.PaymentIntentStatus(tt.status), LastPaymentError: tt.lastError,
			LatestCharge: &stripe.Charge{ReceiptURL: "https://pay.stripe.com/r"}})
		if pay.Status != tt.wantStatus || pay.FailureReason != tt.wantReason {
			t.Errorf("%s: %+v", tt.status, pay)
		}
		if (pay.ReceiptURL != "") != (tt.wantStatus == billing.PaymentSucceeded) {
			t.Errorf("%s: receipt %q", tt.status, pay.ReceiptURL)
		}
	}
}

func TestStripeErrors(t *testing.T) {
	ctx := context.Background()
	apiErr := func(status int, typ, code, param string) stubAnswer {
		return stubAnswer{status, fmt.Sprintf(`{"error":{"type":%q,"code":%q,"param":%q,"message":"Stripe says no (%s)."}}`, typ, code, param, code)}
	}
	tests := []struct {
		name   string
		routes map[string]stubAnswer
		call   func(p *StripeProvider) error
		code   string
	}{
		{"server error on charge", map[string]stubAnswer{"POST /v1/payment_intents": {500, `{"error":{"type":"api_error","message":"Something went wrong."}}`}},
			func(p *StripeProvider) error { _, err := p.Charge(ctx, baseCharge("e1")); return err }, billing.CodePaymentProvider},
		{"card removed at Stripe", map[string]stubAnswer{"POST /v1/payment_intents": apiErr(400, "invalid_request_error", "resource_missing", "payment_method")},
			func(p *StripeProvider) error { _, err := p.Charge(ctx, baseCharge("e2")); return err }, billing.CodeNoPaymentMethod},
		{"key reused for another charge", map[string]stubAnswer{"POST /v1/payment_intents": apiErr(400, "idempotency_error", "", "")},
			func(p *StripeProvider) error { _, err := p.Charge(ctx, baseCharge("e3")); return err }, billing.CodeIdempotencyConflict},
		{"rate limited", map[string]stubAnswer{"POST /v1/payment_intents": apiErr(429, "invalid_request_error", "rate_limit", "")},
			func(p *StripeProvider) error { _, err := p.Charge(ctx, baseCharge("e4")); return err }, billing.CodePaymentProvider},
		{"unknown payment", map[string]stubAnswer{"GET /v1/payment_intents/pi_gone": apiErr(404, "invalid_request_error", "resource_missing", "id")},
			func(p *StripeProvider) error { _, err := p.FindPayment(ctx, "pi_gone"); return err }, billing.CodeNotFound},
		{"already refunded", map[string]stubAnswer{"POST /v1/refunds": apiErr(400, "invalid_request_error", "charge_already_refunded", "")},
			func(p *StripeProvider) error {
				_, err := p.Refund(ctx, "pi_1", billing.Money{Amount: 1, Currency: "usd"}, "r")
				return err
			}, billing.CodeNothingToRefund},
		{"refund refused", map[string]stubAnswer{"POST /v1/refunds": apiErr(400, "invalid_request_error", "amount_too_large", "amount")},
			func(p *StripeProvider) error {
				_, err := p.Refund(ctx, "pi_1", billing.Money{Amount: 1, Currency: "usd"}, "r")
				return err
			}, billing.CodePaymentProvider},
		{"detach unknown card", map[string]stubAnswer{"POST /v1/payment_methods/pm_x/detach": apiErr(404, "invalid_request_error", "resource_missing", "payment_method")},
			func(p *StripeProvider) error { return p.DetachCard(ctx, "pm_x") }, billing.CodeNotFound},
		{"customer refused", map[string]stubAnswer{"POST /v1/customers": apiErr(400, "invalid_request_error", "email_invalid", "email")},
			func(p *StripeProvider) error {
				_, err := p.EnsureCustomer(ctx, billing.Customer{ID: "c"}, "")
				return err
			}, billing.CodePaymentProvider},
		{"setup refused", map[string]stubAnswer{"POST /v1/checkout/sessions": apiErr(400, "invalid_request_error", "url_invalid", "success_url")},
			func(p *StripeProvider) error {
				_, err := p.StartCardSetup(ctx, "cus_1", "https://a.example/ok", "https://a.example/no")
				return err
			}, billing.CodePaymentProvider},
		{"default card refused", map[string]stubAnswer{"POST /v1/customers/cus_1": apiErr(400, "invalid_request_error", "", "")},
			func(p *StripeProvider) error { return p.SetDefaultCard(ctx, "cus_1", "pm_1") }, billing.CodePaymentProvider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, rec := stubStripe(t, tt.routes)
			err := tt.call(p)
			be := wantCode(t, err, tt.code)
			if be.Cause == nil {
				t.Error("no cause kept for the logs")
			}
			for _, r := range rec.take() {
				if r.Method == http.MethodPost && r.IdempotencyKey == "" {
					t.Errorf("POST %s without an Idempotency-Key", r.Path)
				}
			}
		})
	}
}

func TestStripeUnreachable(t *testing.T) {
	p, rec := stubStripe(t, map[string]stubAnswer{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the request fails at once, as a dead network would (without retries)
	_, err := p.Charge(ctx, baseCharge("net"))
	be := wantCode(t, err, billing.CodePaymentProvider)
	if !strings.Contains(be.Message, "could not be reached") {
		t.Errorf("message = %q", be.Message)
	}
	if n := len(rec.take()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestStripeInputValidation(t *testing.T) {
	// Nothing reaches Stripe: every route is unexpected.
	p, rec := stubStripe(t, map[string]stubAnswer{})
	ctx := context.Background()
	noKey := baseCharge("")
	onSessionNoReturn := baseCharge("k")
	onSessionNoReturn.ReturnURL = ""
	calls := map[string]func() error{
		"charge without key":               func() error { _, err := p.Charge(ctx, noKey); return err },
		"on-session charge without return": func() error { _, err := p.Charge(ctx, onSessionNoReturn); return err },
		"customer without id":              func() error { _, err := p.EnsureCustomer(ctx, billing.Customer{}, ""); return err },
		"setup without customer": func() error {
			_, err := p.StartCardSetup(ctx, "", "https://a.example/ok", "https://a.example/no")
			return err
		},
		"setup with relative URL":   func() error { _, err := p.StartCardSetup(ctx, "cus_1", "/ok", "https://a.example/no"); return err },
		"complete a non-session":    func() error { _, err := p.CompleteCardSetup(ctx, "cus_1", "seti_1"); return err },
		"find a non-payment-intent": func() error { _, err := p.FindPayment(ctx, "ch_1"); return err },
		"refund without key": func() error {
			_, err := p.Refund(ctx, "pi_1", billing.Money{Amount: 1, Currency: "usd"}, "")
			return err
		},
		"refund nothing":          func() error { _, err := p.Refund(ctx, "pi_1", billing.Money{Currency: "usd"}, "k"); return err },
		"default card without pm": func() error { return p.SetDefaultCard(ctx, "cus_1", "") },
		"detach without pm":       func() error { return p.DetachCard(ctx, "") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), billing.CodeValidation) })
	}
	noCard := baseCharge("k")
	noCard.PaymentMethodID = ""
	_, err := p.Charge(ctx, noCard)
	wantCode(t, err, billing.CodeNoPaymentMethod)
	if reqs := rec.take(); len(reqs) != 0 {
		t.Errorf("invalid calls reached Stripe: %+v", reqs)
	}
}

func TestStripeCompleteCardSetup(t *testing.T) {
	ctx := context.Background()
	session := func(siStatus string) string {
		return `{"id":"cs_test_1","object":"checkout.session","mode":"setup","status":"complete","customer":"cus_1",
			"setup_intent":{"id":"seti_1","object":"setup_intent","status":"` + siStatus + `","customer":"cus_1",
			"payment_method":{"id":"pm_new","object":"payment_method","type":"card","card":{"brand":"amex","last4":"0005","exp_month":7,"exp_year":2029}}}}`
	}
	p, rec := stubStripe(t, map[string]stubAnswer{"GET /v1/checkout/sessions/cs_test_1": {200, session("succeeded")}})
	card, err := p.CompleteCardSetup(ctx, "cus_1", "cs_test_1")
	mustNoErr(t, err)
	if want := (billing.Card{ProviderID: "pm_new", Brand: "amex", Last4: "0005", ExpMonth: 7, ExpYear: 2029}); card != want {
		t.Errorf("card = %+v, want %+v", card, want)
	}
	if r := rec.take(); len(r) != 1 || r[0].Form.Get("expand[0]") != "setup_intent.payment_method" {
		t.Errorf("requests = %+v", r)
	}

	p, _ = stubStripe(t, map[string]stubAnswer{"GET /v1/checkout/sessions/cs_test_1": {200, session("requires_action")}})
	_, err = p.CompleteCardSetup(ctx, "cus_1", "cs_test_1")
	wantCode(t, err, billing.CodeValidation)

	p, _ = stubStripe(t, map[string]stubAnswer{"GET /v1/checkout/sessions/cs_test_1": {200, `{"id":"cs_test_1","object":"checkout.session","mode":"setup","status":"open","customer":"cus_1","setup_intent":"seti_1"}`}})
	_, err = p.CompleteCardSetup(ctx, "cus_1", "cs_test_1")
	wantCode(t, err, billing.CodeValidation)
}

// A Checkout Session completes only for the customer it was made for: a
// session id is in a URL anyone can type, so another customer's (or one
// naming no customer) is not_found, as if it did not exist.
func TestStripeCompleteCardSetupIsTheCustomers(t *testing.T) {
	ctx := context.Background()
	session := func(sessionCustomer, intentCustomer, cardCustomer string) string {
		return `{"id":"cs_test_1","object":"checkout.session","mode":"setup","status":"complete","customer":` + sessionCustomer + `,
			"setup_intent":{"id":"seti_1","object":"setup_intent","status":"succeeded","customer":` + intentCustomer + `,
			"payment_method":{"id":"pm_new","object":"payment_method","type":"card","customer":` + cardCustomer + `,"card":{"brand":"visa","last4":"4242","exp_month":7,"exp_year":2029}}}}`
	}
	for _, tc := range []struct {
		name, body string
	}{
		{"another customer's session", session(`"cus_a"`, `"cus_a"`, `"cus_a"`)},
		{"a session naming no customer", session(`null`, `null`, `null`)},
		{"a setup intent of another customer", session(`"cus_b"`, `"cus_a"`, `null`)},
		{"a card attached to another customer", session(`"cus_b"`, `"cus_b"`, `"cus_a"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := stubStripe(t, map[string]stubAnswer{"GET /v1/checkout/sessions/cs_test_1": {200, tc.body}})
			_, err := p.CompleteCardSetup(ctx, "cus_b", "cs_test_1")
			wantCode(t, err, billing.CodeNotFound)
		})
	}
	t.Run("the customer's own session", func(t *testing.T) {
		p, _ := stubStripe(t, map[string]stubAnswer{"GET /v1/checkout/sessions/cs_test_1": {200, session(`"cus_b"`, `"cus_b"`, `"cus_b"`)}})
		card, err := p.CompleteCardSetup(ctx, "cus_b", "cs_test_1")
		mustNoErr(t, err)
		if card.ProviderID != "pm_new" {
			t.Fatalf("card %+v", card)
		}
	})
	t.Run("no customer asks", func(t *testing.T) {
		p, rec := stubStripe(t, map[string]stubAnswer{})
		_, err := p.CompleteCardSetup(ctx, "", "cs_test_1")
		wantCode(t, err, billing.CodeNotFound)
		if r := rec.take(); len(r) != 0 {
			t.Fatalf("asked Stripe: %+v", r)
		}
	})
}

func TestStripeCompleteCheckout(t *testing.T) {
	ctx := context.Background()
	session := func(status, piStatus string) string {
		return `{"id":"cs_test_2","object":"checkout.session","mode":"payment","status":"` + status + `","customer":"cus_1",
			"metadata":{"tally_top_up":"top_9","tally_customer":"cus_tally9"},
			"payment_intent":{"id":"pi_9","object":"payment_intent","status":"` + piStatus + `","metadata":{"tally_top_up":"top_9"},
			"latest_charge":{"id":"ch_9","object":"charge","receipt_url":"https://pay.stripe.com/receipts/9"},
			"payment_method":{"id":"pm_9","object":"payment_method","type":"card","card":{"brand":"visa","last4":"4242","exp_month":1,"exp_year":2031}}}}`
	}
	p, rec := stubStripe(t, map[string]stubAnswer{"GET /v1/checkout/sessions/cs_test_2": {200, session("complete", "succeeded")}})
	res, err := p.CompleteCheckout(ctx, "cs_test_2")
	mustNoErr(t, err)
	if want := (billing.Card{ProviderID: "pm_9", Brand: "visa", Last4: "4242", ExpMonth: 1, ExpYear: 2031}); res.Card != want {
		t.Errorf("card = %+v", res.Card)
	}
	if res.Payment.Status != billing.PaymentSucceeded || res.Payment.ProviderID != "pi_9" || res.Payment.ReceiptURL == "" || res.Metadata[MetadataTopUp] != "top_9" {
		t.Errorf("result = %+v", res)
	}
	if r := rec.take(); len(r) != 1 || r[0].Form.Get("expand[0]") != "payment_intent.payment_method" {
		t.Errorf("requests = %+v", r)
	}
	p, _ = stubStripe(t, map[string]stubAnswer{"GET /v1/checkout/sessions/cs_test_2": {200, `{"id":"cs_test_2","object":"checkout.session","mode":"payment","status":"open"}`}})
	_, err = p.CompleteCheckout(ctx, "cs_test_2")
	wantCode(t, err, billing.CodeValidation)
	p, _ = stubStripe(t, map[string]stubAnswer{"GET /v1/checkout/sessions/cs_test_2": {200, `{"id":"cs_test_2","object":"checkout.session","mode":"setup","status":"complete"}`}})
	_, err = p.CompleteCheckout(ctx, "cs_test_2")
	wantCode(t, err, billing.CodeValidation)
	_, err = p.CompleteCheckout(ctx, "seti_1")
	wantCode(t, err, billing.CodeValidation)
}

func TestStripeRefundStatuses(t *testing.T) {
	for status, want := range map[string]string{"succeeded": "succeeded", "pending": "pending", "requires_action": "pending", "failed": "failed", "canceled": "failed"} {
		p, _ := stubStripe(t, map[string]stubAnswer{"POST /v1/refunds": {200, `{"id":"re_1","object":"refund","status":"` + status + `"}`}})
		r, err := p.Refund(context.Background(), "pi_1", billing.Money{Amount: 5, Currency: "usd"}, "k")
		mustNoErr(t, err)
		if r.Status != want || r.ProviderID != "re_1" {
			t.Errorf("%s: %+v", status, r)
		}
	}
}
