package handlers_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/views"
)

// dashNow is the overview tests' clock: midnight UTC, so "the last 7 days"
// are six whole days and every rate below is a round number.
var dashNow = time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)

// dashAPI is a test API whose clock reads dashNow.
func dashAPI(t *testing.T) *testAPI {
	t.Helper()
	a := newTestAPI(t)
	a.Clock.Advance(dashNow.Sub(testStart))
	return a
}

// dashUse is usage of one feature on each of the days from `from` to `to`
// days ago, at 10:00 UTC.
type dashUse struct {
	feature  string
	quantity int64
	from, to int
}

// dashCustomer creates a customer with a purchase of credits 40 days ago
// and the given daily usage, written at the times it happened.
func dashCustomer(t *testing.T, a *testAPI, ext string, credits int64, uses ...dashUse) {
	t.Helper()
	ctx := context.Background()
	a.customer(t, ext)
	items := []db.BackfillItem{{At: dashNow.AddDate(0, 0, -40), Grant: &billing.GrantRequest{Customer: ext,
		Credits: billing.CreditsOf(credits), Source: billing.SourcePurchase, Reason: "Starter pack"}}}
	for _, u := range uses {
		for d := u.from; d >= u.to; d-- {
			q := billing.QuantityOf(u.quantity)
			items = append(items, db.BackfillItem{At: dashNow.AddDate(0, 0, -d).Add(10 * time.Hour),
				Usage: &billing.UsageRequest{Customer: ext, Feature: u.feature, Quantity: &q}})
		}
	}
	slices.SortStableFunc(items, func(x, y db.BackfillItem) int { return x.At.Compare(y.At) })
	for i, err := range a.DB.Backfill(ctx, items) {
		if err != nil {
			t.Fatalf("backfill item %d: %v", i, err)
		}
	}
}

// dashText is the collapsed text of the element with a data-testid.
func dashText(d *goquery.Document, testid string) string {
	return usageText(d.Find(`[data-testid="` + testid + `"]`))
}

// dashWant checks that the element with testid says want (collapsed text).
func dashWant(t *testing.T, d *goquery.Document, testid, want string) {
	t.Helper()
	if got := dashText(d, testid); got != want {
		t.Errorf("%s = %q, want %q", testid, got, want)
	}
}

// date is how the portal writes a day (Fmt.Date leaves out the current year).
func dashDate(y int, m time.Month, d int) string {
	return views.NewFmt("", "").Date(time.Date(y, m, d, 12, 0, 0, 0, time.UTC))
}

func TestDashboardSteadyUsage(t *testing.T) {
	a := dashAPI(t)
	// 250 credits of documents and 50 of chat a day for 35 days: 300 a day,
	// 10,500 used of 20,000.
	dashCustomer(t, a, "steady", 20_000, dashUse{"document.analyze", 25, 35, 1}, dashUse{"chat.request", 50, 35, 1})
	d := usageSignIn(t, a, "steady").page("/portal")

	dashWant(t, d, "balance", "9,500")
	dashWant(t, d, "rate-7d", "300")
	dashWant(t, d, "rate-30d", "30-day: 300")
	// 9,500 / 300 = 31.67 days: 11 Apr, 16:00.
	dashWant(t, d, "runs-out", dashDate(2026, 4, 11))
	dashWant(t, d, "projection", "At your 7-day average of 300 credits a day, your 9,500 credits last until "+dashDate(2026, 4, 11)+".")
	// Until the end of next month (1 May): 51 days of 300, less the 9,500 there are.
	dashWant(t, d, "top-up-suggestion", "To last until "+dashDate(2026, 4, 30)+" at your current pace you need 5,800 credits more.")
	for _, absent := range []string{"low-balance-banner", "depleted-banner", "held", "expiring", "projection-expiry", "usage-chart-empty"} {
		if d.Find(`[data-testid="`+absent+`"]`).Length() != 0 {
			t.Errorf("%s is shown", absent)
		}
	}
	// The slot the payments work fills.
	slot := d.Find(`section#top-up[data-testid="top-up-slot"]`)
	if slot.Length() != 1 || slot.Find(`[data-testid="saved-cards-slot"]`).Length() != 1 || slot.Find(`[data-testid="auto-refill-slot"]`).Length() != 1 {
		t.Errorf("top-up slot: %q", usageText(slot))
	}
	if got := d.Find(`nav a[aria-current="page"]`).Text(); got != "Overview" {
		t.Errorf("active tab %q", got)
	}
}

