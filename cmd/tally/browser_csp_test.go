package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// cspWatch collects, from every page the tab shows, the Content Security
// Policy violations Chromium reports (its console messages, and the
// documents' securitypolicyviolation events) and uncaught script errors.
type cspWatch struct {
	mu    sync.Mutex
	found []string
}

func (w *cspWatch) add(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.found = append(w.found, s)
}

// take returns what was found since the last take.
func (w *cspWatch) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.found
	w.found = nil
	return out
}

// cspListener reports each violation on the console where the watch reads
// it; it runs in every document before the page's own scripts.
const cspListener = `document.addEventListener("securitypolicyviolation", (e) =>
	console.error("csp-violation", e.violatedDirective, e.blockedURI || "inline", (e.sourceFile || "") + ":" + e.lineNumber, e.sample || ""))`

func watchCSP(b *browser) *cspWatch {
	w := &cspWatch{}
	err := chromedp.Listen(b.ctx, func(ev any) {
		switch e := ev.(type) {
		case *cdplog.EventEntryAdded:
			if strings.Contains(e.Entry.Text, "Content Security Policy") || strings.Contains(e.Entry.Text, "Content-Security-Policy") {
				w.add(fmt.Sprintf("console (%s) %s: %s", e.Entry.Source, e.Entry.URL, e.Entry.Text))
			}
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			if msg := strings.Join(args, " "); strings.Contains(msg, "csp-violation") || strings.Contains(msg, "Content Security Policy") {
				w.add("event: " + msg)
			}
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			w.add(fmt.Sprintf("script error at %s:%d: %s", d.URL, d.LineNumber, msg))
		}
	})
	if err != nil {
		b.fail("listen to the tab: %v", err)
	}
	b.do("listen for CSP violations", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener})
		return err
	}))
	return w
}

