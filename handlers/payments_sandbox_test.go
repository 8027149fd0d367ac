package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/payments"
)

// The sandbox's test cards, as a customer types them.
const (
	cardOK      = "4242 4242 4242 4242"
	cardDecline = "4000 0000 0000 0002"
	card3DS     = "4000 0027 6000 3184"
)

// addCard adds a card the way a customer does: "Add a card" in the portal,
// the sandbox's card page, back to the portal.
func (v *portalVisitor) addCard(number string) {
	v.t.Helper()
	tok := v.csrf("/portal/billing")
	page := v.location(v.post("/portal/cards/setup", url.Values{"_csrf": {tok}}), http.StatusSeeOther)
	if !strings.HasPrefix(page, "/sandbox/cards/new?setup=cs_sandbox_") {
		v.t.Fatalf("card setup sent the customer to %q, want the sandbox's card page", page)
	}
	r := v.get(page).want(v.t, http.StatusOK)
	f := formValues(v.t, r, `form[data-testid="sandbox-card-form"]`)
	f.Set("number", number)
	f.Set("exp", "12/40")
	f.Set("cvc", "123")
	back := v.location(v.post("/sandbox/cards", f), http.StatusSeeOther)
	if !strings.HasPrefix(back, "/portal/cards/added?session_id=cs_sandbox_") {
		v.t.Fatalf("the card page returned to %q, want /portal/cards/added?session_id=...", back)
	}
	if to := v.location(v.get(back), http.StatusSeeOther); to != "/portal/billing" {
		v.t.Fatalf("after saving the card: %q (the top of the page, where the message is)", to)
	}
	if fl := testID(v.t, v.get("/portal/billing").want(v.t, http.StatusOK), "flash"); !strings.Contains(fl, "Saved Visa •••• "+number[len(number)-4:]+". It is now your default card.") {
		v.t.Fatalf("flash after adding a card: %q", fl)
	}
}

type cardRow struct {
	ID, Label, Expires string
	Default            bool
}

// cards lists the saved cards the billing page shows.
func (v *portalVisitor) cards() []cardRow {
	v.t.Helper()
	var out []cardRow
	doc(v.t, v.get("/portal/billing").want(v.t, http.StatusOK)).Find(`[data-testid="card-row"]`).Each(func(_ int, s *goquery.Selection) {
		action, _ := s.Find(`form[action$="/remove"]`).Attr("action")
		out = append(out, cardRow{
			ID:      strings.TrimSuffix(strings.TrimPrefix(action, "/portal/cards/"), "/remove"),
			Label:   strings.TrimSpace(s.Find("p.font-medium").Text()),
			Expires: strings.TrimSpace(s.Find("p.muted").Text()),
			Default: s.Find(`[data-testid="default-card"]`).Length() == 1,
		})
	})
	return out
}

// confirm opens the confirmation of a top-up (pack or amount).
func (v *portalVisitor) confirm(vals url.Values, headers ...string) response {
	v.t.Helper()
	// Each purchase a second after the last, so "newest first" is well defined.
	v.a.Clock.Advance(time.Second)
	vals.Set("_csrf", v.csrf("/portal/billing"))
	return v.post("/portal/top-ups/confirm", vals, headers...)
}

// payForm is the confirmation's form, as the Pay button posts it.
func payForm(t *testing.T, confirm response) url.Values {
	t.Helper()
	return formValues(t, confirm, `[data-testid="top-up-confirm"] form[action="/portal/top-ups"]`)
}

// buy confirms and pays a pack, and returns the answer to the payment.
func (v *portalVisitor) buy(pack string) response {
	v.t.Helper()
	c := v.confirm(url.Values{"pack": {pack}}).want(v.t, http.StatusOK)
	return v.post("/portal/top-ups", payForm(v.t, c))
}

// answerBank answers the sandbox's bank page ("approve" or "fail") and
// follows the customer back: through /portal/top-ups/return, which the
// answer must name the payment to (?payment_intent=, as Stripe does), to
// where they land.
func (v *portalVisitor) answerBank(page, outcome string) string {
	v.t.Helper()
	f := formValues(v.t, v.get(page).want(v.t, http.StatusOK), `form:has([value="`+outcome+`"])`)
	back := v.location(v.post(strings.SplitN(page, "?", 2)[0], f), http.StatusSeeOther)
	if strings.HasPrefix(back, "/portal/top-ups/return") {
		if !strings.Contains(back, "payment_intent=pi_sandbox_") {
			v.t.Fatalf("the bank page returned to %q, without the payment", back)
		}
		back = v.location(v.get(back), http.StatusSeeOther)
	}
	return back
}

type purchaseRow struct {
	Description, Credits, Amount, Card, Status, Receipt string
}

// purchases lists "Purchases and receipts", newest first.
func (v *portalVisitor) purchases() []purchaseRow {
	v.t.Helper()
	var out []purchaseRow
	doc(v.t, v.get("/portal/billing").want(v.t, http.StatusOK)).Find(`[data-testid="receipt-row"]`).Each(func(_ int, s *goquery.Selection) {
		td := func(i int) string { return strings.Join(strings.Fields(s.Find("td").Eq(i).Text()), " ") }
		href, _ := s.Find(`a[href^="/portal/receipts/"]`).Attr("href")
		out = append(out, purchaseRow{Description: td(1), Credits: td(2), Amount: td(3), Card: td(4), Status: td(5), Receipt: href})
	})
	return out
}

// lastTopUp is the id of the customer's newest top-up.
func (p *payAPI) lastTopUp(t *testing.T, customer string) string {
	t.Helper()
	tops, err := p.DB.FindTopUps(t.Context(), customer, 1)
	if err != nil || len(tops) == 0 {
		t.Fatalf("no top-up for %s: %v", customer, err)
	}
	return tops[0].ID
}

// shopper is a signed-in customer with no credits yet.
func (p *payAPI) shopper(t *testing.T, ext string) (string, *portalVisitor) {
	t.Helper()
	id := p.namedCustomer(t, ext, "Shopper "+ext)
	v := newPortalVisitor(t, p.testAPI)
	v.signIn(ext)
	return id, v
}

