package handlers_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers"
)

// The security tests of the customer portal: sign-in links, session
// cookies, idle timeout, CSRF, the event stream and the demo start page.
// portal_idor_test.go checks that one customer never reaches another's data.

func TestPortalSignInLink(t *testing.T) {
	a := newTestAPI(t)
	a.namedCustomer(t, "alpha", "Alpha Labs")

	t.Run("works once", func(t *testing.T) {
		link := a.link(t, "alpha")
		v := newPortalVisitor(t, a)
		r := v.open(link)
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal" {
			t.Fatalf("first open: %d to %q, want 303 to /portal", r.Status, r.Header.Get("Location"))
		}
		if got := v.signedInAs(); got != "Alpha Labs" {
			t.Fatalf("signed in as %q, want Alpha Labs", got)
		}
		for name, who := range map[string]*portalVisitor{"same browser": v, "another browser": newPortalVisitor(t, a)} {
			r := who.open(link)
			if r.Status != http.StatusGone {
				t.Fatalf("%s opens the link again: %d, want 410; body %.300s", name, r.Status, r.Raw)
			}
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(testID(t, r, "error-page"), "already been used") {
				t.Fatalf("%s: want the 'already been used' page, got %s %.500s", name, r.Header.Get("Content-Type"), r.Raw)
			}
			// Never a dead end: the signed-in customer gets their billing and
			// the way back to the product; anyone else a way back.
			d := doc(t, r)
			if who == v {
				ret, _ := d.Find(`[data-testid="error-return"]`).Attr("href")
				portal, _ := d.Find(`[data-testid="error-portal"]`).Attr("href")
				if ret != "https://app.example/home" || portal != "/portal" {
					t.Fatalf("the used-link page of a signed-in customer: back %q, billing %q", ret, portal)
				}
			} else if back, _ := d.Find(`[data-testid="error-back"][data-back]`).Attr("href"); back != "/" {
				t.Fatalf("the used-link page has no way back: %.500s", r.Raw)
			}
		}
		other := newPortalVisitor(t, a)
		other.open(link)
		if got := other.signedInAs(); got != "" {
			t.Fatalf("a used link signed another browser in as %q", got)
		}
	})

	t.Run("opened by many at once signs in one", func(t *testing.T) {
		link := a.link(t, "alpha")
		const n = 8
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := range n {
			v := newPortalVisitor(t, a)
			wg.Go(func() {
				req, _ := http.NewRequest("GET", link, nil)
				res, err := v.http.Do(req)
				if err != nil {
					return
				}
				res.Body.Close()
				statuses[i] = res.StatusCode
			})
		}
		wg.Wait()
		count := map[int]int{}
		for _, s := range statuses {
			count[s]++
		}
		if count[http.StatusSeeOther] != 1 || count[http.StatusGone] != n-1 {
			t.Fatalf("statuses %v, want one 303 and %d 410", count, n-1)
		}
	})

	t.Run("expires after five minutes", func(t *testing.T) {
		early := a.link(t, "alpha")
		onTime := a.link(t, "alpha")
		late := a.link(t, "alpha")
		a.Clock.Advance(billing.PortalSessionTTL - time.Second)
		v := newPortalVisitor(t, a)
		if r := v.open(early); r.Status != http.StatusSeeOther {
			t.Fatalf("link opened after 4:59: %d, want 303", r.Status)
		}
		a.Clock.Advance(time.Second)
		for name, link := range map[string]string{"at 5:00": onTime, "at 6:00": late} {
			if name == "at 6:00" {
				a.Clock.Advance(time.Minute)
			}
			v := newPortalVisitor(t, a)
			r := v.open(link)
			if r.Status != http.StatusGone || !strings.Contains(testID(t, r, "error-page"), "expired") {
				t.Fatalf("link opened %s: %d, want 410 and the 'expired' page; body %.500s", name, r.Status, r.Raw)
			}
			if got := v.signedInAs(); got != "" {
				t.Fatalf("an expired link signed in as %q", got)
			}
		}
	})

	t.Run("unknown token", func(t *testing.T) {
		for _, tok := range []string{"nope", strings.Repeat("a", 2000), "..%2F..%2Fapi%2Fv1", url.PathEscape("' OR 1=1 --")} {
			v := newPortalVisitor(t, a)
			r := v.get("/portal/session/" + tok)
			if r.Status != http.StatusNotFound || !strings.Contains(testID(t, r, "error-page"), "not valid") {
				t.Fatalf("token %.20q: %d, want 404 and the 'not valid' page; body %.300s", tok, r.Status, r.Raw)
			}
			if v.cookie("tally_portal") != "" {
				t.Fatalf("token %.20q set a session cookie", tok)
			}
		}
	})
}

