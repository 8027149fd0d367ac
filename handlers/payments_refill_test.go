package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
)

// saveRefill posts the auto-refill form.
func (v *portalVisitor) saveRefill(vals url.Values, headers ...string) response {
	v.t.Helper()
	vals.Set("_csrf", v.csrf("/portal/billing"))
	return v.post("/portal/auto-refill", vals, headers...)
}

// enableRefill turns auto-refill on with the form and checks it says so.
func (v *portalVisitor) enableRefill(vals url.Values) {
	v.t.Helper()
	vals.Set("enabled", "on")
	r := v.saveRefill(vals, "HX-Request", "true").want(v.t, http.StatusOK)
	if testID(v.t, r, "refill-saved") != "Saved." || doc(v.t, r).Find(`[data-testid="refill-on"]`).Length() != 1 {
		v.t.Fatalf("auto-refill not on after saving: %.800s", r.Raw)
	}
}

type notice struct{ ID, Title, Message, Link string }

// notices are the billing notices on the billing page, newest first.
func (v *portalVisitor) notices() []notice {
	v.t.Helper()
	var out []notice
	doc(v.t, v.get("/portal/billing").want(v.t, http.StatusOK)).Find(`[data-testid="billing-notice"]`).Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		link, _ := s.Find("a[href]").Attr("href")
		ps := s.Find("p")
		out = append(out, notice{ID: id, Title: strings.TrimSpace(ps.Eq(0).Text()), Message: strings.TrimSpace(ps.Eq(1).Text()), Link: link})
	})
	return out
}

// refillState is the overview's auto-refill line, in words.
func (v *portalVisitor) refillState() string {
	v.t.Helper()
	return testID(v.t, v.get("/portal").want(v.t, http.StatusOK), "auto-refill-state")
}

// TestAutoRefillStatusEverywhere: the overview says what auto-refill is
// doing (not "Set up" while it is on, not "On" while its payments are
// declined), and a declined, paused or waiting refill shows under the
// header of every page until it is dealt with, not on the billing page
// alone.
func TestAutoRefillStatusEverywhere(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.refiller(t, "acme", cardDecline, "300")
	if got := v.refillState(); got != "Off Turn on" {
		t.Fatalf("before it is set: %q", got)
	}
	if got := testID(t, v.get("/portal/billing").want(t, http.StatusOK), "next-refill-off"); got != "None: auto-refill is off." {
		t.Fatalf("next refill while off: %q", got)
	}
	v.enableRefill(url.Values{"threshold": {"200"}, "mode": {"pack"}, "pack": {"pack_1000"}})
	if got := v.refillState(); got != "On below 200, buys Starter Change" {
		t.Fatalf("on: %q", got)
	}
	if got := testID(t, v.get("/portal").want(t, http.StatusOK), "saved-cards-slot"); got != "Saved cards Visa •••• 0002 · Manage" {
		t.Fatalf("saved cards: %q", got)
	}
	p.usage(id, "chat.request", "150", "").want(t, http.StatusCreated)
	p.runRefills(t)
	if got := v.refillState(); got != "Payment failed Check" {
		t.Fatalf("after a decline the overview says %q", got)
	}
	for _, page := range []string{"/portal", "/portal/usage", "/portal/ledger", "/portal/settings", "/portal/billing"} {
		r := v.get(page).want(t, http.StatusOK)
		n := doc(t, r).Find(`[data-testid="notices"] [data-testid="billing-notice"]`)
		if n.Length() != 1 || !strings.Contains(n.Text(), "Auto-refill payment declined") {
			t.Fatalf("%s does not show the declined refill under its header: %q", page, n.Text())
		}
		if href, _ := n.Find(`[data-testid="notice-link"]`).Attr("href"); href != "/portal/billing#auto-refill" {
			t.Fatalf("%s: the notice links to %q", page, href)
		}
	}
	// Dealt with (dismissed): gone from every page; without JavaScript the
	// customer stays on the page they dismissed it from.
	ns := v.notices()
	r := v.post("/portal/notices/"+strings.TrimPrefix(ns[0].ID, "notice-")+"/dismiss", url.Values{"_csrf": {v.csrf("/portal/usage")}},
		"Referer", v.a.HTTP.URL+"/portal/usage?feature=x")
	if to := v.location(r, http.StatusSeeOther); to != "/portal/usage?feature=x" {
		t.Fatalf("dismissed without htmx: back to %q", to)
	}
	if doc(t, v.get("/portal/ledger").want(t, http.StatusOK)).Find(`[data-testid="billing-notice"]`).Length() != 0 {
		t.Fatal("a dismissed notice still shows")
	}
}