func TestSandboxCardsThroughThePortal(t *testing.T) {
	p := newPayAPI(t)
	_, v := p.shopper(t, "acme")

	if got := testID(t, v.get("/portal/billing").want(t, http.StatusOK), "no-cards"); got != "No saved card yet." {
		t.Fatalf("no cards yet: %q", got)
	}
	v.addCard(cardOK)
	cards := v.cards()
	if len(cards) != 1 || cards[0].Label != "Visa •••• 4242" || cards[0].Expires != "Expires 12/2040" || !cards[0].Default {
		t.Fatalf("after adding 4242: %+v", cards)
	}

	t.Run("a card the sandbox does not take is refused on its page", func(t *testing.T) {
		tok := v.csrf("/portal/billing")
		page := v.location(v.post("/portal/cards/setup", url.Values{"_csrf": {tok}}), http.StatusSeeOther)
		f := formValues(t, v.get(page).want(t, http.StatusOK), `form[data-testid="sandbox-card-form"]`)
		f.Set("number", "5555 5555 5555 4444")
		f.Set("exp", "12/40")
		f.Set("cvc", "123")
		r := v.post("/sandbox/cards", f).want(t, http.StatusUnprocessableEntity)
		if got := testID(t, r, "error-number"); !strings.Contains(got, "4242 4242 4242 4242") {
			t.Fatalf("error for a non-test card: %q", got)
		}
		f.Set("number", cardOK)
		f.Set("exp", "13/40")
		if got := testID(t, v.post("/sandbox/cards", f).want(t, http.StatusUnprocessableEntity), "error-exp"); got != "Enter the expiry as MM/YY, such as 12/34." {
			t.Fatalf("error for a bad expiry: %q", got)
		}
		// Every field at once, each error beside its field and tied to it;
		// the number field has the focus on arrival.
		f.Set("number", "1234")
		f.Set("exp", "1/2")
		f.Set("cvc", "x")
		r = v.post("/sandbox/cards", f).want(t, http.StatusUnprocessableEntity)
		d := doc(t, r)
		for field, want := range map[string]string{"number": "Enter the card number: 12 to 19 digits.", "exp": "The card has expired.", "cvc": "The security code (CVC) is 3 or 4 digits."} {
			if got := testID(t, r, "error-"+field); got != want {
				t.Errorf("error beside %s: %q, want %q", field, got, want)
			}
			if desc, _ := d.Find(`[name="` + field + `"]`).Attr("aria-describedby"); desc != "card-"+field+"-error" {
				t.Errorf("%s: aria-describedby %q", field, desc)
			}
		}
		if _, ok := d.Find("#card-number").Attr("autofocus"); !ok {
			t.Error("the card number field is not focused on arrival")
		}
		if n := len(v.cards()); n != 1 {
			t.Fatalf("%d cards after refused ones", n)
		}
	})

	// A newly added card becomes the default: a customer who adds one
	// (after a decline, say) means to pay with it.
	v.addCard(cardDecline)
	cards = v.cards()
	if len(cards) != 2 || !cards[0].Default || cards[1].Default || cards[0].Label != "Visa •••• 0002" {
		t.Fatalf("after adding 0002: %+v", cards)
	}
	declined, working := cards[0].ID, cards[1].ID
	if got := testID(t, v.get("/portal/billing"), "top-up-card"); got != "Charged to Visa •••• 0002 after you confirm." {
		t.Fatalf("the top-up block charges %q", got)
	}

	t.Run("set default", func(t *testing.T) {
		r := v.post("/portal/cards/"+working+"/default", url.Values{"_csrf": {v.csrf("/portal/billing")}})
		if to := v.location(r, http.StatusSeeOther); to != "/portal/billing#cards" {
			t.Fatalf("default: redirected to %q", to)
		}
		cards := v.cards()
		if len(cards) != 2 || cards[0].ID != working || !cards[0].Default || cards[1].Default {
			t.Fatalf("after making 4242 the default: %+v", cards)
		}
		v.post("/portal/cards/"+declined+"/default", url.Values{"_csrf": {v.csrf("/portal/billing")}}).want(t, http.StatusSeeOther)
	})

	t.Run("another customer's card is not found", func(t *testing.T) {
		_, other := p.shopper(t, "intruder")
		tok := other.csrf("/portal/billing")
		other.post("/portal/cards/"+declined+"/remove", url.Values{"_csrf": {tok}}).want(t, http.StatusNotFound)
		other.post("/portal/cards/"+declined+"/default", url.Values{"_csrf": {tok}}).want(t, http.StatusNotFound)
		other.post("/portal/cards/card_nope/remove", url.Values{"_csrf": {tok}}).want(t, http.StatusNotFound)
		if n := len(v.cards()); n != 2 {
			t.Fatalf("the owner has %d cards after another customer's attempts", n)
		}
	})

	t.Run("remove", func(t *testing.T) {
		r := v.post("/portal/cards/"+declined+"/remove", url.Values{"_csrf": {v.csrf("/portal/billing")}})
		if to := v.location(r, http.StatusSeeOther); to != "/portal/billing#cards" {
			t.Fatalf("remove: redirected to %q", to)
		}
		cards := v.cards()
		if len(cards) != 1 || cards[0].Label != "Visa •••• 4242" || !cards[0].Default {
			t.Fatalf("after removing the default 0002, the 4242 should be the default: %+v", cards)
		}
		// Removed is removed: a second time is not found.
		v.post("/portal/cards/"+declined+"/remove", url.Values{"_csrf": {v.csrf("/portal/billing")}}).want(t, http.StatusNotFound)
	})

	t.Run("without a CSRF token nothing changes", func(t *testing.T) {
		v.post("/portal/cards/"+v.cards()[0].ID+"/remove", url.Values{}).want(t, http.StatusForbidden)
		if n := len(v.cards()); n != 1 {
			t.Fatalf("%d cards", n)
		}
	})
}

