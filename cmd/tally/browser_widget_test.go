package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/tally-billing/tally/db"
)

// hostPage serves a product's page on its own origin: widget.js from
// Tally with the given attributes, and /token, the product's backend
// minting a fresh embed token (what onTokenExpiring calls).
func hostPage(t *testing.T, base, secret string, widgets ...string) *httptest.Server {
	t.Helper()
	var origin string
	mint := func() string {
		st, body := api(t, base, secret, "POST", "/api/v1/embed-tokens", map[string]any{"customer": "c0", "origin": origin})
		if st != http.StatusCreated {
			t.Errorf("mint: %d %v", st, body)
			return ""
		}
		return body["token"].(string)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/token":
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, mint())
		case "/token.json": // data-refresh-url: POST, answered {"token": ...}
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"token": %q}`, mint())
		case "/":
			var b strings.Builder
			b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Pixel AI</title>
<style>body{font-family:system-ui,sans-serif;margin:0;background:#f3f4f6}header{background:#111827;color:#fff;padding:12px 16px}main{max-width:880px;margin:24px auto;padding:0 16px;display:grid;gap:16px}.slot{background:#fff;border-radius:12px;box-shadow:0 1px 3px #0002;overflow:hidden}.slot.dark{background:#111827}h2{font-size:13px;color:#6b7280;margin:0 0 6px}</style>
<script>window.tallyTokens = 0; window.TallyWidget = { onTokenExpiring: async () => { window.tallyTokens++; return (await fetch("/token")).text(); } };</script>
</head><body><header>Pixel AI</header><main>`)
			for i, attrs := range widgets {
				cls := "slot"
				if strings.Contains(attrs, `data-theme="dark"`) {
					cls += " dark"
				}
				fmt.Fprintf(&b, `<section><h2>%s</h2><div class="%s" id="w%d"></div></section><script src="%s/widget.js" data-token="%s" data-target="#w%d" %s async></script>`,
					html.EscapeString(attrs), cls, i, base, mint(), i, attrs)
			}
			b.WriteString(`</main></body></html>`)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, b.String())
		default:
			http.NotFound(w, r)
		}
	}))
	origin = srv.URL
	t.Cleanup(srv.Close)
	return srv
}

// allowOrigin lets the admin key mint embed tokens for origin.
func allowOrigin(t *testing.T, path, secret string, origins ...string) {
	t.Helper()
	d, err := db.Open(context.Background(), path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	k, err := d.Authenticate(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetAPIKeyOrigins(context.Background(), k.ID, origins); err != nil {
		t.Fatal(err)
	}
}

// frameText waits until the element in the nth widget's frame has text
// that satisfies ok, and returns it.
func (b *browser) frameText(n int, sel string, ok func(string) bool, what string) string {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		fr := b.frameNode(ctx, n)
		if fr != nil {
			if s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.FromNode(fr), chromedp.AtLeast(0))); err == nil {
				last = strings.TrimSpace(s)
				if ok(last) {
					cancel()
					return last
				}
			}
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	b.fail("%s: %s in frame %d is %q", what, sel, n, last)
	return ""
}

// frameNode reads the iframe node afresh (the frame's document changes as
// the widget's forms navigate it).
func (b *browser) frameNode(ctx context.Context, n int) *chromedp.Node {
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(fmt.Sprintf(`#w%d iframe`, n)), chromedp.AtLeast(0)))
	if err != nil || len(nodes) == 0 {
		return nil
	}
	return nodes[0]
}

// frameEval runs js (a function body that returns a string) in the nth
// widget's frame, in a world of its own (the same DOM), and returns its
// answer, or "" when the frame is not there.
func (b *browser) frameEval(n int, js string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	fr := b.frameNode(ctx, n)
	if fr == nil {
		return ""
	}
	var out string
	chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		w, err := cdp.Call(ctx, tg, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: fr.FrameID, WorldName: "test"})
		if err != nil {
			return err
		}
		byValue := true
		r, err := cdp.Call(ctx, tg, runtime.Evaluate, runtime.EvaluateParams{Expression: "(() => {" + js + "})()", ContextID: w.ExecutionContextID, ReturnByValue: &byValue})
		if err != nil || r.ExceptionDetails != nil {
			return err
		}
		return json.Unmarshal(r.Result.Value, &out)
	}))
	return out
}

