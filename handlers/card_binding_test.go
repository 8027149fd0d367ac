package handlers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/payments"
)

// cardRefused checks that visiting a card setup's return URL saved nothing
// for the visitor: back to the cards with an error.
func (v *portalVisitor) cardRefused(back string) string {
	v.t.Helper()
	if to := v.location(v.get(back), http.StatusSeeOther); to != "/portal/billing" {
		v.t.Fatalf("after %s: %q", back, to)
	}
	fl := testID(v.t, v.get("/portal/billing").want(v.t, http.StatusOK), "flash")
	if !strings.HasPrefix(fl, "The card was not saved") {
		v.t.Fatalf("flash after another customer's setup: %q", fl)
	}
	if cards := v.cards(); len(cards) != 0 {
		v.t.Fatalf("the visitor has cards %+v", cards)
	}
	return fl
}

// A card setup completes only for the customer who started it: its id comes
// back in a URL (?session_id=, or ?setup=), which proves nothing about who
// holds it. Another customer visiting it saves nothing, and the setup still
// completes for its customer afterwards; once the card is the owner's, the
// other customer neither gets that row nor brings it back after its removal.
func TestSandboxCardSetupIsBoundToItsCustomer(t *testing.T) {
	p := newPayAPI(t)
	_, alice := p.shopper(t, "alice")
	_, bob := p.shopper(t, "bob")
	_, carol := p.shopper(t, "carol")
	// Bob has a sandbox customer of his own (he opened the card page once);
	// Carol has none.
	bob.location(bob.post("/portal/cards/setup", url.Values{"_csrf": {bob.csrf("/portal/billing")}}), http.StatusSeeOther)

	// Alice saves a card on the sandbox's page but has not come back yet.
	page := alice.location(alice.post("/portal/cards/setup", url.Values{"_csrf": {alice.csrf("/portal/billing")}}), http.StatusSeeOther)
	setup := mustQuery(t, page).Get("setup")
	f := formValues(t, alice.get(page).want(t, http.StatusOK), `form[data-testid="sandbox-card-form"]`)
	f.Set("number", cardOK)
	f.Set("exp", "12/40")
	f.Set("cvc", "123")
	back := alice.location(alice.post("/sandbox/cards", f), http.StatusSeeOther)
	if !strings.Contains(back, "session_id="+setup) {
		t.Fatalf("return URL %q", back)
	}
	returns := []string{back, "/portal/cards/added?setup=" + setup}

	for _, u := range returns {
		bob.cardRefused(u)
		carol.cardRefused(u)
	}
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM payment_methods`); n != 0 {
		t.Fatalf("%d card rows after other customers used alice's setup", n)
	}

	// Alice's setup still completes, for her.
	if to := alice.location(alice.get(back), http.StatusSeeOther); to != "/portal/billing" {
		t.Fatalf("alice back: %q", to)
	}
	cards := alice.cards()
	if len(cards) != 1 || cards[0].Label != "Visa •••• 4242" || !cards[0].Default {
		t.Fatalf("alice's cards %+v", cards)
	}

	// Her card saved, then removed: Bob's visits neither return her row nor
	// bring it back.
	for _, u := range returns {
		bob.cardRefused(u)
	}
	alice.post("/portal/cards/"+cards[0].ID+"/remove", url.Values{"_csrf": {alice.csrf("/portal/billing")}})
	if got := alice.cards(); len(got) != 0 {
		t.Fatalf("alice's cards after removing: %+v", got)
	}
	for _, u := range returns {
		bob.cardRefused(u)
	}
	if got := alice.cards(); len(got) != 0 {
		t.Fatalf("bob's visit brought alice's removed card back: %+v", got)
	}
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM payment_methods WHERE removed_at IS NULL`); n != 0 {
		t.Fatalf("%d live card rows", n)
	}
}

// fakeStripe answers the few Stripe API calls a card setup makes, keeping
// each Checkout Session's customer as Stripe does. (stripe-mock answers a
// session with a fixed fixture that names no customer and never succeeds,
// so it cannot play this round trip.)
type fakeStripe struct {
	*httptest.Server
	mu       sync.Mutex
	sessions map[string]*fakeSession
	n        int
}

type fakeSession struct {
	customer string
	card     string // the payment method saved on Stripe's page; "" while open
}

