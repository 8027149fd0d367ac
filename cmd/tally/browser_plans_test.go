package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPlanSandbox lives through a plan period in Chromium, in the
// demo's sandbox: Lumen Studio subscribes to Starter from the Plan tab (the
// dialog says what will happen first), presses the test clock's button,
// and sees the renewed credits: a second invoice, a new period. Each state
// is checked with axe-core at 1280 and 390 px and saved as a screenshot.
func TestBrowserPlanSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	src := axeSource(t)
	b := newBrowser(t, 4*time.Minute)
	base, stop := serveInProcess(t, serveConfig{DB: filepath.Join(t.TempDir(), "t.db"), Demo: true, ProductName: "Pixel AI"})
	defer stop()

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

	b.do("open the start page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="sign-in-lumen-studio"]`)))
	b.do("sign in as Lumen Studio", chromedp.Click(chromedp.CSS(`[data-testid="sign-in-lumen-studio"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="header-balance-value"]`)))
	b.do("open the Plan tab", chromedp.Click(chromedp.CSS(`nav a[href="/portal/plan"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="no-plan"]`)))
	b.ready()
	look("plan-none")
	before := b.text(`[data-testid="header-balance-value"]`)

	b.do("choose Starter", chromedp.Click(chromedp.CSS(`[data-testid="choose-starter"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="plan-confirm-go"]`)))
	if got := b.text(`[data-testid="plan-confirm-text"]`); got != "You will get 2,000 credits now and pay $19.00 today, then $19.00 every month for 2,000 credits." {
		b.fail("the confirmation says %q", got)
	}
	look("plan-confirm-subscribe")
	b.do("subscribe", chromedp.Click(chromedp.CSS(`[data-testid="plan-confirm-go"]`)))
	b.waitNav("subscribed", `!!document.querySelector('[data-testid="current-plan"]') && !!document.querySelector('[data-testid="flash"]')`, 10*time.Second)
	b.ready()
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "You are on Starter: 2,000 credits were added.") {
		b.fail("flash %q", got)
	}
	firstStatus := b.text(`[data-testid="plan-status"]`)
	if after := b.text(`[data-testid="header-balance-value"]`); after == before {
		b.fail("the header balance did not move (%s)", after)
	}
	look("plan-subscribed")

	// A period passes: the renewal is a second invoice and a new date.
	b.do("advance the test clock", chromedp.Click(chromedp.CSS(`[data-testid="advance-clock"]`)))
	b.waitNav("renewed", `document.querySelectorAll('[data-testid="plan-invoice"]').length === 2`, 15*time.Second)
	b.ready()
	if got := b.text(`[data-testid="flash"]`); !strings.Contains(got, "plans renewed") && !strings.Contains(got, "1 plan renewed") {
		b.fail("flash after the clock: %q", got)
	}
	if got := b.text(`[data-testid="plan-status"]`); got == firstStatus || !strings.HasPrefix(got, "Renews on") {
		b.fail("status after a period: %q (before: %q)", got, firstStatus)
	}
	if got := b.text(`[data-testid="plan-left"]`); got != "2,000" {
		b.fail("plan credits left after the renewal: %q, want 2,000", got)
	}
	// Starter keeps up to 1,000 unused credits: the first period's
	// 2,000 were barely used.
	if got := b.text(`[data-testid="rolled-over"]`); !strings.HasPrefix(got, "1,000 rolled-over credits") {
		b.fail("rolled over: %q", got)
	}
	look("plan-renewed")

	// The upgrade's confirmation, for the screenshots and axe.
	b.do("choose Pro", chromedp.Click(chromedp.CSS(`[data-testid="choose-pro"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="plan-confirm-go"]`)))
	if got := b.text(`[data-testid="plan-confirm-text"]`); !strings.HasPrefix(got, "You will get ") || !strings.Contains(got, " credits now and pay $") {
		b.fail("the upgrade's confirmation says %q", got)
	}
	look("plan-confirm-upgrade")
	b.do("open the overview", chromedp.Navigate(base+"/portal"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="plan-renewal"]`)))
	if got := b.text(`[data-testid="plan-renewal"]`); !strings.HasPrefix(got, "Your plan renews on") {
		b.fail("the overview's forecast says %q", got)
	}
	look("overview-plan")
}
