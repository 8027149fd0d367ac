package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

const embedOrigin = "https://app.example"

// embedSetup is a payments server whose portal key allows embedOrigin, and
// a customer "acme" with 500 credits.
func embedSetup(t *testing.T) (*payAPI, string) {
	t.Helper()
	p := newPayAPI(t)
	if _, err := p.DB.SetAPIKeyOrigins(t.Context(), p.PortalKey.ID, []string{embedOrigin}); err != nil {
		t.Fatal(err)
	}
	id := p.namedCustomer(t, "acme", "Acme")
	p.grant(t, id, "500", "promo")
	return p, id
}

// embedToken mints a token for customer and origin with the portal key.
func (p *payAPI) embedToken(t *testing.T, customer, origin string) string {
	t.Helper()
	r := p.do("POST", "/api/v1/embed-tokens", p.Portal, map[string]any{"customer": customer, "origin": origin}).want(t, http.StatusCreated)
	tok, _ := r.Body["token"].(string)
	if !strings.HasPrefix(tok, "tet1.") {
		t.Fatalf("token %q", tok)
	}
	return tok
}

func TestEmbedTokens(t *testing.T) {
	p, acme := embedSetup(t)
	other := p.namedCustomer(t, "globex", "Globex")

	r := p.do("POST", "/api/v1/embed-tokens", p.Portal, map[string]any{"customer": "acme", "origin": embedOrigin}).want(t, http.StatusCreated)
	exp, err := time.Parse(time.RFC3339, r.Body["expires_at"].(string))
	if err != nil || exp.Sub(p.Clock.Now()) > 15*time.Minute || exp.Sub(p.Clock.Now()) < 14*time.Minute {
		t.Fatalf("expires_at %v (now %v), want 15 minutes ahead", r.Body["expires_at"], p.Clock.Now())
	}
	if r.Body["customer"] != acme || r.Body["origin"] != embedOrigin {
		t.Fatalf("token body %v", r.Body)
	}
	token := r.Body["token"].(string)

	t.Run("minting refuses an origin the key does not list", func(t *testing.T) {
		p.do("POST", "/api/v1/embed-tokens", p.Portal, map[string]any{"customer": "acme", "origin": "https://evil.example"}).
			wantError(t, http.StatusForbidden, billing.CodeOriginNotAllowed)
		p.do("POST", "/api/v1/embed-tokens", p.Admin, map[string]any{"customer": "acme", "origin": embedOrigin}).
			wantError(t, http.StatusForbidden, billing.CodeOriginNotAllowed) // the admin key lists none
		p.do("POST", "/api/v1/embed-tokens", p.Portal, map[string]any{"customer": "acme", "origin": embedOrigin + "/page"}).
			wantError(t, http.StatusUnprocessableEntity, billing.CodeValidation)
		p.do("POST", "/api/v1/embed-tokens", p.Portal, map[string]any{"customer": "nobody", "origin": embedOrigin}).
			wantError(t, http.StatusNotFound, billing.CodeCustomerNotFound)
	})

	t.Run("the balance, with CORS for the token's origin", func(t *testing.T) {
		r := p.do("GET", "/api/v1/embed/balance", token, nil, "Origin", embedOrigin).want(t, http.StatusOK)
		if credits(t, r.Body["balance"]) != billing.CreditsOf(500) || r.Body["customer"] != acme || r.Body["object"] != "embed_balance" {
			t.Fatalf("balance %v", r.Body)
		}
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != embedOrigin {
			t.Fatalf("Access-Control-Allow-Origin %q", got)
		}
		// By the customer it asserts (id or external id): the same.
		p.do("GET", "/api/v1/embed/balance?customer=acme", token, nil).want(t, http.StatusOK)
	})

	t.Run("forged", func(t *testing.T) {
		body, sig, _ := strings.Cut(strings.TrimPrefix(token, "tet1."), ".")
		flipped := "A"
		if sig[0] == 'A' {
			flipped = "B"
		}
		for name, forged := range map[string]string{
			"signature changed": "tet1." + body + "." + flipped + sig[1:],
			"payload changed":   "tet1." + strings.Replace(body, body[5:9], "AAAA", 1) + "." + sig,
			"unsigned":          "tet1." + body + ".",
			"an API key":        p.Read,
		} {
			res := p.do("GET", "/api/v1/embed/balance", forged, nil)
			res.wantError(t, http.StatusUnauthorized, billing.CodeEmbedTokenInvalid)
			if strings.Contains(string(res.Raw), "500") {
				t.Fatalf("%s: the answer leaks data: %s", name, res.Raw)
			}
		}
	})

	t.Run("wrong customer", func(t *testing.T) {
		p.do("GET", "/api/v1/embed/balance?customer=globex", token, nil).wantError(t, http.StatusForbidden, billing.CodeEmbedWrongCustomer)
		p.do("GET", "/api/v1/embed/balance?customer="+other, token, nil).wantError(t, http.StatusForbidden, billing.CodeEmbedWrongCustomer)
	})

	t.Run("wrong origin", func(t *testing.T) {
		res := p.do("GET", "/api/v1/embed/balance", token, nil, "Origin", "https://evil.example")
		res.wantError(t, http.StatusForbidden, billing.CodeEmbedWrongOrigin)
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("CORS answered another origin: %q", got)
		}
		// The preflight answers allowed origins only.
		pre := p.do("OPTIONS", "/api/v1/embed/balance", "", nil, "Origin", embedOrigin, "Access-Control-Request-Method", "GET")
		if pre.Header.Get("Access-Control-Allow-Origin") != embedOrigin {
			t.Fatalf("preflight for the allowed origin: %d %v", pre.Status, pre.Header)
		}
		pre = p.do("OPTIONS", "/api/v1/embed/balance", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
		if pre.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight for another origin: %v", pre.Header)
		}
		// The widget page may be framed by the token's origin only.
		w := p.do("GET", "/embed/widget?token="+url.QueryEscape(token), "", nil).want(t, http.StatusOK)
		if csp := w.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors "+embedOrigin) || w.Header.Get("X-Frame-Options") != "" {
			t.Fatalf("widget CSP %q, X-Frame-Options %q", csp, w.Header.Get("X-Frame-Options"))
		}
	})

	t.Run("expired", func(t *testing.T) {
		p.Clock.Advance(15 * time.Minute)
		defer p.Clock.Advance(-15 * time.Minute)
		r := p.do("GET", "/api/v1/embed/balance", token, nil, "Origin", embedOrigin)
		r.wantError(t, http.StatusUnauthorized, billing.CodeEmbedTokenExpired)
		if r.Header.Get("Access-Control-Allow-Origin") != embedOrigin {
			t.Fatalf("the page cannot read that its token expired: %v", r.Header)
		}
		// The frame says so (its origin may frame the answer).
		res := p.do("GET", "/embed/widget?token="+url.QueryEscape(token), "", nil)
		if res.Status != http.StatusUnauthorized || !strings.Contains(testID(t, res, "widget-error"), "expired") ||
			!strings.HasSuffix(res.Header.Get("Content-Security-Policy"), "frame-ancestors "+embedOrigin) {
			t.Fatalf("expired widget: %d %v %s", res.Status, res.Header, res.Raw)
		}
	})

	t.Run("an origin removed, then the key revoked, end its tokens", func(t *testing.T) {
		fresh := p.embedToken(t, "acme", embedOrigin)
		if _, err := p.DB.SetAPIKeyOrigins(t.Context(), p.PortalKey.ID, []string{"https://other.example"}); err != nil {
			t.Fatal(err)
		}
		p.do("GET", "/api/v1/embed/balance", fresh, nil).wantError(t, http.StatusUnauthorized, billing.CodeEmbedTokenRevoked)
		if _, err := p.DB.SetAPIKeyOrigins(t.Context(), p.PortalKey.ID, []string{embedOrigin}); err != nil {
			t.Fatal(err)
		}
		p.do("GET", "/api/v1/embed/balance", fresh, nil).want(t, http.StatusOK)
		if _, err := p.DB.RevokeAPIKey(t.Context(), p.PortalKey.ID); err != nil {
			t.Fatal(err)
		}
		p.do("GET", "/api/v1/embed/balance", fresh, nil).wantError(t, http.StatusUnauthorized, billing.CodeEmbedTokenRevoked)
	})
}

