package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is the browser the end-to-end test drives: $TALLY_CHROMIUM,
// or Debian's Chromium (.ci/setup installs it).
func chromiumPath() string {
	candidates := []string{"/usr/bin/chromium", "chromium", "chromium-browser"}
	if p := os.Getenv("TALLY_CHROMIUM"); p != "" {
		candidates = []string{p}
	}
	for _, p := range candidates {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// browser is one headless Chromium with a fresh profile, and the page it
// shows. Every wait is bounded by step; a failure saves a screenshot.
type browser struct {
	t    *testing.T
	ctx  context.Context // the tab; no deadline of its own (see step)
	step time.Duration
}

func newBrowser(t *testing.T, deadline time.Duration) *browser {
	t.Helper()
	if raceEnabled {
		// The race detector slows the server ten-fold, and Chromium's waits
		// then measure that, not Tally. The browser tests run in make test;
		// the server code they drive runs under -race in the handler tests.
		t.Skip("browser tests run without -race (make test)")
	}
	bin := chromiumPath()
	if bin == "" {
		t.Skip("chromium not found (install Debian's chromium, or run .ci/setup, or set TALLY_CHROMIUM): skipping the browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 1000),
	)
	// The whole test is bounded: the browser dies with this context.
	root, cancelRoot := context.WithTimeout(context.Background(), deadline)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancelRoot() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", bin, err)
	}
	return &browser{t: t, ctx: ctx, step: 15 * time.Second}
}

// do runs steps with the step timeout; on failure it saves a screenshot and
// stops the test.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// eval evaluates JavaScript (awaiting a promise) into T, with the step timeout.
func eval[T any](b *browser, what, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("%s: %v", what, err)
	}
	return v
}

// waitJS waits until the expression is true (polled in the page).
func (b *browser) waitJS(what, js string, within time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.fail("%s (waited %v for %s): %v", what, within, js, err)
	}
}

// waitNav waits until the expression is true across navigations: an
// evaluation that fails because the page is being replaced is retried.
func (b *browser) waitNav(what, js string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(25 * time.Millisecond)
	}
	b.fail("%s (waited %v for %s): %v", what, within, js, last)
}

// ready waits until the page has loaded and its scripts (htmx) have set
// it up: a click before that would post the form without htmx.
func (b *browser) ready() {
	b.t.Helper()
	b.waitJS("the page is ready", `document.readyState === "complete" && !!window.htmx`, 10*time.Second)
}

// processed waits until htmx has set up the form holding sel (or sel
// itself) after a swap brought it in: a click a moment earlier, before
// htmx processed the new content, posts the form without htmx.
func (b *browser) processed(sel string) {
	b.t.Helper()
	b.waitJS("htmx set up "+sel, `(() => { const e = document.querySelector('`+sel+`'); const f = e && (e.closest("form") || e); return !!(f && f["htmx-internal-data"] && f["htmx-internal-data"].initHash); })()`, 10*time.Second)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.fail("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) value(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.fail("value of %s: %v", sel, err)
	}
	return s
}

// fail saves a screenshot of the page, says where, and stops the test.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	dir := os.Getenv("TALLY_SCREENSHOT_DIR")
	if dir == "" {
		dir = b.t.ArtifactDir() // kept with go test -artifacts
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		msg += fmt.Sprintf("\n(no screenshot: %v)", err)
	} else if err := os.MkdirAll(dir, 0o755); err == nil {
		path := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name())+".png")
		if err := os.WriteFile(path, png, 0o644); err == nil {
			msg += "\nscreenshot: " + path
		}
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		msg += "\npage: " + loc
	}
	b.t.Fatal(msg)
}

