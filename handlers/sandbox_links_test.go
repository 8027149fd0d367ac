package handlers_test

import (
	"net/http"
	"net/url"
	"testing"
)

// The sandbox's pages take their return and cancel links from the query
// (and the card form from its hidden fields): only paths on this origin are
// kept, never something a browser opens as another host. Browsers read '\'
// as '/', so "/\evil.example" is the protocol-relative "//evil.example".
func TestSandboxPagesKeepLinksOnThisSite(t *testing.T) {
	p := newPayAPI(t)
	_, v := p.shopper(t, "acme")
	tok := v.csrf("/portal/billing")
	page := v.location(v.post("/portal/cards/setup", url.Values{"_csrf": {tok}}), http.StatusSeeOther)
	setup := mustQuery(t, page).Get("setup")

	offSite := []string{
		`/\evil.example/phish`,
		`/\/evil.example/phish`,
		`\/evil.example/phish`,
		`\\evil.example/phish`,
		`//evil.example/phish`,
		"/\t/evil.example/phish",
		"/\n/evil.example",
		`https://evil.example/phish`,
		`javascript:alert(1)`,
		`evil.example/phish`,
		`///evil.example`,
	}
	for _, bad := range offSite {
		t.Run("page "+bad, func(t *testing.T) {
			q := url.Values{"setup": {setup}, "cancel": {bad}, "return": {bad}}
			r := v.get("/sandbox/cards/new?"+q.Encode()).want(t, http.StatusOK)
			d := doc(t, r)
			cancel, _ := d.Find(`form[data-testid="sandbox-card-form"] a.btn-secondary`).Attr("href")
			hiddenCancel, _ := d.Find(`input[name="cancel"]`).Attr("value")
			hiddenReturn, _ := d.Find(`input[name="return"]`).Attr("value")
			if cancel != "/portal/billing" || hiddenCancel != "/portal/billing" || hiddenReturn != "/portal/billing" {
				t.Fatalf("cancel link %q, hidden cancel %q, hidden return %q; want /portal/billing for all", cancel, hiddenCancel, hiddenReturn)
			}
		})
		t.Run("form "+bad, func(t *testing.T) {
			// A refused card shows the page again with the posted links.
			f := url.Values{"_csrf": {tok}, "setup": {setup}, "cancel": {bad}, "return": {bad}, "number": {cardOK}, "exp": {"13/40"}, "cvc": {"123"}}
			r := v.post("/sandbox/cards", f).want(t, http.StatusUnprocessableEntity)
			cancel, _ := doc(t, r).Find(`form[data-testid="sandbox-card-form"] a.btn-secondary`).Attr("href")
			if cancel != "/portal/billing" {
				t.Fatalf("cancel link %q after a refused card, want /portal/billing", cancel)
			}
		})
	}

	t.Run("a path on this site is kept", func(t *testing.T) {
		q := url.Values{"setup": {setup}, "cancel": {"/portal/billing?tab=cards#cards"}}
		r := v.get("/sandbox/cards/new?"+q.Encode()).want(t, http.StatusOK)
		if cancel, _ := doc(t, r).Find(`form[data-testid="sandbox-card-form"] a.btn-secondary`).Attr("href"); cancel != "/portal/billing?tab=cards#cards" {
			t.Fatalf("cancel link %q", cancel)
		}
	})
}

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query()
}
