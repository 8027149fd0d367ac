package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
)

// wantSecurityHeaders checks the headers every response carries, and
// no-store unless cacheable.
func wantSecurityHeaders(t *testing.T, what string, r response, cacheable bool) {
	t.Helper()
	h := r.Header
	csp := h.Get("Content-Security-Policy")
	for _, directive := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, directive+";") && !strings.HasSuffix(csp, directive) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", what, csp, directive)
		}
	}
	for _, d := range strings.Split(csp, ";") {
		d = strings.TrimSpace(d)
		if (strings.HasPrefix(d, "script-src") || strings.HasPrefix(d, "default-src") || strings.HasPrefix(d, "style-src ")) &&
			(strings.Contains(d, "unsafe-inline") || strings.Contains(d, "unsafe-eval") || strings.Contains(d, "*") || strings.Contains(d, "http")) {
			t.Errorf("%s: %q allows more than this site's own files", what, d)
		}
	}
	for name, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "same-origin",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
	if cc := h.Get("Cache-Control"); cacheable == (cc == "no-store") {
		t.Errorf("%s: Cache-Control %q (cacheable %v)", what, cc, cacheable)
	}
}

// wantNoInlineScript checks an HTML page runs nothing inline: every script
// has a src, no element has an on* handler or a javascript: link, and htmx
// is told not to inject its <style> (its indicator rules are in app.css).
func wantNoInlineScript(t *testing.T, what string, r response) {
	t.Helper()
	d := doc(t, r)
	d.Find("script").Each(func(_ int, s *goquery.Selection) {
		if src, ok := s.Attr("src"); !ok || !strings.HasPrefix(src, "/static/") || strings.TrimSpace(s.Text()) != "" {
			t.Errorf("%s: inline or foreign script %q", what, src)
		}
	})
	if d.Find("style").Length() != 0 {
		t.Errorf("%s: a <style> element", what)
	}
	d.Find("*").Each(func(_ int, s *goquery.Selection) {
		for _, a := range s.Nodes[0].Attr {
			if strings.HasPrefix(strings.ToLower(a.Key), "on") || strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
				t.Errorf("%s: <%s %s=%q>", what, s.Nodes[0].Data, a.Key, a.Val)
			}
		}
	})
	if cfg, _ := d.Find(`meta[name="htmx-config"]`).Attr("content"); !strings.Contains(cfg, `"includeIndicatorStyles":false`) {
		t.Errorf("%s: htmx-config %q does not turn off htmx's inline indicator style", what, cfg)
	}
}

// Every response carries the security headers: the portal's pages, the
// start page, error pages, the sandbox's pages and API answers; the
// signed-in pages and API answers are never cached, while the fingerprinted
// static files keep their long cache.
func TestSecurityHeaders(t *testing.T) {
	p := newPayAPI(t)
	cus, v := p.shopper(t, "acme")
	v.addCard(cardOK)
	v.buy("pack_1000")
	receipt := v.purchases()[0].Receipt
	if receipt == "" {
		t.Fatal("no receipt link")
	}
	anonymous := newPortalVisitor(t, p.testAPI)

	pages := []struct {
		what   string
		v      *portalVisitor
		path   string
		status int
	}{
		{"start page", anonymous, "/", http.StatusOK},
		{"overview", v, "/portal", http.StatusOK},
		{"usage", v, "/portal/usage", http.StatusOK},
		{"ledger", v, "/portal/ledger", http.StatusOK},
		{"settings", v, "/portal/settings", http.StatusOK},
		{"billing", v, "/portal/billing", http.StatusOK},
		{"receipt", v, receipt, http.StatusOK},
		{"error page", v, "/portal/no-such-page", http.StatusNotFound},
		{"someone else's receipt", anonymous, receipt, http.StatusSeeOther},
	}
	setup := v.location(v.post("/portal/cards/setup", url.Values{"_csrf": {v.csrf("/portal/billing")}}), http.StatusSeeOther)
	pages = append(pages, pages[0])
	pages[len(pages)-1].what, pages[len(pages)-1].v, pages[len(pages)-1].path = "sandbox card page", v, setup

	for _, pg := range pages {
		t.Run(pg.what, func(t *testing.T) {
			r := pg.v.get(pg.path).want(t, pg.status)
			wantSecurityHeaders(t, pg.what, r, false)
			if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
				wantNoInlineScript(t, pg.what, r)
			}
		})
	}

	t.Run("a print button without inline script", func(t *testing.T) {
		r := v.get(receipt).want(t, http.StatusOK)
		if doc(t, r).Find("button[data-print]").Length() != 1 {
			t.Fatalf("no [data-print] button on the receipt")
		}
	})

	t.Run("API answers", func(t *testing.T) {
		for _, r := range []response{
			p.do("GET", "/api/v1/customers/"+cus+"/balance", p.Read, nil).want(t, http.StatusOK),
			p.do("GET", "/api/v1/customers/"+cus+"/ledger", p.Read, nil).want(t, http.StatusOK),
			p.do("GET", "/api/v1/customers/nobody", p.Read, nil).want(t, http.StatusNotFound),
			p.do("GET", "/api/v1/no-such-route", p.Read, nil).want(t, http.StatusNotFound),
		} {
			wantSecurityHeaders(t, "API", r, false)
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Errorf("API answer of type %q", r.Header.Get("Content-Type"))
			}
		}
	})

	t.Run("static files keep their long cache", func(t *testing.T) {
		d := doc(t, v.get("/portal").want(t, http.StatusOK))
		var assets []string
		d.Find(`link[rel="stylesheet"]`).Each(func(_ int, s *goquery.Selection) { assets = append(assets, s.AttrOr("href", "")) })
		d.Find(`script[src]`).Each(func(_ int, s *goquery.Selection) { assets = append(assets, s.AttrOr("src", "")) })
		d.Find(`link[rel="icon"]`).Each(func(_ int, s *goquery.Selection) { assets = append(assets, s.AttrOr("href", "")) })
		if len(assets) != 4 { // app.css, htmx, app.js, the icon
			t.Fatalf("assets %v", assets)
		}
		if icon := v.get(assets[3]).want(t, http.StatusOK); icon.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(string(icon.Raw), "<svg") {
			t.Fatalf("icon %s: %q", assets[3], icon.Header.Get("Content-Type"))
		}
		for _, a := range assets {
			r := v.get(a).want(t, http.StatusOK)
			if cc := r.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
				t.Errorf("%s: Cache-Control %q", a, cc)
			}
			if r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: no nosniff", a)
			}
		}
	})
}
