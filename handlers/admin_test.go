package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers"
)

const adminTestPassword = "correct horse battery"

// adminAPI is a test server with one admin of each role.
type adminAPI struct {
	*testAPI
	Keys                  [][]byte
	Owner, Admin, Support billing.AdminUser
}

func newAdminAPI(t *testing.T) *adminAPI {
	t.Helper()
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")}
	a := &adminAPI{Keys: keys, testAPI: newTestAPIWith(t, apiOptions{config: func(cfg *handlers.Config) { cfg.Portal.SessionKeys = keys }})}
	ctx := context.Background()
	var err error
	for _, x := range []struct {
		u    *billing.AdminUser
		role string
	}{{&a.Owner, billing.RoleOwner}, {&a.Admin, billing.RoleAdmin}, {&a.Support, billing.RoleSupport}} {
		if *x.u, err = a.DB.CreateAdmin(ctx, x.role+"@staff.test", adminTestPassword, x.role); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// adminVisitor signs in as email and returns the browser.
func (a *adminAPI) signIn(t *testing.T, email string) *portalVisitor {
	t.Helper()
	v := newPortalVisitor(t, a.testAPI)
	r := v.adminSignIn(email, adminTestPassword)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/customers" {
		t.Fatalf("sign in as %s: %d to %q; %.300s", email, r.Status, r.Header.Get("Location"), r.Raw)
	}
	return v
}

func (v *portalVisitor) adminSignIn(email, password string) response {
	v.t.Helper()
	tok := v.csrf("/admin/sign-in")
	return v.post("/admin/sign-in", url.Values{"_csrf": {tok}, "email": {email}, "password": {password}})
}

// adminPost posts a form with the CSRF token of the page at from.
func (v *portalVisitor) adminPost(from, path string, form url.Values) response {
	v.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("_csrf", v.csrf(from))
	return v.post(path, form)
}

func (a *adminAPI) audit(t *testing.T, f billing.AuditFilter) []billing.AuditRecord {
	t.Helper()
	recs, _, err := a.DB.FindAudit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestAdminSignIn(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	v := newPortalVisitor(t, a.testAPI)

	if r := v.get("/admin/customers"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/admin/sign-in?next=") {
		t.Fatalf("signed out: %d to %q, want the sign-in page", r.Status, r.Header.Get("Location"))
	}
	r := v.adminSignIn("admin@staff.test", "wrong password here")
	if r.Status != http.StatusUnauthorized || !strings.Contains(testID(t, r, "sign-in-error"), "don't match") {
		t.Fatalf("wrong password: %d %q", r.Status, testID(t, r, "sign-in-error"))
	}
	r = v.adminSignIn("", "")
	if r.Status != http.StatusUnprocessableEntity || testID(t, r, "error-email") == "" {
		t.Fatalf("empty form: %d, email error %q", r.Status, testID(t, r, "error-email"))
	}
	r = v.adminSignIn("Admin@Staff.test", adminTestPassword)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/customers" {
		t.Fatalf("sign in: %d to %q", r.Status, r.Header.Get("Location"))
	}
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "tally_admin=") && (!strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") || !strings.Contains(c, "Path=/admin")) {
			t.Errorf("admin cookie %q: want HttpOnly, SameSite=Strict, Path=/admin", c)
		}
	}
	page := v.get("/admin/customers").want(t, http.StatusOK)
	if got := testID(t, page, "admin-email"); got != "admin@staff.test" {
		t.Fatalf("header shows %q", got)
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditSignIn}); len(recs) != 1 || recs[0].Actor != billing.AdminActor(a.Admin.ID) {
		t.Fatalf("sign-in audit: %+v", recs)
	}

	// A copy of the cookie stops working when its session signs out.
	thief := newPortalVisitor(t, a.testAPI)
	u, _ := url.Parse(a.HTTP.URL + "/admin/")
	thief.http.Jar.SetCookies(u, v.http.Jar.Cookies(u))
	thief.get("/admin/customers").want(t, http.StatusOK)
	r = v.adminPost("/admin/customers", "/admin/sign-out", nil)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/sign-in?signed_out=1" {
		t.Fatalf("sign out: %d to %q", r.Status, r.Header.Get("Location"))
	}
	for name, who := range map[string]*portalVisitor{"signed out": v, "copied cookie": thief} {
		if r := who.get("/admin/customers"); r.Status != http.StatusSeeOther {
			t.Errorf("%s: %d, want 303 to the sign-in page", name, r.Status)
		}
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditSignOut}); len(recs) != 1 {
		t.Fatalf("sign-out audit: %+v", recs)
	}
	// next= brings the admin back, but never off the console.
	for next, want := range map[string]string{"/admin/audit": "/admin/audit", "https://evil.example/": "/admin/customers", "//evil.example": "/admin/customers"} {
		w := newPortalVisitor(t, a.testAPI)
		tok := w.csrf("/admin/sign-in")
		r := w.post("/admin/sign-in", url.Values{"_csrf": {tok}, "email": {"support@staff.test"}, "password": {adminTestPassword}, "next": {next}})
		if r.Header.Get("Location") != want {
			t.Errorf("next=%q: to %q, want %q", next, r.Header.Get("Location"), want)
		}
	}
}

