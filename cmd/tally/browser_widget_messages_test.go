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

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// TestBrowserWidgetPopupAndMessages: on a product's page served from an
// allowed origin, the widget's "Top up" without a saved card opens the
// portal's top-up in a new window (a popup target, signed in by a fresh
// link); and messages posted from a frame of another origin, to the page
// (widget.js) and to the widget's frame (embed.js), are ignored, while the
// same message from the page itself is taken.
func TestBrowserWidgetPopupAndMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := newBrowser(t, 3*time.Minute)
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 1, 1000) // customer c0, 1,000 credits, no card
	base, stop := serveInProcess(t, serveConfig{DB: path, ProductName: "Pixel AI"})
	defer stop()
	host := hostPage(t, base, secret, `data-theme="light"`)
	allowOrigin(t, path, secret, host.URL)

	b.do("open the product's page", chromedp.Navigate(host.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#w0 iframe`)))
	b.frameText(0, `[data-testid="widget-balance"]`, func(s string) bool { return s == "1,000" }, "the widget shows the balance")

	// (1) Top up without a card: a new window, the portal's top-up.
	pages := func() map[target.ID]*target.Info {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			b.fail("targets: %v", err)
		}
		out := map[target.ID]*target.Info{}
		for _, in := range infos {
			if in.Type == "page" {
				out[in.TargetID] = in
			}
		}
		return out
	}
	before := pages()
	b.frameText(0, `[data-testid="widget-open-portal"]`, func(s string) bool { return strings.HasPrefix(s, "Top up") }, "without a card, Top up opens billing")
	b.frameClick(0, `[data-testid="widget-open-portal"]`, "Top up")
	var popup *target.Info
	for deadline := time.Now().Add(15 * time.Second); popup == nil; time.Sleep(100 * time.Millisecond) {
		for id, in := range pages() {
			if before[id] == nil && strings.HasPrefix(in.URL, base+"/portal/top-up") {
				popup = in
			}
		}
		if time.Now().After(deadline) {
			b.fail("no new window at %s/portal/top-up; pages: %v", base, pages())
		}
	}
	if popup.OpenerID == "" {
		t.Errorf("the top-up window has no opener: not a popup of the page (%+v)", popup)
	}
	pctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(popup.TargetID))
	defer cancel()
	wctx, wcancel := context.WithTimeout(pctx, 15*time.Second)
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(`[data-testid="focus-need"]`))); err != nil {
		t.Fatalf("the popup shows no top-up: %v", err)
	}
	signedIn, _ := chromedp.Run(wctx, chromedp.Evaluate[bool](`document.querySelector('[data-testid="focus-need"]').textContent.includes("1,000") && location.pathname === "/portal/top-up"`))
	wcancel()
	if !signedIn {
		t.Errorf("the popup is not c0's signed-in top-up")
	}
	if main := pages(); main[popup.TargetID] == nil || len(main) != len(before)+1 {
		t.Errorf("want the page and one popup, have %d pages", len(main))
	}

	// (2) A frame of another origin posts what the widget's frame would,
	// to the page and to the widget's frame: both ignore it.
	tokenOf := func() string {
		ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
		defer cancel()
		v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`[data-token-field]`), chromedp.FromNode(b.frameNode(ctx, 0))))
		return v
	}
	token := tokenOf()
	if !strings.HasPrefix(token, "tet1.") {
		t.Fatalf("the frame's token: %q", token)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>ads</title><script>
			let n = 0;
			const send = () => {
				parent.postMessage({type: "tally:height", height: 999}, "*");
				parent.postMessage({type: "tally:expired"}, "*");
				parent.frames[0].postMessage({type: "tally:token", token: "tet1.forged"}, "*");
				if (++n < 10) setTimeout(send, 100); else document.title = "sent";
			};
			send();
		</script>`)
	}))
	defer evil.Close()
	eval[bool](b, "add a frame of another origin", `(() => { const f = document.createElement("iframe"); f.id = "evil"; f.onload = () => { window.evilLoaded = true }; f.src = "`+evil.URL+`/"; document.body.appendChild(f); return true; })()`)
	b.waitJS("the other origin's frame is loaded", `window.evilLoaded === true`, 5*time.Second)
	time.Sleep(1500 * time.Millisecond) // its ten rounds of messages, 100 ms apart
	if h := eval[string](b, "the frame's height", `document.querySelector("#w0 iframe").style.height`); h == "999px" {
		t.Errorf("widget.js took a tally:height from another origin: %s", h)
	}
	if n := eval[int](b, "token refreshes", `window.tallyTokens`); n != 0 {
		t.Errorf("widget.js took a tally:expired from another origin: %d token refreshes", n)
	}
	if got := tokenOf(); got != token {
		t.Errorf("the frame took a token from another origin: %q", got)
	}
	// The page itself (the origin the frame was minted for) is listened to.
	eval[bool](b, "the page posts a token", `(document.querySelector("#w0 iframe").contentWindow.postMessage({type: "tally:token", token: "tet1.from-the-page"}, "`+base+`"), true)`)
	// Generous: each look into the frame is a DevTools round trip, slow on a
	// loaded machine; the loop ends as soon as the token is there.
	for deadline := time.Now().Add(15 * time.Second); tokenOf() != "tet1.from-the-page"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.fail("the frame ignores its own page too (token %q): the test cannot tell", tokenOf())
		}
	}
	// Leave the page before Tally stops: a widget whose stream ends asks
	// the page for a new token, which would then fail to mint.
	b.do("leave the page", chromedp.Navigate("about:blank"))
}
