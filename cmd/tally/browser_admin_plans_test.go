package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestBrowserAdminPlans drives the admin console's plan pages in Chromium:
// Plans, a plan's subscribers, the finance view with MRR and the customer
// page's subscription, each at 1280 and 390 px (axe-core finds no serious
// WCAG 2.2 A/AA violation, nothing needs sideways scrolling on the phone,
// a screenshot of each goes to $TALLY_SHOTS); then an admin grants a free
// period through its confirmation and sees the flash.
func TestBrowserAdminPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	src := axeSource(t)
	path := filepath.Join(t.TempDir(), "t.db")
	setupCrashDB(t, path, 3, 1000)
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateAdmin(ctx, "owner@staff.test", browserAdminPassword, billing.RoleOwner); err != nil {
		t.Fatal(err)
	}
	for c, plan := range map[string]string{"c0": "starter", "c1": "pro", "c2": "starter"} {
		if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: c, Plan: plan}); err != nil {
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

	b := newBrowser(t, 4*time.Minute)
	p := signInAdmin(t, b, base, src, "owner@staff.test")
	check, open := p.check, p.open
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		for _, p := range []struct{ name, path, ready string }{
			{"plans", "/admin/plans", `[data-testid="plans"]`},
			{"plan-subscribers", "/admin/plans/starter", `[data-testid="subscribers-table"]`},
			{"plan-no-subscribers", "/admin/plans/team", `[data-testid="subscribers-empty"]`},
			{"finance-mrr", "/admin/finance", `[data-testid="finance-mrr"]`},
			{"customer-subscription", "/admin/customers/" + c0, `[data-testid="admin-subscription"]`},
		} {
			open(p.name, p.path, p.ready)
			check(p.name, width)
		}
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))
	open("plans", "/admin/plans", `[data-testid="plans-mrr-total"]`)
	if got := b.text(`[data-testid="plans-mrr-total"]`); got != "$87.00" {
		b.fail("MRR %q, want $87.00 (2 x $19.00 + $49.00)", got)
	}

	// A free period for c0, through the confirmation.
	open("c0", "/admin/customers/"+c0, `[data-testid="free-period-form"]`)
	b.do("open the free period form", chromedp.Click(chromedp.CSS(`[data-testid="action-free-period"] summary`)))
	b.do("submit it without a reason", chromedp.Click(chromedp.CSS(`[data-testid="free-period-submit"]`)))
	b.waitNav("the error beside the reason", `!!document.querySelector('[data-testid="error-free-period-reason"]')`, 10*time.Second)
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		check("free-period-error", width)
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))
	b.do("give a reason", chromedp.SendKeys(chromedp.CSS(`#free-period-reason`), "Sorry for the outage"),
		chromedp.Click(chromedp.CSS(`[data-testid="free-period-submit"]`)))
	b.waitNav("the confirmation", `!!document.querySelector('[data-testid="confirm-text"]')`, 10*time.Second)
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		check("free-period-confirm", width)
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))
	if got := b.text(`[data-testid="confirm-text"]`); !strings.Contains(got, "2,000 credits are added now") {
		b.fail("confirmation %q", got)
	}
	b.do("confirm", chromedp.Click(chromedp.CSS(`[data-testid="confirm-submit"]`)))
	b.waitNav("back on the customer", `!!document.querySelector('[data-testid="flash"]') && !!document.querySelector('[data-testid="admin-subscription"]')`, 10*time.Second)
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "a free month of Starter") {
		b.fail("flash %q", got)
	}
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		check("free-period-done", width)
	}
}
