package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestBrowserAdminReview replays a staff review's findings in Chromium.
// The one-time portal sign-in link stays on its own page (a flash fades
// after 8 seconds), wraps inside a 390 px screen, and its Copy button
// works from the keyboard and says "Copied" to screen readers too.
func TestBrowserAdminReview(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	path := filepath.Join(t.TempDir(), "t.db")
	setupCrashDB(t, path, 3, 1000)
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ email, role string }{{"owner@staff.test", billing.RoleOwner}, {"support@staff.test", billing.RoleSupport}} {
		if _, err := d.CreateAdmin(ctx, a.email, browserAdminPassword, a.role); err != nil {
			t.Fatal(err)
		}
	}
	c0, err := d.ResolveCustomer(ctx, "c0")
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()

	b := newBrowser(t, 3*time.Minute)
	signIn := func(email string) {
		t.Helper()
		b.do("open the sign-in page", chromedp.Navigate(base+"/admin/sign-in"))
		b.waitNav("the sign-in page is ready", `document.readyState === "complete" && !!document.querySelector('#email')`, 10*time.Second)
		b.do("sign in as "+email, chromedp.SendKeys(chromedp.CSS(`#email`), email), chromedp.SendKeys(chromedp.CSS(`#password`), browserAdminPassword),
			chromedp.Click(chromedp.CSS(`[data-testid="sign-in-submit"]`)))
		b.waitNav("signed in", `location.pathname === "/admin/customers"`, 15*time.Second)
	}
	open := func(what, path, ready string) {
		t.Helper()
		b.do("open "+what, chromedp.Navigate(base+path))
		b.waitNav(what+" is there", `document.readyState === "complete" && !!document.querySelector('`+ready+`')`, 10*time.Second)
	}
	signIn("owner@staff.test")

	b.do("resize", chromedp.EmulateViewport(390, 900))
	b.do("open the customer", chromedp.Navigate(base+"/admin/customers/"+c0))
	b.waitNav("the customer page", `document.readyState === "complete" && !!document.querySelector('[data-testid="portal-link-form"]')`, 10*time.Second)
	b.do("ask for a sign-in link", chromedp.Click(chromedp.CSS(`[data-testid="action-portal-link"] summary`)),
		chromedp.SendKeys(chromedp.CSS(`#portal-link-reason`), "customer asked by e-mail"),
		chromedp.Click(chromedp.CSS(`[data-testid="portal-link-submit"]`)))
	b.waitNav("the link's page", `document.readyState === "complete" && !!document.querySelector('[data-testid="portal-link"]')`, 10*time.Second)
	t.Logf("screenshot %s", b.shot("admin-portal-link-390"))
	if over := eval[string](b, "overflow", `(() => {
		const w = document.documentElement.clientWidth, out = [];
		if (document.documentElement.scrollWidth > w + 1) out.push("the page is " + document.documentElement.scrollWidth + " px wide");
		for (const sel of ['[data-testid="portal-link"]', '[data-testid="portal-link-copy"]', '[data-testid="portal-link-expiry"]']) {
			const r = document.querySelector(sel).getBoundingClientRect();
			if (r.right > w + 1) out.push(sel + " ends at " + r.right + " px");
		}
		const ta = document.querySelector('[data-testid="portal-link"]');
		if (ta.scrollWidth > ta.clientWidth + 1) out.push("the link scrolls sideways in its box");
		if (ta.scrollHeight > ta.clientHeight + 1) out.push("the link is cut off: " + ta.scrollHeight + " px in " + ta.clientHeight);
		return out.join("; ");
	})()`); over != "" {
		t.Errorf("at 390 px: %s", over)
	}
	link := b.value(`[data-testid="portal-link"]`)
	if !strings.HasPrefix(link, base+"/portal/session/") {
		t.Errorf("the link %q", link)
	}
	// Copy, by keyboard: focus the button and press Enter.
	b.do("copy with the keyboard", chromedp.Focus(chromedp.CSS(`[data-testid="portal-link-copy"]`)), chromedp.KeyEvent(kb.Enter))
	b.waitJS("Copied is announced", `document.querySelector('#portal-link-copied').textContent.includes("Copied") && document.querySelector('[data-testid="portal-link-copy"]').textContent.includes("Copied")`, 5*time.Second)
	// A flash is gone after 8 seconds; the link stays.
	time.Sleep(9 * time.Second)
	if eval[bool](b, "still there", `(() => { const e = document.querySelector('[data-testid="portal-link"]'); return !!e && e.getBoundingClientRect().height > 0 && getComputedStyle(e.closest('[data-testid="portal-link-card"]')).opacity === "1"; })()`) != true {
		t.Error("the link is gone after 9 seconds")
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))
	t.Logf("screenshot %s", b.shot("admin-portal-link-1280"))

	// The audit log's changes read as words at both widths: set limits and
	// a policy, then look (no JSON, no sideways scrolling on a phone).
	open("the customer", "/admin/customers/"+c0, `[data-testid="limits-form"]`)
	b.do("set limits", chromedp.Click(chromedp.CSS(`[data-testid="action-limits"] summary`)),
		chromedp.SendKeys(chromedp.CSS(`#limits-daily`), "50"), chromedp.SendKeys(chromedp.CSS(`#limits-reason`), "trusted customer"),
		chromedp.Click(chromedp.CSS(`[data-testid="limits-submit"]`)))
	b.waitNav("limits saved", `!!document.querySelector('[data-testid="flash"]')`, 10*time.Second)
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		open("the audit log", "/admin/audit", `[data-testid="audit-table"]`)
		t.Logf("screenshot %s", b.shot(fmt.Sprintf("admin-audit-readable-%d", width)))
		got := eval[string](b, "the limits change", `(() => { const r = document.querySelector('[data-testid="audit-row"][data-action="customer.limits_set"] [data-testid="audit-change"]'); return r ? r.innerText.replace(/\s+/g, " ").trim() : ""; })()`)
		if got != "Daily cap: no cap → 50" {
			t.Errorf("at %d px the limits change reads %q", width, got)
		}
		if w := eval[int](b, "page width", `document.documentElement.scrollWidth`); width == 390 && w > 391 {
			t.Errorf("the audit log is %d px wide at 390 px", w)
		}
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))

	// A grant's expiry: the day picked, to its end, UTC.
	open("the customer", "/admin/customers/"+c0, `[data-testid="grant-form"]`)
	b.do("grant with an expiry", chromedp.Click(chromedp.CSS(`[data-testid="action-grant"] summary`)),
		chromedp.SendKeys(chromedp.CSS(`#grant-credits`), "250.5"), chromedp.SetValue(chromedp.CSS(`#grant-expires`), "2027-01-15"),
		chromedp.SendKeys(chromedp.CSS(`#grant-reason`), "launch promo"), chromedp.Click(chromedp.CSS(`[data-testid="grant-submit"]`)))
	b.waitNav("the confirmation", `!!document.querySelector('[data-testid="confirm-expires"]')`, 10*time.Second)
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		t.Logf("screenshot %s", b.shot(fmt.Sprintf("admin-grant-expiry-confirm-%d", width)))
	}
	if got := b.text(`[data-testid="confirm-expires"]`); got != "At the end of 15 Jan 2027 (UTC)" {
		t.Errorf("the confirmation's expiry %q", got)
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))

	// Support's read-only draft price book: its fields are disabled and
	// look it (they looked editable), and typing changes nothing.
	open("the price book", "/admin/price-book", `[data-testid="pb-start-draft"]`)
	b.do("start a draft", chromedp.Click(chromedp.CSS(`[data-testid="pb-start-draft"]`)))
	b.waitNav("the draft", `location.pathname === "/admin/price-book/draft" && !!document.querySelector('[data-testid="pb-editor"]')`, 10*time.Second)
	b.do("sign out", chromedp.Click(chromedp.CSS(`[data-testid="admin-sign-out"]`)))
	b.waitNav("signed out", `location.pathname === "/admin/sign-in"`, 10*time.Second)
	signIn("support@staff.test")
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		open("the draft as support", "/admin/price-book/draft", `[data-testid="pb-editor"]`)
		t.Logf("screenshot %s", b.shot(fmt.Sprintf("admin-support-draft-%d", width)))
	}
	state := eval[string](b, "the draft's fields", `(() => {
		const f = [...document.querySelectorAll('[data-testid="pb-editor"] input:not([type=hidden]), [data-testid="pb-editor"] select, [data-testid="pb-editor"] textarea')];
		const enabled = f.filter(e => e.matches(':enabled')).length;
		const white = f.filter(e => getComputedStyle(e).backgroundColor === "rgb(255, 255, 255)").length;
		return f.length + " fields, " + enabled + " enabled, " + white + " look editable";
	})()`)
	if !strings.HasSuffix(state, " fields, 0 enabled, 0 look editable") || strings.HasPrefix(state, "0 ") {
		t.Errorf("support's draft: %s", state)
	}
	before := b.value(`#` + "pb-currency")
	b.do("type into the currency", chromedp.Click(chromedp.CSS(`#pb-currency`)), chromedp.KeyEvent("xyz"))
	if got := b.value(`#pb-currency`); got != before {
		t.Errorf("support typed into the draft: %q -> %q", before, got)
	}
}