func TestCreatePortalSession(t *testing.T) {
	a := newTestAPI(t)
	cus := a.namedCustomer(t, "alpha", "Alpha Labs")

	t.Run("answers url and expires_at", func(t *testing.T) {
		r := a.do("POST", "/api/v1/portal-sessions", a.Portal, map[string]any{"customer": "alpha", "return_url": "https://app.example/settings?tab=billing"}).
			want(t, http.StatusCreated)
		if r.Body["customer"] != cus || r.Body["object"] != "portal_session" {
			t.Fatalf("body %s", r.Raw)
		}
		u, _ := r.Body["url"].(string)
		if !strings.HasPrefix(u, a.HTTP.URL+"/portal/session/") || len(u) < len(a.HTTP.URL+"/portal/session/")+20 {
			t.Fatalf("url %q: want %s/portal/session/<long token>", u, a.HTTP.URL)
		}
		exp, err := time.Parse(time.RFC3339Nano, r.Body["expires_at"].(string))
		if err != nil || !exp.Equal(testStart.Add(5*time.Minute)) {
			t.Fatalf("expires_at %v (%v), want %v", r.Body["expires_at"], err, testStart.Add(5*time.Minute))
		}
		again := a.do("POST", "/api/v1/portal-sessions", a.Admin, map[string]any{"customer": cus, "return_url": "http://localhost:3000/"}).
			want(t, http.StatusCreated)
		if again.Body["url"] == u {
			t.Fatal("two sign-in links are the same")
		}
	})

	t.Run("BaseURL", func(t *testing.T) {
		b := newPortalAPI(t, func(pc *handlers.PortalConfig) { pc.BaseURL = "https://billing.example.com/" })
		b.customer(t, "x")
		r := b.do("POST", "/api/v1/portal-sessions", b.Portal, map[string]any{"customer": "x", "return_url": "https://app.example/"}).
			want(t, http.StatusCreated)
		if u := r.Body["url"].(string); !strings.HasPrefix(u, "https://billing.example.com/portal/session/") {
			t.Fatalf("url %q does not use the base URL", u)
		}
	})

	for _, tc := range []struct {
		name   string
		key    string
		body   any
		status int
		typ    string
		param  string
	}{
		{"no customer", a.Portal, map[string]any{"return_url": "https://app.example/"}, 422, billing.CodeValidation, "customer"},
		{"unknown customer", a.Portal, map[string]any{"customer": "ghost", "return_url": "https://app.example/"}, 404, billing.CodeCustomerNotFound, ""},
		{"no return_url", a.Portal, map[string]any{"customer": "alpha"}, 422, billing.CodeValidation, "return_url"},
		{"relative return_url", a.Portal, map[string]any{"customer": "alpha", "return_url": "/portal"}, 422, billing.CodeValidation, "return_url"},
		{"protocol-relative return_url", a.Portal, map[string]any{"customer": "alpha", "return_url": "//evil.example/"}, 422, billing.CodeValidation, "return_url"},
		{"javascript return_url", a.Portal, map[string]any{"customer": "alpha", "return_url": "javascript:alert(document.cookie)"}, 422, billing.CodeValidation, "return_url"},
		{"data return_url", a.Portal, map[string]any{"customer": "alpha", "return_url": "data:text/html,<script>alert(1)</script>"}, 422, billing.CodeValidation, "return_url"},
		{"ftp return_url", a.Portal, map[string]any{"customer": "alpha", "return_url": "ftp://files.example/"}, 422, billing.CodeValidation, "return_url"},
		{"return_url without host", a.Portal, map[string]any{"customer": "alpha", "return_url": "https://"}, 422, billing.CodeValidation, "return_url"},
		{"unknown flow", a.Portal, map[string]any{"customer": "alpha", "return_url": "https://app.example/", "flow": "steal"}, 422, billing.CodeValidation, "flow"},
		{"not JSON", a.Portal, "customer=alpha", 400, billing.CodeInvalidRequest, ""},
		{"read key", a.Read, map[string]any{"customer": "alpha", "return_url": "https://app.example/"}, 403, billing.CodeForbidden, ""},
		// The key every app server holds to meter usage cannot open the
		// portal, which buys top-ups with the saved card.
		{"metering key", a.Meter, map[string]any{"customer": "alpha", "return_url": "https://app.example/"}, 403, billing.CodeForbidden, ""},
		{"no key", "", map[string]any{"customer": "alpha", "return_url": "https://app.example/"}, 401, billing.CodeUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do("POST", "/api/v1/portal-sessions", tc.key, tc.body)
			e := r.wantError(t, tc.status, tc.typ)
			if tc.param != "" && e["param"] != tc.param {
				t.Fatalf("param %v, want %s; body %s", e["param"], tc.param, r.Raw)
			}
		})
	}
}

