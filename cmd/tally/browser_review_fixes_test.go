package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserReviewFixes walks, at 1280 and 390 px, the pages a review in
// Chromium found wrong, and saves a screenshot of each: a new card that
// asks to authenticate names itself on the bank's page, a declined card
// says it was declined (not "fix the field"), and a daily cap saved below
// today's spend says so beside the field.
func TestBrowserReviewFixes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 4, 1000) // none has a card
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()
	for _, width := range []int{1280, 390} {
		// One customer per width: the card typed at 1280 is saved.
		customer := map[int]string{1280: "c1", 390: "c3"}[width]
		for range 5 {
			api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": customer, "feature": "chat.request", "quantity": 3})
		}
		b := newBrowser(t, 3*time.Minute)
		b.do("resize", chromedp.EmulateViewport(int64(width), 900))
		b.signIn(base, secret, map[string]any{"customer": customer, "return_url": "https://pixel.example/app"})
		shot := func(name string) { t.Logf("screenshot %s", b.shot(fmt.Sprintf("review-%s-%d", name, width))) }
		cardForm := func() {
			b.do("open the top-up", chromedp.Navigate(base+"/portal/top-up"))
			b.ready()
			b.do("pay with a card", chromedp.Click(chromedp.CSS(`[data-testid="focus-pay"]`)))
			b.waitNav("the card form", `!!document.querySelector('[data-testid="sandbox-pay"]')`, 10*time.Second)
		}
		typeCard := func(number string) {
			b.do("type the card", chromedp.SendKeys(chromedp.CSS(`#card-number`), number), chromedp.SendKeys(chromedp.CSS(`#card-exp`), "12/34"),
				chromedp.SendKeys(chromedp.CSS(`#card-cvc`), "123"), chromedp.Click(chromedp.CSS(`[data-testid="sandbox-pay"]`)))
		}

		cardForm()
		typeCard("4000 0000 0000 0002")
		b.waitNav("the decline", `!!document.querySelector('[data-testid="sandbox-card-errors"]')`, 10*time.Second)
		if got := b.text(`[data-testid="sandbox-card-errors"]`); got != "Your card was declined. Nothing was charged. Try another card." {
			b.fail("%d: a declined card's summary: %q", width, got)
		}
		if got := b.text(`[data-testid="error-number"]`); got != "Declined by the card's bank." {
			b.fail("%d: a declined card's field: %q", width, got)
		}
		shot("card-declined")

		cardForm()
		typeCard("4000 0027 6000 3184")
		b.waitNav("the bank's page", `!!document.querySelector('[data-testid="sandbox-auth"]')`, 10*time.Second)
		if got := strings.ReplaceAll(b.text(`[data-testid="sandbox-auth"]`), "\u00a0", " "); !strings.Contains(got, "a payment of $10.00 with Visa •••• 3184 to Pixel AI.") {
			b.fail("%d: the bank's page: %q", width, got)
		}
		shot("card-authenticate")

		b.do("open spend controls", chromedp.Navigate(base+"/portal/settings"))
		b.ready()
		b.do("cap today below its spend", chromedp.SendKeys(chromedp.CSS(`#settings-daily_cap`), "10"),
			chromedp.Click(chromedp.CSS(`[data-testid="settings-save"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="settings-saved"]`)))
		if got := b.text(`[data-testid="settings-note-daily_cap"]`); got != "Today's use (15 credits) is already above this cap, so requests are refused until it resets at midnight UTC." {
			b.fail("%d: the daily cap's note: %q", width, got)
		}
		shot("settings-cap-below-spend")
		for _, p := range []string{"/portal", "/portal/top-up", "/portal/usage"} {
			b.do("open "+p, chromedp.Navigate(base+p))
			b.ready()
			shot(strings.ReplaceAll(strings.Trim(p, "/"), "/", "_"))
		}
	}
}