// api calls Tally's API with the admin key and decodes the JSON answer.
func api(t *testing.T, base, secret, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// TestBrowserPortal drives the portal in Chromium on the real wiring: a
// sign-in link from the API, the live balance moving after a debit without
// a reload, filtering the usage history and downloading it as CSV, and
// setting a spend cap.
func TestBrowserPortal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := newBrowser(t, 2*time.Minute)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 1, 1000) // customer c0 with 1,000 credits
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()
	debit := func(feature string, n int) {
		t.Helper()
		for range n {
			if st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": feature, "quantity": 1}); st != http.StatusCreated {
				t.Fatalf("debit %s: %d %v", feature, st, body)
			}
		}
	}
	debit("chat.request", 4)   // 4 credits
	debit("image.generate", 2) // 10 credits

	// Sign in with a link, as the product's backend would hand one out.
	st, sess := api(t, base, secret, "POST", "/api/v1/portal-sessions", map[string]any{"customer": "c0", "return_url": "https://pixel.example/app"})
	if st != http.StatusCreated {
		t.Fatalf("portal session: %d %v", st, sess)
	}
	b.do("open the sign-in link", chromedp.Navigate(sess["url"].(string)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="header-balance-value"]`)))
	b.ready()
	if loc := eval[string](b, "location", `location.pathname`); loc != "/portal" {
		b.fail("the sign-in link landed on %s, want /portal", loc)
	}
	if got := b.text(`[data-testid="header-balance-value"]`); got != "986" {
		b.fail("header balance %q, want 986", got)
	}

	// A debit through the API shows in the header without a reload: the
	// event stream, well before the 30 s polling fallback.
	eval[chromedp.Void](b, "mark the page", `window.tallyNoReload = true`)
	debit("document.analyze", 1) // 10 credits
	b.waitJS("the header balance follows the debit",
		`document.querySelector('[data-testid="header-balance-value"]').textContent.trim() === "976"`, 10*time.Second)
	// So does every figure of the overview drawn from the balance.
	b.waitJS("the overview's balance follows the debit",
		`document.querySelector('[data-testid="balance"]').textContent.trim() === "976" && document.querySelector('[data-testid="projection"]').textContent.includes("976 credits")`, 10*time.Second)
	if !eval[bool](b, "check no reload", `window.tallyNoReload === true`) {
		b.fail("the page reloaded to show the new balance")
	}

	// Usage history, filtered by feature.
	b.do("open the usage page", chromedp.Click(chromedp.CSS(`nav a[href="/portal/usage"]`)),
		chromedp.WaitVisible(chromedp.CSS(`select[name="feature"]`)))
	b.ready()
	b.waitJS("all usage is listed", `document.querySelectorAll('[data-testid="usage-row"]').length === 7`, 10*time.Second)
	b.do("filter by image generation", chromedp.SetValue(chromedp.CSS(`select[name="feature"]`), "image.generate"),
		chromedp.Click(chromedp.CSS(`[data-testid="usage-apply"]`)))
	b.waitJS("only image generations are listed", `document.querySelectorAll('[data-testid="usage-row"]').length === 2`, 10*time.Second)

	// The CSV of what is shown, fetched with the page's own cookies.
	type download struct {
		Status      int    `json:"status"`
		ContentType string `json:"contentType"`
		Disposition string `json:"disposition"`
		Body        string `json:"body"`
	}
	csv := eval[download](b, "download the CSV", `(async () => {
		const a = document.querySelector('[data-testid="usage-csv"]');
		if (!a) return {status: -1, body: 'no [data-testid=usage-csv] link on the usage page'};
		const r = await fetch(a.getAttribute('href'), {credentials: 'same-origin'});
		return {status: r.status, contentType: r.headers.get('content-type') || '', disposition: r.headers.get('content-disposition') || '', body: await r.text()};
	})()`)
	lines := strings.Split(strings.TrimSpace(csv.Body), "\n")
	if csv.Status != 200 || !strings.HasPrefix(csv.ContentType, "text/csv") || len(lines) != 3 ||
		strings.Count(csv.Body, "image.generate") != 2 || strings.Contains(csv.Body, "chat.request") {
		b.fail("CSV download: %d %q %q, want a header and the 2 image generations:\n%s", csv.Status, csv.ContentType, csv.Disposition, csv.Body)
	}

	// Spend controls: a wrong value is refused next to its field, then a cap
	// is saved.
	b.do("open spend controls", chromedp.Click(chromedp.CSS(`nav a[href="/portal/settings"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="settings-form"]`)))
	b.ready()
	// Each htmx answer is swapped, then settled (htmx sets up the new form):
	// count the settles so no click lands on a form htmx has not set up yet.
	eval[chromedp.Void](b, "count settles", `window.tallySettles = 0;
		document.body.addEventListener("htmx:afterSettle", (e) => { if (e.target.id === "settings-form") window.tallySettles++ })`)
	b.do("type a negative cap", chromedp.Clear(chromedp.CSS(`#settings-daily_cap`)),
		chromedp.SendKeys(chromedp.CSS(`#settings-daily_cap`), "-5"),
		chromedp.Click(chromedp.CSS(`[data-testid="settings-save"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="settings-error-daily_cap"]`)))
	b.waitJS("the form comes back with its errors", `window.tallySettles >= 1`, 10*time.Second)
	if got := b.text(`[data-testid="settings-error-daily_cap"]`); !strings.Contains(got, "negative") {
		b.fail("error next to the daily cap: %q", got)
	}
	b.do("save a daily cap", chromedp.Clear(chromedp.CSS(`#settings-daily_cap`)),
		chromedp.SendKeys(chromedp.CSS(`#settings-daily_cap`), "250"),
		chromedp.Clear(chromedp.CSS(`#settings-monthly_cap`)),
		chromedp.SendKeys(chromedp.CSS(`#settings-monthly_cap`), "5000"),
		chromedp.Click(chromedp.CSS(`[data-testid="settings-save"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="settings-saved"]`)))
	if got := b.text(`[data-testid="settings-cap-today"]`); got != "250" {
		b.fail("daily meter shows cap %q after saving, want 250", got)
	}
	// The portal saves the customer's own caps; the operator's limits stay.
	if _, cu := api(t, base, secret, "GET", "/api/v1/customers/c0", nil); fmt.Sprint(cu["customer_caps"]) != "map[daily_cap:250 monthly_cap:5000]" ||
		fmt.Sprint(cu["limits"]) != "map[daily_cap:<nil> monthly_cap:<nil> overdraft_limit:0]" {
		b.fail("after saving: customer caps %v, limits %v", cu["customer_caps"], cu["limits"])
	}
	b.do("reload spend controls", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-testid="settings-form"]`)))
	if got := b.value(`#settings-daily_cap`); got != "250" {
		b.fail("daily cap field after a reload: %q, want 250", got)
	}
}