// setCookies are the cookies a response sets, by name.
func setCookies(r response) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		out[c.Name] = c
	}
	return out
}

func TestPortalCookies(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "SecureCookies"}[secure], func(t *testing.T) {
			a := newPortalAPI(t, func(pc *handlers.PortalConfig) { pc.SecureCookies = secure })
			a.customer(t, "alpha")
			v := newPortalVisitor(t, a)
			r := v.open(a.link(t, "alpha"))
			sess := setCookies(r)["tally_portal"]
			if sess == nil {
				t.Fatalf("sign-in sets no session cookie: %v", r.Header["Set-Cookie"])
			}
			csrf := setCookies(newPortalVisitor(t, a).get("/"))["tally_csrf"]
			for _, c := range []*http.Cookie{sess, csrf} {
				if c == nil {
					t.Fatal("no CSRF cookie on the start page")
				}
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != secure {
					t.Fatalf("cookie %s: HttpOnly=%v SameSite=%v Path=%q Secure=%v; want HttpOnly, Lax, /, Secure=%v",
						c.Name, c.HttpOnly, c.SameSite, c.Path, c.Secure, secure)
				}
			}
			if sess.MaxAge <= 0 || sess.MaxAge > int((12*time.Hour).Seconds()) {
				t.Fatalf("session cookie Max-Age %d, want at most 12 h", sess.MaxAge)
			}
		})
	}
}

func TestPortalSessionRenewedAtSignIn(t *testing.T) {
	a := newTestAPI(t)
	a.namedCustomer(t, "alpha", "Alpha Labs")
	a.namedCustomer(t, "bravo", "Bravo Corp")
	a.namedCustomer(t, "mallory", "Mallory Ltd")

	v := newPortalVisitor(t, a)
	v.signIn("alpha")
	first, tok1 := v.cookie("tally_portal"), v.csrf("/portal")
	v.signIn("alpha")
	second, tok2 := v.cookie("tally_portal"), v.csrf("/portal")
	if first == "" || first == second {
		t.Fatal("signing in again kept the session cookie")
	}
	if tok1 == tok2 {
		t.Fatal("signing in again kept the CSRF token")
	}
	v.signIn("bravo")
	if v.cookie("tally_portal") == second {
		t.Fatal("signing in as another customer kept the session cookie")
	}
	if got := v.signedInAs(); got != "Bravo Corp" {
		t.Fatalf("after signing in as Bravo: signed in as %q", got)
	}

	// Session fixation: a cookie planted in the victim's browser is replaced
	// at sign-in, and the planter's session stays the planter's.
	m := newPortalVisitor(t, a)
	m.signIn("mallory")
	planted := m.cookie("tally_portal")
	victim := newPortalVisitor(t, a)
	u, _ := url.Parse(a.HTTP.URL)
	victim.http.Jar.SetCookies(u, []*http.Cookie{{Name: "tally_portal", Value: planted, Path: "/"}})
	victim.signIn("alpha")
	if victim.cookie("tally_portal") == planted {
		t.Fatal("sign-in kept a planted session cookie")
	}
	if got := victim.signedInAs(); got != "Alpha Labs" {
		t.Fatalf("victim signed in as %q", got)
	}
	// The planted session was not turned into Alpha's: it ended, as the
	// session of any browser that signs in anew does.
	if got := m.signedInAs(); got != "" {
		t.Fatalf("planter is now %q, want signed out", got)
	}
}