func newFakeStripe(t *testing.T) *fakeStripe {
	f := &fakeStripe{sessions: map[string]*fakeSession{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// complete is the customer saving card on Stripe's hosted page.
func (f *fakeStripe) complete(session, card string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions[session].card = card
}

func (f *fakeStripe) serve(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch path := r.URL.Path; {
	case r.Method == "POST" && path == "/v1/customers":
		fmt.Fprintf(w, `{"id":"cus_%s","object":"customer"}`, r.PostForm.Get("metadata[tally_customer]"))
	case r.Method == "POST" && strings.HasPrefix(path, "/v1/customers/"):
		fmt.Fprintf(w, `{"id":%q,"object":"customer"}`, strings.TrimPrefix(path, "/v1/customers/"))
	case r.Method == "POST" && path == "/v1/checkout/sessions":
		f.n++
		id := fmt.Sprintf("cs_test_%d", f.n)
		f.sessions[id] = &fakeSession{customer: r.PostForm.Get("customer")}
		fmt.Fprintf(w, `{"id":%q,"object":"checkout.session","mode":"setup","status":"open","customer":%q,"url":"https://checkout.stripe.com/c/pay/%s"}`,
			id, f.sessions[id].customer, id)
	case r.Method == "GET" && strings.HasPrefix(path, "/v1/checkout/sessions/"):
		id := strings.TrimPrefix(path, "/v1/checkout/sessions/")
		s, ok := f.sessions[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such checkout.session: '%s'"}}`, id)
			return
		}
		if s.card == "" {
			fmt.Fprintf(w, `{"id":%q,"object":"checkout.session","mode":"setup","status":"open","customer":%q,"setup_intent":"seti_%s"}`, id, s.customer, id)
			return
		}
		fmt.Fprintf(w, `{"id":%q,"object":"checkout.session","mode":"setup","status":"complete","customer":%q,
			"setup_intent":{"id":"seti_%s","object":"setup_intent","status":"succeeded","customer":%q,
			"payment_method":{"id":%q,"object":"payment_method","type":"card","customer":%q,"card":{"brand":"visa","last4":"4242","exp_month":12,"exp_year":2040}}}}`,
			id, s.customer, id, s.customer, s.card, s.customer)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","message":"fakeStripe: no route %s %s"}}`, r.Method, path)
	}
}

// The same with Stripe: the Checkout Session's id comes back as
// ?session_id=; another customer's visit is refused (Stripe says whose
// session it is), and a payment method that is already another customer's
// card is never saved for, nor handed to, a second customer, by the return
// URL or by a webhook.
func TestStripeCardSetupIsBoundToItsCustomer(t *testing.T) {
	stripeAPI := newFakeStripe(t)
	p := newPayAPIWith(t, func(string) billing.PaymentProvider {
		pr, err := payments.NewStripe(payments.StripeConfig{SecretKey: "sk_test_handlers", WebhookSecret: testWebhookSecret, APIBase: stripeAPI.URL})
		if err != nil {
			t.Fatal(err)
		}
		return pr
	})
	aliceID, alice := p.shopper(t, "alice")
	bobID, bob := p.shopper(t, "bob")
	_, carol := p.shopper(t, "carol")

	// startSetup sends the visitor to Stripe Checkout and returns the session id.
	startSetup := func(v *portalVisitor) string {
		t.Helper()
		to := v.location(v.post("/portal/cards/setup", url.Values{"_csrf": {v.csrf("/portal/billing")}}), http.StatusSeeOther)
		id, ok := strings.CutPrefix(to, "https://checkout.stripe.com/c/pay/")
		if !ok {
			t.Fatalf("card setup sent the customer to %q", to)
		}
		return id
	}
	aliceSession := startSetup(alice)
	bobSession := startSetup(bob)
	stripeAPI.complete(aliceSession, "pm_alice")
	back := "/portal/cards/added?session_id=" + aliceSession

	bob.cardRefused(back)
	carol.cardRefused(back)
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM payment_methods`); n != 0 {
		t.Fatalf("%d card rows after other customers used alice's session", n)
	}

	// Alice's session still completes, for her.
	alice.location(alice.get(back), http.StatusSeeOther)
	cards := alice.cards()
	if len(cards) != 1 || cards[0].Label != "Visa •••• 4242" {
		t.Fatalf("alice's cards %+v", cards)
	}
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM payment_methods WHERE customer_id = ? AND provider_id = 'pm_alice'`, aliceID); n != 1 {
		t.Fatalf("alice's card rows: %d", n)
	}

	// Bob's own session comes back with alice's payment method (Stripe never
	// attaches one card to two customers, so this is a crossed or forged
	// answer): refused, before and after alice removes it.
	stripeAPI.complete(bobSession, "pm_alice")
	fl := bob.cardRefused("/portal/cards/added?session_id=" + bobSession)
	if !strings.Contains(fl, "saved to another account") {
		t.Fatalf("flash %q", fl)
	}
	alice.post("/portal/cards/"+cards[0].ID+"/remove", url.Values{"_csrf": {alice.csrf("/portal/billing")}})
	bob.cardRefused("/portal/cards/added?session_id=" + bobSession)

	// A webhook saying bob's Stripe customer set up alice's card is taken
	// (Stripe stops retrying) and saves nothing.
	p.deliver(t, stripeEvent("evt_setup_crossed", "setup_intent.succeeded",
		`{"id":"seti_x","object":"setup_intent","status":"succeeded","customer":"cus_`+bobID+`","payment_method":"pm_alice"}`))
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM payment_methods WHERE customer_id = ?`, bobID); n != 0 {
		t.Fatalf("bob has %d card rows", n)
	}
	if got := alice.cards(); len(got) != 0 {
		t.Fatalf("alice's removed card came back: %+v", got)
	}
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM payment_methods WHERE customer_id = ? AND removed_at IS NOT NULL`, aliceID); n != 1 {
		t.Fatalf("alice's removed row changed: %d", n)
	}
}
