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

// TestBrowserAdminConsole opens the webhooks and API keys pages of the
// admin console at 1280 and 390 px (axe-core, no sideways scrolling on
// the phone, screenshots in $TALLY_SHOTS), then creates an API key
// through the form and sees its secret once.
func TestBrowserAdminConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	src := axeSource(t)
	path := filepath.Join(t.TempDir(), "t.db")
	setupCrashDB(t, path, 2, 1000)
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateAdmin(ctx, "owner@staff.test", browserAdminPassword, billing.RoleOwner); err != nil {
		t.Fatal(err)
	}
	u, desc := "https://hooks.example.invalid/tally/events", "Production receiver"
	ep, _, err := d.CreateWebhookEndpoint(ctx, billing.WebhookEndpointInput{URL: &u, Description: &desc, EventTypes: &[]string{"balance.low", "grant.created", "topup.succeeded"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateTestDelivery(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	jobs, err := d.DueWebhookDeliveries(ctx, time.Now().Add(time.Hour), 10, nil)
	if err != nil || len(jobs) == 0 {
		t.Fatalf("due: %v", err)
	}
	if err := d.RecordWebhookAttempt(ctx, jobs[0], db.WebhookOutcome{Status: billing.DeliveryPending, RetryAt: time.Now().Add(time.Hour),
		Attempt: billing.WebhookAttempt{At: time.Now(), StatusCode: 503, LatencyMS: 184, Response: `{"error":"receiver is deploying, try again"}`}}); err != nil {
		t.Fatal(err)
	}
	k, _, err := d.CreateAPIKey(ctx, "Widget server", billing.ScopePortal, billing.Limits{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetAPIKeyOrigins(ctx, k.ID, []string{"https://app.pixel.example", "http://localhost:3000"}); err != nil {
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
		open("webhooks", "/admin/webhooks", `[data-testid="webhooks"]`)
		check("webhooks", width)
		open("endpoint", "/admin/webhooks/"+ep.ID, `[data-testid="attempt"]`)
		check("webhook", width)
		open("api keys", "/admin/api-keys", `[data-testid="api-keys"]`)
		check("api-keys", width)
	}
	// A key made in the form: errors beside the fields, then its secret once.
	b.do("resize", chromedp.EmulateViewport(390, 900))
	b.do("submit an origin that is not one", chromedp.SendKeys(chromedp.CSS(`#key-name`), "Billing cron"),
		chromedp.SendKeys(chromedp.CSS(`#key-origins`), "app.example.com/path"), chromedp.Submit(chromedp.CSS(`#key-name`)))
	b.waitNav("the origin's error", `!!document.querySelector('[data-testid="error-origins"]')`, 10*time.Second)
	// The form is below the list of keys: the page lands on the field to fix,
	// under a summary that says no key was made.
	if got := eval[string](b, "the focused field", `document.activeElement ? document.activeElement.id : ""`); got != "key-origins" {
		b.fail("after the refused form the focus is on %q, want the origins field", got)
	}
	if !eval[bool](b, "the field in view", `(function(){ var r = document.activeElement.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; })()`) {
		b.fail("the field to fix is not in view")
	}
	if got := b.text(`[data-testid="api-key-errors"]`); got != "Fix the field marked below: no key was created." {
		b.fail("error summary %q", got)
	}
	check("api-key-errors", 390)
	// Origins are for a key that mints the widget's tokens: a portal key.
	b.do("fix it", chromedp.Click(chromedp.CSS(`input[name="scope"][value="portal"]`)),
		chromedp.SetValue(chromedp.CSS(`#key-origins`), "https://app.example.com"), chromedp.Submit(chromedp.CSS(`#key-name`)))
	b.waitNav("the secret", `!!document.querySelector('[data-testid="secret"]')`, 10*time.Second)
	check("api-key-secret", 390)
	if got := eval[string](b, "secret", `document.querySelector('[data-testid="secret"]').value`); !strings.HasPrefix(got, "tsk_") {
		b.fail("secret %q", got)
	}
	open("api keys", "/admin/api-keys", `[data-testid="api-keys"]`)
	if !eval[bool](b, "the new key", `document.body.textContent.includes("Billing cron") && !document.querySelector('[data-testid="secret"]')`) {
		b.fail("the list lacks the new key, or shows a secret")
	}
}