// TestPortalIdleTimeout waits out a short idle timeout for real.
func TestPortalIdleTimeout(t *testing.T) {
	t.Parallel()
	a := newPortalAPI(t, func(pc *handlers.PortalConfig) { pc.IdleTimeout = 2 * time.Second })
	a.namedCustomer(t, "alpha", "Alpha Labs")
	v := newPortalVisitor(t, a)
	v.signIn("alpha")
	tok := v.csrf("/portal/settings")
	// The session stores seconds: 3 s is past 2 s however the clock ticks.
	time.Sleep(3 * time.Second)

	r := v.get("/portal/settings")
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/?signed_out=1" {
		t.Fatalf("after the idle timeout: %d to %q, want 303 to /?signed_out=1", r.Status, r.Header.Get("Location"))
	}
	if msg := testID(t, v.get(r.Header.Get("Location")), "flash"); !strings.Contains(msg, "signed out") {
		t.Fatalf("start page flash %q, want 'signed out'", msg)
	}
	if r := v.get("/portal/usage", "HX-Request", "true"); r.Status != http.StatusUnauthorized || r.Header.Get("HX-Redirect") != "/?signed_out=1" {
		t.Fatalf("htmx request after the timeout: %d HX-Redirect %q", r.Status, r.Header.Get("HX-Redirect"))
	}
	for _, p := range []string{"/portal/events", "/portal/partials/balance"} {
		if r := v.get(p); r.Status != http.StatusUnauthorized {
			t.Fatalf("GET %s after the timeout: %d, want 401", p, r.Status)
		}
	}
	r = v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"5"}})
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/?signed_out") {
		t.Fatalf("save after the timeout: %d to %q", r.Status, r.Header.Get("Location"))
	}
	if lim := portalCapsOf(t, a, "alpha"); lim.DailyCap != nil {
		t.Fatal("a timed-out session saved a cap")
	}
}

// sealSession makes a session cookie carrying id, sealed with keys as the
// server seals its own.
func sealSession(t *testing.T, keys [][]byte, id string) *http.Cookie {
	t.Helper()
	store := sessions.NewCookieStore(keys...)
	req := httptest.NewRequest("GET", "/", nil)
	sess, _ := store.New(req, "tally_portal")
	sess.Options.Path = "/"
	sess.Values = map[any]any{"sid": id}
	rec := httptest.NewRecorder()
	if err := sess.Save(req, rec); err != nil {
		t.Fatal(err)
	}
	return rec.Result().Cookies()[0]
}