// refillTopUps counts the customer's auto-refill purchases by status.
func (p *payAPI) refillTopUps(t *testing.T, customer, status string) int {
	t.Helper()
	return p.sqlCount(t, `SELECT COUNT(*) FROM top_ups WHERE customer_id = ? AND origin = 'auto_refill' AND status = ?`, customer, status)
}

// refiller is a signed-in customer with a card and some credits.
func (p *payAPI) refiller(t *testing.T, ext, card string, credits string) (string, *portalVisitor) {
	t.Helper()
	id, v := p.shopper(t, ext)
	v.addCard(card)
	if credits != "0" {
		p.grant(t, id, credits, "promo")
	}
	return id, v
}

func TestAutoRefillForm(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.refiller(t, "acme", cardOK, "300")

	page := v.get("/portal/billing").want(t, http.StatusOK)
	// Never set: 10% of the smallest pack (no purchase to take 10% of yet),
	// not 0, which would refill only once the credits are gone.
	if got, _ := doc(t, page).Find(`#refill-threshold`).Attr("value"); got != "100" {
		t.Errorf("the threshold of a customer who never set one shows %q, want 100", got)
	}
	if got := testID(t, page, "month-refills"); got != "0 refills · $0.00" {
		t.Errorf("this month: %q", got)
	}

	tests := []struct {
		name   string
		form   url.Values
		field  string // data-testid of the inline error, or the error's text container
		want   string
		kept   string // a value the form must show as typed
		keptAt string
	}{
		{"threshold not a number", url.Values{"threshold": {"lots"}, "mode": {"pack"}, "pack": {"pack_1000"}}, "error-threshold", "Enter a number of credits", "lots", "#refill-threshold"},
		{"threshold empty", url.Values{"threshold": {""}, "mode": {"pack"}, "pack": {"pack_1000"}}, "error-threshold", "Enter a number of credits", "", "#refill-threshold"},
		{"target not above the threshold", url.Values{"threshold": {"500"}, "mode": {"target"}, "target": {"400"}}, "error-target", "must be above the threshold", "400", `input[name="target"]`},
		{"target missing", url.Values{"threshold": {"500"}, "mode": {"target"}, "target": {""}}, "error-target", "Enter the balance to refill to", "", `input[name="target"]`},
		{"no such pack", url.Values{"threshold": {"500"}, "mode": {"pack"}, "pack": {"pack_nope"}}, "error-pack", "Choose a credit pack", "500", "#refill-threshold"},
		{"zero refills a month", url.Values{"threshold": {"500"}, "mode": {"pack"}, "pack": {"pack_1000"}, "max_refills": {"0"}}, "error-max_refills", "Enter 1 to 1,000 refills a month", "0", `input[name="max_refills"]`},
		{"amount ceiling not money", url.Values{"threshold": {"500"}, "mode": {"pack"}, "pack": {"pack_1000"}, "max_amount": {"lots"}}, "error-max_amount", "Enter an amount, such as 25.50.", "lots", `input[name="max_amount"]`},
		// An exponent is not a number people type: never $1,000.00.
		{"amount ceiling with an exponent", url.Values{"threshold": {"500"}, "mode": {"pack"}, "pack": {"pack_1000"}, "max_amount": {"1e3"}}, "error-max_amount", "Enter an amount, such as 25.50.", "1e3", `input[name="max_amount"]`},
		// A ceiling below one refill's price would skip every refill: refused beside it.
		{"amount ceiling below the pack", url.Values{"threshold": {"500"}, "mode": {"pack"}, "pack": {"pack_1000"}, "max_amount": {"5"}}, "error-max_amount", "One refill costs $10.00: a ceiling of $5.00 would stop every refill.", "5", `input[name="max_amount"]`},
		// Target mode: at least target − threshold credits (1,500 at $10 per 1,000: $15.00).
		{"amount ceiling below the smallest target refill", url.Values{"threshold": {"500"}, "mode": {"target"}, "target": {"2000"}, "max_amount": {"12"}}, "error-max_amount", "One refill costs $15.00: a ceiling of $12.00 would stop every refill.", "12", `input[name="max_amount"]`},
		// "1,5" in English is neither 15 nor silently 1.5.
		{"ambiguous comma", url.Values{"threshold": {"1,5"}, "mode": {"pack"}, "pack": {"pack_1000"}}, "error-threshold", `Type 1.5 or 15`, "1,5", "#refill-threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, htmx := range []bool{true, false} {
				form := url.Values{}
				for k, vs := range tt.form {
					form[k] = vs
				}
				form.Set("enabled", "on")
				var r response
				if htmx {
					r = v.saveRefill(form, "HX-Request", "true")
				} else {
					r = v.saveRefill(form)
				}
				r.want(t, http.StatusUnprocessableEntity)
				var got string
				if tt.field != "" {
					got = testID(t, r, tt.field)
				} else {
					got = strings.Join(strings.Fields(doc(t, r).Find(`#auto-refill .field-error`).Text()), " ")
				}
				if !strings.Contains(got, tt.want) {
					t.Errorf("htmx %v: inline error %q, want %q", htmx, got, tt.want)
				}
				if val, _ := doc(t, r).Find(`#auto-refill ` + tt.keptAt).Attr("value"); val != tt.kept {
					t.Errorf("htmx %v: %s shows %q, want %q as typed", htmx, tt.keptAt, val, tt.kept)
				}
			}
		})
	}
	// Every error at once, each beside its field, tied to it for screen
	// readers, in sentences: not the first one alone, nor in lower case.
	t.Run("all at once", func(t *testing.T) {
		r := v.saveRefill(url.Values{"enabled": {"on"}, "threshold": {"-5"}, "mode": {"target"}, "target": {"x"},
			"max_refills": {"2.5"}, "max_amount": {"1,5"}}, "HX-Request", "true").want(t, http.StatusUnprocessableEntity)
		d := doc(t, r)
		for field, want := range map[string]string{
			"threshold":   "The balance to refill at can't be negative.",
			"target":      "Enter a number of credits, such as 1,000 or 12.5.",
			"max_refills": "Enter a whole number, such as 3.",
			"max_amount":  `Type 1.5 or 15: we can't tell which "1,5" means.`,
		} {
			if got := testID(t, r, "error-"+field); got != want {
				t.Errorf("error beside %s: %q, want %q", field, got, want)
			}
			in := d.Find(`#auto-refill [name="` + field + `"]`)
			errID, _ := d.Find(`[data-testid="error-` + field + `"]`).Attr("id")
			if desc, _ := in.Attr("aria-describedby"); desc == "" || desc != errID {
				t.Errorf("%s: aria-describedby %q, the error's id %q", field, desc, errID)
			}
			if inv, _ := in.Attr("aria-invalid"); inv != "true" {
				t.Errorf("%s is not marked aria-invalid", field)
			}
		}
		if got := testID(t, r, "refill-errors"); !strings.Contains(got, "Fix the 4 fields marked") {
			t.Errorf("summary %q", got)
		}
	})
	if set, found, _ := p.DB.FindRefillSettings(t.Context(), id); found {
		t.Fatalf("refused forms saved settings: %+v", set)
	}

	t.Run("saved", func(t *testing.T) {
		r := v.saveRefill(url.Values{"enabled": {"on"}, "threshold": {"200"}, "mode": {"pack"}, "pack": {"pack_1000"}, "max_refills": {"3"}, "max_amount": {"50"}},
			"HX-Request", "true").want(t, http.StatusOK)
		if strings.Contains(string(r.Raw), "<html") {
			t.Fatal("htmx got a whole page")
		}
		if got := testID(t, r, "next-refill"); got != "1,000 credits for $10.00" {
			t.Errorf("next refill %q", got)
		}
		if got := testID(t, r, "month-refills"); got != "0 refills · $0.00" {
			t.Errorf("this month %q", got)
		}
		// Without JavaScript: a redirect and a flash.
		r = v.saveRefill(url.Values{"enabled": {"on"}, "threshold": {"250"}, "mode": {"target"}, "target": {"2,000"}})
		if to := v.location(r, http.StatusSeeOther); to != "/portal/billing#auto-refill" {
			t.Fatalf("saved without htmx: %q", to)
		}
		page := v.get("/portal/billing").want(t, http.StatusOK)
		if got := testID(t, page, "flash"); !strings.Contains(got, "Auto-refill saved.") {
			t.Errorf("flash %q", got)
		}
		if got, _ := doc(t, page).Find(`#refill-threshold`).Attr("value"); got != "250" {
			t.Errorf("threshold shows %q", got)
		}
		if got, _ := doc(t, page).Find(`input[name="target"]`).Attr("value"); got != "2,000" {
			t.Errorf("target shows %q", got)
		}
		// 300 credits now: the next refill brings them back to 2,000.
		if got := testID(t, page, "next-refill"); got != "1,700 credits for $17.00" {
			t.Errorf("next refill %q", got)
		}
	})
}