func TestSandboxOneClickTopUp(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")

	// Without a card, confirming asks for one.
	v.confirm(url.Values{"pack": {"pack_1000"}}).want(t, http.StatusUnprocessableEntity)
	v.addCard(cardOK)

	t.Run("pack", func(t *testing.T) {
		c := v.confirm(url.Values{"pack": {"pack_1000"}}).want(t, http.StatusOK)
		if got := testID(t, c, "confirm-text"); got != "Add 1,000 credits for $10.00 with Visa •••• 4242?" {
			t.Fatalf("confirm text %q", got)
		}
		if p.Sandbox.charges() != 0 || p.available(t, id) != 0 {
			t.Fatal("confirming charged something")
		}
		r := v.post("/portal/top-ups", payForm(t, c))
		if to := v.location(r, http.StatusSeeOther); to != "/portal" {
			t.Fatalf("after paying: %q", to)
		}
		home := v.get("/portal").want(t, http.StatusOK)
		if got := testID(t, home, "flash"); !strings.Contains(got, "Added 1,000 credits. $10.00 was charged to Visa •••• 4242.") {
			t.Fatalf("flash %q", got)
		}
		if got := testID(t, home, "header-balance-value"); got != "1,000" {
			t.Fatalf("header balance %q", got)
		}
		if got := p.available(t, id); got != billing.CreditsOf(1000) {
			t.Fatalf("balance %s", got)
		}
		rows := v.purchases()
		if len(rows) != 1 || rows[0].Description != "Starter: 1,000 credits" || rows[0].Credits != "1,000" || rows[0].Amount != "$10.00" ||
			rows[0].Card != "Visa •••• 4242" || rows[0].Status != "Paid" || rows[0].Receipt == "" {
			t.Fatalf("purchases %+v", rows)
		}
		rc := v.get(rows[0].Receipt).want(t, http.StatusOK)
		receipt := testID(t, rc, "receipt")
		for _, want := range []string{"Receipt", "Pixel AI", "Shopper acme", "acme@example.test", "Visa •••• 4242", "Starter: 1,000 credits", "$10.00", "Total paid$10.00", "non-refundable after 9 April 2026"} {
			if !strings.Contains(receipt, want) {
				t.Errorf("receipt lacks %q: %s", want, receipt)
			}
		}
		tu := p.topUp(t, strings.TrimPrefix(rows[0].Receipt, "/portal/receipts/"))
		if tu["status"] != "succeeded" || tu["origin"] != "portal" || tu["lot"] == nil || tu["payment_id"] == nil {
			t.Fatalf("top-up %v", tu)
		}
		// The purchase lot is refundable for 30 days.
		created, _ := time.Parse(time.RFC3339, tu["created_at"].(string))
		if created.IsZero() || tu["refundable_until"] != created.Add(30*24*time.Hour).Format(time.RFC3339) {
			t.Fatalf("refundable_until %v, want purchase + 30 days", tu["refundable_until"])
		}
	})

	t.Run("pack with htmx", func(t *testing.T) {
		before := p.available(t, id)
		c := v.confirm(url.Values{"pack": {"pack_5500"}}, "HX-Request", "true").want(t, http.StatusOK)
		if strings.Contains(string(c.Raw), "<html") {
			t.Fatal("the htmx confirmation is a whole page, want the dialog alone")
		}
		if got := testID(t, c, "confirm-text"); got != "Add 5,500 credits for $50.00 with Visa •••• 4242?" {
			t.Fatalf("confirm text %q", got)
		}
		f := payForm(t, c)
		f.Set("_csrf", v.csrf("/portal/billing"))
		r := v.post("/portal/top-ups", f, "HX-Request", "true").want(t, http.StatusOK)
		if got := r.Header.Get("HX-Redirect"); got != "" {
			t.Fatalf("HX-Redirect %q: the page should stay (its header balance updates live)", got)
		}
		if got := testID(t, r, "top-up-added"); !strings.Contains(got, "5,500 credits added") {
			t.Fatalf("success dialog %q", got)
		}
		if got := p.available(t, id) - before; got != billing.CreditsOf(5500) {
			t.Fatalf("balance rose by %s", got)
		}
	})

	t.Run("custom amount", func(t *testing.T) {
		before := p.available(t, id)
		c := v.confirm(url.Values{"amount": {"25"}}).want(t, http.StatusOK)
		if got := testID(t, c, "confirm-text"); got != "Add 2,500 credits for $25.00 with Visa •••• 4242?" {
			t.Fatalf("confirm text %q", got)
		}
		v.post("/portal/top-ups", payForm(t, c)).want(t, http.StatusSeeOther)
		if got := p.available(t, id) - before; got != billing.CreditsOf(2500) {
			t.Fatalf("balance rose by %s", got)
		}
		if rows := v.purchases(); rows[0].Description != "2,500 credits (custom amount)" || rows[0].Amount != "$25.00" {
			t.Fatalf("newest purchase %+v", rows[0])
		}
	})

	t.Run("custom amount out of bounds", func(t *testing.T) {
		before, charges := p.available(t, id), p.Sandbox.charges()
		// Every refusal comes back as the custom amount form, the error beside
		// the field and the amount as typed: with htmx swapped in place of
		// the form (not at the top of the page, off-screen on a phone).
		for amount, want := range map[string]string{
			"4.99":    "Enter an amount between $5.00 and $1,000.00.",
			"1000.01": "Enter an amount between $5.00 and $1,000.00.",
			"0.01":    "Enter an amount between $5.00 and $1,000.00.",
			"0":       "Enter an amount between $5.00 and $1,000.00.",
			"ten":     "Enter an amount, such as 25.50.",
			"1e3":     "Enter an amount, such as 25.50.",
			"0x10":    "Enter an amount, such as 25.50.",
			"+5":      "Type the number without a + sign, such as 25.50.",
			"-5":      "Enter an amount above zero, without a minus sign.",
			"5.001":   "Use at most two decimals, such as 25.50.",
			"1,5":     `Type 1.5 or 15: we can't tell which "1,5" means.`,
			"  ":      "Enter an amount, such as 25.50.",
			"$999.5":  "",
		} {
			for _, htmx := range []bool{false, true} {
				var headers []string
				if htmx {
					headers = []string{"HX-Request", "true"}
				}
				r := v.confirm(url.Values{"amount": {amount}}, headers...)
				if want == "" {
					r.want(t, http.StatusOK)
					if got := testID(t, r, "confirm-text"); got != "Add 99,950 credits for $999.50 with Visa •••• 4242?" {
						t.Errorf("%q: %q", amount, got)
					}
					continue
				}
				r.want(t, http.StatusUnprocessableEntity)
				if got := testID(t, r, "custom-error"); got != want {
					t.Errorf("amount %q (htmx %v): error %q, want %q", amount, htmx, got, want)
				}
				d := doc(t, r)
				if got, _ := d.Find("#custom-amount").Attr("value"); got != amount {
					t.Errorf("amount %q (htmx %v): the field shows %q", amount, htmx, got)
				}
				if desc, _ := d.Find("#custom-amount").Attr("aria-describedby"); !strings.Contains(desc, "custom-error") {
					t.Errorf("amount %q: the error is not tied to the field (%q)", amount, desc)
				}
				if htmx && (r.Header.Get("HX-Retarget") != "#custom-top-up" || r.Header.Get("HX-Reswap") != "outerHTML" || strings.Contains(string(r.Raw), "<html")) {
					t.Errorf("amount %q with htmx: %v %.200s", amount, r.Header, r.Raw)
				}
			}
		}
		// A forged form with an amount below the bounds buys nothing.
		v.post("/portal/top-ups", url.Values{"_csrf": {v.csrf("/portal/billing")}, "amount_minor": {"100"}, "key": {"click_forged"}}).
			want(t, http.StatusUnprocessableEntity)
		if p.available(t, id) != before || p.Sandbox.charges() != charges {
			t.Fatal("an amount out of bounds charged or granted something")
		}
	})

	t.Run("a form without its click key is refused", func(t *testing.T) {
		v.post("/portal/top-ups", url.Values{"_csrf": {v.csrf("/portal/billing")}, "pack": {"pack_1000"}}).want(t, http.StatusBadRequest)
	})
	p.verify(t)
}

// pageMessage is the message of an error page.
func pageMessage(t *testing.T, r response) string {
	t.Helper()
	return strings.Join(strings.Fields(doc(t, r).Find("main").Text()), " ")
}

// TestReceiptOfACustomerWithoutName: a receipt is billed to the customer's
// name and e-mail, and, when the product gave neither, to their account id;
// never to a blank.
func TestReceiptOfACustomerWithoutName(t *testing.T) {
	p := newPayAPI(t)
	p.customer(t, "user_77") // no name, no e-mail
	v := newPortalVisitor(t, p.testAPI)
	v.signIn("user_77")
	v.addCard(cardOK)
	v.buy("pack_1000")
	rows := v.purchases()
	if len(rows) != 1 || rows[0].Receipt == "" {
		t.Fatalf("purchases %+v", rows)
	}
	if got := testID(t, v.get(rows[0].Receipt).want(t, http.StatusOK), "billed-to"); got != "Account user_77" {
		t.Errorf("billed to %q, want the account id", got)
	}
	_, named := p.shopper(t, "acme")
	named.addCard(cardOK)
	named.buy("pack_1000")
	rows = named.purchases()
	got := testID(t, named.get(rows[0].Receipt).want(t, http.StatusOK), "billed-to")
	if got := strings.Join(strings.Fields(got), " "); got != "Shopper acme acme@example.test" {
		t.Errorf("billed to %q, want the name and the e-mail", got)
	}
}