// pastSession stores a session as if the server had signed the customer in
// at signedIn (with a maximum age of maxAge) and last seen them at seen,
// and returns its id.
func pastSession(t *testing.T, a *testAPI, customerID string, signedIn, seen time.Time, maxAge time.Duration) string {
	t.Helper()
	id, err := a.DB.StartCustomerSession(context.Background(), billing.CustomerSession{CustomerID: customerID, ReturnURL: "https://app.example/",
		CreatedAt: signedIn, LastSeenAt: seen, ExpiresAt: signedIn.Add(maxAge)}, false)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPortalSessionClock checks the idle timeout and the maximum age, kept
// on the server, with sessions stored as the server would have stored them
// earlier, and that background requests (balance polling, the event
// stream) do not keep an unattended tab signed in.
func TestPortalSessionClock(t *testing.T) {
	keys := [][]byte{[]byte(strings.Repeat("h", 32)), []byte(strings.Repeat("b", 32))}
	a := newPortalAPI(t, func(pc *handlers.PortalConfig) {
		pc.SessionKeys, pc.IdleTimeout, pc.MaxAge = keys, 10*time.Minute, 12*time.Hour
	})
	cid := a.namedCustomer(t, "alpha", "Alpha Labs")
	now := time.Now()
	u, _ := url.Parse(a.HTTP.URL)
	for _, tc := range []struct {
		name         string
		signedIn     time.Time
		seen         time.Time
		path         string
		status       int
		refreshed    bool // the request moves the idle timer
		wantLocation string
	}{
		{"active", now.Add(-time.Hour), now.Add(-30 * time.Second), "/portal", 200, false, ""},
		{"idle 9 minutes, page", now.Add(-time.Hour), now.Add(-9 * time.Minute), "/portal", 200, true, ""},
		{"idle 11 minutes", now.Add(-time.Hour), now.Add(-11 * time.Minute), "/portal", 303, false, "/?signed_out=1"},
		{"older than MaxAge", now.Add(-13 * time.Hour), now, "/portal", 303, false, "/?signed_out=1"},
		{"idle 9 minutes, balance polling", now.Add(-time.Hour), now.Add(-9 * time.Minute), "/portal/partials/balance", 200, false, ""},
		{"idle 11 minutes, balance polling", now.Add(-time.Hour), now.Add(-11 * time.Minute), "/portal/partials/balance", 401, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := pastSession(t, a, cid, tc.signedIn, tc.seen, 12*time.Hour)
			v := newPortalVisitor(t, a)
			v.http.Jar.SetCookies(u, []*http.Cookie{sealSession(t, keys, id)})
			r := v.get(tc.path)
			if r.Status != tc.status || r.Header.Get("Location") != tc.wantLocation {
				t.Fatalf("GET %s: %d to %q, want %d to %q", tc.path, r.Status, r.Header.Get("Location"), tc.status, tc.wantLocation)
			}
			row, err := a.DB.FindCustomerSession(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got := row.LastSeenAt.After(tc.seen.Add(time.Second)); got != tc.refreshed {
				t.Fatalf("GET %s moved the idle timer (last seen %v, was %v): %v, want %v", tc.path, row.LastSeenAt, tc.seen, got, tc.refreshed)
			}
		})
	}
	live := pastSession(t, a, cid, now, now, 12*time.Hour)
	for name, c := range map[string]*http.Cookie{
		// A live session's id sealed with other keys is nobody's session.
		"other keys": sealSession(t, [][]byte{[]byte(strings.Repeat("x", 32)), []byte(strings.Repeat("y", 32))}, live),
		// A cookie the server could have sealed, for a session it never stored.
		"unknown session": sealSession(t, keys, "made-up-session-id"),
	} {
		v := newPortalVisitor(t, a)
		v.http.Jar.SetCookies(u, []*http.Cookie{c})
		if got := v.signedInAs(); got != "" {
			t.Fatalf("%s: signed in as %q", name, got)
		}
	}
}

// portalCapsOf reads, through the API, the caps a customer set for
// themselves in the portal (customer_caps), with the operator's overdraft
// limit, which the portal must never change.
func portalCapsOf(t *testing.T, a *testAPI, customer string) billing.Limits {
	t.Helper()
	r := a.do("GET", "/api/v1/customers/"+customer, a.Read, nil).want(t, http.StatusOK)
	own := obj(t, r.Body["customer_caps"])
	out := billing.Limits{OverdraftLimit: credits(t, obj(t, r.Body["limits"])["overdraft_limit"])}
	if own["daily_cap"] != nil {
		c := credits(t, own["daily_cap"])
		out.DailyCap = &c
	}
	if own["monthly_cap"] != nil {
		c := credits(t, own["monthly_cap"])
		out.MonthlyCap = &c
	}
	return out
}

// limitsOf reads a customer's limits (the operator's) through the API.
func limitsOf(t *testing.T, a *testAPI, customer string) billing.Limits {
	t.Helper()
	r := a.do("GET", "/api/v1/customers/"+customer, a.Read, nil).want(t, http.StatusOK)
	lim := obj(t, r.Body["limits"])
	out := billing.Limits{OverdraftLimit: credits(t, lim["overdraft_limit"])}
	if lim["daily_cap"] != nil {
		c := credits(t, lim["daily_cap"])
		out.DailyCap = &c
	}
	if lim["monthly_cap"] != nil {
		c := credits(t, lim["monthly_cap"])
		out.MonthlyCap = &c
	}
	return out
}

// stateChangingPortalRoutes are the portal's routes that change something:
// every method but GET and HEAD, outside the API.
func stateChangingPortalRoutes(a *testAPI) [][2]string {
	var out [][2]string
	for _, rt := range a.Server.Echo().Routes() {
		switch rt.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			continue
		}
		if strings.HasPrefix(rt.Path, "/api/") ||
			!(strings.HasPrefix(rt.Path, "/portal") || strings.HasPrefix(rt.Path, "/demo")) {
			continue
		}
		path := rt.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") || seg == "*" {
				path = strings.Replace(path, seg, "x", 1)
			}
		}
		out = append(out, [2]string{rt.Method, path})
	}
	return out
}

