package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/tally-billing/tally/billing"
)

// stripeEvent is a Stripe event around object, as Stripe posts it to an
// endpoint pinned to stripe-go's API version.
func stripeEvent(id, typ, object string) []byte {
	return []byte(`{"id":"` + id + `","object":"event","api_version":"` + stripe.APIVersion + `","created":` + fmt.Sprint(time.Now().Unix()) + `,
		"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"` + typ + `",
		"data":{"object":` + object + `}}`)
}

// signed signs payload as Stripe does, at time at, with secret.
func signed(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

// webhook posts an event to the webhook endpoint; sig "" sends no
// Stripe-Signature header.
func (p *payAPI) webhook(payload []byte, sig string) response {
	if sig == "" {
		return p.do("POST", "/webhooks/stripe", "", payload)
	}
	return p.do("POST", "/webhooks/stripe", "", payload, "Stripe-Signature", sig)
}

// deliver posts a correctly signed event and wants it taken.
func (p *payAPI) deliver(t *testing.T, payload []byte) response {
	t.Helper()
	return p.webhook(payload, signed(payload, testWebhookSecret, time.Now())).want(t, http.StatusOK)
}

// stripeTopUp is a Starter pack bought with Stripe whose PaymentIntent has
// not settled yet (3-D Secure, or an answer that came late): the webhook
// decides. With linked false, Tally has not even stored the PaymentIntent's
// id (a crash right after charging): the event's metadata finds it.
func (p *payAPI) stripeTopUp(t *testing.T, customer, pi string, linked bool) string {
	t.Helper()
	ctx := context.Background()
	p.Clock.Advance(time.Second)
	tu, _, err := p.DB.CreateTopUp(ctx, billing.TopUp{Customer: customer, Origin: billing.OriginPortal, PackID: "pack_1000",
		Description: "Starter: 1,000 credits", Credits: billing.CreditsOf(1000), Price: billing.Money{Amount: 10_00, Currency: "usd"},
		Provider: "stripe", CardBrand: "visa", CardLast4: "4242"}, "click-"+pi, "")
	if err != nil {
		t.Fatal(err)
	}
	if linked {
		if _, err := p.DB.RecordPayment(ctx, tu.ID, billing.Payment{ProviderID: pi, Status: billing.PaymentProcessing}, p.Policy); err != nil {
			t.Fatal(err)
		}
	}
	return tu.ID
}

func paymentIntent(pi, topUp, status, extra string) string {
	return `{"id":"` + pi + `","object":"payment_intent","status":"` + status + `","amount":1000,"currency":"usd","customer":"cus_T",
		"payment_method":{"id":"pm_T","object":"payment_method","type":"card","card":{"brand":"visa","last4":"4242","exp_month":12,"exp_year":2040}},
		"metadata":{"tally_top_up":"` + topUp + `","tally_customer":"x"}` + extra + `}`
}

func TestStripeWebhooks(t *testing.T) {
	p := newStripeAPI(t)
	id := p.namedCustomer(t, "acme", "Acme")
	tid := p.stripeTopUp(t, id, "pi_succeeds", true)
	succeeded := stripeEvent("evt_ok", "payment_intent.succeeded", paymentIntent("pi_succeeds", tid, "succeeded",
		`,"latest_charge":{"id":"ch_1","object":"charge","payment_intent":"pi_succeeds","receipt_url":"https://pay.stripe.com/receipts/acct_T/ch_1"}`))

	// refused checks that a delivery is refused with a 400 and changes nothing.
	refused := func(t *testing.T, payload []byte, sig string) {
		t.Helper()
		before, events := p.available(t, id), p.sqlCount(t, `SELECT COUNT(*) FROM payment_events`)
		r := p.webhook(payload, sig)
		r.wantError(t, http.StatusBadRequest, "invalid_request")
		if p.available(t, id) != before || p.sqlCount(t, `SELECT COUNT(*) FROM payment_events`) != events {
			t.Fatal("a refused webhook changed something")
		}
	}
	t.Run("missing signature", func(t *testing.T) { refused(t, succeeded, "") })
	t.Run("signed with another secret", func(t *testing.T) { refused(t, succeeded, signed(succeeded, "whsec_other", time.Now())) })
	t.Run("tampered", func(t *testing.T) {
		sig := signed(succeeded, testWebhookSecret, time.Now())
		refused(t, bytes.Replace(succeeded, []byte(`"amount":1000`), []byte(`"amount":1`), 1), sig)
	})
	t.Run("stale", func(t *testing.T) {
		refused(t, succeeded, signed(succeeded, testWebhookSecret, time.Now().Add(-6*time.Minute)))
	})
	t.Run("garbage signature", func(t *testing.T) { refused(t, succeeded, "t=1,v1=abc") })
	if tu := p.topUp(t, tid); tu["status"] != "pending" {
		t.Fatalf("top-up after refused webhooks: %v", tu["status"])
	}

	t.Run("valid: credits granted once", func(t *testing.T) {
		r := p.deliver(t, succeeded)
		if r.Body["received"] != true || r.Body["duplicate"] != false {
			t.Fatalf("answer %s", r.Raw)
		}
		if got := p.available(t, id); got != billing.CreditsOf(1000) {
			t.Fatalf("balance %s", got)
		}
		tu := p.topUp(t, tid)
		if tu["status"] != "succeeded" || tu["receipt_url"] != "https://pay.stripe.com/receipts/acct_T/ch_1" || tu["refundable_until"] == nil {
			t.Fatalf("top-up %v", tu)
		}
	})

	t.Run("replayed: the same event grants nothing more", func(t *testing.T) {
		for range 3 {
			r := p.deliver(t, succeeded)
			if r.Body["duplicate"] != true {
				t.Fatalf("answer %s", r.Raw)
			}
		}
		// Another event about the same payment (Stripe may send both the
		// charge's and the intent's) does not grant twice either.
		p.deliver(t, stripeEvent("evt_ok_again", "payment_intent.succeeded", paymentIntent("pi_succeeds", tid, "succeeded", "")))
		if got := p.available(t, id); got != billing.CreditsOf(1000) {
			t.Fatalf("balance %s after replays", got)
		}
	})

	t.Run("out of order: a failure after the success changes nothing", func(t *testing.T) {
		p.deliver(t, stripeEvent("evt_late_fail", "payment_intent.payment_failed", paymentIntent("pi_succeeds", tid, "requires_payment_method",
			`,"last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"generic_decline","message":"Your card was declined."}`)))
		if tu := p.topUp(t, tid); tu["status"] != "succeeded" || tu["failure_reason"] != nil {
			t.Fatalf("top-up %v", tu)
		}
		if got := p.available(t, id); got != billing.CreditsOf(1000) {
			t.Fatalf("balance %s", got)
		}
	})

	t.Run("a failure", func(t *testing.T) {
		fid := p.stripeTopUp(t, id, "pi_fails", true)
		p.deliver(t, stripeEvent("evt_fail", "payment_intent.payment_failed", paymentIntent("pi_fails", fid, "requires_payment_method",
			`,"last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}`)))
		if tu := p.topUp(t, fid); tu["status"] != "failed" || tu["failure_reason"] != "Your card has insufficient funds." {
			t.Fatalf("top-up %v", tu)
		}
		// A success that comes after the failure (the customer retried on
		// the bank's page) grants.
		p.deliver(t, stripeEvent("evt_fail_then_ok", "payment_intent.succeeded", paymentIntent("pi_fails", fid, "succeeded", "")))
		if tu := p.topUp(t, fid); tu["status"] != "succeeded" {
			t.Fatalf("top-up %v", tu["status"])
		}
		if got := p.available(t, id); got != billing.CreditsOf(2000) {
			t.Fatalf("balance %s", got)
		}
	})

	t.Run("found by metadata when the payment id was never stored", func(t *testing.T) {
		uid := p.stripeTopUp(t, id, "pi_unlinked", false)
		p.deliver(t, stripeEvent("evt_unlinked", "payment_intent.succeeded", paymentIntent("pi_unlinked", uid, "succeeded", "")))
		if tu := p.topUp(t, uid); tu["status"] != "succeeded" || tu["payment_id"] != "pi_unlinked" {
			t.Fatalf("top-up %v", tu)
		}
		if got := p.available(t, id); got != billing.CreditsOf(3000) {
			t.Fatalf("balance %s", got)
		}
	})

	t.Run("ignored events", func(t *testing.T) {
		r := p.deliver(t, stripeEvent("evt_other", "customer.created", `{"id":"cus_X","object":"customer"}`))
		if len(r.Raw) != 0 {
			t.Fatalf("an ignored event answered %s", r.Raw)
		}
		// A payment Tally did not make (another integration on the account).
		p.deliver(t, stripeEvent("evt_foreign", "payment_intent.succeeded", `{"id":"pi_foreign","object":"payment_intent","status":"succeeded","metadata":{}}`))
		if got := p.available(t, id); got != billing.CreditsOf(3000) {
			t.Fatalf("balance %s", got)
		}
	})
	p.checkLedgerInvariant(t, id)
	p.verify(t)
}

func charge(pi, topUp string, refunded int64) string {
	return fmt.Sprintf(`{"id":"ch_%s","object":"charge","amount":1000,"amount_refunded":%d,"refunded":%v,"payment_intent":"%s","currency":"usd",
		"metadata":{"tally_top_up":"%s"},"payment_method":"pm_T"}`, pi, refunded, refunded == 1000, pi, topUp)
}

func TestStripeRefundedAtStripe(t *testing.T) {
	p := newStripeAPI(t)
	id := p.namedCustomer(t, "acme", "Acme")
	tid := p.stripeTopUp(t, id, "pi_refund", true)
	p.deliver(t, stripeEvent("evt_paid", "payment_intent.succeeded", paymentIntent("pi_refund", tid, "succeeded", "")))

	// $2.50 of $10.00 refunded in the Dashboard: 250 of the 1,000 credits go.
	refund := stripeEvent("evt_refund_1", "charge.refunded", charge("pi_refund", tid, 250))
	for range 2 {
		p.deliver(t, refund)
	}
	if got := p.available(t, id); got != billing.CreditsOf(750) {
		t.Fatalf("balance %s after a $2.50 refund, want 750", got)
	}
	tu := p.topUp(t, tid)
	if tu["status"] != "refunded" || num(t, tu["refunded_credits"]) != "250" || num(t, tu["refunded_amount"]) != "250" {
		t.Fatalf("top-up %v", tu)
	}

	// The amount is cumulative: $6.00 in all takes 350 more. The customer
	// used 500 meanwhile, so only the 250 left can go.
	p.usage(id, "chat.request", "500", "").want(t, http.StatusCreated)
	p.deliver(t, stripeEvent("evt_refund_2", "charge.refunded", charge("pi_refund", tid, 600)))
	p.deliver(t, stripeEvent("evt_refund_2", "charge.refunded", charge("pi_refund", tid, 600)))
	if got := p.available(t, id); got != 0 {
		t.Fatalf("balance %s, want 0 (what was left of the lot)", got)
	}
	tu = p.topUp(t, tid)
	if num(t, tu["refunded_credits"]) != "500" || num(t, tu["refunded_amount"]) != "600" {
		t.Fatalf("top-up %v", tu)
	}
	// A late delivery of the first refund (lower cumulative amount) does nothing.
	p.deliver(t, stripeEvent("evt_refund_1_late", "charge.refunded", charge("pi_refund", tid, 250)))
	es, _ := p.ledgerSum(t, id)
	var refunds []string
	for _, e := range es {
		if e["type"] == "refund" {
			refunds = append(refunds, num(t, e["amount"]))
		}
	}
	if strings.Join(refunds, ",") != "-250,-250" {
		t.Fatalf("refund entries %v", refunds)
	}
	p.checkLedgerInvariant(t, id)
	p.verify(t)
}

func TestStripeDispute(t *testing.T) {
	p := newStripeAPI(t)
	id := p.namedCustomer(t, "acme", "Acme")
	disputed := p.stripeTopUp(t, id, "pi_disputed", true)
	p.deliver(t, stripeEvent("evt_paid_1", "payment_intent.succeeded", paymentIntent("pi_disputed", disputed, "succeeded", "")))
	other := p.stripeTopUp(t, id, "pi_kept", true)
	p.deliver(t, stripeEvent("evt_paid_2", "payment_intent.succeeded", paymentIntent("pi_kept", other, "succeeded", "")))
	p.usage(id, "chat.request", "300", "").want(t, http.StatusCreated) // from the older lot: the disputed one
	if got := p.available(t, id); got != billing.CreditsOf(1700) {
		t.Fatalf("balance %s", got)
	}

	dispute := stripeEvent("evt_dispute", "charge.dispute.created", `{"id":"dp_1","object":"dispute","amount":1000,"charge":"ch_pi_disputed",
		"payment_intent":"pi_disputed","reason":"fraudulent","status":"needs_response","metadata":{}}`)
	for range 2 {
		p.deliver(t, dispute)
	}
	// The 700 left of the disputed purchase are frozen; the other purchase is untouched.
	if got := p.available(t, id); got != billing.CreditsOf(1000) {
		t.Fatalf("balance %s after the dispute, want 1,000", got)
	}
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM customer_flags WHERE customer_id = ? AND reason LIKE '%dp_1%'`, id); n != 1 {
		t.Fatalf("%d flags for the customer", n)
	}
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM lots l JOIN top_ups t ON t.lot_id = l.id WHERE t.id = ? AND l.frozen = 1 AND l.remaining = ?`, disputed, billing.CreditsOf(700)); n != 1 {
		t.Fatal("the disputed lot is not frozen with its 700 credits")
	}
	es, _ := p.ledgerSum(t, id)
	if e := es[0]; e["type"] != "adjustment" || num(t, e["amount"]) != "-700" || !strings.Contains(fmt.Sprint(e["reason"]), "disputed") {
		t.Fatalf("newest ledger entry %v", e)
	}
	// Frozen credits cannot be spent, nor refunded.
	p.usage(id, "chat.request", "1001", "").want(t, http.StatusPaymentRequired)
	p.do("POST", "/api/v1/topups/"+disputed+"/refund", p.Admin, nil).wantError(t, http.StatusUnprocessableEntity, "nothing_to_refund")

	v := newPortalVisitor(t, p.testAPI)
	v.signIn("acme")
	ns := v.notices()
	if len(ns) != 1 || ns[0].Title != "A payment is disputed" || !strings.Contains(ns[0].Message, "Starter: 1,000 credits") {
		t.Fatalf("notices %+v", ns)
	}
	if got := testID(t, v.get("/portal").want(t, http.StatusOK), "header-balance-value"); got != "1,000" {
		t.Fatalf("header balance %q", got)
	}
	// The purchases list says which payment is disputed, not "Paid".
	var statuses []string
	for _, r := range v.purchases() {
		statuses = append(statuses, r.Status)
	}
	if strings.Join(statuses, ",") != "Paid,Disputed" {
		t.Errorf("purchase statuses, newest first: %v, want Paid,Disputed", statuses)
	}
	p.checkLedgerInvariant(t, id)
	p.verify(t)
}