func TestSandboxDeclinedTopUp(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")
	v.addCard(cardDecline)
	r := v.buy("pack_1000").want(t, http.StatusPaymentRequired)
	if got := testID(t, r, "top-up-failed"); !strings.Contains(got, "Payment declined") ||
		!strings.Contains(got, "Your card was declined. No credits were added and nothing was charged.") {
		t.Fatalf("declined dialog: %q", got)
	}
	if got := p.available(t, id); got != 0 {
		t.Fatalf("a declined card granted %s", got)
	}
	rows := v.purchases()
	if len(rows) != 1 || rows[0].Status != "Declined" || rows[0].Receipt != "" {
		t.Fatalf("purchases %+v", rows)
	}
	// Its credits and price are listed as not added and not charged, on a
	// computer and a phone: never "+1,000" as if they had been.
	if rows[0].Credits != "1,000 (not added)" || rows[0].Amount != "$10.00 (not charged)" {
		t.Errorf("declined row: credits %q, amount %q", rows[0].Credits, rows[0].Amount)
	}
	phone := doc(t, v.get("/portal/billing")).Find(`[data-testid="purchase-list"] li`)
	if txt := strings.Join(strings.Fields(phone.Text()), " "); phone.Length() != 1 || strings.Contains(txt, "+1,000") || !strings.Contains(txt, "1,000 credits, not added") {
		t.Errorf("declined purchase on a phone: %q", txt)
	}
	tid := p.lastTopUp(t, id)
	if tu := p.topUp(t, tid); tu["status"] != "failed" || tu["failure_reason"] != "Your card was declined." || tu["lot"] != nil {
		t.Fatalf("top-up %v", tu)
	}
	// A declined purchase has no receipt.
	v.get("/portal/receipts/"+tid).want(t, http.StatusNotFound)
	// With htmx, the dialog replaces the confirmation.
	c := v.confirm(url.Values{"pack": {"pack_1000"}}, "HX-Request", "true").want(t, http.StatusOK)
	f := payForm(t, c)
	f.Set("_csrf", v.csrf("/portal/billing"))
	r = v.post("/portal/top-ups", f, "HX-Request", "true").want(t, http.StatusOK)
	if !strings.Contains(testID(t, r, "top-up-failed"), "Your card was declined.") {
		t.Fatalf("htmx declined dialog: %s", r.Raw)
	}
	if got := p.available(t, id); got != 0 {
		t.Fatalf("balance %s", got)
	}
	p.verify(t)
}

// TestSandboxDeclineRecovers: the decline dialog's other card pays the
// same purchase at once (its card form carries it, and pays as it takes the
// card), the new card becomes the default, and the next click charges it.
// Before, "Use another card" linked to the page it was on and a card added
// afterwards stayed second: the next click was declined again.
func TestSandboxDeclineRecovers(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")
	v.addCard(cardDecline)
	for _, htmx := range []bool{false, true} {
		c := v.confirm(url.Values{"pack": {"pack_5500"}}, "HX-Request", "true").want(t, http.StatusOK)
		f := payForm(t, c)
		f.Set("_csrf", v.csrf("/portal/billing"))
		var r response
		if htmx {
			r = v.post("/portal/top-ups", f, "HX-Request", "true").want(t, http.StatusOK)
		} else {
			r = v.post("/portal/top-ups", f).want(t, http.StatusPaymentRequired)
		}
		other := formValues(t, r, `[data-testid="top-up-failed"] form[action="/portal/top-ups/checkout"]`)
		if other.Get("pack") != "pack_5500" || !strings.HasPrefix(other.Get("key"), "click_") {
			t.Fatalf("htmx %v: the other-card form does not carry the purchase: %v", htmx, other)
		}
		if got := testID(t, r, "use-another-card"); got != "Pay $50.00 with another card" {
			t.Fatalf("htmx %v: button %q", htmx, got)
		}
	}
	c := v.confirm(url.Values{"pack": {"pack_5500"}}).want(t, http.StatusOK)
	r := v.post("/portal/top-ups", payForm(t, c)).want(t, http.StatusPaymentRequired)
	other := formValues(t, r, `[data-testid="top-up-failed"] form[action="/portal/top-ups/checkout"]`)
	page := v.location(v.post("/portal/top-ups/checkout", other), http.StatusSeeOther)
	if !strings.HasPrefix(page, "/sandbox/cards/new?setup=cs_sandbox_") {
		t.Fatalf("pay with another card went to %q", page)
	}
	form := v.get(page).want(t, http.StatusOK)
	if got := testID(t, form, "sandbox-pay-summary"); got != "Growth: 5,500 credits $50.00" {
		t.Fatalf("the card page does not show the purchase: %q", got)
	}
	if got := testID(t, form, "sandbox-pay"); got != "Pay $50.00" {
		t.Fatalf("the card page's button: %q", got)
	}
	f := formValues(t, form, `form[data-testid="sandbox-card-form"]`)
	f.Set("exp", "12/40")
	f.Set("cvc", "123")
	// The declined card again: refused on the page, nothing granted.
	f.Set("number", cardDecline)
	declined := v.post("/sandbox/cards", f).want(t, http.StatusUnprocessableEntity)
	if got := testID(t, declined, "error-number"); got != "Declined by the card's bank." {
		t.Fatalf("a declined card on the card page: %q", got)
	}
	// A decline is the bank's answer, not a typing mistake: the summary says so.
	if got := testID(t, declined, "sandbox-card-errors"); got != "Your card was declined. Nothing was charged. Try another card." {
		t.Fatalf("a declined card's summary: %q", got)
	}
	f.Set("number", cardOK)
	back := v.location(v.post("/sandbox/cards", f), http.StatusSeeOther)
	if !strings.HasPrefix(back, "/portal/top-ups/checkout?session_id=cs_sandbox_") {
		t.Fatalf("the card page returned to %q", back)
	}
	if to := v.location(v.get(back), http.StatusSeeOther); to != "/portal" {
		t.Fatalf("after paying: %q", to)
	}
	if fl := testID(t, v.get("/portal").want(t, http.StatusOK), "flash"); !strings.Contains(fl, "Added 5,500 credits. $50.00 was charged to Visa •••• 4242, now your default card.") {
		t.Fatalf("flash %q", fl)
	}
	if got := p.available(t, id); got != billing.CreditsOf(5500) {
		t.Fatalf("balance %s after paying with another card", got)
	}
	cards := v.cards()
	if len(cards) != 2 || cards[0].Label != "Visa •••• 4242" || !cards[0].Default {
		t.Fatalf("the new card is not the default: %+v", cards)
	}
	// The next click charges the new card.
	v.buy("pack_1000").want(t, http.StatusSeeOther)
	if got := p.available(t, id); got != billing.CreditsOf(6500) {
		t.Fatalf("balance %s after the next click", got)
	}
	if rows := v.purchases(); rows[0].Status != "Paid" || !strings.Contains(rows[0].Card, "4242") {
		t.Fatalf("purchases %+v", rows)
	}
	// Coming back to the same checkout again grants nothing twice.
	v.get(back)
	if got := p.available(t, id); got != billing.CreditsOf(6500) {
		t.Fatalf("balance %s after returning to the checkout twice", got)
	}
	// Another customer cannot complete this customer's checkout.
	_, intruder := p.shopper(t, "intruder")
	intruder.get(back)
	if got := testID(t, intruder.get("/portal/billing"), "flash"); !strings.Contains(got, "No such purchase.") {
		t.Fatalf("another customer's checkout: %q", got)
	}
	p.verify(t)
}