func TestPortalCSRF(t *testing.T) {
	a := newPortalAPI(t, func(pc *handlers.PortalConfig) { pc.Demo = true })
	a.namedCustomer(t, "alpha", "Alpha Labs")
	bravo := a.namedCustomer(t, "bravo", "Bravo Corp")
	v := newPortalVisitor(t, a)
	v.signIn("alpha")
	token := v.csrf("/portal/settings")
	other := newPortalVisitor(t, a)
	other.signIn("bravo")
	othersToken := other.csrf("/portal/settings")

	routes := stateChangingPortalRoutes(a)
	want := map[string]bool{"POST /portal/settings": false, "POST /portal/sign-out": false, "POST /demo/sign-in": false}
	for _, rt := range routes {
		want[rt[0]+" "+rt[1]] = true
	}
	for r, found := range want {
		if !found {
			t.Fatalf("route %s is not registered; routes: %v", r, routes)
		}
	}
	form := func(tok string) url.Values {
		f := url.Values{"daily_cap": {"1"}, "monthly_cap": {"2"}, "low_balance_threshold": {"3"}, "customer": {bravo}}
		if tok != "" {
			f.Set("_csrf", tok)
		}
		return f
	}
	for _, rt := range routes {
		t.Run(rt[0]+" "+rt[1], func(t *testing.T) {
			for _, tc := range []struct {
				name    string
				form    url.Values
				headers []string
			}{
				{"no token", form(""), nil},
				{"wrong token in the form", form("forged-token"), nil},
				{"wrong token in the header", form(""), []string{"X-CSRF-Token", "forged-token", "HX-Request", "true"}},
				{"another visitor's token", form(othersToken), nil},
				{"another visitor's token in the header", form(""), []string{"X-CSRF-Token", othersToken}},
				{"cross-site browser request", form(token), []string{"Sec-Fetch-Site", "cross-site"}},
				{"same-site browser request without a token", form(""), []string{"Sec-Fetch-Site", "same-site"}},
			} {
				r := v.send(rt[0], a.HTTP.URL+rt[1], tc.form, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, tc.headers...)...)
				if r.Status != http.StatusForbidden {
					t.Fatalf("%s: %d, want 403; body %.300s", tc.name, r.Status, r.Raw)
				}
			}
		})
	}
	// Nothing changed: no caps, still signed in, and as Alpha.
	if lim := portalCapsOf(t, a, "alpha"); lim.DailyCap != nil || lim.MonthlyCap != nil {
		t.Fatalf("a refused request saved caps: %+v", lim)
	}
	if lim := portalCapsOf(t, a, "bravo"); lim.DailyCap != nil || lim.MonthlyCap != nil {
		t.Fatalf("a refused request saved Bravo's caps: %+v", lim)
	}
	if got := v.signedInAs(); got != "Alpha Labs" {
		t.Fatalf("after refused requests: signed in as %q, want Alpha Labs", got)
	}

	// With the token, in the form or the header, it works.
	r := v.post("/portal/settings", url.Values{"_csrf": {token}, "daily_cap": {"10"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("save with the form token: %d; body %.300s", r.Status, r.Raw)
	}
	if lim := portalCapsOf(t, a, "alpha"); lim.DailyCap == nil || *lim.DailyCap != billing.CreditsOf(10) {
		t.Fatalf("daily cap %v after a save with the token, want 10", lim.DailyCap)
	}
	r = v.post("/portal/settings", url.Values{"daily_cap": {"20"}}, "X-CSRF-Token", token, "HX-Request", "true")
	if r.Status != http.StatusOK {
		t.Fatalf("save with the header token: %d; body %.300s", r.Status, r.Raw)
	}
	if lim := portalCapsOf(t, a, "alpha"); lim.DailyCap == nil || *lim.DailyCap != billing.CreditsOf(20) {
		t.Fatalf("daily cap %v after a save with the header token, want 20", lim.DailyCap)
	}
	// A browser's own same-origin request needs no token (Echo checks
	// Sec-Fetch-Site, which pages of other sites cannot set).
	r = v.post("/portal/settings", url.Values{"daily_cap": {"30"}}, "Sec-Fetch-Site", "same-origin")
	if r.Status != http.StatusSeeOther {
		t.Fatalf("same-origin save: %d; body %.300s", r.Status, r.Raw)
	}
	// GET never changes anything.
	v.get("/portal/settings?daily_cap=1&monthly_cap=1&_csrf=" + token)
	if lim := portalCapsOf(t, a, "alpha"); *lim.DailyCap != billing.CreditsOf(30) {
		t.Fatalf("daily cap %v after a GET with values, want 30", lim.DailyCap)
	}
	r = v.post("/portal/sign-out", url.Values{"_csrf": {token}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "https://app.example/home" {
		t.Fatalf("sign-out with the token: %d to %q", r.Status, r.Header.Get("Location"))
	}
	if got := v.signedInAs(); got != "" {
		t.Fatalf("after signing out: signed in as %q", got)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	Name, Data string
}

// readEvents parses an event stream into a channel, closed at its end.
func readEvents(res *http.Response) <-chan sseEvent {
	ch := make(chan sseEvent, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" || len(data) > 0 {
					ev.Data = strings.Join(data, "\n")
					ch <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, "event:"):
				ev.Name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			}
		}
	}()
	return ch
}

// nextBalance waits for the next balance event and returns the balance it shows.
func nextBalance(t *testing.T, events <-chan sseEvent, within time.Duration) string {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		if ev.Name != "balance" {
			t.Fatalf("event %q, want balance", ev.Name)
		}
		return testID(t, response{Raw: []byte(ev.Data)}, "header-balance-value")
	case <-time.After(within):
		t.Fatalf("no balance event within %v", within)
	}
	return ""
}

