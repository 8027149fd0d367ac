package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestBrowserRefillPath measures the moment Tally is for: a customer runs
// out mid-task, the product gets a 402 and sends them to the top-up with a
// `flow: top_up` link, and they come back to the product with credits. It
// counts the clicks and the seconds from opening the link to being back at
// return_url (a small product page served by the test) with the credits
// granted, with a saved card (target: 2 clicks at most) and without one
// (target: 3), and prints the figures (go test -v).
func TestBrowserRefillPath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 2, 5) // c0 and c1, 5 credits each
	saveSandboxCard(t, path, "c0")        // c0 has a saved card; c1 has none
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()
	product := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><title>Pixel AI</title><h1 id="product">Pixel AI: resuming your task</h1></html>`)
	}))
	defer product.Close()

	for _, tc := range []struct {
		name, customer string
		maxClicks      int
		pay            func(b *browser, click func(what, sel string))
	}{
		{"with a saved card", "c0", 2, func(b *browser, click func(what, sel string)) {
			click("pay with the saved card", `[data-testid="focus-pay"]`)
		}},
		{"without a saved card", "c1", 3, func(b *browser, click func(what, sel string)) {
			click("pay with a card", `[data-testid="focus-pay"]`)
			b.waitNav("the card form", `!!document.querySelector('[data-testid="sandbox-card-form"]') && document.activeElement && document.activeElement.id === "card-number"`, 10*time.Second)
			// The number field has the focus; the customer types and tabs.
			b.do("type the card", chromedp.SendKeys(chromedp.CSS(`#card-number`), "4242 4242 4242 4242"),
				chromedp.SendKeys(chromedp.CSS(`#card-exp`), "12/40"), chromedp.SendKeys(chromedp.CSS(`#card-cvc`), "123"))
			click("pay", `[data-testid="sandbox-pay"]`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, 2*time.Minute)
			// The product's request is refused: 10 credits needed, 5 available.
			st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": tc.customer, "feature": "document.analyze", "quantity": 1})
			e, _ := body["error"].(map[string]any)
			sp, _ := e["suggested_pack"].(map[string]any)
			if st != http.StatusPaymentRequired || fmt.Sprint(e["required"]) != "10" || sp["id"] != "pack_1000" {
				t.Fatalf("the refused request: %d %v", st, body)
			}
			st, sess := api(t, base, secret, "POST", "/api/v1/portal-sessions", map[string]any{"customer": tc.customer, "flow": "top_up",
				"required": e["required"], "return_url": product.URL + "/app?resume=task-1"})
			if st != http.StatusCreated {
				t.Fatalf("portal session: %d %v", st, sess)
			}
			clicks := 0
			click := func(what, sel string) {
				t.Helper()
				b.waitNav(what+": the button is there", `document.readyState === "complete" && !!document.querySelector('`+sel+`')`, 10*time.Second)
				b.do(what, chromedp.Click(chromedp.CSS(sel)))
				clicks++
			}
			start := time.Now()
			b.do("open the top-up link", chromedp.Navigate(sess["url"].(string)))
			b.waitNav("the focused top-up", `!!document.querySelector('[data-testid="focus-pay"]')`, 10*time.Second)
			if got := b.text(`[data-testid="focus-title"]`); got != "You're out of credits for Pixel AI" {
				b.fail("the top-up page says %q", got)
			}
			tc.pay(b, click)
			b.waitNav("back in the product", `location.href.startsWith("`+product.URL+`/app?resume=task-1") && !!document.getElementById("product")`, 15*time.Second)
			took := time.Since(start)
			_, bal := api(t, base, secret, "GET", "/api/v1/customers/"+tc.customer+"/balance", nil)
			if fmt.Sprint(bal["available"]) != "1005" {
				t.Fatalf("back in the product with %v credits available, want 1005", bal["available"])
			}
			t.Logf("refill path %s: %d click(s), %.1f s from opening the link to being back in the product with credits", tc.name, clicks, took.Seconds())
			if clicks > tc.maxClicks {
				t.Errorf("%d clicks %s, want at most %d", clicks, tc.name, tc.maxClicks)
			}
			// The product's request now goes through.
			if st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": tc.customer, "feature": "document.analyze", "quantity": 1}); st != http.StatusCreated {
				t.Fatalf("the retried request: %d %v", st, body)
			}
		})
	}
}

// saveSandboxCard gives a customer a saved sandbox test card (Visa 4242,
// or the test card ending in last4: 0002 is declined), as the demo does.
func saveSandboxCard(t *testing.T, path, ref string, last4 ...string) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := d.FindCustomer(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SaveProviderCustomer(ctx, c.ID, "sandbox", "cus_sandbox_test_"+ref); err != nil {
		t.Fatal(err)
	}
	l4 := "4242"
	if len(last4) > 0 {
		l4 = last4[0]
	}
	if _, err := d.SaveCard(ctx, c.ID, "sandbox", billing.Card{ProviderID: "pm_sandbox_" + l4 + "_test" + strings.ReplaceAll(ref, "-", ""),
		Brand: "visa", Last4: l4, ExpMonth: 12, ExpYear: 2040}); err != nil {
		t.Fatal(err)
	}
}