func TestSandboxTopUpRequiresAuthentication(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")
	v.addCard(card3DS)

	// authenticate pays with the 3184 card and follows the redirect to the
	// sandbox's bank page.
	authenticate := func(t *testing.T) (authPage string, topUp string) {
		t.Helper()
		before := p.available(t, id)
		to := v.location(v.buy("pack_1000"), http.StatusSeeOther)
		if !strings.HasPrefix(to, "/sandbox/authenticate/pi_sandbox_") {
			t.Fatalf("a card that asks to authenticate sent the customer to %q", to)
		}
		r := v.get(to).want(t, http.StatusOK)
		if got := strings.ReplaceAll(testID(t, r, "sandbox-auth"), "\u00a0", " "); !strings.Contains(got, "Your bank asks you to confirm a payment of $10.00 with Visa •••• 3184 to Pixel AI.") ||
			!strings.Contains(got, "Starter: 1,000 credits") {
			t.Fatalf("authentication page: %q", got)
		}
		tid := p.lastTopUp(t, id)
		if tu := p.topUp(t, tid); tu["status"] != "requires_action" {
			t.Fatalf("top-up before authenticating: %v", tu["status"])
		}
		if got := p.available(t, id); got != before {
			t.Fatalf("credits before authenticating: %s", got-before)
		}
		return to, tid
	}
	t.Run("approve", func(t *testing.T) {
		page, tid := authenticate(t)
		events := p.sqlCount(t, `SELECT COUNT(*) FROM payment_events`)
		// Back from the bank, on to the purchase's status page.
		back := v.answerBank(page, "approve")
		if back != "/portal/top-ups/"+tid {
			t.Fatalf("after approving: %q, want the status page /portal/top-ups/%s", back, tid)
		}
		st := v.get(back).want(t, http.StatusOK)
		if got := testID(t, st, "top-up-succeeded"); !strings.Contains(got, "1,000 credits added") || !strings.Contains(got, "$10.00 was charged to Visa •••• 3184.") {
			t.Fatalf("status page: %q", got)
		}
		if got := p.available(t, id); got != billing.CreditsOf(1000) {
			t.Fatalf("balance %s", got)
		}
		// The grant came from the event, as a webhook's would.
		if n := p.sqlCount(t, `SELECT COUNT(*) FROM payment_events WHERE provider = 'sandbox' AND type = 'payment_intent.succeeded'`); n != events+1 {
			t.Fatalf("%d sandbox success events, want %d", n, events+1)
		}
		// Approving again (the back button) grants nothing more.
		v.answerBank(page, "approve")
		v.get(back).want(t, http.StatusOK)
		if got := p.available(t, id); got != billing.CreditsOf(1000) {
			t.Fatalf("balance after approving twice %s", got)
		}
	})

	t.Run("fail", func(t *testing.T) {
		before := p.available(t, id)
		page, tid := authenticate(t)
		back := v.answerBank(page, "fail")
		if back != "/portal/top-ups/"+tid {
			t.Fatalf("after failing: %q", back)
		}
		st := v.get(back).want(t, http.StatusOK)
		if got := testID(t, st, "top-up-declined"); !strings.Contains(got, "Payment not completed") || !strings.Contains(got, "No credits were added") {
			t.Fatalf("status page: %q", got)
		}
		if got := p.available(t, id); got != before {
			t.Fatalf("a failed authentication granted %s", got-before)
		}
		if tu := p.topUp(t, tid); tu["status"] != "failed" {
			t.Fatalf("top-up %v", tu["status"])
		}
	})

	t.Run("another customer cannot open the bank page", func(t *testing.T) {
		page, _ := authenticate(t)
		_, other := p.shopper(t, "intruder")
		other.get(page).want(t, http.StatusNotFound)
		f := formValues(t, v.get(page).want(t, http.StatusOK), `form:has([value="approve"])`)
		f.Set("_csrf", other.csrf("/portal/billing"))
		other.post(strings.SplitN(page, "?", 2)[0], f).want(t, http.StatusNotFound)
	})
	p.verify(t)
}

// TestSandboxTopUpFlowFromTheProduct: a `flow: top_up` link lands on the
// focused top-up: why the customer is there (out of credits), what the
// refused action needed, the balance, one pack that covers it and one
// button that pays it with the saved card (the press is the confirmation),
// then the purchase's page that sends them back to the product.
func TestSandboxTopUpFlowFromTheProduct(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")
	v.addCard(cardOK)
	p.grant(t, id, "8", "promo")
	p.usage(id, "chat.request", "8", "").want(t, http.StatusCreated)

	r := p.do("POST", "/api/v1/portal-sessions", p.Portal, map[string]any{"customer": "acme", "return_url": "https://pixel.example/app?done=1",
		"flow": "top_up", "required": 1200}).want(t, http.StatusCreated)
	if r.Body["flow"] != "top_up" || num(t, r.Body["required"]) != "1200" {
		t.Fatalf("session %v", r.Body)
	}
	w := newPortalVisitor(t, p.testAPI)
	if to := w.location(w.open(r.Body["url"].(string)), http.StatusSeeOther); to != "/portal/top-up" {
		t.Fatalf("the top-up link landed on %q", to)
	}
	page := w.get("/portal/top-up").want(t, http.StatusOK)
	if got := testID(t, page, "focus-title"); got != "You're out of credits for Pixel AI" {
		t.Fatalf("title %q", got)
	}
	if got := testID(t, page, "focus-need"); got != "What you asked Pixel AI to do needs 1,200 credits; you have 0." {
		t.Fatalf("need %q", got)
	}
	// 1,200 short: the smallest pack that covers it is Growth.
	if got := testID(t, page, "focus-pay"); got != "Pay $50.00 for 5,500 credits with Visa •••• 4242" {
		t.Fatalf("the pay button says %q", got)
	}
	if doc(t, page).Find(`[data-testid="focus-pack-pack_1000"]`).Length() != 1 || doc(t, page).Find(`#custom-amount`).Length() != 1 {
		t.Fatalf("no other packs or custom amount below: %.300s", page.Raw)
	}
	if doc(t, page).Find(`[data-testid="cards"], [data-testid="auto-refill"], [data-testid="receipts"]`).Length() != 0 {
		t.Fatal("the focused page carries the whole billing page")
	}
	// One press pays.
	pay := formValues(t, page, `form:has([data-testid="focus-pay"])`)
	to := w.location(w.post("/portal/top-ups", pay), http.StatusSeeOther)
	tid := p.lastTopUp(t, id)
	if to != "/portal/top-ups/"+tid {
		t.Fatalf("after paying in the top-up flow: %q, want the status page", to)
	}
	st := w.get(to).want(t, http.StatusOK)
	if got := testID(t, st, "returning"); got != "Added 5,500 credits, returning to Pixel AI…" {
		t.Fatalf("status page says %q", got)
	}
	href, _ := doc(t, st).Find(`[data-testid="continue"][data-auto-return]`).Attr("href")
	if href != "https://pixel.example/app?done=1" || doc(t, st).Find(`[data-testid="stay"]`).Length() != 1 {
		t.Fatalf("continue link %q, or no way to stay", href)
	}
	if got := p.available(t, id); got != billing.CreditsOf(5500) {
		t.Fatalf("balance %s", got)
	}
	// Pressing again (a double submit) charges once.
	w.post("/portal/top-ups", pay)
	if got := p.available(t, id); got != billing.CreditsOf(5500) {
		t.Fatalf("balance %s after a double submit", got)
	}
	// The next visit suggests the pack bought last.
	if got := testID(t, w.get("/portal/top-up").want(t, http.StatusOK), "focus-pay"); got != "Pay $50.00 for 5,500 credits with Visa •••• 4242" {
		t.Fatalf("the next suggestion %q", got)
	}

	// Opening the flow's link ended the customer's session in the other
	// browser; a plain portal session (signed in again there) is not in
	// the flow: paying goes back to the overview.
	if got := v.signedInAs(); got != "" {
		t.Fatalf("the other browser is still signed in as %q after a newer link", got)
	}
	v.signIn("acme")
	to = v.location(v.buy("pack_1000"), http.StatusSeeOther)
	if to != "/portal" {
		t.Fatalf("outside the flow, paying went to %q", to)
	}
	// required is validated.
	p.do("POST", "/api/v1/portal-sessions", p.Portal, map[string]any{"customer": "acme", "return_url": "https://pixel.example/", "flow": "top_up", "required": -1}).
		want(t, http.StatusUnprocessableEntity)
}