func TestPortalEvents(t *testing.T) {
	a := newTestAPI(t)
	a.namedCustomer(t, "alpha", "Alpha Labs")
	a.grant(t, "alpha", "100", "purchase")
	a.namedCustomer(t, "bravo", "Bravo Corp")
	a.grant(t, "bravo", "5000", "purchase")
	v := newPortalVisitor(t, a)
	v.signIn("alpha")

	res, _ := v.stream("/portal/events")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /portal/events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	events := readEvents(res)
	if got := nextBalance(t, events, 5*time.Second); got != "100" {
		t.Fatalf("first event shows %q, want 100", got)
	}
	a.usage("alpha", "chat.request", "3", "").want(t, http.StatusCreated)
	if got := nextBalance(t, events, 5*time.Second); got != "97" {
		t.Fatalf("after a debit of 3 the event shows %q, want 97", got)
	}
	// Another customer's debit is not Alpha's news; Alpha's next is.
	a.usage("bravo", "image.generate", "1", "").want(t, http.StatusCreated)
	a.usage("alpha", "chat.request", "1", "").want(t, http.StatusCreated)
	if got := nextBalance(t, events, 5*time.Second); got != "96" {
		t.Fatalf("after Bravo's and Alpha's debits the event shows %q, want 96", got)
	}

	if r := newPortalVisitor(t, a).get("/portal/events"); r.Status != http.StatusUnauthorized {
		t.Fatalf("events without a session: %d, want 401", r.Status)
	}
}