func TestAutoRefillLands(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.refiller(t, "acme", cardOK, "300")
	v.enableRefill(url.Values{"threshold": {"200"}, "mode": {"pack"}, "pack": {"pack_1000"}})

	p.usage(id, "chat.request", "50", "").want(t, http.StatusCreated) // 250: above the threshold
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM refill_jobs`); n != 0 {
		t.Fatalf("%d jobs above the threshold", n)
	}
	p.usage(id, "chat.request", "100", "").want(t, http.StatusCreated) // 150: below
	p.usage(id, "chat.request", "10", "").want(t, http.StatusCreated)  // further below: no second job
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM refill_jobs WHERE customer_id = ?`, id); n != 1 {
		t.Fatalf("%d refill jobs after crossing the threshold once", n)
	}
	if n := p.runRefills(t); n != 1 {
		t.Fatalf("ran %d jobs", n)
	}
	if got := p.available(t, id); got != billing.CreditsOf(1140) {
		t.Fatalf("balance after the refill %s, want 140 + 1,000", got)
	}
	if p.refillTopUps(t, id, "succeeded") != 1 || p.sqlCount(t, `SELECT COUNT(*) FROM refill_jobs WHERE status = 'succeeded'`) != 1 {
		t.Fatal("the refill top-up or its job did not succeed")
	}
	rows := v.purchases()
	if len(rows) != 1 || rows[0].Description != "Auto-refill: Starter: 1,000 credits" || rows[0].Status != "Paid" || rows[0].Receipt == "" {
		t.Fatalf("purchases %+v", rows)
	}
	if receipt := testID(t, v.get(rows[0].Receipt).want(t, http.StatusOK), "receipt"); !strings.Contains(receipt, "Auto-refill: Starter: 1,000 credits") {
		t.Fatalf("receipt %s", receipt)
	}
	page := v.get("/portal/billing").want(t, http.StatusOK)
	if got := testID(t, page, "month-refills"); got != "1 refill · $10.00" {
		t.Errorf("this month %q", got)
	}
	if n := len(v.notices()); n != 0 {
		t.Errorf("%d notices after a refill that worked", n)
	}
	if n := p.runRefills(t); n != 0 {
		t.Fatalf("ran %d more jobs", n)
	}
	p.verify(t)
}