// TestSandboxTopUpFlowWithoutACard: without a saved card the focused page's
// button takes a card and pays in one step; the card becomes the default.
func TestSandboxTopUpFlowWithoutACard(t *testing.T) {
	p := newPayAPI(t)
	id, _ := p.shopper(t, "acme")
	r := p.do("POST", "/api/v1/portal-sessions", p.Portal, map[string]any{"customer": "acme", "return_url": "https://pixel.example/app", "flow": "top_up"}).
		want(t, http.StatusCreated)
	w := newPortalVisitor(t, p.testAPI)
	w.location(w.open(r.Body["url"].(string)), http.StatusSeeOther)
	// The overview too pays with a new card in one step, not "add a card"
	// and then find the purchase again.
	if n := doc(t, w.get("/portal").want(t, http.StatusOK)).Find(`form[action="/portal/top-ups/checkout"] [data-testid="dashboard-new-card-pack_1000"]`).Length(); n != 1 {
		t.Fatal("the overview of a customer without a card offers no pack to pay with a card")
	}
	page := w.get("/portal/top-up").want(t, http.StatusOK)
	if got := testID(t, page, "focus-pay"); got != "Pay $10.00 for 1,000 credits with a card" {
		t.Fatalf("the pay button says %q", got)
	}
	cardPage := w.location(w.post("/portal/top-ups/checkout", formValues(t, page, `form:has([data-testid="focus-pay"])`)), http.StatusSeeOther)
	f := formValues(t, w.get(cardPage).want(t, http.StatusOK), `form[data-testid="sandbox-card-form"]`)
	f.Set("number", cardOK)
	f.Set("exp", "12/40")
	f.Set("cvc", "123")
	back := w.location(w.post("/sandbox/cards", f), http.StatusSeeOther)
	to := w.location(w.get(back), http.StatusSeeOther)
	if to != "/portal/top-ups/"+p.lastTopUp(t, id) {
		t.Fatalf("after paying with a new card in the flow: %q", to)
	}
	if got := testID(t, w.get(to).want(t, http.StatusOK), "returning"); got != "Added 1,000 credits, returning to Pixel AI…" {
		t.Fatalf("status page says %q", got)
	}
	if got := p.available(t, id); got != billing.CreditsOf(1000) {
		t.Fatalf("balance %s", got)
	}
	if got := testID(t, w.get("/portal/top-up").want(t, http.StatusOK), "focus-pay"); got != "Pay $10.00 for 1,000 credits with Visa •••• 4242" {
		t.Fatalf("the card was not saved as the default: %q", got)
	}
	// A custom amount typed on the focused page, refused, comes back to it.
	page = w.get("/portal/top-up").want(t, http.StatusOK)
	cf := formValues(t, page, `#custom-top-up`)
	cf.Set("amount", "1e3")
	r2 := w.post("/portal/top-ups/confirm", cf).want(t, http.StatusUnprocessableEntity)
	if doc(t, r2).Find(`[data-testid="top-up-focus"]`).Length() != 1 || testID(t, r2, "custom-error") != "Enter an amount, such as 25.50." {
		t.Fatalf("a refused custom amount on the focused page: %.300s", r2.Raw)
	}
}

