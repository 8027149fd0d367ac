package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserManyPagesInOneTab walks through a dozen portal pages in one tab
// and back. Each page's live balance holds an event stream open; a page the
// browser keeps in its back/forward cache used to keep that stream too, and
// after six pages Chromium had no connection left for the site (six per host
// over HTTP/1.1): the next click never loaded. app.js closes the stream when
// the page is left (and reloads a page shown again from the cache).
func TestBrowserManyPagesInOneTab(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := newBrowser(t, 2*time.Minute)
	base, stop := serveInProcess(t, serveConfig{DB: filepath.Join(t.TempDir(), "t.db"), Demo: true, ProductName: "Pixel AI"})
	defer stop()
	b.do("open the start page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="demo-customers"]`)))
	b.do("sign in", chromedp.Click(chromedp.CSS(`[data-testid="sign-in-acme-robotics"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="header-balance-value"]`)))
	for i, path := range []string{"/portal/ledger", "/portal/usage", "/portal/settings", "/portal/billing", "/portal",
		"/portal/ledger", "/portal/usage", "/portal/settings", "/portal/billing", "/portal", "/portal/ledger"} {
		b.do(fmt.Sprintf("page %d: %s", i+1, path), chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS(`[data-testid="header-balance-value"]`)))
		b.ready()
		time.Sleep(300 * time.Millisecond) // the page opens its event stream
	}
	b.do("go back", chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS(`[data-testid="header-balance-value"]`)))
	b.ready()
	if st := eval[int](b, "a request after the walk", `fetch("/healthz").then(r => r.status)`); st != http.StatusOK {
		b.fail("/healthz after the walk: %d", st)
	}
}