// TestDashboardShortHistory: a customer who began using credits days ago is
// averaged over those days (billing.RateOver), and the overview says so
// instead of calling it a 7-day or 30-day average.
func TestDashboardShortHistory(t *testing.T) {
	a := dashAPI(t)
	// 90 a day on the last 3 days; 10 days of 30 a day for the second.
	dashCustomer(t, a, "newcomer", 1_000, dashUse{"chat.request", 90, 3, 1})
	dashCustomer(t, a, "recent", 1_000, dashUse{"chat.request", 30, 10, 1})

	d := usageSignIn(t, a, "newcomer").page("/portal")
	dashWant(t, d, "rate-7d", "90")
	dashWant(t, d, "rate-window", "Average over your first 3 days")
	if d.Find(`[data-testid="rate-30d"]`).Length() != 0 {
		t.Error("a 30-day figure for 3 days of usage")
	}
	if got := dashText(d, "projection"); !strings.HasPrefix(got, "At your average of 90 credits a day over your first 3 days, your 730 credits last until ") {
		t.Errorf("projection %q", got)
	}

	d = usageSignIn(t, a, "recent").page("/portal")
	dashWant(t, d, "rate-window", "7-day average · 10-day: 30")
}

func TestDashboardRange(t *testing.T) {
	a := dashAPI(t)
	// 100 a day for 23 days, then 400 a day for the last 6: the 7-day
	// average is 400, the 30-day one 4,700/29 = 162.07.
	dashCustomer(t, a, "irregular", 10_000, dashUse{"chat.request", 100, 29, 7}, dashUse{"chat.request", 400, 6, 1})
	d := usageSignIn(t, a, "irregular").page("/portal")

	dashWant(t, d, "balance", "5,300")
	dashWant(t, d, "rate-7d", "400")
	dashWant(t, d, "rate-30d", "30-day: 162")
	// 5,300 at 400 a day: 13.25 days (24 Mar); at 162.068: 32.7 days (12 Apr).
	dashWant(t, d, "projection", "At your 7-day and 30-day averages of 400 and 162 credits a day, your 5,300 credits last between "+
		dashDate(2026, 3, 24)+" and "+dashDate(2026, 4, 12)+".")
	dashWant(t, d, "runs-out", dashDate(2026, 3, 24)+" – "+dashDate(2026, 4, 12))
}

func TestDashboardNoUsage(t *testing.T) {
	a := dashAPI(t)
	dashCustomer(t, a, "idle", 1_000)
	d := usageSignIn(t, a, "idle").page("/portal")

	dashWant(t, d, "balance", "1,000")
	dashWant(t, d, "rate-7d", "0")
	dashWant(t, d, "runs-out", "No end date")
	dashWant(t, d, "projection", "You haven't used any credits in the last 30 days, so your 1,000 credits aren't running down.")
	dashWant(t, d, "top-up-suggestion", "Top up whenever you need more credits.")
	if d.Find(`[data-testid="usage-chart-empty"]`).Length() != 1 || d.Find(`[data-testid="usage-chart-svg"]`).Length() != 0 {
		t.Errorf("no empty state for the chart: %q", dashText(d, "usage-chart"))
	}
}

func TestDashboardDepleted(t *testing.T) {
	a := dashAPI(t)
	// 10 a day for the last 10 days uses up all 100 credits.
	dashCustomer(t, a, "empty", 100, dashUse{"chat.request", 10, 10, 1})
	d := usageSignIn(t, a, "empty").page("/portal")

	dashWant(t, d, "balance", "0")
	if d.Find(`[data-testid="depleted-banner"][role="alert"]`).Length() != 1 || d.Find(`[data-testid="low-balance-banner"]`).Length() != 0 {
		t.Fatalf("no depleted banner (or a low one too)")
	}
	if href, _ := d.Find(`[data-testid="depleted-banner"] a`).Attr("href"); href != "#top-up" && href != "/portal/top-up" {
		t.Errorf("the banner's top-up link goes to %q", href)
	}
	dashWant(t, d, "runs-out", "Out of credits")
	dashWant(t, d, "projection", "You have no credits left, so new requests are refused. Top up to keep going.")
	// 51 days at 10 a day.
	dashWant(t, d, "top-up-suggestion", "To last until "+dashDate(2026, 4, 30)+" at your current pace you need 510 credits more.")
}

