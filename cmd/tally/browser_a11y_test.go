package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// axeSource is axe-core, from npm (package.json pins it; .ci/setup runs
// npm ci). The browser tests inject it into pages to check them.
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Skipf("axe-core is not installed (node_modules/axe-core/axe.min.js: %v): run `bash .ci/setup` (npm ci) to check the portal's accessibility", err)
	}
	return string(b)
}

// axeViolation is one rule a page breaks, as axe-core reports it.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// axe runs axe-core's WCAG 2.x A and AA rules (2.0, 2.1, 2.2) on the page.
func (b *browser) axe(src string) []axeViolation {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`if (!window.axe) { `+src+` }`)); err != nil {
		b.fail("inject axe-core: %v", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]}})
		.then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help, targets: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("run axe-core: %v", err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		b.fail("axe-core's answer: %v", err)
	}
	return vs
}

// shot saves a full-page screenshot to $TALLY_SHOTS (default /tmp/shots).
func (b *browser) shot(name string) string {
	b.t.Helper()
	dir := os.Getenv("TALLY_SHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "shots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		b.fail("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// printMedia emulates CSS media ("print", or "" for the screen again).
func printMedia(media string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: media})
		return err
	})
}

// TestBrowserPortalAccessible opens every portal page at 1280 and at 390
// px (a phone) in Chromium: axe-core finds no WCAG 2.2 A/AA violation,
// nothing that matters is off-screen or needs sideways scrolling on the
// phone (the Billing tab, the purchases), and a screenshot of each is
// saved for people to look at. The confirmation dialog keeps the focus
// inside it and closes with Esc.
func TestBrowserPortalAccessible(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	src := axeSource(t)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 3, 1000) // c0 with a saved card, c1 without, c2 with a card that is declined
	saveSandboxCard(t, path, "c0")
	saveSandboxCard(t, path, "c2", "0002")
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI", RefillPoll: 100 * time.Millisecond})
	defer stop()
	for range 20 {
		api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": "chat.request", "quantity": 3})
	}
	// A call priced per dimension: its quantity ("5,951 input tokens · 678
	// cached input tokens · 1,076 output tokens") is the longest a usage row has.
	if st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": "gpt-4o",
		"quantities": map[string]any{"input_tokens": 5951, "cached_input_tokens": 678, "output_tokens": 1076}}); st != http.StatusCreated {
		t.Fatalf("gpt-4o usage: %d %v", st, body)
	}
	if st, body := api(t, base, secret, "POST", "/api/v1/grants", map[string]any{"customer": "c0", "credits": 250, "source": "promo", "reason": "Welcome credits",
		"expires_at": time.Now().Add(10 * 24 * time.Hour).UTC().Format(time.RFC3339)}); st != http.StatusCreated {
		t.Fatalf("grant: %d %v", st, body)
	}
	b := newBrowser(t, 5*time.Minute)
	signIn := func(customer, flow string) {
		t.Helper()
		body := map[string]any{"customer": customer, "return_url": "https://pixel.example/app"}
		if flow != "" {
			body["flow"] = flow
		}
		b.signIn(base, secret, body)
	}
	signIn("c0", "")
	// A purchase, for the purchases list and a receipt.
	b.do("open billing", chromedp.Navigate(base+"/portal/billing"))
	b.ready()
	b.do("buy a pack", chromedp.Click(chromedp.CSS(`[data-testid="pack-pack_1000"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-pay"]`)))
	b.processed(`[data-testid="confirm-pay"]`)
	b.do("pay", chromedp.Click(chromedp.CSS(`[data-testid="confirm-pay"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="top-up-added"]`)))
	receipt := eval[string](b, "the receipt link", `document.querySelector('[data-testid="top-up-added"] a[href^="/portal/receipts/"]').getAttribute("href")`)

	type page struct {
		name, path string
		ready      string // a selector that shows the page is there
		then       func()
	}
	pages := []page{
		{"overview", "/portal", `[data-testid="balance"]`, nil},
		{"usage", "/portal/usage", `select[name="feature"]`, nil},
		{"ledger", "/portal/ledger", `[data-testid="ledger-history"]`, nil},
		{"settings", "/portal/settings", `[data-testid="settings-form"]`, nil},
		{"notifications", "/portal/notifications", `[data-testid="notifications-list"]`, nil},
		{"billing", "/portal/billing", `[data-testid="receipts"]`, nil},
		{"top-up", "/portal/top-up", `[data-testid="focus-pay"]`, nil},
		{"receipt", receipt, `[data-testid="receipt"]`, func() {
			// Printed, the receipt is the receipt: no portal navigation.
			b.do("print media", printMedia("print"))
			if got := eval[string](b, "printed", `[...document.querySelectorAll('header, nav, [data-testid="print"], a[href="#main"]')].filter(e => e.getClientRects().length > 0).map(e => e.tagName).join(",")`); got != "" {
				b.fail("the printed receipt shows %s", got)
			}
			if eval[bool](b, "inline handlers", `!!document.querySelector('[onclick]')`) {
				b.fail("an inline event handler (the CSP forbids them)")
			}
			b.do("screen media", printMedia(""))
		}},
		{"plan", "/portal/plan", `[data-testid="plan-choices"]`, nil},
		{"plan-confirm", "/portal/plan", `[data-testid="choose-pro"]`, func() {
			b.ready()
			b.do("open the plan's confirmation", chromedp.Click(chromedp.CSS(`[data-testid="choose-pro"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="plan-confirm-go"]`)))
		}},
		{"confirm-dialog", "/portal/billing", `[data-testid="pack-pack_5500"]`, func() {
			b.ready()
			b.do("open the confirmation", chromedp.Click(chromedp.CSS(`[data-testid="pack-pack_5500"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-pay"]`)))
		}},
		{"custom-amount-error", "/portal/billing", `#custom-amount`, func() {
			b.ready()
			b.do("type 1e3", chromedp.SendKeys(chromedp.CSS(`#custom-amount`), "1e3"), chromedp.Click(chromedp.CSS(`[data-testid="custom-top-up"]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid="custom-error"]`)))
		}},
	}
	check := func(p page, width int) {
		t.Helper()
		b.do("open "+p.name, chromedp.Navigate(base+p.path))
		b.waitNav(p.name+" is there", `document.readyState === "complete" && !!document.querySelector('`+p.ready+`')`, 10*time.Second)
		if p.then != nil {
			p.then()
		}
		if p.name == "usage" {
			// "Paid from" heads the column: its cells don't repeat "from:"; the phone's stacked row, with no header, says it.
			got := eval[string](b, "paid from", `document.querySelector('[data-testid="usage-burn"]').innerText`)
			if wantFrom := width < 640; strings.HasPrefix(got, "from:") != wantFrom {
				t.Errorf("usage-%d: a paid-from cell reads %q", width, got)
			}
		}
		name := fmt.Sprintf("%s-%d", p.name, width)
		t.Logf("screenshot %s", b.shot(name))
		var serious []string
		for _, v := range b.axe(src) {
			line := fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
			if v.Impact == "serious" || v.Impact == "critical" {
				serious = append(serious, line)
			} else {
				t.Logf("%s: minor: %s", name, line)
			}
		}
		if len(serious) > 0 {
			t.Errorf("%s: axe-core finds WCAG A/AA violations:\n  %s", name, strings.Join(serious, "\n  "))
		}
		if width < 640 {
			// Nothing needs sideways scrolling, and every tab is on screen.
			over := eval[string](b, "overflow", `(() => {
				const w = document.documentElement.clientWidth;
				const out = [];
				if (document.documentElement.scrollWidth > w + 1) out.push("the page is " + document.documentElement.scrollWidth + " px wide");
				document.querySelectorAll('nav[aria-label="Portal"] a').forEach(a => { const r = a.getBoundingClientRect(); if (r.right > w + 1 || r.left < -1) out.push("tab " + a.textContent.trim() + " is off-screen"); });
				// Filters in a page's own nav (the history's types) are all in view, not cut off in a strip that scrolls.
				document.querySelectorAll('main nav a, main nav button').forEach(a => { const r = a.getBoundingClientRect(); if (r.width > 0 && (r.right > w + 1 || r.left < -1)) out.push("filter " + a.textContent.trim() + " is off-screen"); });
				document.querySelectorAll('main table').forEach(tb => { const r = tb.getBoundingClientRect(); if (r.width > 0 && r.right > w + 1) out.push("a table runs off-screen"); });
				// Every row's cells too: a table that fits can still hold cells that spill past it (the usage rows did).
				document.querySelectorAll('main table tr').forEach(tr => tr.querySelectorAll('td, th').forEach(td => {
					const r = td.getBoundingClientRect();
					if (r.width > 0 && (r.right > w + 1 || r.left < -1 || td.scrollWidth > td.clientWidth + 1)) out.push("a cell runs off-screen: " + td.textContent.trim().replace(/\s+/g, " ").slice(0, 60));
				}));
				return out.join("; ");
			})()`)
			if over != "" {
				t.Errorf("%s: %s", name, over)
			}
		}
	}
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		for _, p := range pages {
			check(p, width)
		}
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))

	// The confirmation dialog: the focus starts in it and stays in it, and
	// Esc closes it, giving the focus back to the button that opened it.
	b.do("open billing", chromedp.Navigate(base+"/portal/billing"))
	b.ready()
	b.do("focus a pack", chromedp.Focus(chromedp.CSS(`[data-testid="pack-pack_5500"]`)))
	b.do("open the confirmation", chromedp.Click(chromedp.CSS(`[data-testid="pack-pack_5500"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-pay"]`)))
	b.waitJS("the focus is in the dialog", `!!document.activeElement.closest('[role="dialog"]')`, 5*time.Second)
	for i := 0; i < 6; i++ {
		b.do("tab", chromedp.KeyEvent("\t"))
		if !eval[bool](b, "focus", `!!document.activeElement.closest('[role="dialog"]')`) {
			b.fail("Tab %d took the focus out of the dialog, to %s", i+1, eval[string](b, "where", `document.activeElement.outerHTML.slice(0, 120)`))
		}
	}
	b.do("shift-tab", chromedp.KeyEvent("\t", chromedp.KeyModifiers(8))) // 8: Shift
	if !eval[bool](b, "focus", `!!document.activeElement.closest('[role="dialog"]')`) {
		b.fail("Shift+Tab took the focus out of the dialog")
	}
	b.do("press Esc", chromedp.KeyEvent("\u001b"))
	b.waitJS("Esc closes the dialog", `!document.querySelector('[data-testid="top-up-confirm"]')`, 5*time.Second)
	b.waitJS("the focus goes back", `document.activeElement && document.activeElement.dataset.testid === "pack-pack_5500"`, 5*time.Second)

	// The pages a customer without a card, or without a session, meets.
	b2 := newBrowser(t, 3*time.Minute)
	b = b2
	signIn("c1", "top_up")
	// Another customer's link, used elsewhere: opening a link of c1's own
	// would end this browser's session (a new link ends the others).
	st, used := api(t, base, secret, "POST", "/api/v1/portal-sessions", map[string]any{"customer": "c0", "return_url": "https://pixel.example/app"})
	if st != http.StatusCreated {
		t.Fatalf("portal session: %d %v", st, used)
	}
	if res, err := http.Get(used["url"].(string)); err == nil { // used once, elsewhere
		res.Body.Close()
	}
	usedPath := strings.TrimPrefix(used["url"].(string), base)
	// The operator caps c1 at 50 credits a day: spend controls shows it
	// beside the field, and refuses a higher cap there.
	if st, body := api(t, base, secret, "PUT", "/api/v1/customers/c1/limits", map[string]any{"daily_cap": 50}); st != http.StatusOK {
		t.Fatalf("operator's cap: %d %v", st, body)
	}
	others := []page{
		{"settings-provider-cap", "/portal/settings", `#settings-daily_cap`, func() {
			if got := b.text(`#settings-daily_cap-help`); !strings.Contains(got, "50 credits a day") || !strings.Contains(got, "not a higher one") {
				b.fail("the daily cap's help %q does not state the operator's cap", got)
			}
			b.do("ask for more than the operator allows", chromedp.SendKeys(chromedp.CSS(`#settings-daily_cap`), "80"),
				chromedp.Click(chromedp.CSS(`[data-testid="settings-save"]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid="settings-error-daily_cap"]`)))
			// Once the answer is in, the saving spinner is gone (htmx settles
			// the swapped form within a few frames).
			b.waitJS("the spinner stops", `getComputedStyle(document.getElementById('settings-saving')).opacity === "0"`, 3*time.Second)
		}},
		{"link-used", usedPath, `[data-testid="error-page"]`, nil},
		{"top-up-new-card", "/portal/top-up", `[data-testid="focus-pay"]`, nil},
		{"sandbox-card-form", "/portal/top-up", `[data-testid="focus-pay"]`, func() {
			b.ready()
			b.do("pay with a card", chromedp.Click(chromedp.CSS(`[data-testid="focus-pay"]`)))
			b.waitNav("the card form", `!!document.querySelector('[data-testid="sandbox-card-form"]')`, 10*time.Second)
		}},
		{"sandbox-card-errors", "/portal/top-up", `[data-testid="focus-pay"]`, func() {
			b.ready()
			b.do("pay with a card", chromedp.Click(chromedp.CSS(`[data-testid="focus-pay"]`)))
			b.waitNav("the card form", `!!document.querySelector('[data-testid="sandbox-pay"]')`, 10*time.Second)
			b.do("pay without a card", chromedp.Click(chromedp.CSS(`[data-testid="sandbox-pay"]`)))
			b.waitNav("the errors", `!!document.querySelector('[data-testid="error-number"]')`, 10*time.Second)
		}},
	}
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		for _, p := range others {
			check(p, width)
		}
	}

	// A declined card: the decline dialog, and a declined auto-refill's
	// notice under every page's header.
	b = newBrowser(t, 3*time.Minute)
	signIn("c2", "")
	b.do("open billing", chromedp.Navigate(base+"/portal/billing"))
	b.ready()
	b.do("turn auto-refill on", chromedp.Click(chromedp.CSS(`#refill-enabled`)), chromedp.Clear(chromedp.CSS(`#refill-threshold`)),
		chromedp.SendKeys(chromedp.CSS(`#refill-threshold`), "2000"), chromedp.Click(chromedp.CSS(`[data-testid="save-refill"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="refill-saved"]`)))
	declined := []page{
		{"declined-dialog", "/portal/billing", `[data-testid="pack-pack_1000"]`, func() {
			b.ready()
			b.do("buy", chromedp.Click(chromedp.CSS(`[data-testid="pack-pack_1000"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-pay"]`)))
			b.processed(`[data-testid="confirm-pay"]`)
			b.do("pay", chromedp.Click(chromedp.CSS(`[data-testid="confirm-pay"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="use-another-card"]`)))
			b.waitJS("the focus is on paying with another card", `document.activeElement && document.activeElement.dataset.testid === "use-another-card"`, 5*time.Second)
		}},
		{"overview-refill-declined", "/portal", `[data-testid="billing-notice"]`, func() {
			if got := b.text(`[data-testid="auto-refill-state"]`); !strings.HasPrefix(got, "Payment failed") {
				b.fail("the overview says auto-refill is %q after a decline", got)
			}
		}},
	}
	for _, width := range []int{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		for _, p := range declined {
			check(p, width)
		}
	}
}
