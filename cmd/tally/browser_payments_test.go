package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPayments drives payments in Chromium on the real wiring, in
// sandbox mode (no Stripe key): a card added on the sandbox's card page, a
// one-click top-up (a pack, the confirmation, the balance in the header
// going up), then auto-refill turned on in its form and a debit through the
// API that the running refill runner answers: the header balance rises
// without a reload and the purchase is listed.
func TestBrowserPayments(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := newBrowser(t, 2*time.Minute)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 1, 1000) // customer c0 with 1,000 credits
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI", RefillPoll: 200 * time.Millisecond})
	defer stop()
	headerIs := func(what, want string) {
		t.Helper()
		b.waitJS(what, `(document.querySelector('[data-testid="header-balance-value"]') || {}).textContent?.trim() === "`+want+`"`, 10*time.Second)
	}

	// Sign in with a link from the API.
	st, sess := api(t, base, secret, "POST", "/api/v1/portal-sessions", map[string]any{"customer": "c0", "return_url": "https://pixel.example/app"})
	if st != http.StatusCreated {
		t.Fatalf("portal session: %d %v", st, sess)
	}
	b.do("open the sign-in link", chromedp.Navigate(sess["url"].(string)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="header-balance-value"]`)))
	b.ready()
	headerIs("the starting balance", "1,000")

	// No card yet: add one on the sandbox's card page.
	b.do("open billing", chromedp.Click(chromedp.CSS(`nav a[href="/portal/billing"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="add-card-first"]`)))
	b.ready()
	b.do("go to the card page", chromedp.Click(chromedp.CSS(`[data-testid="add-card-first"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="sandbox-card-form"]`)))
	b.do("enter the test card",
		chromedp.SendKeys(chromedp.CSS(`#card-number`), "4242 4242 4242 4242"),
		chromedp.SendKeys(chromedp.CSS(`#card-exp`), "12/40"),
		chromedp.SendKeys(chromedp.CSS(`#card-cvc`), "123"),
		chromedp.Click(chromedp.CSS(`[data-testid="sandbox-save-card"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="pack-pack_1000"]`)))
	b.ready()
	if got := b.text(`[data-testid="card-row"] p`); got != "Visa •••• 4242" {
		b.fail("saved card %q", got)
	}

	// One-click top-up: a pack, the confirmation, the header balance.
	b.do("click the Starter pack", chromedp.Click(chromedp.CSS(`[data-testid="pack-pack_1000"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-text"]`)))
	if got := b.text(`[data-testid="confirm-text"]`); got != "Add 1,000 credits for $10.00 with Visa •••• 4242?" {
		b.fail("confirmation %q", got)
	}
	// Paid: the dialog says so, and the header balance rises live (no
	// reload: the grant's commit pushes a balance event).
	b.processed(`[data-testid="confirm-pay"]`)
	b.do("pay", chromedp.Click(chromedp.CSS(`[data-testid="confirm-pay"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="top-up-added"]`)))
	headerIs("the header balance after the top-up", "2,000")
	if got := b.text(`[data-testid="top-up-added"] h2`); !strings.Contains(got, "1,000 credits added") {
		b.fail("dialog after the top-up: %q", got)
	}
	b.do("close the dialog", chromedp.Click(chromedp.CSS(`[data-testid="added-close"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="top-up-added"]`)))

	// Auto-refill on: below 1,500 credits, buy the Starter pack.
	b.do("open billing again", chromedp.Click(chromedp.CSS(`nav a[href="/portal/billing"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="save-refill"]`)))
	b.ready()
	eval[chromedp.Void](b, "count settles", `window.tallySettles = 0;
		document.body.addEventListener("htmx:afterSettle", (e) => { if (e.target.id === "auto-refill") window.tallySettles++ })`)
	b.do("fill the auto-refill form",
		chromedp.Click(chromedp.CSS(`#refill-enabled`)),
		chromedp.Clear(chromedp.CSS(`#refill-threshold`)),
		chromedp.SendKeys(chromedp.CSS(`#refill-threshold`), "1,500"),
		chromedp.Click(chromedp.CSS(`[data-testid="save-refill"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="refill-saved"]`)))
	b.waitJS("the form is set up again", `window.tallySettles >= 1`, 10*time.Second)
	if got := b.text(`[data-testid="next-refill"]`); got != "1,000 credits for $10.00" {
		b.fail("next refill %q", got)
	}

	// A debit through the API takes the balance below 1,500: the runner
	// buys the pack, and the header follows without a reload.
	eval[chromedp.Void](b, "mark the page", `window.tallyNoReload = true`)
	if st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": "chat.request", "quantity": 600}); st != http.StatusCreated {
		t.Fatalf("debit: %d %v", st, body)
	}
	headerIs("the refill lands in the header", "2,400")
	// The purchases list follows without a reload too (the starting 1,000
	// credits were a purchase the product recorded: listed as well).
	b.waitJS("the refill is listed without a reload", `document.querySelectorAll('[data-testid="receipt-row"]').length === 3`, 10*time.Second)
	if !eval[bool](b, "check no reload", `window.tallyNoReload === true`) {
		b.fail("the page reloaded to show the refill")
	}
	b.do("reload billing", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-testid="receipt-row"]`)))
	b.ready()
	rows := eval[[]string](b, "purchases", `[...document.querySelectorAll('[data-testid="receipt-row"]')].map(r => r.cells[1].textContent.trim() + " | " + r.cells[5].textContent.trim())`)
	if len(rows) != 3 || rows[0] != "Auto-refill: Starter: 1,000 credits | Paid" || rows[1] != "Starter: 1,000 credits | Paid" || rows[2] != "Credits purchased | Paid" {
		b.fail("purchases %q", rows)
	}
	if got := b.text(`[data-testid="month-refills"]`); got != "1 refill · $10.00" {
		b.fail("this month %q", got)
	}
}