func TestRefundsThroughTheAPI(t *testing.T) {
	p := newPayAPI(t)

	// buy gives a new customer a paid Starter pack and returns its top-up.
	var v *portalVisitor
	buy := func(t *testing.T, ext string) (string, string) {
		t.Helper()
		var id string
		id, v = p.shopper(t, ext)
		v.addCard(cardOK)
		v.buy("pack_1000").want(t, http.StatusSeeOther)
		return id, p.lastTopUp(t, id)
	}
	refund := func(tid, key string) response {
		return p.do("POST", "/api/v1/topups/"+tid+"/refund", key, nil)
	}

	t.Run("the unused share, once", func(t *testing.T) {
		id, tid := buy(t, "partly-used")
		p.usage(id, "chat.request", "250", "").want(t, http.StatusCreated)
		refund(tid, p.Meter).want(t, http.StatusForbidden)
		refund(tid, p.Read).want(t, http.StatusForbidden)
		if got := p.available(t, id); got != billing.CreditsOf(750) {
			t.Fatalf("balance %s", got)
		}
		for i := range 3 { // retries answer the same and change nothing
			r := refund(tid, p.Admin).want(t, http.StatusOK)
			if r.Body["status"] != "refunded" || num(t, r.Body["refunded_credits"]) != "750" || num(t, r.Body["refunded_amount"]) != "750" {
				t.Fatalf("try %d: %s", i, r.Raw)
			}
			if got := p.available(t, id); got != 0 {
				t.Fatalf("try %d: balance %s after refunding the unused 750", i, got)
			}
		}
		es, _ := p.ledgerSum(t, id)
		refunds := 0
		for _, e := range es {
			if e["type"] == "refund" {
				refunds++
				if num(t, e["amount"]) != "-750" {
					t.Fatalf("refund entry %v", e)
				}
			}
		}
		if refunds != 1 {
			t.Fatalf("%d refund entries", refunds)
		}
		p.checkLedgerInvariant(t, id)
		// The receipt shows the refund.
		receipt := testID(t, v.get("/portal/receipts/"+tid).want(t, http.StatusOK), "receipt")
		if !strings.Contains(receipt, "Refund (750 unused credits)−$7.50") || !strings.Contains(receipt, "Total paid$2.50") {
			t.Fatalf("receipt after the refund: %s", receipt)
		}
		if rows := v.purchases(); rows[0].Status != "Refunded" {
			t.Fatalf("purchases %+v", rows)
		}
	})

	t.Run("outside the window", func(t *testing.T) {
		id, tid := buy(t, "late")
		p.Clock.Advance(30*24*time.Hour + time.Minute)
		defer p.Clock.Advance(-(30*24*time.Hour + time.Minute))
		e := refund(tid, p.Admin).wantError(t, http.StatusUnprocessableEntity, "refund_window_closed")
		if e["refundable_until"] == nil {
			t.Fatalf("error %v", e)
		}
		if got := p.available(t, id); got != billing.CreditsOf(1000) {
			t.Fatalf("balance %s", got)
		}
		if tu := p.topUp(t, tid); tu["status"] != "succeeded" {
			t.Fatalf("top-up %v", tu["status"])
		}
	})

	t.Run("just inside the window", func(t *testing.T) {
		_, tid := buy(t, "just-in-time")
		p.Clock.Advance(30*24*time.Hour - time.Minute)
		defer p.Clock.Advance(-(30*24*time.Hour - time.Minute))
		refund(tid, p.Admin).want(t, http.StatusOK)
	})

	t.Run("nothing to refund when all is used", func(t *testing.T) {
		id, tid := buy(t, "all-used")
		p.usage(id, "chat.request", "1000", "").want(t, http.StatusCreated)
		refund(tid, p.Admin).wantError(t, http.StatusUnprocessableEntity, "nothing_to_refund")
		if tu := p.topUp(t, tid); tu["status"] != "succeeded" {
			t.Fatalf("top-up %v", tu["status"])
		}
	})

	t.Run("unknown top-up", func(t *testing.T) {
		refund("top_nope", p.Admin).wantError(t, http.StatusNotFound, "not_found")
	})

	// The sandbox keeps its payments in memory. After a restart (or for the
	// demo's history) a refund removed the credits, marked the top-up
	// refunded, then answered 404 "no such sandbox payment", on every retry:
	// no money went back, and the ledger said it had.
	t.Run("after a restart", func(t *testing.T) {
		id, tid := buy(t, "restarted")
		was := p.Service.Provider
		defer func() { p.Service.Provider = was }()
		restarted := payments.NewSandbox("http://tally.test")
		p.Service.Provider = restarted

		// A provider without the payment: refused before anything is written.
		e := refund(tid, p.Admin).wantError(t, http.StatusBadGateway, "payment_provider_error")
		if msg, _ := e["message"].(string); !strings.Contains(msg, "Nothing was refunded and no credits were removed") {
			t.Fatalf("error %v", e)
		}
		if got := p.available(t, id); got != billing.CreditsOf(1000) {
			t.Fatalf("balance %s after a refused refund", got)
		}
		if tu := p.topUp(t, tid); tu["status"] != "succeeded" {
			t.Fatalf("top-up %v after a refused refund", tu["status"])
		}

		// serve's sandbox recalls the payments Tally recorded.
		restarted.Recall = func(ctx context.Context, paymentID string) (billing.Money, bool) {
			tu, err := p.DB.FindTopUpByPayment(ctx, paymentID)
			return tu.Price, err == nil && tu.Status == billing.TopUpSucceeded
		}
		r := refund(tid, p.Admin).want(t, http.StatusOK)
		if r.Body["status"] != "refunded" || num(t, r.Body["refunded_amount"]) != "1000" {
			t.Fatalf("refund after a restart: %s", r.Raw)
		}
		if got := p.available(t, id); got != 0 {
			t.Fatalf("balance %s after the refund", got)
		}
		p.checkLedgerInvariant(t, id)
	})
	p.verify(t)
}

// TestPurchasesAgreeWithTheLedger: Billing lists every purchase Credits &
// history lists, those the product recorded through the API as well as
// those paid here, newest first; the list is also served alone, for the
// page to fetch again after a purchase instead of waiting for a reload.
// Before, a customer whose ledger listed four top-ups saw "No purchases
// yet".
func TestPurchasesAgreeWithTheLedger(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")
	for range 4 {
		p.Clock.Advance(time.Minute)
		p.grant(t, id, "1000", "purchase")
	}
	p.grant(t, id, "50", "promo") // not a purchase
	rows := v.purchases()
	if len(rows) != 4 {
		t.Fatalf("%d purchases listed, want the ledger's 4: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.Credits != "1,000" || r.Amount != "—" || r.Card != "Through Pixel AI" || r.Status != "Paid" || r.Receipt != "" {
			t.Fatalf("a recorded purchase: %+v", r)
		}
	}
	ledger := doc(t, v.get("/portal/ledger").want(t, http.StatusOK)).Find(`[data-testid="ledger-row"]`).FilterFunction(func(_ int, s *goquery.Selection) bool {
		return strings.TrimSpace(s.Find(`[data-testid="ledger-kind"]`).Text()) == "Top-up"
	}).Length()
	if ledger != 4 {
		t.Fatalf("the ledger lists %d top-ups", ledger)
	}
	// A purchase here joins them, newest first, once (not also as its grant).
	v.addCard(cardOK)
	p.Clock.Advance(time.Minute)
	v.buy("pack_5500").want(t, http.StatusSeeOther)
	rows = v.purchases()
	if len(rows) != 5 || rows[0].Description != "Growth: 5,500 credits" || rows[0].Amount != "$50.00" || rows[0].Receipt == "" {
		t.Fatalf("after a purchase here: %+v", rows)
	}
	part := v.get("/portal/partials/purchases").want(t, http.StatusOK)
	if strings.Contains(string(part.Raw), "<html") || doc(t, part).Find(`[data-testid="receipt-row"]`).Length() != 5 {
		t.Fatalf("the purchases partial: %.300s", part.Raw)
	}
	// The page's stable wrapper fetches the list again on every balance
	// event and swaps its content (the list itself is not the listener).
	page := doc(t, v.get("/portal/billing").want(t, http.StatusOK))
	if trig, _ := page.Find("#receipts-live").Attr("hx-trigger"); trig != "tally:balance from:body" || page.Find("#receipts-live #receipts").Length() != 1 {
		t.Fatalf("the list does not follow the balance: hx-trigger %q", trig)
	}
	if sw, _ := page.Find("#receipts-live").Attr("hx-swap"); sw != "innerHTML" {
		t.Fatalf("the list's wrapper swaps %q, want its content", sw)
	}
}

