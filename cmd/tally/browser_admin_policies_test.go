package main

import (
	"context"
	"encoding/json"
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

// TestBrowserAdminPolicies looks at the Policies page, an API key's edit
// page and a customer's open holds at 1280 and 390 px (axe-core, nothing
// off-screen on the phone, screenshots in $TALLY_SHOTS), then, as an
// owner in Chromium: changes the refund window and the hold lifetime
// (a money change: the confirmation lists it), sees the flash, and
// releases the customer's hold through its confirmation. The running
// server applies the new hold lifetime at once.
func TestBrowserAdminPolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	src := axeSource(t)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 1, 1000)
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateAdmin(ctx, "owner@staff.test", browserAdminPassword, billing.RoleOwner); err != nil {
		t.Fatal(err)
	}
	key, _, err := d.CreateAPIKey(ctx, "App server", billing.ScopeMetering, billing.Limits{}, 20)
	if err != nil {
		t.Fatal(err)
	}
	cus, err := d.ResolveCustomer(ctx, "c0")
	if err != nil {
		t.Fatal(err)
	}
	hold, err := d.CreateHold(ctx, billing.HoldRequest{Customer: cus, Credits: billing.CreditsOf(250), TTLSeconds: 3600, APIKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	// The price book sets its own custom top-up range: the policies page
	// says it wins over the policy's bounds.
	pb, err := d.CurrentPriceBook(ctx)
	if err != nil || pb == nil {
		t.Fatal(pb, err)
	}
	withRange := *pb
	withRange.CustomTopUp = &billing.CustomTopUp{Min: 5_00, Max: 250_00}
	if _, _, err := d.PublishPriceBook(ctx, withRange); err != nil {
		t.Fatal(err)
	}
	// And a version scheduled for tomorrow, which the admin cancels below.
	later := withRange
	later.Features = append([]billing.Feature(nil), withRange.Features...)
	later.Features[0].Credits += billing.CreditsOf(1)
	sched, _, err := d.PublishPriceBookWith(ctx, later, db.PublishOptions{EffectiveAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI", RefundWindow: 30 * 24 * time.Hour})
	defer stop()

	b := newBrowser(t, 4*time.Minute)
	p := signInAdmin(t, b, base, src, "owner@staff.test")
	open := p.open
	// check adds to the console's checks that no element of the page ends
	// past a phone's screen (cut off inside a box that hides overflow).
	check := func(name string, width int) {
		t.Helper()
		p.check(name, width)
		if width < 640 {
			if over := eval[string](b, "overflow", `(() => {
				const w = document.documentElement.clientWidth;
				const out = [];
				document.querySelectorAll('main *').forEach(e => { const r = e.getBoundingClientRect(); if (r.width > 0 && r.right > w + 1) out.push((e.dataset.testid || e.tagName) + " ends at " + Math.round(r.right)); });
				return out.slice(0, 5).join("; ");
			})()`); over != "" {
				t.Errorf("admin-%s-%d: %s", name, width, over)
			}
		}
	}
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		open("policies", "/admin/policies", `[data-testid="policy-form"]`)
		if got := b.text(`[data-testid="policy-custom-overridden"]`); !strings.Contains(got, "$5.00 to $250.00") {
			b.fail("the price book's range is not on the page: %q", got)
		}
		check("policies", width)
		open("a key", "/admin/api-keys/"+key.ID, `[data-testid="api-key-edit-form"]`)
		check("api-key-edit", width)
		open("the customer", "/admin/customers/"+cus, `[data-testid="hold-row"]`)
		check("customer-holds", width)
	}

	// A policy change that moves money: errors first, then the confirmation.
	b.do("resize", chromedp.EmulateViewport(390, 900))
	open("policies", "/admin/policies", `[data-testid="policy-form"]`)
	b.do("an invalid change", chromedp.SetValue(chromedp.CSS(`#policy-refund_window`), "14.5"), chromedp.Click(chromedp.CSS(`[data-testid="policy-submit"]`)))
	b.waitNav("errors beside the fields", `!!document.querySelector('[data-testid="error-refund_window"]') && !!document.querySelector('[data-testid="error-reason"]')`, 10*time.Second)
	check("policies-errors", 390)
	b.do("a valid change", chromedp.SetValue(chromedp.CSS(`#policy-refund_window`), "14"), chromedp.SetValue(chromedp.CSS(`#policy-hold_ttl`), "120"),
		chromedp.SetValue(chromedp.CSS(`#policy-reason`), "Two-week refunds, shorter holds"), chromedp.Click(chromedp.CSS(`[data-testid="policy-submit"]`)))
	b.waitNav("the confirmation", `!!document.querySelector('[data-testid="confirm"]')`, 10*time.Second)
	check("policy-confirm", 390)
	if n := eval[int](b, "changes", `document.querySelectorAll('[data-testid="confirm-change"]').length`); n != 2 {
		b.fail("the confirmation lists %d changes, want 2", n)
	}
	b.do("confirm", chromedp.Click(chromedp.CSS(`[data-testid="confirm-submit"]`)))
	b.waitNav("the flash", `location.pathname === "/admin/policies" && document.body.textContent.includes("Policy saved as version 2")`, 10*time.Second)
	check("policies-saved", 390)

	// The running server's kernel uses the new lifetime at once.
	req, _ := http.NewRequest("POST", base+"/api/v1/holds", strings.NewReader(`{"customer":"c0","credits":1}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		CreatedAt time.Time `json:"created_at"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || h.ExpiresAt.Sub(h.CreatedAt) != 2*time.Minute {
		t.Fatalf("a hold after the edit: %d, lives %v, want 2m", res.StatusCode, h.ExpiresAt.Sub(h.CreatedAt))
	}

	// Release the customer's hold, after its confirmation.
	b.do("resize", chromedp.EmulateViewport(1280, 900))
	open("the customer", "/admin/customers/"+cus, `[data-testid="hold-release"]`)
	b.do("release", chromedp.Click(chromedp.CSS(`[data-testid="hold-release"]`)))
	b.waitNav("the hold's confirmation", `!!document.querySelector('[data-testid="confirm"]')`, 10*time.Second)
	check("hold-confirm", 1280)
	// A reason is required, as for every other action: Tally's own error
	// beside the field, not the browser's bubble.
	b.do("confirm without a reason", chromedp.Click(chromedp.CSS(`[data-testid="confirm-submit"]`)))
	b.waitNav("the reason's error", `!!document.querySelector('[data-testid="error-confirm-reason"]')`, 10*time.Second)
	b.do("confirm", chromedp.SendKeys(chromedp.CSS(`#confirm-reason`), "stuck after an app crash"), chromedp.Click(chromedp.CSS(`[data-testid="confirm-submit"]`)))
	b.waitNav("released", `document.body.textContent.includes("Released 250 held credits")`, 10*time.Second)
	if eval[bool](b, "the hold is gone", `[...document.querySelectorAll('[data-testid="hold-row"]')].some(r => r.textContent.includes("`+hold.ID+`"))`) {
		b.fail("the released hold is still listed")
	}

	// Cancel the scheduled price-book version, after its confirmation.
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		open("the price book", "/admin/price-book", `[data-testid="pb-cancel-scheduled"]`)
		check("pricebook-scheduled", width)
	}
	b.do("cancel it", chromedp.Click(chromedp.CSS(`[data-testid="pb-cancel-scheduled"]`)))
	b.waitNav("the cancel's confirmation", `!!document.querySelector('[data-testid="confirm"]')`, 10*time.Second)
	check("pricebook-cancel-confirm", 390)
	b.do("confirm", chromedp.Click(chromedp.CSS(`[data-testid="confirm-submit"]`)))
	b.waitNav("cancelled", `location.pathname === "/admin/price-book" && !!document.querySelector('[data-testid="flash"]')`, 10*time.Second)
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, fmt.Sprintf("Cancelled version %d", sched.Version)) {
		b.fail("flash %q", got)
	}
	if eval[bool](b, "no scheduled version left", `!!document.querySelector('[data-testid="pb-scheduled"]')`) ||
		!eval[bool](b, "marked cancelled", `!!document.querySelector('[data-testid="pb-badge-cancelled"]')`) {
		b.fail("after the cancel, the page still shows the version scheduled or not cancelled")
	}
	check("pricebook-cancelled", 390)
}
