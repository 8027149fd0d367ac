package views

import (
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Widget is the embeddable balance widget (GET /embed/widget), drawn in
// an iframe on a product's own page.
type Widget struct {
	Fmt         Fmt
	CSS, JS     string // asset URLs
	Token       string // the embed token: every form of the widget carries it
	Origin      string // the host page's origin, the only one postMessage talks to
	Theme       string // light, dark or auto
	Accent      string // a #rrggbb colour, or ""
	Compact     bool
	ProductName string
	Live        WidgetLive
	Payments    bool
	Card        *billing.Card // the saved default card, if any
	Packs       []billing.CreditPack
	Panel       string        // "", "packs", "confirm", "done", "failed"
	Confirm     *TopUpConfirm // Panel "confirm"
	Message     string        // Panel "done" or "failed"
	// Expired marks the error page of an expired token: its script asks
	// the host page for a new token and reloads the frame with it.
	Expired bool
}

// ReloadQuery is the widget's query without its token: theme, accent and
// compact, for the frame to reload with a new token.
func (w Widget) ReloadQuery() string {
	q := url.Values{"theme": {w.Theme}}
	if w.Accent != "" {
		q.Set("accent", w.Accent)
	}
	if w.Compact {
		q.Set("compact", "1")
	}
	return q.Encode()
}

// WidgetLive is the part of the widget the event stream redraws.
type WidgetLive struct {
	Fmt      Fmt
	Balance  BalanceView
	Now      time.Time
	Forecast billing.Forecast
}

// WidgetLasts is the projection in a few words: "Lasts about 12 days",
// "Runs out tomorrow" (the overview's forecast, said briefly). "" when
// nothing is being used.
func WidgetLasts(l WidgetLive) string {
	if l.Balance.Depleted {
		return "No credits left: new requests are refused"
	}
	p := l.Forecast.Primary()
	switch p.Outlook {
	case billing.OutlookBeyond:
		return "Lasts more than a year at your current pace"
	case billing.OutlookRunsOut:
		switch n := dashboardDays(l.Fmt, l.Now, p.RunsOut); {
		case n <= 0:
			return "Runs out today at your current pace"
		case n == 1:
			return "Runs out tomorrow at your current pace"
		default:
			return "Lasts about " + l.Fmt.Int(n) + " days at your current pace"
		}
	}
	return "No usage lately"
}

// widgetClass is the theme's class on <html>: dark, or nothing (light;
// auto is decided by the widget's script from the reader's setting).
func widgetClass(w Widget) string {
	c := "widget"
	if w.Theme == "dark" {
		c += " dark"
	}
	if w.Compact {
		c += " compact"
	}
	return c
}

// widgetStyle sets the accent colour as CSS variables: the colour, and
// the text on it, white or near-black, whichever reads at 4.5:1 or better
// (a product's light accent would make white labels unreadable).
func widgetStyle(w Widget) string {
	accent := w.Accent
	if accent == "" {
		accent = "#4f46e5"
	}
	text := "#ffffff"
	if l, ok := luminance(accent); ok && (1.05)/(l+0.05) < 4.5 {
		text = "#111827"
	}
	return "--accent:" + accent + ";--accent-text:" + text
}

// luminance is the WCAG relative luminance of a #rgb or #rrggbb colour.
func luminance(hex string) (float64, bool) {
	h := hex[1:]
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 {
		return 0, false
	}
	var l float64
	for i, weight := range []float64{0.2126, 0.7152, 0.0722} {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return 0, false
		}
		c := float64(v) / 255
		if c <= 0.03928 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += weight * c
	}
	return l, true
}