func TestAutoRefillTargetBuysTheDifference(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.refiller(t, "acme", cardOK, "300")
	v.enableRefill(url.Values{"threshold": {"200"}, "mode": {"target"}, "target": {"2000"}})
	p.usage(id, "chat.request", "150", "").want(t, http.StatusCreated) // 150
	p.runRefills(t)
	if got := p.available(t, id); got != billing.CreditsOf(2000) {
		t.Fatalf("balance %s, want 2,000", got)
	}
	rows := v.purchases()
	if len(rows) != 1 || rows[0].Credits != "1,850" || rows[0].Amount != "$18.50" || rows[0].Description != "Auto-refill: 1,850 credits" {
		t.Fatalf("purchases %+v", rows)
	}

	t.Run("a difference smaller than the smallest top-up buys what it costs", func(t *testing.T) {
		wid, w := p.refiller(t, "small-difference", cardOK, "300")
		w.enableRefill(url.Values{"threshold": {"200"}, "mode": {"target"}, "target": {"400"}})
		p.usage(wid, "chat.request", "150", "").want(t, http.StatusCreated) // 150: 250 short of 400, $2.50 < $5.00
		if got := testID(t, w.get("/portal/billing"), "next-refill"); got != "500 credits for $5.00" {
			t.Errorf("next refill %q", got)
		}
		p.runRefills(t)
		if got := p.available(t, wid); got != billing.CreditsOf(650) {
			t.Fatalf("balance %s: $5.00 (the least a top-up costs) should buy 500 credits", got)
		}
	})

	t.Run("a fractional difference buys whole credits", func(t *testing.T) {
		p.Clock.Advance(time.Second)
		p.usage(id, "gpt-4o.tokens", "740100", "").want(t, http.StatusCreated) // 2,000 - 1,850.25 = 149.75
		p.runRefills(t)
		if got := p.available(t, id); got != billing.CreditsOf(2000)+750 {
			t.Fatalf("balance %s, want 149.75 + 1,851 whole credits = 2,000.75", got)
		}
	})
	p.verify(t)
}