// Failed sign-ins are throttled per account (5, then one per 5 minutes)
// and per address; the refusal says so, and a right password does not get
// through a locked account.
func TestAdminSignInThrottle(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	v := newPortalVisitor(t, a.testAPI)
	for i := range 5 {
		if r := v.adminSignIn("owner@staff.test", "wrong password here"); r.Status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, r.Status)
		}
	}
	r := v.adminSignIn("owner@staff.test", adminTestPassword)
	if r.Status != http.StatusTooManyRequests || !strings.Contains(testID(t, r, "sign-in-error"), "Too many failed sign-ins for this account") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("locked account: %d %q Retry-After %q", r.Status, testID(t, r, "sign-in-error"), r.Header.Get("Retry-After"))
	}
	// Other accounts from the same address still work until the address's
	// own limit (10 failures in a burst) is reached.
	a.signIn(t, "admin@staff.test")
	throttled := false
	for i := 0; i < 30 && !throttled; i++ {
		r := v.adminSignIn("nobody"+strconv.Itoa(i)+"@staff.test", "wrong password here")
		if r.Status == http.StatusTooManyRequests {
			throttled = true
			if msg := testID(t, r, "sign-in-error"); !strings.Contains(msg, "from your network") {
				t.Fatalf("throttled address says %q", msg)
			}
		}
	}
	if !throttled {
		t.Fatal("30 failed sign-ins from one address were not throttled")
	}
	if r := v.adminSignIn("support@staff.test", adminTestPassword); r.Status != http.StatusTooManyRequests {
		t.Fatalf("a right password from a throttled address: %d, want 429", r.Status)
	}
}

// sealAdminSession makes an admin session cookie carrying id.
func sealAdminSession(t *testing.T, keys [][]byte, id string) *http.Cookie {
	t.Helper()
	store := sessions.NewCookieStore(keys...)
	req := httptest.NewRequest("GET", "/", nil)
	sess, _ := store.New(req, "tally_admin")
	sess.Options.Path = "/admin"
	sess.Values = map[any]any{"sid": id}
	rec := httptest.NewRecorder()
	if err := sess.Save(req, rec); err != nil {
		t.Fatal(err)
	}
	return rec.Result().Cookies()[0]
}