func TestDashboardLowBalance(t *testing.T) {
	a := dashAPI(t)
	// The last top-up was 1,000, so the warning starts at 100; 40 a day for
	// 23 days leaves 80.
	dashCustomer(t, a, "low", 1_000, dashUse{"chat.request", 40, 23, 1})
	d := usageSignIn(t, a, "low").page("/portal")

	dashWant(t, d, "balance", "80")
	banner := d.Find(`[data-testid="low-balance-banner"]`)
	if banner.Length() != 1 || d.Find(`[data-testid="depleted-banner"]`).Length() != 0 {
		t.Fatalf("no low-balance banner")
	}
	if got, want := usageText(banner), "80 credits left. At your current pace they run out in 2 days, on "+dashDate(2026, 3, 13)+"."; !strings.Contains(got, want) {
		t.Errorf("banner %q does not say %q", got, want)
	}
	if banner.Find(`a[href="/portal/settings"]`).Length() != 1 {
		t.Errorf("the banner does not link to the alert setting")
	}
}

func TestDashboardHeldCredits(t *testing.T) {
	a := dashAPI(t)
	dashCustomer(t, a, "busy", 1_000)
	a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": "busy", "credits": 120}).want(t, http.StatusCreated)
	d := usageSignIn(t, a, "busy").page("/portal")

	dashWant(t, d, "balance", "1,000")
	dashWant(t, d, "available", "880")
	dashWant(t, d, "held", "880 available 120 credits reserved by running jobs")
	dashWant(t, d, "projection", "You haven't used any credits in the last 30 days, so your 880 credits aren't running down.")
}

func TestDashboardExpiryReminders(t *testing.T) {
	a := dashAPI(t)
	dashCustomer(t, a, "promo", 1_000, dashUse{"chat.request", 50, 7, 1})
	grant := func(credits int64, expires time.Time, reason string) {
		a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": "promo", "credits": credits, "source": "promo",
			"reason": reason, "expires_at": expires.Format(time.RFC3339)}).want(t, http.StatusCreated)
	}
	grant(500, dashNow.AddDate(0, 0, 5), "Conference promo") // reminded: expires within 30 days
	grant(300, dashNow.AddDate(0, 0, 60), "Spring promo")    // not yet
	d := usageSignIn(t, a, "promo").page("/portal")

	items := d.Find(`[data-testid="expiry-reminder"]`)
	if items.Length() != 1 {
		t.Fatalf("%d reminders, want 1: %q", items.Length(), dashText(d, "expiring"))
	}
	// At 50 a day the promo (burned first) is used for 250 before it expires.
	dashWant(t, d, "expiry-text", "500 credits expire on "+views.NewFmt("", "").DateTime(dashNow.AddDate(0, 0, 5)))
	if got := usageText(items); !strings.Contains(got, "Conference promo") || !strings.Contains(got, "(in 5 days)") {
		t.Errorf("reminder %q", got)
	}
	dashWant(t, d, "expiry-unused", "At your current pace about 250 credits of them will go unused.")
	dashWant(t, d, "projection-expiry", "This counts about 250 credits that expire on "+dashDate(2026, 3, 16)+" before you would use them.")

	// In the customer's time zone, the same moment is the evening before.
	b := usageSignIn(t, a, "promo")
	b.setTZ("America/Los_Angeles")
	d = b.page("/portal")
	dashWant(t, d, "expiry-text", "500 credits expire on "+dashDate(2026, 3, 15)+", 17:00")
}