func TestAutoRefillMonthlyCeilings(t *testing.T) {
	p := newPayAPI(t)
	cross := func(t *testing.T, id string) {
		t.Helper()
		p.Clock.Advance(time.Second)
		b := p.available(t, id)
		p.usage(id, "chat.request", (b-billing.CreditsOf(150)).String(), "").want(t, http.StatusCreated) // down to 150
	}
	for _, tt := range []struct {
		name   string
		form   url.Values
		policy int64 // the policy's monthly amount cap (minor units), for customers who set none
	}{
		{"count", url.Values{"max_refills": {"1"}}, 0},
		{"amount", url.Values{"max_amount": {"15"}}, 0}, // one $10 refill fits, two do not
		{"policy-amount", url.Values{}, 15_00},          // the customer sets none: the policy's cap applies
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.policy > 0 {
				cur, err := p.DB.CurrentPolicy(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				pol := cur.Policy
				pol.RefillMaxAmountPerMonth = tt.policy
				if _, err := p.DB.UpdatePolicy(context.Background(), cur.Version, pol, billing.AdminActor("adm_test"), "cap refills"); err != nil {
					t.Fatal(err)
				}
			}
			id, v := p.refiller(t, "ceiling-"+tt.name, cardOK, "300")
			form := url.Values{"threshold": {"200"}, "mode": {"pack"}, "pack": {"pack_1000"}}
			for k, vs := range tt.form {
				form[k] = vs
			}
			v.enableRefill(form)
			cross(t, id)
			p.runRefills(t)
			if got := p.available(t, id); got != billing.CreditsOf(1150) {
				t.Fatalf("first refill: balance %s", got)
			}
			cross(t, id)
			if n := p.runRefills(t); n != 1 {
				t.Fatalf("ran %d jobs", n)
			}
			if got := p.available(t, id); got != billing.CreditsOf(150) {
				t.Fatalf("a refill beyond the monthly ceiling landed: balance %s", got)
			}
			if n := p.sqlCount(t, `SELECT COUNT(*) FROM top_ups WHERE customer_id = ?`, id); n != 1 {
				t.Fatalf("%d top-ups, want the first one only", n)
			}
			ns := v.notices()
			if len(ns) != 1 || ns[0].Title != "Auto-refill limit reached" || !strings.Contains(ns[0].Message, "Top up by hand, or raise the limit.") {
				t.Fatalf("notices %+v", ns)
			}
			// Next month the ceiling starts over.
			p.Clock.Advance(31 * 24 * time.Hour)
			p.grant(t, id, "100", "promo")
			cross(t, id)
			p.runRefills(t)
			if p.refillTopUps(t, id, "succeeded") != 2 {
				t.Fatal("no refill in the next month")
			}
		})
	}
	p.verify(t)
}