// Sessions end after 30 minutes without a request and 12 hours in any case.
func TestAdminSessionTimeouts(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	now := time.Now()
	for _, tc := range []struct {
		name          string
		created, seen time.Time
		live          bool
	}{
		{"fresh", now.Add(-time.Minute), now.Add(-time.Minute), true},
		{"idle 31 minutes", now.Add(-time.Hour), now.Add(-31 * time.Minute), false},
		{"active but 12 hours old", now.Add(-12*time.Hour - time.Minute), now.Add(-time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.DB.StartAdminSession(context.Background(), billing.AdminSession{AdminID: a.Admin.ID, CreatedAt: tc.created, LastSeenAt: tc.seen, ExpiresAt: tc.created.Add(12 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			v := newPortalVisitor(t, a.testAPI)
			u, _ := url.Parse(a.HTTP.URL + "/admin/")
			v.http.Jar.SetCookies(u, []*http.Cookie{sealAdminSession(t, a.Keys, id)})
			r := v.get("/admin/customers")
			if got := r.Status == http.StatusOK; got != tc.live {
				t.Fatalf("GET /admin/customers: %d, want live=%v", r.Status, tc.live)
			}
		})
	}
}

// An owner's "sign out everywhere" ends every session of an admin at once.
func TestAdminSignOutEverywhere(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	laptop, phone := a.signIn(t, "admin@staff.test"), a.signIn(t, "admin@staff.test")
	owner := a.signIn(t, "owner@staff.test")
	owner.get("/admin/admins").want(t, http.StatusOK)
	r := owner.adminPost("/admin/admins", "/admin/admins/"+a.Admin.ID+"/sign-out", nil)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("sign out everywhere: %d %.300s", r.Status, r.Raw)
	}
	if msg := testID(t, owner.get("/admin/admins"), "flash"); !strings.Contains(msg, "2 sessions ended") {
		t.Errorf("flash %q", msg)
	}
	for name, v := range map[string]*portalVisitor{"laptop": laptop, "phone": phone} {
		if r := v.get("/admin/customers"); r.Status != http.StatusSeeOther {
			t.Errorf("%s still signed in: %d", name, r.Status)
		}
	}
	owner.get("/admin/customers").want(t, http.StatusOK)
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditSignOutAll})
	if len(recs) != 1 || recs[0].Actor != billing.AdminActor(a.Owner.ID) || recs[0].Before != "admin@staff.test" {
		t.Fatalf("audit: %+v", recs)
	}
}

// adminRouteRoles is the least role of every /admin route ("" for routes
// anyone may call). TestAdminAuthorizationMatrix fails on a route missing
// here, so a new route has to say who may call it.
var adminRouteRoles = map[string]string{
	"GET /admin/sign-in":                             "",
	"POST /admin/sign-in":                            "",
	"GET /admin":                                     billing.RoleSupport,
	"POST /admin/sign-out":                           billing.RoleSupport,
	"GET /admin/customers":                           billing.RoleSupport,
	"GET /admin/customers/:id":                       billing.RoleSupport,
	"POST /admin/customers/:id/grant":                billing.RoleAdmin,
	"POST /admin/customers/:id/deduct":               billing.RoleAdmin,
	"POST /admin/customers/:id/limits":               billing.RoleAdmin,
	"POST /admin/customers/:id/flags/:flag/clear":    billing.RoleAdmin,
	"POST /admin/customers/:id/portal-link":          billing.RoleAdmin,
	"POST /admin/customers/:id/view-portal":          billing.RoleSupport,
	"POST /admin/customers/:id/freeze":               billing.RoleAdmin,
	"POST /admin/customers/:id/topups/:topup/refund": billing.RoleAdmin,
	"POST /admin/customers/:id/unfreeze":             billing.RoleAdmin,
	"GET /admin/audit":                               billing.RoleSupport,
	"GET /admin/audit.csv":                           billing.RoleSupport,
	"GET /admin/admins":                              billing.RoleOwner,
	"GET /admin/finance":                             billing.RoleOwner,
	"GET /admin/finance.csv":                         billing.RoleOwner,
	"POST /admin/admins/:id/sign-out":                billing.RoleOwner,
	"POST /admin/admins/:id/role":                    billing.RoleOwner, // admin_staff_test.go
	"POST /admin/admins/:id/disable":                 billing.RoleOwner,
	"POST /admin/admins/:id/enable":                  billing.RoleOwner,
	// Webhook endpoints and API keys (admin_console_test.go).
	"GET /admin/webhooks":                                  billing.RoleSupport,
	"POST /admin/webhooks":                                 billing.RoleAdmin,
	"GET /admin/webhooks/:id":                              billing.RoleSupport,
	"POST /admin/webhooks/:id":                             billing.RoleAdmin,
	"POST /admin/webhooks/:id/rotate":                      billing.RoleAdmin,
	"POST /admin/webhooks/:id/delete":                      billing.RoleAdmin,
	"POST /admin/webhooks/:id/test":                        billing.RoleAdmin,
	"POST /admin/webhooks/:id/deliveries/:delivery/resend": billing.RoleAdmin,
	"GET /admin/api-keys":                                  billing.RoleSupport,
	"POST /admin/api-keys":                                 billing.RoleAdmin,
	"POST /admin/api-keys/:id/origins":                     billing.RoleAdmin,
	"POST /admin/api-keys/:id/revoke":                      billing.RoleAdmin,
	// Plans (admin_plans.go).
	"GET /admin/plans":                      billing.RoleSupport,
	"GET /admin/plans/:key":                 billing.RoleSupport,
	"POST /admin/customers/:id/free-period": billing.RoleAdmin,
	"POST /admin/plans/:key/migrate":        billing.RoleAdmin,
	// The price book (admin_pricebook_test.go).
	"GET /admin/price-book":                             billing.RoleSupport,
	"GET /admin/price-book/draft":                       billing.RoleSupport,
	"POST /admin/price-book/draft":                      billing.RoleAdmin,
	"POST /admin/price-book/draft/start":                billing.RoleAdmin,
	"POST /admin/price-book/draft/discard":              billing.RoleAdmin,
	"GET /admin/price-book/draft/impact":                billing.RoleSupport,
	"GET /admin/price-book/draft/export":                billing.RoleSupport,
	"POST /admin/price-book/draft/import":               billing.RoleAdmin,
	"POST /admin/price-book/draft/import-costs":         billing.RoleAdmin,
	"POST /admin/price-book/draft/publish":              billing.RoleAdmin,
	"GET /admin/price-book/versions/:version/export":    billing.RoleSupport,
	"POST /admin/price-book/versions/:version/rollback": billing.RoleAdmin,
	"POST /admin/price-book/versions/:version/cancel":   billing.RoleAdmin,
	// Policies, key edits and holds (admin_policies_test.go).
	"GET /admin/policies":                           billing.RoleSupport,
	"POST /admin/policies":                          billing.RoleAdmin,
	"GET /admin/api-keys/:id":                       billing.RoleSupport,
	"POST /admin/api-keys/:id":                      billing.RoleAdmin,
	"POST /admin/customers/:id/holds/:hold/release": billing.RoleAdmin,
}