func TestDashboardChart(t *testing.T) {
	a := dashAPI(t)
	dashCustomer(t, a, "steady", 20_000, dashUse{"document.analyze", 25, 35, 1}, dashUse{"chat.request", 50, 35, 1})
	b := usageSignIn(t, a, "steady")

	check := func(t *testing.T, d *goquery.Document, period, usedDays int, total string) {
		t.Helper()
		chart := d.Find(`#usage-chart[data-testid="usage-chart"]`)
		if got := chart.AttrOr("data-period", ""); got != dashInt(period) {
			t.Fatalf("period %q, want %d", got, period)
		}
		svg := chart.Find(`svg[data-testid="usage-chart-svg"]`)
		if svg.AttrOr("role", "") != "img" || !strings.Contains(svg.AttrOr("aria-label", ""), total+" credits used in the last "+dashInt(period)+" days") ||
			svg.ChildrenFiltered("title").Length() != 1 {
			t.Errorf("svg not labelled: role %q, aria-label %q", svg.AttrOr("role", ""), svg.AttrOr("aria-label", ""))
		}
		if n := svg.Find(`[data-testid="usage-bar"]`).Length(); n != period {
			t.Errorf("%d bars, want %d", n, period)
		}
		// Two features stacked on each day with usage; today has none yet.
		if n := svg.Find(`[data-testid="usage-segment"]`).Length(); n != 2*usedDays {
			t.Errorf("%d segments, want %d", n, 2*usedDays)
		}
		var legend []string
		chart.Find(`[data-testid="usage-legend-item"]`).Each(func(_ int, s *goquery.Selection) { legend = append(legend, usageText(s)) })
		if want := []string{"Document analysis " + dashInt(250*usedDays), "Chat request " + dashInt(50*usedDays)}; strings.Join(legend, "|") != strings.Join(want, "|") {
			t.Errorf("legend %q, want %q", legend, want)
		}
		table := chart.Find(`details table[data-testid="usage-table"]`)
		if n := table.Find(`[data-testid="usage-table-row"]`).Length(); n != period {
			t.Errorf("%d table rows, want %d", n, period)
		}
		var cells []string
		table.Find(`[data-testid="usage-table-row"]`).Eq(1).Children().Each(func(_ int, c *goquery.Selection) { cells = append(cells, usageText(c)) })
		if got := strings.Join(cells, "|"); got != dashDate(2026, 3, 10)+"|250|50|300" {
			t.Errorf("yesterday's row %q", got)
		}
		if got := usageText(table.Find(`[data-testid="usage-table-total"]`)); got != total {
			t.Errorf("table total %q, want %s", got, total)
		}
		if table.Find(`caption`).Length() != 1 || table.Find(`th[scope="col"]`).Length() != 4 {
			t.Errorf("table without caption or headers")
		}
	}

	t.Run("30 days by default", func(t *testing.T) {
		d := b.page("/portal")
		check(t, d, 30, 29, "8,700")
		if d.Find(`#usage-chart-30[aria-current="true"]`).Length() != 1 || d.Find(`#usage-chart-90[aria-current]`).Length() != 0 {
			t.Errorf("the 30 days toggle is not the current one")
		}
	})
	t.Run("90 days as a page", func(t *testing.T) {
		d := b.page("/portal?days=90")
		check(t, d, 90, 35, "10,500")
		if d.Find(`#usage-chart-90[aria-current="true"]`).Length() != 1 {
			t.Errorf("the 90 days toggle is not the current one")
		}
	})
	t.Run("an unknown period is 30 days", func(t *testing.T) {
		check(t, b.page("/portal?days=7000"), 30, 29, "8,700")
	})
	t.Run("the toggle works without JavaScript and with htmx", func(t *testing.T) {
		d := b.page("/portal")
		link := d.Find(`#usage-chart-90`)
		if link.AttrOr("href", "") != "/portal?days=90#usage-card" || link.AttrOr("hx-get", "") != "/portal?days=90" ||
			link.AttrOr("hx-target", "") != "#usage-chart" || link.AttrOr("hx-swap", "") != "outerHTML" || link.AttrOr("hx-indicator", "") != "#usage-card" {
			t.Errorf("toggle link: %v", link.Nodes[0].Attr)
		}
		if d.Find(`#usage-card .htmx-indicator`).Length() != 1 {
			t.Errorf("no loading indicator")
		}
	})
	t.Run("the htmx partial is the chart alone", func(t *testing.T) {
		r := b.fetch(a.HTTP.URL+"/portal?days=90", "HX-Request", "true", "HX-Target", "usage-chart").want(t, http.StatusOK)
		body := strings.TrimSpace(string(r.Raw))
		if !strings.HasPrefix(body, `<div id="usage-chart"`) || strings.Contains(body, "<html") || strings.Contains(body, "balance-card") {
			t.Fatalf("partial: %.200s", body)
		}
		if vary := strings.Join(r.Header.Values("Vary"), ", "); !strings.Contains(vary, "HX-Target") {
			t.Errorf("Vary %q", vary)
		}
		check(t, usageParse(t, r.Raw), 90, 35, "10,500")
	})
	t.Run("other htmx requests get the page", func(t *testing.T) {
		r := b.fetch(a.HTTP.URL+"/portal", "HX-Request", "true", "HX-Boosted", "true").want(t, http.StatusOK)
		if !strings.Contains(string(r.Raw), "<html") {
			t.Errorf("a boosted request got a fragment")
		}
	})
}

func TestDashboardSignedOut(t *testing.T) {
	a := dashAPI(t)
	b := usageSignIn(t, a, a.customer(t, "someone"))
	b.client.Jar = nil
	if r := b.fetch(a.HTTP.URL + "/portal"); r.Status != http.StatusSeeOther {
		t.Errorf("signed out: %d", r.Status)
	}
	if r := b.fetch(a.HTTP.URL+"/portal?days=90", "HX-Request", "true", "HX-Target", "usage-chart"); r.Status != http.StatusUnauthorized || r.Header.Get("HX-Redirect") == "" {
		t.Errorf("signed out partial: %d %q", r.Status, r.Header.Get("HX-Redirect"))
	}
}