func TestAutoRefillDeclined(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.refiller(t, "acme", cardDecline, "300")
	v.enableRefill(url.Values{"threshold": {"200"}, "mode": {"pack"}, "pack": {"pack_1000"}})
	p.usage(id, "chat.request", "150", "").want(t, http.StatusCreated)

	if n := p.runRefills(t); n != 1 {
		t.Fatalf("ran %d jobs", n)
	}
	if p.refillTopUps(t, id, "failed") != 1 || p.available(t, id) != billing.CreditsOf(150) {
		t.Fatal("the declined refill did not fail cleanly")
	}
	ns := v.notices()
	if len(ns) != 1 || ns[0].Title != "Auto-refill payment declined" ||
		ns[0].Message != "Auto-refill could not charge your card: Your card was declined. We will try again in an hour." {
		t.Fatalf("notices after the first decline: %+v", ns)
	}

	// The retry waits an hour.
	p.Clock.Advance(59 * time.Minute)
	if n := p.runRefills(t); n != 0 {
		t.Fatalf("retried after 59 minutes (%d jobs)", n)
	}
	p.Clock.Advance(time.Minute)
	if n := p.runRefills(t); n != 1 {
		t.Fatalf("no retry after an hour (%d jobs)", n)
	}
	if p.refillTopUps(t, id, "failed") != 2 {
		t.Fatal("the retry did not charge again")
	}
	if n := len(v.notices()); n != 1 {
		t.Fatalf("%d notices after the second decline, want still one", n)
	}
	// Then six hours.
	p.Clock.Advance(6*time.Hour - time.Minute)
	if n := p.runRefills(t); n != 0 {
		t.Fatal("retried before six hours")
	}
	p.Clock.Advance(time.Minute)
	p.runRefills(t)

	// Three declines: paused, and the page says why.
	page := v.get("/portal/billing").want(t, http.StatusOK)
	if doc(t, page).Find(`[data-testid="refill-paused"]`).Length() != 1 {
		t.Fatal("auto-refill not shown as paused")
	}
	if got := testID(t, page, "refill-paused-reason"); !strings.Contains(got, "Paused after 3 declined payments in a row (last: Your card was declined.)") {
		t.Fatalf("paused reason %q", got)
	}
	ns = v.notices()
	if len(ns) != 2 || ns[0].Title != "Auto-refill is paused" || !strings.Contains(ns[0].Message, "declined 3 times") {
		t.Fatalf("notices after pausing: %+v", ns)
	}
	// Paused: no more attempts, and a new crossing queues nothing.
	p.Clock.Advance(48 * time.Hour)
	if n := p.runRefills(t); n != 0 {
		t.Fatalf("ran %d jobs while paused", n)
	}
	p.grant(t, id, "500", "promo")
	p.usage(id, "chat.request", "550", "").want(t, http.StatusCreated)
	if n := p.runRefills(t); n != 0 || p.refillTopUps(t, id, "failed") != 3 {
		t.Fatalf("paused auto-refill charged again (%d jobs)", n)
	}

	// Dismissing a notice hides it.
	r := v.post("/portal/notices/"+strings.TrimPrefix(ns[1].ID, "notice-")+"/dismiss", url.Values{"_csrf": {v.csrf("/portal/billing")}})
	v.location(r, http.StatusSeeOther)
	if n := len(v.notices()); n != 1 {
		t.Fatalf("%d notices after dismissing one", n)
	}

	// A working card (added: it becomes the default) and saving the
	// settings turn it back on.
	v.addCard(cardOK)
	if c := v.cards(); c[0].Label != "Visa •••• 4242" || !c[0].Default {
		t.Fatalf("the card added is not the default: %+v", c)
	}
	v.enableRefill(url.Values{"threshold": {"200"}, "mode": {"pack"}, "pack": {"pack_1000"}})
	if n := p.runRefills(t); n != 1 || p.refillTopUps(t, id, "succeeded") != 1 {
		t.Fatalf("turning auto-refill back on below the threshold did not refill (%d jobs)", n)
	}
	// A refill that went through clears the notices about those that did not.
	if ns := v.notices(); len(ns) != 0 {
		t.Fatalf("notices after a refill went through: %+v", ns)
	}
	p.verify(t)
}