// TestEmbedWidgetTopUp: the widget's page shows the balance; with a saved
// card a pack asks for confirmation and the confirmed click charges once,
// however often it is sent; a cross-site post is refused; without a card
// the button opens the portal's top-up with a fresh sign-in link.
func TestEmbedWidgetTopUp(t *testing.T) {
	p, acme := embedSetup(t)
	token := p.embedToken(t, "acme", embedOrigin)
	page := p.do("GET", "/embed/widget?theme=dark&compact=1&accent=%23ff0000&token="+url.QueryEscape(token), "", nil).want(t, http.StatusOK)
	if got := testID(t, page, "widget-balance"); got != "500" {
		t.Fatalf("widget balance %q", got)
	}
	if !strings.Contains(string(page.Raw), `class="widget dark compact"`) || !strings.Contains(string(page.Raw), "--accent:#ff0000") {
		t.Fatalf("theme not applied")
	}

	// No card yet: the portal's focused top-up, signed in by a fresh link.
	v := newPortalVisitor(t, p.testAPI)
	res := v.post("/embed/portal-link", url.Values{"token": {token}}, "Sec-Fetch-Site", "same-origin")
	if res.Status != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "/portal/session/") {
		t.Fatalf("portal link: %d %v %s", res.Status, res.Header, res.Raw)
	}
	if loc := v.location(v.open(res.Header.Get("Location")), http.StatusSeeOther); loc != "/portal/top-up" {
		t.Fatalf("the link opens %q, want the focused top-up", loc)
	}
	v.addCard(cardOK)

	buyer := newPortalVisitor(t, p.testAPI) // the frame has no cookie
	post := func(path string, f url.Values, site string) response {
		return buyer.post(path, f, "Sec-Fetch-Site", site)
	}
	f := url.Values{"token": {token}, "pack": {"pack_1000"}}
	conf := post("/embed/top-ups/confirm", f, "same-origin").want(t, http.StatusOK)
	if got := testID(t, conf, "widget-confirm"); !strings.Contains(got, "Add 1,000 credits") || !strings.Contains(got, "$10.00") || !strings.Contains(got, "Visa •••• 4242") {
		t.Fatalf("confirmation %q", got)
	}
	buy := formValues(t, conf, `form[action="/embed/top-ups"]`)
	if post("/embed/top-ups", buy, "cross-site").Status != http.StatusForbidden {
		t.Fatal("a cross-site post bought credits")
	}
	before := p.Sandbox.charges()
	for range 2 {
		done := post("/embed/top-ups", buy, "same-origin").want(t, http.StatusOK)
		if got := testID(t, done, "widget-done"); !strings.Contains(got, "Added 1,000 credits") {
			t.Fatalf("after paying: %q", got)
		}
	}
	if n := p.Sandbox.charges() - before; n != 1 {
		t.Fatalf("%d charges for one confirmed click", n)
	}
	if got := p.available(t, acme); got != billing.CreditsOf(1500) {
		t.Fatalf("available %v, want 1500", got)
	}

	// A declined card says so once: it read "Your card was declined (Your
	// card was declined.), nothing was charged."
	v.addCard(cardDecline)
	conf = post("/embed/top-ups/confirm", f, "same-origin").want(t, http.StatusOK)
	failed := post("/embed/top-ups", formValues(t, conf, `form[action="/embed/top-ups"]`), "same-origin").want(t, http.StatusOK)
	if got := testID(t, failed, "widget-failed"); !strings.HasPrefix(got, "Your card was declined. Nothing was charged. Open billing to pay with another card.") {
		t.Fatalf("declined: %q", got)
	}
	if got := p.available(t, acme); got != billing.CreditsOf(1500) {
		t.Fatalf("a declined top-up changed the balance: %v", got)
	}
	p.verify(t)
}

