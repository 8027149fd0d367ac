package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

const browserAdminPassword = "browser admin password"

// TestBrowserAdmin drives the admin console in Chromium: an admin signs
// in and grants credits to a customer through the confirmation; a support
// user sees the customer but no action, and a grant forced from their
// browser is refused. Every admin page is opened at 1280 and 390 px:
// axe-core finds no serious WCAG 2.2 A/AA violation, nothing needs
// sideways scrolling on the phone, and a screenshot of each is saved
// ($TALLY_SHOTS, default /tmp/shots).
func TestBrowserAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	src := axeSource(t)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 3, 1000)
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var c1, c2 string
	for _, a := range []struct{ email, role string }{{"owner@staff.test", billing.RoleOwner}, {"admin@staff.test", billing.RoleAdmin}, {"support@staff.test", billing.RoleSupport}} {
		if _, err := d.CreateAdmin(ctx, a.email, browserAdminPassword, a.role); err != nil {
			t.Fatal(err)
		}
	}
	// A former member of staff: the admins page shows them disabled.
	former, err := d.CreateAdmin(ctx, "former.employee.with.a.long.address@staff.test", browserAdminPassword, billing.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.DisableAdmin(ctx, former.ID, billing.SystemActor("test"), "left"); err != nil {
		t.Fatal(err)
	}
	if c1, err = d.ResolveCustomer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if c2, err = d.ResolveCustomer(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if err := d.FlagCustomer(ctx, c1, "payment for top-up tu_demo disputed (dp_123)"); err != nil {
		t.Fatal(err)
	}
	if err := d.SetFrozen(ctx, c2, true, billing.SystemActor("test"), "suspected card testing"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()
	for range 5 {
		api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": "chat.request", "quantity": 3})
	}
	c0 := func() string {
		st, body := api(t, base, secret, "GET", "/api/v1/customers/c0", nil)
		if st != http.StatusOK {
			t.Fatalf("customer c0: %d %v", st, body)
		}
		return body["id"].(string)
	}()

	b := newBrowser(t, 6*time.Minute)
	signIn := func(email string) {
		t.Helper()
		b.do("open the sign-in page", chromedp.Navigate(base+"/admin/sign-in"))
		b.waitNav("the sign-in page is ready", `document.readyState === "complete" && !!window.htmx && !!document.querySelector('#email')`, 10*time.Second)
		b.do("sign in as "+email, chromedp.SendKeys(chromedp.CSS(`#email`), email), chromedp.SendKeys(chromedp.CSS(`#password`), browserAdminPassword),
			chromedp.Click(chromedp.CSS(`[data-testid="sign-in-submit"]`)))
		b.waitNav("signed in", `location.pathname === "/admin/customers" && !!document.querySelector('[data-testid="admin-email"]')`, 15*time.Second)
	}
	check := func(name string, width int) {
		t.Helper()
		shot := fmt.Sprintf("admin-%s-%d", name, width)
		t.Logf("screenshot %s", b.shot(shot))
		var serious []string
		for _, v := range b.axe(src) {
			line := fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
			if v.Impact == "serious" || v.Impact == "critical" {
				serious = append(serious, line)
			} else {
				t.Logf("%s: minor: %s", shot, line)
			}
		}
		if len(serious) > 0 {
			t.Errorf("%s: axe-core finds WCAG A/AA violations:\n  %s", shot, strings.Join(serious, "\n  "))
		}
		if width < 640 {
			over := eval[string](b, "overflow", `(() => {
				const w = document.documentElement.clientWidth;
				const out = [];
				if (document.documentElement.scrollWidth > w + 1) out.push("the page is " + document.documentElement.scrollWidth + " px wide");
				document.querySelectorAll('nav[aria-label="Admin"] a').forEach(a => { const r = a.getBoundingClientRect(); if (r.right > w + 1) out.push("tab " + a.textContent.trim() + " is off-screen"); });
				return out.join("; ");
			})()`)
			if over != "" {
				t.Errorf("%s: %s", shot, over)
			}
		}
	}
	open := func(what, path, ready string) {
		t.Helper()
		b.do("open "+what, chromedp.Navigate(base+path))
		b.waitNav(what+" is there", `document.readyState === "complete" && !!document.querySelector('`+ready+`')`, 10*time.Second)
	}

	// Every page, as an owner (who sees them all), at both widths.
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		open("sign-in", "/admin/sign-in", `[data-testid="sign-in-form"]`)
		check("sign-in", width)
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))
	signIn("owner@staff.test")
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		for _, p := range []struct{ name, path, ready string }{
			{"customers", "/admin/customers", `[data-testid="customers-table"]`},
			{"customers-empty", "/admin/customers?q=nobody", `[data-testid="customers-empty"]`},
			{"customer", "/admin/customers/" + c0, `[data-testid="admin-balance"]`},
			{"customer-flagged", "/admin/customers/" + c1, `[data-testid="flag-open"]`},
			{"customer-frozen", "/admin/customers/" + c2, `[data-testid="frozen"]`},
			{"audit", "/admin/audit", `[data-testid="audit-table"]`},
			{"admins", "/admin/admins", `[data-testid="admins"]`},
			{"finance", "/admin/finance?by=month", `[data-testid="finance-now"]`},
		} {
			open(p.name, p.path, p.ready)
			check(p.name, width)
		}
		if width == 1280 {
			// The daily finance table (one currency: twelve columns) fits a
			// desktop window: its sideways scroll is for narrow screens.
			open("finance by day", "/admin/finance", `[data-testid="finance-table"]`)
			if w := eval[string](b, "finance table width", `(() => { const r = document.querySelector('[data-testid="finance-table"]').parentElement; return r.scrollWidth + " in " + r.clientWidth; })()`); func() bool {
				var sw, cw int
				fmt.Sscanf(w, "%d in %d", &sw, &cw)
				return sw > cw
			}() {
				t.Errorf("the finance table scrolls sideways at 1280 px: %s px", w)
			}
		}
		open("customer", "/admin/customers/"+c0, `[data-testid="grant-form"]`)
		b.do("open the grant form", chromedp.Click(chromedp.CSS(`[data-testid="action-grant"] summary`)))
		b.do("submit it empty", chromedp.Click(chromedp.CSS(`[data-testid="grant-submit"]`)))
		b.waitNav("errors beside the fields", `!!document.querySelector('[data-testid="error-grant-credits"]') && !!document.querySelector('[data-testid="error-grant-reason"]')`, 10*time.Second)
		check("grant-errors", width)
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))
	b.do("sign out", chromedp.Click(chromedp.CSS(`[data-testid="admin-sign-out"]`)))
	b.waitNav("signed out", `location.pathname === "/admin/sign-in" && !!document.querySelector('[data-testid="sign-in-info"]')`, 10*time.Second)

	// An admin grants 250 credits to c0, through the confirmation.
	signIn("admin@staff.test")
	open("c0", "/admin/customers/"+c0, `[data-testid="grant-form"]`)
	before := b.text(`[data-testid="admin-balance"]`)
	b.do("open the grant form", chromedp.Click(chromedp.CSS(`[data-testid="action-grant"] summary`)))
	b.do("fill the grant", chromedp.SendKeys(chromedp.CSS(`#grant-credits`), "250"), chromedp.SendKeys(chromedp.CSS(`#grant-reason`), "Sorry for the outage"),
		chromedp.Click(chromedp.CSS(`[data-testid="grant-submit"]`)))
	b.waitNav("the confirmation", `!!document.querySelector('[data-testid="confirm-submit"]')`, 10*time.Second)
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		check("grant-confirm", width)
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))
	if got := b.text(`[data-testid="confirm-after"]`); got != "1,235" {
		b.fail("the confirmation says the balance becomes %q (before %s), want 1,235", got, before)
	}
	b.do("confirm", chromedp.Click(chromedp.CSS(`[data-testid="confirm-submit"]`)))
	b.waitNav("back on the customer", `!!document.querySelector('[data-testid="flash"]') && !!document.querySelector('[data-testid="admin-balance"]')`, 10*time.Second)
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "Granted 250 credits") {
		b.fail("flash %q", got)
	}
	if got := b.text(`[data-testid="admin-balance"]`); got != "1,235" {
		b.fail("balance after the grant %q, want 1,235", got)
	}
	if st, body := api(t, base, secret, "GET", "/api/v1/customers/c0/balance", nil); st != http.StatusOK || fmt.Sprint(body["balance"]) != "1235" {
		t.Fatalf("balance through the API: %d %v", st, body["balance"])
	}

	// Support sees the customer but no action; a grant forced from the
	// browser (with the session's own CSRF token) is refused.
	b = newBrowser(t, 2*time.Minute)
	signIn("support@staff.test")
	open("c0 as support", "/admin/customers/"+c0, `[data-testid="read-only-note"]`)
	if eval[bool](b, "actions", `!!document.querySelector('[data-testid="grant-form"]')`) {
		b.fail("support sees the grant form")
	}
	status := eval[float64](b, "forced grant", `fetch("/admin/customers/`+c0+`/grant", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: new URLSearchParams({_csrf: document.querySelector('meta[name="csrf-token"]').content, credits: "1000", reason: "x", confirm: "1", key: "forced"})}).then(r => r.status)`)
	if status != http.StatusForbidden {
		b.fail("a forced grant by support answered %v, want 403", status)
	}
	if st, body := api(t, base, secret, "GET", "/api/v1/customers/c0/balance", nil); st != http.StatusOK || fmt.Sprint(body["balance"]) != "1235" {
		t.Fatalf("balance after support's attempt: %d %v", st, body["balance"])
	}
}