func TestAutoRefillRequiresAction(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.refiller(t, "acme", card3DS, "300")
	v.enableRefill(url.Values{"threshold": {"200"}, "mode": {"pack"}, "pack": {"pack_1000"}})
	p.usage(id, "chat.request", "150", "").want(t, http.StatusCreated)
	p.runRefills(t)
	if p.refillTopUps(t, id, "requires_action") != 1 {
		t.Fatal("the refill does not wait for authentication")
	}
	ns := v.notices()
	if len(ns) != 1 || ns[0].Title != "Confirm your auto-refill" || ns[0].Link == "" ||
		ns[0].Message != "Your bank asks you to confirm the auto-refill of Starter: 1,000 credits. Confirm it to add the credits." {
		t.Fatalf("notices %+v, want one with a link to confirm the payment", ns)
	}
	// The bank's page comes back to the portal (the refill's charge had a
	// return URL, which Stripe needs to give a link at all).
	link := strings.TrimPrefix(ns[0].Link, p.HTTP.URL)
	if !strings.HasPrefix(link, "/sandbox/authenticate/pi_sandbox_") || !strings.Contains(link, "return="+url.QueryEscape("/portal/top-ups/return")) {
		t.Fatalf("the notice links to %q", link)
	}
	back := v.answerBank(link, "approve")
	st := v.get(back).want(t, http.StatusOK)
	if !strings.Contains(testID(t, st, "top-up-succeeded"), "1,000 credits added") {
		t.Fatalf("after confirming the refill: %s %.500s", back, st.Raw)
	}
	if got := p.available(t, id); got != billing.CreditsOf(1150) {
		t.Fatalf("balance %s", got)
	}
	if p.sqlCount(t, `SELECT COUNT(*) FROM refill_jobs WHERE status = 'succeeded'`) != 1 {
		t.Fatal("the job did not succeed with its payment")
	}
	// The notice is gone once the payment is confirmed.
	if ns := v.notices(); len(ns) != 0 {
		t.Fatalf("notices after the payment was confirmed: %+v", ns)
	}
	p.verify(t)
}

// TestAutoRefillOnceUnderConcurrentDebits: 100 debits through the API take
// the balance below the threshold together; one refill is bought.
func TestAutoRefillOnceUnderConcurrentDebits(t *testing.T) {
	p := newPayAPI(t)
	id, v := p.refiller(t, "acme", cardOK, "300")
	v.enableRefill(url.Values{"threshold": {"200"}, "mode": {"pack"}, "pack": {"pack_1000"}})
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if r := p.usage(id, "chat.request", "2", ""); r.Status != http.StatusCreated {
				t.Errorf("debit: %d %s", r.Status, r.Raw)
			}
		})
	}
	wg.Wait()
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM refill_jobs WHERE customer_id = ?`, id); n != 1 {
		t.Fatalf("%d refill jobs", n)
	}
	p.runRefills(t)
	p.runRefills(t)
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM top_ups WHERE customer_id = ?`, id); n != 1 {
		t.Fatalf("%d top-ups for one crossing", n)
	}
	if p.Sandbox.charges() != 1 {
		t.Fatalf("%d charges", p.Sandbox.charges())
	}
	if got := p.available(t, id); got != billing.CreditsOf(1100) {
		t.Fatalf("balance %s, want 100 + 1,000", got)
	}
	p.verify(t)
}

// TestTopUpDoubleClick: the same confirmation posted ten times at once
// charges once and grants once.
func TestTopUpDoubleClick(t *testing.T) {
	p := newPayAPI(t)
	for _, tt := range []struct{ name, card string }{{"succeeds", cardOK}, {"declined", cardDecline}, {"authenticates", card3DS}} {
		t.Run(tt.name, func(t *testing.T) {
			id, v := p.shopper(t, "double-"+tt.name)
			v.addCard(tt.card)
			charges := p.Sandbox.charges()
			form := payForm(t, v.confirm(url.Values{"pack": {"pack_1000"}}).want(t, http.StatusOK))
			var wg sync.WaitGroup
			status := make([]int, 10)
			for i := range 10 {
				wg.Go(func() { status[i] = v.post("/portal/top-ups", form).Status })
			}
			wg.Wait()
			for i, st := range status {
				if st != http.StatusSeeOther && st != http.StatusPaymentRequired {
					t.Errorf("click %d: status %d", i, st)
				}
			}
			if n := p.sqlCount(t, `SELECT COUNT(*) FROM top_ups WHERE customer_id = ?`, id); n != 1 {
				t.Fatalf("%d top-ups for one confirmation", n)
			}
			if got := p.Sandbox.charges() - charges; got != 1 {
				t.Fatalf("%d payments at the provider", got)
			}
			want := billing.Credits(0)
			if tt.card == cardOK {
				want = billing.CreditsOf(1000)
			}
			if got := p.available(t, id); got != want {
				t.Fatalf("balance %s, want %s", got, want)
			}
		})
	}
	p.verify(t)
}