// TestAdminAuthorizationMatrix walks every /admin route of the router for
// every role, a signed-in customer and a visitor. A caller without the role
// is refused (403 for a signed-in admin; the sign-in page or 401 for anyone
// else) and changes nothing; a caller with it gets past authorization.
func TestAdminAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "matrix", "Matrix Co")
	a.grant(t, cus, "100", "purchase")
	spare, err := a.DB.CreateAdmin(context.Background(), "spare@staff.test", adminTestPassword, billing.RoleSupport)
	if err != nil {
		t.Fatal(err)
	}
	customer := newPortalVisitor(t, a.testAPI)
	customer.signIn("matrix")
	callers := map[string]*portalVisitor{
		billing.RoleOwner:   a.signIn(t, "owner@staff.test"),
		billing.RoleAdmin:   a.signIn(t, "admin@staff.test"),
		billing.RoleSupport: a.signIn(t, "support@staff.test"),
		"customer":          customer,
		"anonymous":         newPortalVisitor(t, a.testAPI),
	}
	var routes []string
	for _, r := range a.Server.Echo().Routes() {
		if strings.HasPrefix(r.Path, "/admin") && r.Method != "echo_route_not_found" {
			routes = append(routes, r.Method+" "+r.Path)
		}
	}
	sort.Strings(routes)
	if len(routes) < len(adminRouteRoles) {
		t.Fatalf("the router has %d admin routes, the table %d", len(routes), len(adminRouteRoles))
	}
	// Sign-out ends the caller's session: walk it last.
	sort.SliceStable(routes, func(i, j int) bool {
		return !strings.HasSuffix(routes[i], "/sign-out") && strings.HasSuffix(routes[j], "/sign-out")
	})
	hookURL := "https://example.com/hooks"
	hook, _, err := a.DB.CreateWebhookEndpoint(context.Background(), billing.WebhookEndpointInput{URL: &hookURL, EventTypes: &[]string{billing.AllEvents}})
	if err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer(":topup", "tu_none", ":id/flags/:flag", cus+"/flags/999", "customers/:id", "customers/"+cus, "admins/:id", "admins/"+spare.ID,
		"webhooks/:id", "webhooks/"+hook.ID, ":delivery", "whd_1", "api-keys/:id", "api-keys/"+a.ReadKey.ID, ":version", "1", ":hold", "hld_none")
	before := a.balance(t, cus)["balance"]
	for _, route := range routes {
		min, ok := adminRouteRoles[route]
		if !ok {
			t.Errorf("%s: not in adminRouteRoles: say who may call it", route)
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		path = fill.Replace(path)
		for _, who := range []string{billing.RoleSupport, billing.RoleAdmin, billing.RoleOwner, "customer", "anonymous"} {
			v := callers[who]
			var r response
			if method == http.MethodGet {
				r = v.get(path)
			} else {
				// An empty form (with a valid CSRF token) is enough to see
				// whether authorization lets it through: it fails validation.
				r = v.post(path, url.Values{"_csrf": {adminToken(t, v)}})
			}
			allowed := min == "" || billing.RoleAtLeast(who, min)
			refused := r.Status == http.StatusForbidden || r.Status == http.StatusUnauthorized ||
				(r.Status == http.StatusSeeOther && strings.HasPrefix(r.Header.Get("Location"), "/admin/sign-in") && method == http.MethodGet && path != "/admin/sign-in")
			switch {
			case allowed && refused:
				t.Errorf("%s as %s: refused (%d to %q), want allowed", route, who, r.Status, r.Header.Get("Location"))
			case !allowed && !refused:
				t.Errorf("%s as %s: %d, want refused", route, who, r.Status)
			case !allowed && billing.ValidRole(who) && r.Status != http.StatusForbidden:
				t.Errorf("%s as %s (signed in): %d, want 403", route, who, r.Status)
			case !allowed && billing.ValidRole(who) && method == http.MethodGet:
				// Signed in, so the page does not say "Sign in needed".
				if label := doc(t, r).Find(`[data-testid="error-page"] p`).First().Text(); label != "No access" {
					t.Errorf("%s as %s: the 403 page is labelled %q, want No access", route, who, label)
				}
			}
		}
	}
	if after := a.balance(t, cus)["balance"]; after != before {
		t.Errorf("the walk changed the balance: %v -> %v", before, after)
	}
}