// signIn asks the API for a portal sign-in link (body: customer,
// return_url, flow...) and opens it, waiting for the signed-in header.
func (b *browser) signIn(base, secret string, body map[string]any) {
	b.t.Helper()
	st, sess := api(b.t, base, secret, "POST", "/api/v1/portal-sessions", body)
	if st != http.StatusCreated {
		b.t.Fatalf("portal session: %d %v", st, sess)
	}
	b.do("open the sign-in link", chromedp.Navigate(sess["url"].(string)))
	b.waitNav("signed in", `!!document.querySelector('[data-testid="header-balance-value"]')`, 10*time.Second)
	b.ready()
}

// TestBrowserTabsDoNotStall clicks through eight portal tabs in default
// Chromium (back/forward cache on, HTTP/1.1: six connections per host).
// Each page's live-balance stream used to stay open while the page sat in
// the back/forward cache, so after about six pages the next navigation
// waited for a free connection for about 50 seconds. Every navigation
// must finish in under 3 seconds, and the page shown must still get live
// balance updates.
func TestBrowserTabsDoNotStall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := newBrowser(t, 3*time.Minute)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 1, 1000)
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()
	b.signIn(base, secret, map[string]any{"customer": "c0", "return_url": "https://pixel.example/app"})
	tabs := []string{"/portal/usage", "/portal/ledger", "/portal/settings", "/portal/billing", "/portal", "/portal/usage", "/portal/ledger", "/portal/settings"}
	for i, tab := range tabs {
		start := time.Now()
		b.do("click "+tab, chromedp.Click(chromedp.CSS(`nav a[href="`+tab+`"]`)))
		b.waitNav("the tab opens", `location.pathname === "`+tab+`" && document.readyState === "complete" && !!document.querySelector('nav a[aria-current="page"][href="`+tab+`"]')`, 15*time.Second)
		took := time.Since(start)
		t.Logf("navigation %d to %s: %v", i+1, tab, took.Round(time.Millisecond))
		if took > 3*time.Second {
			b.fail("navigation %d to %s took %v, want under 3 s", i+1, tab, took)
		}
	}
	// The page now shown still follows the balance live.
	b.ready()
	if st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": "document.analyze", "quantity": 1}); st != http.StatusCreated {
		t.Fatalf("debit: %d %v", st, body)
	}
	b.waitJS("the header balance follows the debit",
		`document.querySelector('[data-testid="header-balance-value"]').textContent.trim() === "990"`, 10*time.Second)
	// Back through the history (pages restored from the cache reopen their
	// stream): each step is quick too.
	for i, want := range []string{"/portal/ledger", "/portal/usage", "/portal"} {
		start := time.Now()
		eval[chromedp.Void](b, "go back", `history.back()`)
		b.waitNav("the page is back", `location.pathname === "`+want+`" && document.readyState === "complete"`, 15*time.Second)
		if took := time.Since(start); took > 3*time.Second {
			b.fail("going back %d took %v", i+1, took)
		}
	}
	// The page restored from the cache opened its stream again.
	b.waitNav("the stream is open again", `window.tallyLive && window.tallyLive() === 1`, 10*time.Second)
	if st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": "document.analyze", "quantity": 1}); st != http.StatusCreated {
		t.Fatalf("debit: %d %v", st, body)
	}
	b.waitNav("the restored page's balance follows the debit",
		`document.querySelector('[data-testid="header-balance-value"]').textContent.trim() === "980"`, 10*time.Second)
}
