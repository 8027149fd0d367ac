package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/internal/stripemock"
	"github.com/tally-billing/tally/payments"
)

// TestBrowserPlanChangesAndMigration drives, in Chromium on the real wiring
// with Stripe (stripe-mock): a Stripe subscriber's Plan tab and its upgrade
// (the dialog says the credits and the charge first; Stripe prorates; the
// flash says what happened); a Stripe subscriber whose period ended before
// its invoice.paid ("renewal pending" on the overview and the Plan tab);
// the admin console's migration of Pro's subscribers to a new version
// (impact, confirmation, flash) and the finance view's MRR history. Each
// page at 1280 and 390 px: axe-core finds no serious WCAG 2.2 A/AA
// violation, nothing needs sideways scrolling on the phone, a screenshot
// goes to $TALLY_SHOTS.
func TestBrowserPlanChangesAndMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	src := axeSource(t)
	const key = "sk_test_tallybrowser0123456789"
	stripeBase := stripemock.Start(t, key)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 4, 1000)
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateAdmin(ctx, "owner@staff.test", browserAdminPassword, billing.RoleOwner); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, s := range []db.SubscribeInput{
		{Customer: "c0", Plan: "starter", Provider: db.ProviderStripe, ProviderID: "sub_browser0", Invoice: "in_browser0",
			Start: now.Add(-10 * 24 * time.Hour), End: now.Add(20 * 24 * time.Hour)},
		{Customer: "c1", Plan: "starter", Provider: db.ProviderStripe, ProviderID: "sub_browser1", Invoice: "in_browser1",
			Start: now.Add(-30*24*time.Hour - 2*time.Hour), End: now.Add(-2 * time.Hour)},
		{Customer: "c2", Plan: "pro"},
		{Customer: "c3", Plan: "pro"},
	} {
		if _, err := d.StartSubscription(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	pb := DemoPriceBook()
	pb.Plans[1].Price.Amount, pb.Plans[1].Credits = 59_00, billing.CreditsOf(7000)
	if _, _, err := d.PublishPriceBook(ctx, pb); err != nil {
		t.Fatal(err)
	}
	d.Close()
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI",
		Stripe: payments.StripeConfig{SecretKey: key, WebhookSecret: "whsec_browser", APIBase: stripeBase}})
	defer stop()

	b := newBrowser(t, 5*time.Minute)
	look := func(name string) {
		t.Helper()
		for _, width := range []int{1280, 390} {
			b.do("resize", chromedp.EmulateViewport(int64(width), 900))
			t.Logf("screenshot %s", b.shot(fmt.Sprintf("%s-%d", name, width)))
			for _, v := range b.axe(src) {
				if v.Impact == "serious" || v.Impact == "critical" {
					t.Errorf("%s at %d px: %s (%s): %s at %s", name, width, v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
				}
			}
			if width < 640 {
				if over := eval[string](b, "overflow", `document.documentElement.scrollWidth > document.documentElement.clientWidth + 1 ? "the page is " + document.documentElement.scrollWidth + " px wide" : ""`); over != "" {
					t.Errorf("%s at %d px: %s", name, width, over)
				}
			}
		}
		b.do("resize", chromedp.EmulateViewport(1280, 900))
	}
	open := func(what, path, ready string) {
		t.Helper()
		b.do("open "+what, chromedp.Navigate(base+path))
		b.waitNav(what+" is there", `document.readyState === "complete" && !!document.querySelector('`+ready+`')`, 10*time.Second)
	}

	// c0 upgrades Starter to Pro (v2 of the price book is gone: Pro is $59).
	b.signIn(base, secret, map[string]any{"customer": "c0", "return_url": "https://pixel.example/app"})
	open("the Plan tab", "/portal/plan", `[data-testid="current-plan"]`)
	look("plan-stripe")
	b.do("choose Pro", chromedp.Click(chromedp.CSS(`[data-testid="choose-pro"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="plan-confirm-go"]`)))
	if got := b.text(`[data-testid="plan-confirm-text"]`); !strings.HasPrefix(got, "You will get 3,334 credits now and pay $26.67 today.") {
		// $40.00 x 20/30 = $26.666 -> $26.67 (to the nearest cent, as Stripe), which buys
		// $26.67 x 5,000/$40.00 = 3,333.75 -> 3,334 credits: the credits follow the money
		// charged (by time alone, 5,000 x 20/30 = 3,333.3 -> 3,333).
		b.fail("the upgrade's confirmation says %q", got)
	}
	look("plan-stripe-upgrade-confirm")
	b.do("upgrade", chromedp.Click(chromedp.CSS(`[data-testid="plan-confirm-go"]`)))
	b.waitNav("upgraded", `!!document.querySelector('[data-testid="flash"]') && !!document.querySelector('[data-testid="current-plan"]')`, 15*time.Second)
	b.ready()
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "credits were added and $26.67 was charged") {
		b.fail("flash %q", got)
	}
	look("plan-stripe-upgraded")

	// c1's period ended two hours ago; Stripe's invoice.paid has not come.
	b.signIn(base, secret, map[string]any{"customer": "c1", "return_url": "https://pixel.example/app"})
	open("the overview", "/portal", `[data-testid="plan-renewal-pending"]`)
	look("overview-renewal-pending")
	open("the Plan tab", "/portal/plan", `[data-testid="plan-pending"]`)
	if got := b.text(`[data-testid="plan-status"]`); !strings.HasPrefix(got, "Renewal pending.") {
		b.fail("plan status %q", got)
	}
	// The other plans say why they cannot be chosen now; nothing speaks of
	// "this period's" credits, which have not arrived.
	if n := eval[int](b, "plans waiting for the renewal", `document.querySelectorAll('[data-testid="choice-after-renewal"]').length`); n != 2 {
		b.fail("%d plans say they can be chosen after the renewal, want Pro and Team", n)
	}
	if got := b.text(`[data-testid="rolled-over"]`); !strings.HasSuffix(got, "kept while the renewal is pending.") {
		b.fail("rolled-over line while pending: %q", got)
	}
	look("plan-renewal-pending")

	// The admin migrates Pro's two subscribers to version 2.
	open("the sign-in page", "/admin/sign-in", `#email`)
	b.do("sign in", chromedp.SendKeys(chromedp.CSS(`#email`), "owner@staff.test"), chromedp.SendKeys(chromedp.CSS(`#password`), browserAdminPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="sign-in-submit"]`)))
	b.waitNav("signed in", `location.pathname === "/admin/customers"`, 15*time.Second)
	open("Pro's page", "/admin/plans/pro", `[data-testid="migration"]`)
	if got := b.text(`[data-testid="migration-mrr"]`); got != "+$20.00" {
		b.fail("MRR change %q, want +$20.00 (2 x $10.00)", got)
	}
	look("admin-plan-migration")
	b.do("review", chromedp.Click(chromedp.CSS(`[data-testid="migration-review"]`)))
	b.waitNav("the confirmation", `!!document.querySelector('[data-testid="confirm-text"]')`, 10*time.Second)
	look("admin-plan-migration-confirm")
	b.do("confirm", chromedp.Click(chromedp.CSS(`[data-testid="confirm-submit"]`)))
	b.waitNav("migrated", `!!document.querySelector('[data-testid="flash"]')`, 10*time.Second)
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "2 subscribers move to version 2") {
		b.fail("flash %q", got)
	}
	look("admin-plan-migrated")
	open("finance", "/admin/finance", `[data-testid="mrr-history"]`)
	look("admin-finance-mrr-history")
}