// adminToken is the CSRF token of a signed-in admin's session (read from a
// page every role may open), or the visitor's anonymous one when signed out.
func adminToken(t *testing.T, v *portalVisitor) string {
	t.Helper()
	r := v.get("/admin/audit")
	if r.Status != http.StatusOK {
		return v.csrf("/admin/sign-in")
	}
	tok, _ := doc(t, r).Find(`meta[name="csrf-token"]`).Attr("content")
	return tok
}

// Admin forms need the session's CSRF token; another session's, or none,
// is refused and changes nothing.
func TestAdminCSRF(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "csrf", "CSRF Co")
	v := a.signIn(t, "admin@staff.test")
	other := a.signIn(t, "owner@staff.test")
	form := url.Values{"credits": {"5"}, "reason": {"test"}, "confirm": {"1"}, "key": {"k1"}}
	for name, tok := range map[string]string{"none": "", "another session's": adminToken(t, other), "made up": "abc"} {
		f := url.Values{}
		for k, vs := range form {
			f[k] = vs
		}
		if tok != "" {
			f.Set("_csrf", tok)
		}
		if r := v.post("/admin/customers/"+cus+"/grant", f); r.Status != http.StatusForbidden {
			t.Errorf("%s token: %d, want 403", name, r.Status)
		}
	}
	if r := v.post("/admin/customers/"+cus+"/grant", form, "Sec-Fetch-Site", "cross-site"); r.Status != http.StatusForbidden {
		t.Errorf("cross-site: %d, want 403", r.Status)
	}
	if b := credits(t, a.balance(t, cus)["balance"]); b != 0 {
		t.Fatalf("balance %v after refused posts", b)
	}
}