// TestOverviewFollowsTheBalance: the overview's figures drawn from the
// balance (the balance, its forecast, the banner, the top-up suggestion)
// are one part the page fetches again whenever the balance changes, not
// the header alone. Fetching it never swallows a message meant for the
// next page.
func TestOverviewFollowsTheBalance(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")
	p.grant(t, id, "500", "promo")
	page := doc(t, v.get("/portal").want(t, http.StatusOK))
	live := page.Find(`#overview-live`)
	if trig, _ := live.Attr("hx-trigger"); trig != "tally:balance from:body" || live.Find(`[data-testid="balance"]`).Length() != 1 ||
		live.Find(`[data-testid="projection"]`).Length() != 1 || live.Find(`[data-testid="top-up-suggestion"]`).Length() != 1 {
		t.Fatalf("the overview's live part: hx-trigger %q, %q", trig, usageText(live))
	}
	v.addCard(cardOK)
	v.buy("pack_1000").want(t, http.StatusSeeOther) // leaves a flash for the next page
	r := v.get("/portal", "HX-Request", "true", "HX-Target", "overview-live").want(t, http.StatusOK)
	if strings.Contains(string(r.Raw), "<html") || strings.Contains(string(r.Raw), `data-testid="flash"`) {
		t.Fatalf("the live part is a whole page, or took the flash: %.300s", r.Raw)
	}
	if got := testID(t, r, "balance"); got != "1,500" {
		t.Fatalf("live balance %q", got)
	}
	if got := testID(t, v.get("/portal").want(t, http.StatusOK), "flash"); !strings.Contains(got, "Added 1,000 credits") {
		t.Fatalf("the flash was swallowed by the live part: %q", got)
	}
	p.usage(id, "chat.request", "200", "").want(t, http.StatusCreated)
	live2 := v.get("/portal", "HX-Request", "true", "HX-Target", "overview-live")
	if got := testID(t, live2, "balance"); got != "1,300" {
		t.Fatalf("live balance after a debit %q", got)
	}
	// The overview offers the pack that covers what the forecast needs,
	// not an amount no pack sells, and marks its button.
	if got := testID(t, live2, "top-up-suggestion"); !strings.Contains(got, " pack (") || !strings.HasSuffix(got, "covers it.") {
		t.Fatalf("top-up suggestion %q", got)
	}
	marked := doc(t, live2).Find(`[data-testid^="dashboard-pack-"]`).FilterFunction(func(_ int, s *goquery.Selection) bool {
		c, _ := s.Attr("class")
		return strings.Contains(c, "ring-2")
	})
	if marked.Length() != 1 || !strings.Contains(testID(t, live2, "top-up-suggestion"), strings.TrimPrefix(strings.TrimSpace(marked.Find("span").First().Text()), "+")) {
		t.Fatalf("the suggested pack's button is not marked (%d marked): %q", marked.Length(), testID(t, live2, "top-up-suggestion"))
	}
}

// TestInsufficientCreditsOffersATopUp: the 402 carries what a product needs
// to offer the top-up at once: required, available and the pack to
// suggest (the smallest that covers the shortfall, or the one bought last).
func TestInsufficientCreditsOffersATopUp(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")
	p.grant(t, id, "42.5", "promo")
	for _, tc := range []struct {
		quantity, wantPack string
	}{{"50", "pack_1000"}, {"2000", "pack_5500"}} {
		r := p.usage("acme", "chat.request", tc.quantity, "").want(t, http.StatusPaymentRequired)
		e, _ := r.Body["error"].(map[string]any)
		sp, _ := e["suggested_pack"].(map[string]any)
		if e["type"] != "insufficient_credits" || num(t, e["required"]) != tc.quantity || num(t, e["available"]) != "42.5" || sp["id"] != tc.wantPack {
			t.Fatalf("402 for %s: %v", tc.quantity, e)
		}
		price, _ := sp["price"].(map[string]any)
		if sp["name"] == "" || num(t, sp["credits"]) == "" || price["currency"] != "usd" {
			t.Fatalf("suggested pack %v", sp)
		}
	}
	// Holds too; and the pack bought last when it covers.
	v.addCard(cardOK)
	v.buy("pack_5500").want(t, http.StatusSeeOther)
	p.usage("acme", "chat.request", "5542.5", "").want(t, http.StatusCreated)
	r := p.do("POST", "/api/v1/holds", p.Meter, map[string]any{"customer": "acme", "credits": 10}).want(t, http.StatusPaymentRequired)
	if sp, _ := r.Body["error"].(map[string]any)["suggested_pack"].(map[string]any); sp["id"] != "pack_5500" {
		t.Fatalf("hold 402 suggests %v, want the pack bought last", sp)
	}
	// And each refused event of a batch (it had none).
	b := p.do("POST", "/api/v1/usage/batch", p.Meter, map[string]any{"events": []map[string]any{
		{"customer": "acme", "feature": "chat.request", "quantity": 1, "idempotency_key": "b1"},
		{"customer": "acme", "feature": "chat.request", "quantity": 2, "idempotency_key": "b2"}}}).want(t, http.StatusOK)
	for i, ev := range b.Body["data"].([]any) {
		e, _ := ev.(map[string]any)["error"].(map[string]any)
		if sp, _ := e["suggested_pack"].(map[string]any); e["type"] != "insufficient_credits" || sp["id"] != "pack_5500" {
			t.Fatalf("batch event %d: %v", i, ev)
		}
	}
}

// A card typed on the checkout page that asks to authenticate: the bank's
// page names it ("with Visa •••• 3184"), not "with Card •••• " (the purchase
// has no saved card to name yet).
func TestSandboxCheckoutNewCardAuthenticates(t *testing.T) {
	p := newPayAPI(t)
	_, v := p.shopper(t, "acme")
	page := v.get("/portal/top-up").want(t, http.StatusOK)
	cardPage := v.location(v.post("/portal/top-ups/checkout", formValues(t, page, `form:has([data-testid="focus-pay"])`)), http.StatusSeeOther)
	f := formValues(t, v.get(cardPage).want(t, http.StatusOK), `form[data-testid="sandbox-card-form"]`)
	f.Set("number", card3DS)
	f.Set("exp", "12/40")
	f.Set("cvc", "123")
	to := v.location(v.post("/sandbox/cards", f), http.StatusSeeOther)
	for i := 0; i < 3 && !strings.HasPrefix(to, "/sandbox/authenticate/"); i++ {
		to = v.location(v.get(to), http.StatusSeeOther)
	}
	if !strings.HasPrefix(to, "/sandbox/authenticate/pi_sandbox_") {
		t.Fatalf("a new card that asks to authenticate went to %q", to)
	}
	got := strings.ReplaceAll(testID(t, v.get(to).want(t, http.StatusOK), "sandbox-auth"), "\u00a0", " ")
	if !strings.Contains(got, "Your bank asks you to confirm a payment of $10.00 with Visa •••• 3184 to Pixel AI.") {
		t.Fatalf("authentication page: %q", got)
	}
}

// The overview and the one-press top-up suggest the same pack for the same
// customer (billing.SuggestTopUpPack): the overview's forecast needs more
// than Starter, so the top-up page's main button is not Starter either.
func TestSuggestedPackAgrees(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.shopper(t, "acme")
	v.addCard(cardOK)
	p.grant(t, id, "2000", "promo")
	for range 5 { // 300 credits a day
		p.usage(id, "chat.request", "300", "").want(t, http.StatusCreated)
		p.Clock.Advance(24 * time.Hour)
	}
	over := v.get("/portal").want(t, http.StatusOK)
	if got := testID(t, over, "top-up-suggestion"); !strings.Contains(got, "the Growth pack (5,500 credits) covers it") {
		t.Fatalf("the overview suggests %q", got)
	}
	if got := testID(t, v.get("/portal/top-up").want(t, http.StatusOK), "focus-pay"); got != "Pay $50.00 for 5,500 credits with Visa •••• 4242" {
		t.Fatalf("the top-up page's main button %q, the overview suggests Growth", got)
	}
}