// frameFocus waits until the nth frame's focused element has data-testid
// want.
func (b *browser) frameFocus(n int, want, what string) {
	b.t.Helper()
	var got string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = b.frameEval(n, `const a = document.activeElement; return (a && a.getAttribute("data-testid")) || (a ? a.tagName : "");`); got == want {
			return
		}
	}
	b.fail("%s: the focus is on %q, want %q", what, got, want)
}

// frameClick clicks an element in the nth widget's frame.
func (b *browser) frameClick(n int, sel, what string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
		if fr := b.frameNode(ctx, n); fr != nil {
			if err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.FromNode(fr), chromedp.NodeVisible)); err == nil {
				cancel()
				return
			}
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	b.fail("%s: click %s in frame %d: %v", what, sel, n, err)
}

// TestBrowserWidget: a product's page on another localhost origin includes
// widget.js; the framed widget shows the balance, follows a debit made
// through the API without a reload, takes a refreshed token from the
// page's callback, and tops up with the saved card after the
// confirmation. A page of an origin the key does not allow cannot frame it.
// axe-core finds no WCAG 2.2 A/AA violation in the widget's themes.
// Screenshots (light, dark, compact at 1280 and 390 px) go to $TALLY_SHOTS.
func TestBrowserWidget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := newBrowser(t, 3*time.Minute)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 1, 1000) // customer c0 with 1,000 credits
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()

	// The host page's origin is known once its server listens: allow it then.
	host := hostPage(t, base, secret, `data-theme="light"`, `data-theme="dark" data-accent="#0ea5e9"`, `data-theme="light" data-compact data-refresh-url="/token.json"`)
	allowOrigin(t, path, secret, host.URL)

	b.do("open the product's page", chromedp.Navigate(host.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#w0 iframe`)))
	b.frameText(0, `[data-testid="widget-balance"]`, func(s string) bool { return s == "1,000" }, "the widget shows the balance")
	b.frameText(2, `[data-testid="widget-balance"]`, func(s string) bool { return s == "1,000" }, "the compact widget shows the balance")

	// A debit through the API: the widget follows without a reload.
	eval[chromedp.Void](b, "mark the page", `window.tallyNoReload = true`)
	if st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": "image.generate", "quantity": 1}); st != http.StatusCreated {
		t.Fatalf("debit: %d %v", st, body)
	}
	b.frameText(0, `[data-testid="widget-balance"]`, func(s string) bool { return s == "995" }, "the widget follows the debit")
	b.frameText(0, `[data-testid="widget-lasts"]`, func(s string) bool { return strings.HasPrefix(s, "Lasts about") || strings.HasPrefix(s, "Lasts more") }, "the projection")

	// Token refresh: the page's callback gives a new token, which the frame
	// takes (its forms carry it) and keeps working with.
	// (The compact widget asks its data-refresh-url instead.)
	tokenOf := func(n int) string {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		defer cancel()
		v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`[data-token-field]`), chromedp.FromNode(b.frameNode(ctx, n))))
		return v
	}
	old0, old2 := tokenOf(0), tokenOf(2)
	eval[chromedp.Void](b, "refresh the tokens", `window.TallyWidget.refresh()`)
	b.waitJS("the callback was asked for the two widgets without a refresh URL", `window.tallyTokens === 2`, 10*time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		v0, v2 := tokenOf(0), tokenOf(2)
		if v0 != old0 && strings.HasPrefix(v0, "tet1.") && v2 != old2 && strings.HasPrefix(v2, "tet1.") {
			break
		}
		if time.Now().After(deadline) {
			b.fail("the frames did not take the refreshed tokens (%q, %q)", v0, v2)
		}
	}
	if st, body := api(t, base, secret, "POST", "/api/v1/usage", map[string]any{"customer": "c0", "feature": "image.generate", "quantity": 1}); st != http.StatusCreated {
		t.Fatalf("debit: %d %v", st, body)
	}
	b.frameText(0, `[data-testid="widget-balance"]`, func(s string) bool { return s == "990" }, "the stream reconnected with the new token follows a debit")
	if !eval[bool](b, "no reload", `window.tallyNoReload === true`) {
		b.fail("the host page reloaded")
	}

	// Without a saved card the button opens the portal's top-up.
	b.frameText(0, `[data-testid="widget-open-portal"]`, func(s string) bool { return strings.HasPrefix(s, "Top up") }, "without a card, Top up opens billing")
	shots(t, b, "nocard")

	// With a saved card: a pack, the confirmation, paid; the balance rises.
	saveSandboxCard(t, path, "c0")
	b.do("reload with a saved card", chromedp.Reload())
	b.frameClick(0, `[data-testid="widget-topup-button"]`, "open the packs")
	b.frameText(0, `[data-testid="widget-packs"]`, func(s string) bool { return strings.Contains(s, "Charged to Visa •••• 4242 after you confirm") }, "the packs")
	shots(t, b, "packs")
	// Each step is a page of the frame: its first control takes the focus
	// (Chromium ignores autofocus in a cross-origin frame), and Escape
	// cancels the confirmation. Before, the focus fell to the frame's body
	// at every step and Escape did nothing.
	b.frameClick(0, `[data-testid="widget-pack-pack_1000"]`, "choose a pack")
	b.frameFocus(0, "widget-confirm-button", "the confirmation")
	b.do("press Escape", chromedp.KeyEvent(kb.Escape))
	b.frameText(0, `[data-testid="widget-topup-button"]`, func(s string) bool {
		return b.frameEval(0, `return document.querySelector('[data-testid="widget-confirm"]') ? "open" : "closed";`) == "closed"
	}, "Escape cancels the confirmation")
	b.frameClick(0, `[data-testid="widget-topup-button"]`, "open the packs again")
	b.frameClick(0, `[data-testid="widget-pack-pack_1000"]`, "choose a pack again")
	got := b.frameText(0, `[data-testid="widget-confirm"]`, func(s string) bool { return s != "" }, "the confirmation")
	if !strings.Contains(got, "Add 1,000 credits") || !strings.Contains(got, "$10.00") || !strings.Contains(got, "Visa •••• 4242") {
		b.fail("confirmation %q", got)
	}
	shots(t, b, "confirm")
	b.frameText(0, `[data-testid="widget-balance"]`, func(s string) bool { return s == "990" }, "nothing is charged before confirming")
	b.frameClick(0, `[data-testid="widget-confirm-button"]`, "pay")
	b.frameText(0, `[data-testid="widget-done"]`, func(s string) bool { return strings.Contains(s, "Added 1,000 credits") }, "the top-up succeeded")
	b.frameFocus(0, "widget-done", "the outcome takes the focus, so a screen reader reads it")
	b.frameText(0, `[data-testid="widget-balance"]`, func(s string) bool { return s == "1,990" }, "the balance rose")
	b.frameText(1, `[data-testid="widget-balance"]`, func(s string) bool { return s == "1,990" }, "the other widgets follow live")
	shots(t, b, "paid")

	// A token that expires under an open widget (a laptop's sleep): the
	// frame's next request meets "expired", and the widget comes back with
	// a new token from the page's callback. It stayed on "This balance view
	// has expired" for good, as its error page carried no token to renew.
	d, err := db.Open(context.Background(), path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tokenKey, _ := d.Secret(context.Background(), "embed_token_key", 32)
	k, _ := d.Authenticate(context.Background(), secret)
	c0, _ := d.FindCustomer(context.Background(), "c0")
	d.Close()
	claims, _ := json.Marshal(map[string]any{"k": k.ID, "c": c0.ID, "o": host.URL, "x": time.Now().Add(2 * time.Second).Unix(), "n": "soon"})
	body := base64.RawURLEncoding.EncodeToString(claims)
	mac := hmac.New(sha256.New, tokenKey)
	mac.Write([]byte("tally embed token\x00"))
	mac.Write([]byte(body))
	soon := "tet1." + body + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	b.frameEval(0, `document.querySelectorAll("[data-token-field]").forEach(i => i.value = "`+soon+`"); return "";`)
	time.Sleep(3 * time.Second)
	asked := eval[float64](b, "tokens asked so far", `window.tallyTokens`)
	b.frameClick(0, `[data-testid="widget-topup-button"]`, "open the packs with an expired token")
	b.frameClick(0, `[data-testid="widget-pack-pack_1000"]`, "choose a pack with an expired token")
	b.waitJS("the frame asked the page for a new token", fmt.Sprintf(`window.tallyTokens > %v`, asked), 10*time.Second)
	b.frameText(0, `[data-testid="widget-balance"]`, func(s string) bool { return s == "1,990" }, "the widget came back with the new token")

	// A page of an origin the key does not list cannot frame the widget.
	st, tok := api(t, base, secret, "POST", "/api/v1/embed-tokens", map[string]any{"customer": "c0", "origin": host.URL})
	if st != http.StatusCreated {
		t.Fatalf("mint: %d %v", st, tok)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>other</title><iframe id="f" src="%s/embed/widget?token=%s"></iframe>`, base, tok["token"])
	}))
	defer evil.Close()
	b.do("open a page of another origin", chromedp.Navigate(evil.URL+"/"))
	time.Sleep(time.Second)
	var frameURL string
	b.do("read the frame tree", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		tree, err := cdp.Call(ctx, tg, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			return err
		}
		for _, ch := range tree.FrameTree.ChildFrames {
			frameURL = ch.Frame.URL + ch.Frame.UnreachableURL
		}
		return nil
	}))
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	fr, _ := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(`#f`)))
	var shown string
	if len(fr) > 0 {
		shown, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="widget-balance"]`), chromedp.FromNode(fr[0]), chromedp.AtLeast(0)))
	}
	cancel()
	// Chromium replaces a frame its CSP refuses with its error page.
	if shown != "" || !strings.HasPrefix(frameURL, "chrome-error://") {
		t.Errorf("a page of another origin framed the widget: frame %q shows %q", frameURL, shown)
	}
	t.Logf("the other origin's frame: %q", frameURL)

	// The widget's page meets WCAG 2.2 AA in each theme (axe-core; opened
	// on its own, as axe cannot reach into a cross-origin frame).
	if src := axeSourceIfInstalled(); src != "" {
		for _, q := range []string{"theme=light", "theme=dark", "theme=dark&accent=%23fde047", "theme=light&compact=1"} {
			st, tok := api(t, base, secret, "POST", "/api/v1/embed-tokens", map[string]any{"customer": "c0", "origin": host.URL})
			if st != http.StatusCreated {
				t.Fatalf("mint: %d %v", st, tok)
			}
			b.do("open the widget's page", chromedp.Navigate(base+"/embed/widget?"+q+"&token="+tok["token"].(string)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid="widget-balance"]`)))
			eval[chromedp.Void](b, "open the packs", `document.querySelector("details").open = true`)
			for _, v := range b.axe(src) {
				t.Errorf("widget %s: %s (%s): %s at %s", q, v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
			}
		}
	}
}

// shots saves the host page with its three widgets at 1280 and 390 px.
func shots(t *testing.T, b *browser, name string) {
	t.Helper()
	if os.Getenv("TALLY_SHOTS") == "" {
		return
	}
	for _, w := range []int64{1280, 390} {
		b.do("resize", chromedp.EmulateViewport(w, 900))
		time.Sleep(400 * time.Millisecond)
		b.shot(fmt.Sprintf("widget-%s-%d", name, w)) // the first capture can miss the frames' paint
		t.Logf("screenshot %s", b.shot(fmt.Sprintf("widget-%s-%d", name, w)))
	}
	b.do("resize", chromedp.EmulateViewport(1280, 900))
}

// axeSourceIfInstalled is axe-core's source, or "" when npm ci has not run.
func axeSourceIfInstalled() string {
	b, err := os.ReadFile(filepath.Join("..", "..", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		return ""
	}
	return string(b)
}