// TestEmbedLowBalanceAndEvents: the JSON and the widget say when the
// balance is low; the JSON event stream sends the balance now and again
// after a debit, and is capped per token like the portal's streams.
func TestEmbedLowBalanceAndEvents(t *testing.T) {
	p, acme := embedSetup(t)
	token := p.embedToken(t, "acme", embedOrigin)
	th := billing.CreditsOf(600)
	if err := p.DB.UpdateCustomerSettings(t.Context(), acme, billing.CustomerSettings{LowBalanceThreshold: &th}); err != nil {
		t.Fatal(err)
	}
	r := p.do("GET", "/api/v1/embed/balance", token, nil).want(t, http.StatusOK)
	if r.Body["low"] != true || r.Body["depleted"] != false {
		t.Fatalf("500 credits under a 600 line: %v", r.Body)
	}
	page := p.do("GET", "/embed/widget?token="+url.QueryEscape(token), "", nil).want(t, http.StatusOK)
	if got := testID(t, page, "widget-warning"); got != "Low balance" {
		t.Fatalf("widget warning %q", got)
	}

	open := func() (*http.Response, func()) {
		req, _ := http.NewRequest("GET", p.HTTP.URL+"/api/v1/embed/events?token="+url.QueryEscape(token), nil)
		req.Header.Set("Origin", embedOrigin)
		ctx, cancel := context.WithCancel(t.Context())
		res, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		return res, func() { cancel(); res.Body.Close() }
	}
	res, stop := open()
	defer stop()
	if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != embedOrigin {
		t.Fatalf("events: %d %v", res.StatusCode, res.Header)
	}
	events := readEvents(res)
	balanceOf := func() string {
		t.Helper()
		select {
		case ev := <-events:
			var b struct {
				Balance json.Number `json:"balance"`
			}
			if ev.Name != "balance" || json.Unmarshal([]byte(ev.Data), &b) != nil {
				t.Fatalf("event %q %q", ev.Name, ev.Data)
			}
			return b.Balance.String()
		case <-time.After(5 * time.Second):
			t.Fatal("no balance event")
		}
		return ""
	}
	if got := balanceOf(); got != "500" {
		t.Fatalf("first event: balance %s", got)
	}
	p.usage(acme, "image.generate", "1", "").want(t, http.StatusCreated)
	if got := balanceOf(); got == "500" {
		t.Fatalf("after a debit the stream still says %s", got)
	}

	// Three more streams of the token reach the cap (4); the fifth is refused.
	for range 3 {
		res, stop := open()
		defer stop()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("stream under the cap: %d", res.StatusCode)
		}
	}
	res5, stop5 := open()
	defer stop5()
	raw, _ := io.ReadAll(res5.Body)
	wantRefused(t, res5, raw, "a fifth stream of one token")
}
