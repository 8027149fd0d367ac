package payments

import (
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tally-billing/tally/billing"
)

// eventJSON is a Stripe event around object, as Stripe sends it to an
// endpoint of apiVersion.
func eventJSON(id, typ, apiVersion, object string) []byte {
	return []byte(`{"id":"` + id + `","object":"event","api_version":"` + apiVersion + `","created":1767225600,
		"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"` + typ + `",
		"data":{"object":` + object + `}}`)
}

// sign signs payload like Stripe, at time at, with secret.
func sign(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

func newWebhookProvider(t *testing.T) *StripeProvider {
	t.Helper()
	p, err := NewStripe(StripeConfig{SecretKey: testSecretKey, WebhookSecret: testWebhookSecret, APIBase: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var eventCreated = time.Unix(1767225600, 0).UTC()

func TestStripeParseEventTypes(t *testing.T) {
	p := newWebhookProvider(t)
	v := stripe.APIVersion
	tests := []struct {
		name    string
		payload []byte
		want    billing.PaymentEvent
	}{
		{
			name: "checkout session completed in setup mode",
			payload: eventJSON("evt_cs", "checkout.session.completed", v, `{"id":"cs_test_a1","object":"checkout.session","mode":"setup",
				"status":"complete","customer":"cus_9","setup_intent":"seti_9","payment_intent":null,"metadata":{}}`),
			want: billing.PaymentEvent{ID: "evt_cs", Type: billing.EventCheckoutCompleted, SetupSessionID: "cs_test_a1", ProviderCustomerID: "cus_9", Created: eventCreated},
		},
		{
			name: "checkout session with an expanded customer",
			payload: eventJSON("evt_cs2", "checkout.session.completed", v, `{"id":"cs_test_a2","object":"checkout.session","mode":"setup",
				"customer":{"id":"cus_10","object":"customer"}}`),
			want: billing.PaymentEvent{ID: "evt_cs2", Type: billing.EventCheckoutCompleted, SetupSessionID: "cs_test_a2", ProviderCustomerID: "cus_10", Created: eventCreated},
		},
		{
			name: "setup intent succeeded",
			payload: eventJSON("evt_si", "setup_intent.succeeded", v, `{"id":"seti_9","object":"setup_intent","status":"succeeded",
				"customer":"cus_9","payment_method":"pm_9","usage":"off_session"}`),
			want: billing.PaymentEvent{ID: "evt_si", Type: billing.EventSetupSucceeded, ProviderCustomerID: "cus_9", Card: &billing.Card{ProviderID: "pm_9"}, Created: eventCreated},
		},
		{
			name: "payment intent succeeded",
			payload: eventJSON("evt_pi_ok", "payment_intent.succeeded", v, `{"id":"pi_9","object":"payment_intent","status":"succeeded",
				"amount":2500,"currency":"usd","customer":"cus_9","payment_method":"pm_9","latest_charge":"ch_9",
				"metadata":{"tally_top_up":"top_9"},"last_payment_error":null,"next_action":null}`),
			want: billing.PaymentEvent{ID: "evt_pi_ok", Type: billing.EventPaymentSucceeded, PaymentID: "pi_9", TopUpID: "top_9", Card: &billing.Card{ProviderID: "pm_9"}, Created: eventCreated},
		},
		{
			name: "payment intent failed",
			payload: eventJSON("evt_pi_fail", "payment_intent.payment_failed", v, `{"id":"pi_8","object":"payment_intent","status":"requires_payment_method",
				"metadata":{"tally_top_up":"top_8"},"payment_method":null,"latest_charge":"ch_8",
				"last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"generic_decline","message":"Your card was declined.",
				"payment_method":{"id":"pm_8","object":"payment_method","type":"card","card":{"brand":"visa","last4":"0002","exp_month":3,"exp_year":2031}}}}`),
			want: billing.PaymentEvent{ID: "evt_pi_fail", Type: billing.EventPaymentFailed, PaymentID: "pi_8", TopUpID: "top_8", FailureReason: "Your card was declined.",
				Card: &billing.Card{ProviderID: "pm_8", Brand: "visa", Last4: "0002", ExpMonth: 3, ExpYear: 2031}, Created: eventCreated},
		},
		{
			name: "payment intent failed without a message",
			payload: eventJSON("evt_pi_fail2", "payment_intent.payment_failed", v, `{"id":"pi_7","object":"payment_intent","status":"requires_payment_method",
				"metadata":{},"last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds"}}`),
			want: billing.PaymentEvent{ID: "evt_pi_fail2", Type: billing.EventPaymentFailed, PaymentID: "pi_7", FailureReason: "Your card has insufficient funds.", Created: eventCreated},
		},
		{
			name: "payment intent requires action",
			payload: eventJSON("evt_pi_3ds", "payment_intent.requires_action", v, `{"id":"pi_6","object":"payment_intent","status":"requires_action",
				"metadata":{"tally_top_up":"top_6"},"payment_method":"pm_6",
				"next_action":{"type":"redirect_to_url","redirect_to_url":{"url":"https://hooks.stripe.com/3d_secure_2/hosted?id=pi_6","return_url":"https://tally.example/back"}}}`),
			want: billing.PaymentEvent{ID: "evt_pi_3ds", Type: billing.EventPaymentRequiresAction, PaymentID: "pi_6", TopUpID: "top_6",
				NextActionURL: "https://hooks.stripe.com/3d_secure_2/hosted?id=pi_6", Card: &billing.Card{ProviderID: "pm_6"}, Created: eventCreated},
		},
		{
			name: "charge refunded, cumulative",
			payload: eventJSON("evt_ch_ref", "charge.refunded", v, `{"id":"ch_9","object":"charge","amount":2500,"amount_refunded":1500,
				"refunded":false,"payment_intent":"pi_9","metadata":{"tally_top_up":"top_9"},"receipt_url":"https://pay.stripe.com/receipts/ch_9"}`),
			want: billing.PaymentEvent{ID: "evt_ch_ref", Type: billing.EventChargeRefunded, PaymentID: "pi_9", TopUpID: "top_9", AmountRefunded: 1500, Created: eventCreated},
		},
		{
			name: "dispute created",
			payload: eventJSON("evt_dp", "charge.dispute.created", v, `{"id":"dp_9","object":"dispute","amount":2500,"charge":"ch_9",
				"payment_intent":"pi_9","reason":"fraudulent","status":"needs_response","metadata":{}}`),
			want: billing.PaymentEvent{ID: "evt_dp", Type: billing.EventChargeDisputeCreated, PaymentID: "pi_9", DisputeID: "dp_9", Created: eventCreated},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok, err := p.ParseEvent(tt.payload, sign(tt.payload, testWebhookSecret, time.Now()))
			mustNoErr(t, err)
			if !ok {
				t.Fatal("ok = false")
			}
			assertEvent(t, ev, tt.want)
		})
	}
}

func assertEvent(t *testing.T, got, want billing.PaymentEvent) {
	t.Helper()
	if (got.Card == nil) != (want.Card == nil) || (got.Card != nil && *got.Card != *want.Card) {
		t.Errorf("card = %+v, want %+v", got.Card, want.Card)
	}
	got.Card, want.Card = nil, nil
	if got != want {
		t.Errorf("event = %+v\nwant    %+v", got, want)
	}
}

// TestStripeParseEventOtherAPIVersions: events rendered for another API
// version than stripe-go v76's are accepted (the package's decision), and
// read across the shape changes that matter.
func TestStripeParseEventOtherAPIVersions(t *testing.T) {
	p := newWebhookProvider(t)

	// An endpoint on an old version: the charges list instead of
	// latest_charge, with the receipt and the card's details.
	old := eventJSON("evt_old", "payment_intent.succeeded", "2020-08-27", `{"id":"pi_old","object":"payment_intent","status":"succeeded",
		"metadata":{"tally_top_up":"top_old"},"payment_method":"pm_old",
		"charges":{"object":"list","data":[{"id":"ch_old","object":"charge","payment_intent":"pi_old","payment_method":"pm_old",
		"receipt_url":"https://pay.stripe.com/receipts/ch_old","payment_method_details":{"type":"card","card":{"brand":"visa","last4":"4242","exp_month":1,"exp_year":2032}}}]}}`)
	// stripe-go's default would refuse it: the test exercises the decision.
	if _, err := webhook.ConstructEvent(old, sign(old, testWebhookSecret, time.Now()), testWebhookSecret); err == nil {
		t.Fatal("stripe-go accepted an event of another API version by default; this test no longer covers the mismatch")
	}
	ev, ok, err := p.ParseEvent(old, sign(old, testWebhookSecret, time.Now()))
	mustNoErr(t, err)
	if !ok {
		t.Fatal("ok = false")
	}
	assertEvent(t, ev, billing.PaymentEvent{ID: "evt_old", Type: billing.EventPaymentSucceeded, PaymentID: "pi_old", TopUpID: "top_old",
		ReceiptURL: "https://pay.stripe.com/receipts/ch_old", Card: &billing.Card{ProviderID: "pm_old", Brand: "visa", Last4: "4242", ExpMonth: 1, ExpYear: 2032}, Created: eventCreated})

	// A newer version, with fields stripe-go v76 does not know and an
	// expanded latest_charge.
	newer := eventJSON("evt_new", "payment_intent.succeeded", "2025-03-31.basil", `{"id":"pi_new","object":"payment_intent","status":"succeeded",
		"metadata":{"tally_top_up":"top_new"},"payment_method":{"id":"pm_new","object":"payment_method","card":{"brand":"mastercard","last4":"4444","exp_month":2,"exp_year":2033}},
		"latest_charge":{"id":"ch_new","object":"charge","receipt_url":"https://pay.stripe.com/receipts/ch_new"},
		"amount_details":{"tip":{}},"presentment_details":{"presentment_amount":2500,"presentment_currency":"usd"}}`)
	ev, ok, err = p.ParseEvent(newer, sign(newer, testWebhookSecret, time.Now()))
	mustNoErr(t, err)
	if !ok {
		t.Fatal("ok = false")
	}
	assertEvent(t, ev, billing.PaymentEvent{ID: "evt_new", Type: billing.EventPaymentSucceeded, PaymentID: "pi_new", TopUpID: "top_new",
		ReceiptURL: "https://pay.stripe.com/receipts/ch_new", Card: &billing.Card{ProviderID: "pm_new", Brand: "mastercard", Last4: "4444", ExpMonth: 2, ExpYear: 2033}, Created: eventCreated})

	// A refund on an old version, where payment_intent was already there.
	ref := eventJSON("evt_old_ref", "charge.refunded", "2019-12-03", `{"id":"ch_o","object":"charge","amount_refunded":2500,"payment_intent":"pi_o","refunds":{"data":[]}}`)
	ev, ok, err = p.ParseEvent(ref, sign(ref, testWebhookSecret, time.Now()))
	mustNoErr(t, err)
	if !ok || ev.PaymentID != "pi_o" || ev.AmountRefunded != 2500 {
		t.Errorf("refund event = %+v, ok %v", ev, ok)
	}
}

func TestStripeParseEventIgnored(t *testing.T) {
	p := newWebhookProvider(t)
	ignored := map[string][]byte{
		"another type": eventJSON("evt_cus", "customer.created", stripe.APIVersion, `{"id":"cus_1","object":"customer"}`),
		"checkout session in payment mode": eventJSON("evt_cs_pay", "checkout.session.completed", stripe.APIVersion,
			`{"id":"cs_1","object":"checkout.session","mode":"payment","customer":"cus_1"}`),
		"refund of a charge without payment intent": eventJSON("evt_legacy", "charge.refunded", stripe.APIVersion,
			`{"id":"ch_1","object":"charge","amount_refunded":100,"payment_intent":null}`),
		"dispute without payment intent": eventJSON("evt_dp_legacy", "charge.dispute.created", stripe.APIVersion,
			`{"id":"dp_1","object":"dispute","charge":"ch_1"}`),
	}
	for name, payload := range ignored {
		t.Run(name, func(t *testing.T) {
			ev, ok, err := p.ParseEvent(payload, sign(payload, testWebhookSecret, time.Now()))
			mustNoErr(t, err)
			if ok || ev.ID != "" {
				t.Errorf("ok = %v, event %+v", ok, ev)
			}
		})
	}
}

func TestStripeParseEventRejected(t *testing.T) {
	p := newWebhookProvider(t)
	payload := eventJSON("evt_x", "payment_intent.succeeded", stripe.APIVersion, `{"id":"pi_x","object":"payment_intent","status":"succeeded","metadata":{"tally_top_up":"top_x"}}`)
	now := time.Now()
	tampered := []byte(strings.Replace(string(payload), "top_x", "top_y", 1))
	garbage := []byte(`{"id": "evt_g", "type": `)
	noData := []byte(`{"id":"evt_nd","object":"event","type":"payment_intent.succeeded","created":1}`)
	badObject := eventJSON("evt_bo", "payment_intent.succeeded", stripe.APIVersion, `{"id":"pi_bo","metadata":"not a map"}`)
	tests := []struct {
		name, signature, message string
		payload                  []byte
	}{
		{"tampered payload", sign(payload, testWebhookSecret, now), "does not match", tampered},
		{"wrong secret", sign(payload, "whsec_someone_else", now), "does not match", payload},
		{"stale timestamp", sign(payload, testWebhookSecret, now.Add(-6*time.Minute)), "5 minutes", payload},
		{"missing header", "", "no Stripe-Signature", payload},
		{"malformed header", "sha256=abc", "does not match", payload},
		{"no v1 signature", "t=" + strings.TrimPrefix(strings.Split(sign(payload, testWebhookSecret, now), ",")[0], "t="), "does not match", payload},
		{"signed garbage", sign(garbage, testWebhookSecret, now), "not a Stripe event", garbage},
		{"signed event without data", sign(noData, testWebhookSecret, now), "not a Stripe event", noData},
		{"signed event with an unreadable object", sign(badObject, testWebhookSecret, now), "could not be read", badObject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok, err := p.ParseEvent(tt.payload, tt.signature)
			be := wantCode(t, err, billing.CodeInvalidRequest)
			if !strings.Contains(be.Message, tt.message) {
				t.Errorf("message %q lacks %q", be.Message, tt.message)
			}
			if ok || ev.ID != "" {
				t.Errorf("ok = %v, event %+v", ok, ev)
			}
		})
	}

	// Within the tolerance is fine: 4 minutes old.
	if _, ok, err := p.ParseEvent(payload, sign(payload, testWebhookSecret, now.Add(-4*time.Minute))); err != nil || !ok {
		t.Errorf("a 4-minute-old signature: ok %v, err %v", ok, err)
	}
	// A header with the right signature among others (a rolled secret) is fine.
	both := sign(payload, "whsec_old", now) + "," + strings.Split(sign(payload, testWebhookSecret, now), ",")[1]
	if _, ok, err := p.ParseEvent(payload, both); err != nil || !ok {
		t.Errorf("two signatures: ok %v, err %v", ok, err)
	}
}
