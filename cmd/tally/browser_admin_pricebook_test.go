package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestBrowserAdminPriceBook drives the price-book editor in Chromium: an
// admin starts a draft, raises a price (a typo first: the error beside the
// field), saves, previews the impact on the last 30 days of usage and
// publishes through the confirmation, then sees the flash and the new
// version in effect. The price book page, the editor, the impact preview
// and the confirmation are checked at 1280 and 390 px (axe-core finds no
// serious WCAG 2.2 A/AA violation, nothing needs sideways scrolling on the
// phone) and screenshotted to $TALLY_SHOTS.
func TestBrowserAdminPriceBook(t *testing.T) {
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
	one := billing.QuantityOf(1)
	for i := 0; i < 30; i++ { // c0: 30 chat requests
		if _, err := d.Debit(ctx, billing.UsageRequest{Customer: "c0", Feature: "chat.request", Quantity: &one}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: "c1", Feature: "image.generate", Quantity: &one}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: "c2", Feature: "gpt-4o",
		Quantities: billing.Quantities{"input_tokens": billing.QuantityOf(12000), "output_tokens": billing.QuantityOf(3000)}}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()

	b := newBrowser(t, 4*time.Minute)
	b.do("open the sign-in page", chromedp.Navigate(base+"/admin/sign-in"))
	b.waitNav("the sign-in page is ready", `document.readyState === "complete" && !!document.querySelector('#email')`, 10*time.Second)
	b.do("sign in", chromedp.SendKeys(chromedp.CSS(`#email`), "owner@staff.test"), chromedp.SendKeys(chromedp.CSS(`#password`), browserAdminPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="sign-in-submit"]`)))
	b.waitNav("signed in", `location.pathname === "/admin/customers"`, 15*time.Second)

	// check screenshots the page at both widths, runs axe at those in
	// axeAt (axe on the long editor is slow: each page once or twice) and
	// looks for anything off-screen on the phone.
	check := func(name string, axeAt ...int) {
		t.Helper()
		for _, width := range []int{1280, 390} {
			b.do("resize", chromedp.EmulateViewport(int64(width), 900))
			shot := fmt.Sprintf("admin-%s-%d", name, width)
			t.Logf("screenshot %s", b.shot(shot))
			if slices.Contains(axeAt, width) {
				for _, v := range b.axe(src) {
					if v.Impact == "serious" || v.Impact == "critical" {
						t.Errorf("%s: %s (%s): %s at %s", shot, v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
					}
				}
			}
			if width < 640 {
				over := eval[string](b, "overflow", `(() => {
					const w = document.documentElement.clientWidth;
					const out = [];
					if (document.documentElement.scrollWidth > w + 1) out.push("the page is " + document.documentElement.scrollWidth + " px wide");
					document.querySelectorAll('main input, main select, main button, main table').forEach(e => { const r = e.getBoundingClientRect(); if (r.width > 0 && r.right > w + 1) out.push((e.name || e.tagName) + " is off-screen"); });
					return out.join("; ");
				})()`)
				if over != "" {
					t.Errorf("%s: %s", shot, over)
				}
			}
		}
		b.do("resize", chromedp.EmulateViewport(1280, 900))
	}
	// view saves what the phone shows of the element (the full-page
	// shots of the long editor are too tall to read).
	view := func(name, sel string) {
		t.Helper()
		b.do("resize", chromedp.EmulateViewport(390, 900))
		b.do("scroll to "+sel, chromedp.ScrollIntoView(chromedp.CSS(sel)))
		sctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
		if err != nil {
			b.fail("screenshot %s: %v", name, err)
		}
		dir := os.Getenv("TALLY_SHOTS")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "shots")
		}
		if err := os.WriteFile(filepath.Join(dir, "admin-"+name+"-390-view.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		b.do("resize", chromedp.EmulateViewport(1280, 900))
	}
	ready := func(what, sel string) {
		t.Helper()
		b.waitNav(what, `document.readyState === "complete" && !!document.querySelector('`+sel+`')`, 10*time.Second)
	}

	b.do("open the price book", chromedp.Navigate(base+"/admin/price-book"))
	ready("the price book", `[data-testid="pb-start-draft"]`)
	check("pricebook", 1280, 390)
	b.do("start a draft", chromedp.Click(chromedp.CSS(`[data-testid="pb-start-draft"]`)))
	ready("the editor", `form[data-testid="pb-editor"]`)
	check("pricebook-editor", 1280, 390)
	view("pricebook-editor-top", `[data-testid="pb-feature"]`)
	view("pricebook-editor-dimensions", `[data-testid="pb-dimension"]`)
	view("pricebook-editor-packs", `[data-testid="pb-pack"]`)

	// Tab down the editor on a phone, as a keyboard user would: no focused
	// control may sit under the Save bar stuck to the bottom (WCAG 2.4.11,
	// focus not obscured). Without the page's scroll padding the browser
	// stops each field just inside the viewport's bottom edge, under the bar.
	b.do("resize", chromedp.EmulateViewport(390, 700))
	eval[bool](b, "focus the first field", `(() => { window.scrollTo(0, 0); const el = document.querySelector('form[data-testid="pb-editor"] input:not([type=hidden])'); el.focus(); return true; })()`)
	for i := 0; i < 45; i++ {
		b.do("tab", chromedp.KeyEvent("\t"))
		if got := eval[string](b, "the focused field is in sight", `(() => {
			const bar = document.querySelector('.sticky-actions'), el = document.activeElement;
			if (!bar || !el || el === document.body || bar.contains(el)) return "";
			const r = el.getBoundingClientRect(), br = bar.getBoundingClientRect();
			return r.bottom > br.top + 1 && r.top < br.bottom - 1 ? (el.name || el.tagName) + ": " + Math.round(r.top) + "-" + Math.round(r.bottom) + " under the bar at " + Math.round(br.top) : "";
		})()`); got != "" {
			t.Errorf("tab %d: %s", i+1, got)
		}
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))

	// chat.request costs 1 credit; a typo first, refused beside the field.
	credits := `input[name="features[0].credits"]`
	b.do("type a wrong price", chromedp.SetValue(chromedp.CSS(credits), "1,5,0"), chromedp.Click(chromedp.CSS(`[data-testid="pb-save"]`)))
	ready("the error beside the field", `[data-testid="error-features[0].credits"]`)
	if got := b.value(credits); got != "1,5,0" {
		b.fail("typed value %q not kept", got)
	}
	check("pricebook-editor-error", 390)
	view("pricebook-editor-error", `[data-testid="error-features[0].credits"]`)
	b.do("fix it", chromedp.SetValue(chromedp.CSS(credits), "1.5"), chromedp.Click(chromedp.CSS(`[data-testid="pb-save"]`)))
	b.waitNav("saved", `!!document.querySelector('[data-testid="flash"]') && !document.querySelector('[data-testid="pb-errors"]')`, 10*time.Second)
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "Draft saved") {
		b.fail("flash %q", got)
	}

	b.do("preview the impact", chromedp.Click(chromedp.CSS(`[data-testid="pb-impact-link"]`)))
	ready("the impact", `[data-testid="impact-summary"]`)
	// 30 chat requests at 1.5 instead of 1: 15 credits more, all c0's.
	if got := b.text(`[data-testid="impact-delta"]`); got != "+15" {
		b.fail("impact %q, want +15", got)
	}
	if got := b.text(`[data-testid="impact-changed"]`); got != "1 of 3" {
		b.fail("customers affected %q, want 1 of 3", got)
	}
	check("pricebook-impact", 1280, 390)
	view("pricebook-impact", `[data-testid="impact-summary"]`)

	b.do("back to the draft", chromedp.Navigate(base+"/admin/price-book/draft"))
	ready("the editor", `[data-testid="pb-review-publish"]`)
	b.do("review and publish", chromedp.Click(chromedp.CSS(`[data-testid="pb-review-publish"]`)))
	ready("the confirmation", `form[data-testid="pb-confirm"]`)
	if got := b.text(`[data-testid="impact-delta"]`); got != "+15" {
		b.fail("confirmation impact %q", got)
	}
	check("pricebook-confirm", 390)
	view("pricebook-confirm", `form[data-testid="pb-confirm"]`)
	b.do("publish", chromedp.Click(chromedp.CSS(`[data-testid="confirm-submit"]`)))
	b.waitNav("published", `location.pathname === "/admin/price-book" && !!document.querySelector('[data-testid="flash"]')`, 10*time.Second)
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "Published version 2") {
		b.fail("flash %q", got)
	}
	if got := b.text(`[data-testid="pb-current-version"]`); got != "Version 2" {
		b.fail("in effect %q", got)
	}
	check("pricebook-published", 1280)
}