// TestBrowserNoCSPViolations opens every kind of portal page in Chromium on
// the real wiring with demo data, under the Content-Security-Policy Tally
// sends, and uses their scripts (htmx requests and swaps, the live balance's
// event stream, the one-click top-up dialog, the receipt's print button, the
// sandbox's card page): Chromium must report no violation and no script
// error. A deliberate inline script at the end shows the watch sees one.
func TestBrowserNoCSPViolations(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := newBrowser(t, 3*time.Minute)
	base, stop := serveInProcess(t, serveConfig{DB: filepath.Join(t.TempDir(), "t.db"), Demo: true, ProductName: "Pixel AI"})
	defer stop()
	w := watchCSP(b)

	// clean lets the page settle (deferred scripts, the event stream, htmx's
	// first requests) and wants nothing reported on it.
	clean := func(what string) {
		t.Helper()
		b.ready()
		time.Sleep(400 * time.Millisecond)
		if found := w.take(); len(found) > 0 {
			b.fail("%s: %d CSP violations or script errors:\n%s", what, len(found), strings.Join(found, "\n"))
		}
	}
	open := func(what, path, visible string) {
		t.Helper()
		b.do("open "+what, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS(visible)))
		b.ready() // htmx set up: a click before that posts the form without it
		clean(what)
	}

	// The start page (demo), and signing in from it.
	open("the start page", "/", `[data-testid="demo-customers"]`)
	if csp := eval[string](b, "CSP header", `fetch("/", {credentials: "same-origin"}).then(r => r.headers.get("content-security-policy") || "")`); !strings.Contains(csp, "script-src 'self'") {
		b.fail("the start page's Content-Security-Policy is %q", csp)
	}
	b.do("sign in as Acme Robotics", chromedp.Click(chromedp.CSS(`[data-testid="sign-in-acme-robotics"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="header-balance-value"]`)))
	clean("the overview")

	open("usage", "/portal/usage", `select[name="feature"]`)
	b.do("filter the usage (htmx)", chromedp.SetValue(chromedp.CSS(`select[name="feature"]`), "chat.request"),
		chromedp.Click(chromedp.CSS(`[data-testid="usage-apply"]`)))
	b.waitJS("the filter applied", `location.search.includes("feature=chat.request")`, 10*time.Second)
	clean("usage, filtered")
	open("credits & history", "/portal/ledger", `main`)
	open("spend controls", "/portal/settings", `[data-testid="settings-form"]`)
	open("billing", "/portal/billing", `[data-testid="pack-pack_1000"]`)
	open("plan", "/portal/plan", `[data-testid="plan-choices"]`)
	b.do("open a plan's confirmation (htmx)", chromedp.Click(chromedp.CSS(`[data-testid="choose-pro"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="plan-confirm-go"]`)))
	clean("the plan's confirmation")
	b.do("back to billing", chromedp.Navigate(base+"/portal/billing"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="pack-pack_1000"]`)))
	b.ready()
	clean("billing again")

	// A one-click top-up: the confirmation and the result are htmx swaps.
	b.do("buy the Starter pack", chromedp.Click(chromedp.CSS(`[data-testid="pack-pack_1000"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-pay"]`)))
	b.processed(`[data-testid="confirm-pay"]`)
	b.do("pay", chromedp.Click(chromedp.CSS(`[data-testid="confirm-pay"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="top-up-added"]`)))
	clean("the top-up dialog")

	// A receipt, and its print button (app.js, not an inline onclick).
	open("billing again", "/portal/billing", `table a[href^="/portal/receipts/"]`)
	receipt := eval[string](b, "receipt link", `document.querySelector('table a[href^="/portal/receipts/"]').getAttribute("href")`)
	open("a receipt", receipt, `[data-print]`)
	eval[chromedp.Void](b, "stub print", `window.print = () => { window.tallyPrinted = true }`)
	b.do("click Print", chromedp.Click(chromedp.CSS(`[data-print]`)))
	b.waitJS("the print button prints", `window.tallyPrinted === true`, 5*time.Second)
	clean("the receipt after printing")

	// The sandbox's card page, and adding a card there.
	open("billing for a card", "/portal/billing", `[data-testid="add-card"]`)
	// (A click by script: the flash above may fade out and move the button
	// between where a mouse click aims and where it lands.)
	eval[chromedp.Void](b, "click Add a card", `document.querySelector('[data-testid="add-card"]').click()`)
	b.do("open the card page", chromedp.WaitVisible(chromedp.CSS(`[data-testid="sandbox-card-form"]`)))
	clean("the sandbox card page")
	b.do("add a card", chromedp.SendKeys(chromedp.CSS(`#card-number`), "4000 0000 0000 0002"),
		chromedp.SendKeys(chromedp.CSS(`#card-exp`), "12/40"),
		chromedp.SendKeys(chromedp.CSS(`#card-cvc`), "123"),
		chromedp.Click(chromedp.CSS(`[data-testid="sandbox-save-card"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)))
	clean("billing after adding a card")

	// An error page.
	b.do("open a page that does not exist", chromedp.Navigate(base+"/portal/no-such-page"), chromedp.WaitVisible(chromedp.CSS(`main`)))
	clean("the error page")
	if st := eval[int](b, "error status", `fetch("/portal/no-such-page").then(r => r.status)`); st != http.StatusNotFound {
		b.fail("the error page answered %d", st)
	}

	// The watch does see a violation: an inline script is refused.
	eval[chromedp.Void](b, "inject an inline script", `(() => { const s = document.createElement("script"); s.textContent = "window.tallyInline = true"; document.head.appendChild(s) })()`)
	b.waitJS("the violation is reported", `true`, time.Second)
	time.Sleep(300 * time.Millisecond)
	if eval[bool](b, "inline ran", `window.tallyInline === true`) {
		b.fail("an inline script ran under the policy")
	}
	if found := w.take(); len(found) == 0 {
		b.fail("an inline script was refused but the watch saw no violation: the test would miss real ones")
	}
}
