package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// adminPages is Chromium signed in to the admin console at base, for
// looking at its pages: open one, then check it (a screenshot in
// $TALLY_SHOTS, axe-core's serious and critical findings, and, on a phone,
// nothing wider than the screen).
type adminPages struct {
	t         *testing.T
	b         *browser
	base, axe string
}

// signInAdmin opens the sign-in page of base and signs in as email.
func signInAdmin(t *testing.T, b *browser, base, axe, email string) *adminPages {
	t.Helper()
	b.do("open the sign-in page", chromedp.Navigate(base+"/admin/sign-in"))
	b.waitNav("the sign-in page is ready", `document.readyState === "complete" && !!document.querySelector('#email')`, 10*time.Second)
	b.do("sign in", chromedp.SendKeys(chromedp.CSS(`#email`), email), chromedp.SendKeys(chromedp.CSS(`#password`), browserAdminPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="sign-in-submit"]`)))
	b.waitNav("signed in", `location.pathname === "/admin/customers"`, 15*time.Second)
	return &adminPages{t: t, b: b, base: base, axe: axe}
}

// open goes to path and waits for the element ready.
func (p *adminPages) open(what, path, ready string) {
	p.t.Helper()
	p.b.do("open "+what, chromedp.Navigate(p.base+path))
	p.b.waitNav(what+" is there", `document.readyState === "complete" && !!document.querySelector('`+ready+`')`, 10*time.Second)
}

// check looks at the page as it is, at width (the viewport's).
func (p *adminPages) check(name string, width int) {
	p.t.Helper()
	shot := fmt.Sprintf("admin-%s-%d", name, width)
	p.t.Logf("screenshot %s", p.b.shot(shot))
	var serious []string
	for _, v := range p.b.axe(p.axe) {
		if v.Impact == "serious" || v.Impact == "critical" {
			serious = append(serious, fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", ")))
		}
	}
	if len(serious) > 0 {
		p.t.Errorf("%s: axe-core finds WCAG A/AA violations:\n  %s", shot, strings.Join(serious, "\n  "))
	}
	if width < 640 {
		if over := eval[string](p.b, "overflow", `(() => {
			const w = document.documentElement.clientWidth;
			const out = [];
			if (document.documentElement.scrollWidth > w + 1) out.push("the page is " + document.documentElement.scrollWidth + " px wide");
			document.querySelectorAll('nav[aria-label="Admin"] a').forEach(a => { const r = a.getBoundingClientRect(); if (r.right > w + 1) out.push("tab " + a.textContent.trim() + " is off-screen"); });
			return out.join("; ");
		})()`); over != "" {
			p.t.Errorf("%s: %s", shot, over)
		}
	}
}