// dashInt is a number as the portal writes it: 8,700.
func dashInt(n int) string { return views.NewFmt("", "").Int(int64(n)) }

// TestDashboardWarnsWithoutATopUp: the default low-balance warning reaches
// a customer who never topped up (10% of no top-up is nothing): 43 credits
// at 90 a day run out today, and the header and the overview say so. A
// customer whose credits last weeks is not warned.
func TestDashboardWarnsWithoutATopUp(t *testing.T) {
	a := dashAPI(t)
	ctx := context.Background()
	for _, c := range []struct {
		ext    string
		grant  int64
		low    bool
		banner string
	}{{"trial", 43 + 6*90, true, "low-balance-banner"}, {"comfy", 5000 + 6*90, false, ""}} {
		a.customer(t, c.ext)
		items := []db.BackfillItem{{At: dashNow.AddDate(0, 0, -20), Grant: &billing.GrantRequest{Customer: c.ext,
			Credits: billing.CreditsOf(c.grant), Source: billing.SourcePromo, Reason: "Trial credits"}}}
		for d := 6; d >= 1; d-- {
			q := billing.QuantityOf(90)
			items = append(items, db.BackfillItem{At: dashNow.AddDate(0, 0, -d).Add(10 * time.Hour),
				Usage: &billing.UsageRequest{Customer: c.ext, Feature: "chat.request", Quantity: &q}})
		}
		for i, err := range a.DB.Backfill(ctx, items) {
			if err != nil {
				t.Fatalf("backfill %d: %v", i, err)
			}
		}
		d := usageSignIn(t, a, c.ext).page("/portal")
		pill, _ := d.Find(`[data-testid="header-balance"]`).Attr("class")
		if got := strings.Contains(pill, "bg-amber-50"); got != c.low {
			t.Errorf("%s: header balance amber %v, want %v (%s)", c.ext, got, c.low, pill)
		}
		if got := d.Find(`[data-testid="low-balance-banner"]`).Length() == 1; got != c.low {
			t.Errorf("%s: low-balance banner shown %v, want %v", c.ext, got, c.low)
		}
		if c.low && !strings.Contains(dashText(d, "low-balance-banner"), "43 credits left") {
			t.Errorf("%s: banner %q", c.ext, dashText(d, "low-balance-banner"))
		}
	}
}

// TestDashboardDatesAgree: when the credits already last past the top-up
// suggestion's date, the suggestion says the same date as "Credits last
// until" beside it (not "past 30 Apr" next to "until 15 May").
func TestDashboardDatesAgree(t *testing.T) {
	a := dashAPI(t)
	// 300 a day for 35 days of 30,000: 19,500 left, 65 days: 15 May.
	dashCustomer(t, a, "ample", 30_000, dashUse{"document.analyze", 25, 35, 1}, dashUse{"chat.request", 50, 35, 1})
	d := usageSignIn(t, a, "ample").page("/portal")
	dashWant(t, d, "runs-out", dashDate(2026, 5, 15))
	dashWant(t, d, "top-up-suggestion", "At your current pace your credits last until "+dashDate(2026, 5, 15)+": no need to top up yet.")
}

// The balance card and "Expiring soon" give one figure for the same
// expiry: with two promos losing credits, the card's figure is the first
// one's (its reminder's), and the later one's loss is said apart, not
// added in as if it all went on the first date (780 against 529).
func TestDashboardExpiryFiguresAgree(t *testing.T) {
	a := dashAPI(t)
	dashCustomer(t, a, "promos", 1_000, dashUse{"chat.request", 50, 7, 1})
	grant := func(credits int64, expires time.Time, reason string) {
		a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": "promos", "credits": credits, "source": "promo",
			"reason": reason, "expires_at": expires.Format(time.RFC3339)}).want(t, http.StatusCreated)
	}
	grant(500, dashNow.AddDate(0, 0, 5), "Conference promo") // 250 used at 50 a day, 250 lost
	grant(800, dashNow.AddDate(0, 0, 20), "Spring promo")    // 750 used in the 15 days after, 50 lost
	d := usageSignIn(t, a, "promos").page("/portal")
	unused := d.Find(`[data-testid="expiry-unused"]`)
	if unused.Length() != 2 || usageText(unused.First()) != "At your current pace about 250 credits of them will go unused." ||
		usageText(unused.Last()) != "At your current pace about 50 credits of them will go unused." {
		t.Fatalf("reminders %q", dashText(d, "expiring"))
	}
	dashWant(t, d, "projection-expiry", "This counts about 250 credits that expire on "+dashDate(2026, 3, 16)+
		" before you would use them, and about 50 more that expire later.")
}