func TestPortalDemoStartPage(t *testing.T) {
	t.Run("demo", func(t *testing.T) {
		a := newPortalAPI(t, func(pc *handlers.PortalConfig) { pc.Demo = true })
		a.namedCustomer(t, "alpha", "Alpha Labs")
		bravo := a.namedCustomer(t, "bravo", "Bravo Corp")
		v := newPortalVisitor(t, a)
		r := v.get("/").want(t, http.StatusOK)
		d := doc(t, r)
		if n := d.Find(`[data-testid="demo-customer"]`).Length(); n != 2 {
			t.Fatalf("%d demo customers listed, want 2", n)
		}
		if d.Find(`[data-testid="sign-in-alpha"]`).Length() != 1 || d.Find(`[data-testid="sign-in-bravo"]`).Length() != 1 {
			t.Fatal("no sign-in button per customer")
		}
		tok, _ := d.Find(`meta[name="csrf-token"]`).Attr("content")
		r = v.post("/demo/sign-in", url.Values{"_csrf": {tok}, "customer": {bravo}})
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal" {
			t.Fatalf("demo sign-in: %d to %q", r.Status, r.Header.Get("Location"))
		}
		if got := v.signedInAs(); got != "Bravo Corp" {
			t.Fatalf("demo sign-in as Bravo: signed in as %q", got)
		}
		w := newPortalVisitor(t, a)
		tok = w.csrf("/")
		if r := w.post("/demo/sign-in", url.Values{"_csrf": {tok}, "customer": {"ghost"}}); r.Status != http.StatusNotFound {
			t.Fatalf("demo sign-in as an unknown customer: %d, want 404", r.Status)
		}
	})
	// The demo's own customers only: not those an API client created since.
	t.Run("demo customers only", func(t *testing.T) {
		a := newPortalAPI(t, func(pc *handlers.PortalConfig) { pc.Demo, pc.DemoCustomers = true, []string{"alpha"} })
		a.namedCustomer(t, "alpha", "Alpha Labs")
		api := a.namedCustomer(t, "made-by-api", "Made By API")
		v := newPortalVisitor(t, a)
		d := doc(t, v.get("/").want(t, http.StatusOK))
		if n := d.Find(`[data-testid="demo-customer"]`).Length(); n != 1 || d.Find(`[data-testid="sign-in-alpha"]`).Length() != 1 {
			t.Fatalf("%d customers listed, want the demo's alpha only", n)
		}
		tok, _ := d.Find(`meta[name="csrf-token"]`).Attr("content")
		if r := v.post("/demo/sign-in", url.Values{"_csrf": {tok}, "customer": {api}}); r.Status != http.StatusNotFound {
			t.Fatalf("demo sign-in as an API-created customer: %d, want 404", r.Status)
		}
	})
	t.Run("not demo", func(t *testing.T) {
		a := newTestAPI(t)
		alpha := a.namedCustomer(t, "alpha", "Alpha Labs")
		v := newPortalVisitor(t, a)
		r := v.get("/").want(t, http.StatusOK)
		if strings.Contains(string(r.Raw), "Alpha Labs") || doc(t, r).Find(`[data-testid="demo-customers"]`).Length() != 0 {
			t.Fatal("the start page lists customers outside demo mode")
		}
		tok, _ := doc(t, r).Find(`meta[name="csrf-token"]`).Attr("content")
		for _, c := range []string{alpha, "alpha"} {
			if r := v.post("/demo/sign-in", url.Values{"_csrf": {tok}, "customer": {c}}); r.Status != http.StatusNotFound {
				t.Fatalf("demo sign-in outside demo mode: %d, want 404", r.Status)
			}
		}
		if got := v.signedInAs(); got != "" {
			t.Fatalf("demo sign-in outside demo mode signed in as %q", got)
		}
	})
}
