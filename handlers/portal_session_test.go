package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers"
)

// Portal sessions live on the server: a copied cookie stops working the
// moment its session ends, however it ends.

// copyCookies gives thief the victim's cookies, as a stolen cookie file or
// a shared computer would.
func copyCookies(t *testing.T, a *testAPI, from, to *portalVisitor) {
	t.Helper()
	u, _ := url.Parse(a.HTTP.URL)
	to.http.Jar.SetCookies(u, from.http.Jar.Cookies(u))
	if to.cookie("tally_portal") == "" {
		t.Fatal("no session cookie to copy")
	}
}

func TestPortalSignOutEndsCopiedCookie(t *testing.T) {
	a := newTestAPI(t)
	a.namedCustomer(t, "alpha", "Alpha Labs")
	v := newPortalVisitor(t, a)
	v.signIn("alpha")
	thief := newPortalVisitor(t, a)
	copyCookies(t, a, v, thief)
	if got := thief.signedInAs(); got != "Alpha Labs" {
		t.Fatalf("the copied cookie works before sign-out: %q", got)
	}
	tok := thief.csrf("/portal/settings")

	if r := v.post("/portal/sign-out", url.Values{"_csrf": {v.csrf("/portal")}}); r.Status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", r.Status)
	}
	if got := thief.signedInAs(); got != "" {
		t.Fatalf("after sign-out the copied cookie is still signed in as %q", got)
	}
	for _, p := range []string{"/portal/events", "/portal/partials/balance"} {
		if r := thief.get(p); r.Status != http.StatusUnauthorized {
			t.Fatalf("GET %s with the copied cookie after sign-out: %d, want 401", p, r.Status)
		}
	}
	r := thief.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"1"}})
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/?signed_out") {
		t.Fatalf("a save with the copied cookie after sign-out: %d to %q", r.Status, r.Header.Get("Location"))
	}
	if lim := portalCapsOf(t, a, "alpha"); lim.DailyCap != nil {
		t.Fatal("a signed-out session saved a cap")
	}
}

func TestPortalNewLinkEndsOtherSessions(t *testing.T) {
	a := newPortalAPI(t, func(pc *handlers.PortalConfig) { pc.Demo = true })
	alpha := a.namedCustomer(t, "alpha", "Alpha Labs")
	a.namedCustomer(t, "bravo", "Bravo Corp")
	laptop := newPortalVisitor(t, a)
	laptop.signIn("alpha")
	thief := newPortalVisitor(t, a)
	copyCookies(t, a, laptop, thief)
	other := newPortalVisitor(t, a)
	other.signIn("bravo")

	phone := newPortalVisitor(t, a)
	phone.signIn("alpha")
	if got := phone.signedInAs(); got != "Alpha Labs" {
		t.Fatalf("the new link signed in as %q", got)
	}
	for name, v := range map[string]*portalVisitor{"the older session": laptop, "its copied cookie": thief} {
		if got := v.signedInAs(); got != "" {
			t.Fatalf("after a newer link %s is still signed in as %q", name, got)
		}
	}
	if got := other.signedInAs(); got != "Bravo Corp" {
		t.Fatalf("another customer's session after Alpha's new link: %q", got)
	}

	// Demo customers are shared: a demo sign-in signs nobody else out.
	demo := newPortalVisitor(t, a)
	if r := demo.post("/demo/sign-in", url.Values{"_csrf": {demo.csrf("/")}, "customer": {alpha}}); r.Status != http.StatusSeeOther {
		t.Fatalf("demo sign-in: %d", r.Status)
	}
	if demo.signedInAs() != "Alpha Labs" || phone.signedInAs() != "Alpha Labs" {
		t.Fatal("a demo sign-in ended the customer's other session")
	}
}

func TestPortalRevokeSessions(t *testing.T) {
	a := newTestAPI(t)
	a.namedCustomer(t, "alpha", "Alpha Labs")
	a.namedCustomer(t, "bravo", "Bravo Corp")
	v := newPortalVisitor(t, a)
	v.signIn("alpha")
	w := newPortalVisitor(t, a)
	w.signIn("bravo")

	// What the admin console (and `tally signout`) calls.
	n, err := a.DB.EndCustomerSessions(context.Background(), "alpha", time.Now(), billing.SessionRevoked)
	if err != nil || n != 1 {
		t.Fatalf("EndCustomerSessions: %d, %v", n, err)
	}
	if got := v.signedInAs(); got != "" {
		t.Fatalf("after revocation still signed in as %q", got)
	}
	if got := w.signedInAs(); got != "Bravo Corp" {
		t.Fatalf("revoking Alpha's sessions ended Bravo's: %q", got)
	}
	v.signIn("alpha")
	if got := v.signedInAs(); got != "Alpha Labs" {
		t.Fatalf("a new link after revocation: %q", got)
	}
}

// TestPortalCSRFBoundToSession is the attack of the issue: a CSRF cookie
// planted in a signed-in victim's browser (from a sibling subdomain, or
// over plain HTTP), with the same value in the forged form. With a plain
// double-submit cookie it passed; bound to the session it does not.
func TestPortalCSRFBoundToSession(t *testing.T) {
	a := newTestAPI(t)
	a.namedCustomer(t, "alpha", "Alpha Labs")
	victim := newPortalVisitor(t, a)
	victim.signIn("alpha")
	victim.get("/portal").want(t, http.StatusOK)
	u, _ := url.Parse(a.HTTP.URL)
	const planted = "planted-by-the-attacker-0123456789"
	victim.http.Jar.SetCookies(u, []*http.Cookie{{Name: "tally_csrf", Value: planted, Path: "/"}})
	for name, r := range map[string]response{
		"form":     victim.post("/portal/settings", url.Values{"_csrf": {planted}, "daily_cap": {"1"}}),
		"header":   victim.post("/portal/settings", url.Values{"daily_cap": {"1"}}, "X-CSRF-Token", planted, "HX-Request", "true"),
		"sign-out": victim.post("/portal/sign-out", url.Values{"_csrf": {planted}}),
	} {
		if r.Status != http.StatusForbidden {
			t.Fatalf("planted cookie and token (%s): %d, want 403; body %.300s", name, r.Status, r.Raw)
		}
	}
	if lim := portalCapsOf(t, a, "alpha"); lim.DailyCap != nil {
		t.Fatal("the planted token saved a cap")
	}
	if got := victim.signedInAs(); got != "Alpha Labs" {
		t.Fatalf("the planted token signed the victim out: %q", got)
	}

	// The session's own token works, in the form and in htmx's header, on
	// every page of the session; a new sign-in gets a new one.
	tok := victim.csrf("/portal/settings")
	if tok2 := victim.csrf("/portal/usage"); tok2 != tok {
		t.Fatalf("two pages of one session give different tokens: %q %q", tok, tok2)
	}
	victim.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"5"}}).want(t, http.StatusSeeOther)
	victim.post("/portal/settings", url.Values{"daily_cap": {"6"}}, "X-CSRF-Token", tok, "HX-Request", "true").want(t, http.StatusOK)
	if lim := portalCapsOf(t, a, "alpha"); lim.DailyCap == nil || *lim.DailyCap != billing.CreditsOf(6) {
		t.Fatalf("daily cap %v, want 6", lim.DailyCap)
	}
	victim.signIn("alpha")
	if got := victim.csrf("/portal"); got == tok {
		t.Fatal("a new sign-in kept the CSRF token")
	}
	if r := victim.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"7"}}); r.Status != http.StatusForbidden {
		t.Fatalf("the previous session's token after a new sign-in: %d, want 403", r.Status)
	}
}
