package handlers_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// usageBrowser is a signed-in portal customer: a cookie jar, redirects not
// followed, so each answer is checked as it comes.
type usageBrowser struct {
	t      *testing.T
	a      *testAPI
	client *http.Client
}

// usageSignIn signs customer in the way a product does: an admin key asks
// for a portal session, the customer opens its URL.
func usageSignIn(t *testing.T, a *testAPI, customer string) *usageBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &usageBrowser{t: t, a: a, client: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	r := a.do("POST", "/api/v1/portal-sessions", a.Admin, map[string]any{"customer": customer, "return_url": "https://app.example/"}).
		want(t, http.StatusCreated)
	link, _ := r.Body["url"].(string)
	if res := b.fetch(link); res.Status != http.StatusSeeOther {
		t.Fatalf("sign-in link answered %d, want 303; body %.300s", res.Status, res.Raw)
	}
	return b
}

// setTZ is what app.js does: the browser's time zone in the tz cookie.
func (b *usageBrowser) setTZ(tz string) {
	u, _ := url.Parse(b.a.HTTP.URL)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "tz", Value: url.QueryEscape(tz), Path: "/"}})
}

func (b *usageBrowser) fetch(u string, headers ...string) response {
	b.t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Raw: raw}
}

// page GETs a portal path and wants 200.
func (b *usageBrowser) page(path string, headers ...string) *goquery.Document {
	b.t.Helper()
	r := b.fetch(b.a.HTTP.URL+path, headers...).want(b.t, http.StatusOK)
	return usageParse(b.t, r.Raw)
}

// usageParse parses a page or a fragment; fragments of table rows are
// parsed inside a table, as the browser does when htmx swaps them in.
func usageParse(t *testing.T, raw []byte) *goquery.Document {
	t.Helper()
	s := string(raw)
	if strings.HasPrefix(s, "<tbody") {
		s = "<table>" + s + "</table>"
	}
	d, err := goquery.NewDocumentFromReader(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// usageText is an element's text with its whitespace collapsed.
func usageText(s *goquery.Selection) string { return strings.Join(strings.Fields(s.Text()), " ") }

// usageIDs are the entry ids of a page's rows, in order.
func usageIDs(d *goquery.Document, row string) []string {
	var ids []string
	d.Find(`[data-testid="` + row + `"]`).Each(func(_ int, s *goquery.Selection) {
		ids = append(ids, s.AttrOr("data-entry", ""))
	})
	return ids
}

// walk follows a history's "Load more" from path to its end, as a browser
// does without JavaScript (links to full pages) or with htmx (the next rows
// alone), and returns the entry ids of the rows in order and the links it
// followed. kind is usage or ledger.
func (b *usageBrowser) walk(t *testing.T, path, kind string, htmx bool) (ids, links []string) {
	t.Helper()
	for pages := 0; path != ""; pages++ {
		if pages > 10 {
			t.Fatalf("pagination of %s does not end", path)
		}
		var d *goquery.Document
		if htmx && pages > 0 {
			r := b.fetch(b.a.HTTP.URL+path, "HX-Request", "true", "HX-Target", kind+"-more").want(t, http.StatusOK)
			if body := string(r.Raw); !strings.HasPrefix(body, "<tbody") || strings.Contains(body, "<html") || strings.Contains(body, "<form") {
				t.Fatalf("load more answered more than rows: %.300s", body)
			}
			d = usageParse(t, r.Raw)
		} else {
			d = b.page(path)
		}
		page := usageIDs(d, kind+"-row")
		if len(page) == 0 || len(page) > 50 {
			t.Fatalf("page %d has %d rows", pages, len(page))
		}
		ids = append(ids, page...)
		more := d.Find(`[data-testid="` + kind + `-more"]`)
		path = more.AttrOr("href", "")
		if hx := more.AttrOr("hx-get", ""); hx != path {
			t.Fatalf("load more: href %q but hx-get %q", path, hx)
		}
		if path != "" {
			links = append(links, path)
		}
	}
	return ids, links
}

// usageEvent is one usage event of a batch.
type usageEvent struct {
	feature, quantity string
	meta              map[string]string
}

// meter sends events in batches of up to 1,000 and returns the debit ids.
func (a *testAPI) meter(t *testing.T, customer string, events ...usageEvent) []string {
	t.Helper()
	var ids []string
	for start := 0; start < len(events); start += 1000 {
		var batch []map[string]any
		for _, e := range events[start:min(start+1000, len(events))] {
			ev := map[string]any{"customer": customer, "feature": e.feature, "quantity": json.Number(e.quantity)}
			if e.meta != nil {
				ev["metadata"] = e.meta
			}
			batch = append(batch, ev)
		}
		r := a.do("POST", "/api/v1/usage/batch", a.Meter, map[string]any{"events": batch}).want(t, http.StatusOK)
		for _, res := range arr(t, r.Body["data"]) {
			m := obj(t, res)
			if num(t, m["status"]) != "201" {
				t.Fatalf("usage event refused: %v", m)
			}
			ids = append(ids, obj(t, m["debit"])["id"].(string))
		}
	}
	return ids
}

func repeatEvent(n int, e usageEvent) []usageEvent {
	out := make([]usageEvent, n)
	for i := range out {
		out[i] = e
	}
	return out
}

// usageCustomer is a customer with credits: a promo lot that expires and a
// purchase that does not.
func usageCustomer(t *testing.T, a *testAPI, externalID string) (cus string, promoExpires time.Time) {
	t.Helper()
	cus = a.customer(t, externalID)
	promoExpires = testStart.Add(40 * 24 * time.Hour)
	a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": cus, "credits": 10, "source": "promo",
		"reason": "Promo grant", "expires_at": promoExpires}).want(t, http.StatusCreated)
	a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": cus, "credits": 100000, "source": "purchase",
		"reason": "Scale pack ($100.00)"}).want(t, http.StatusCreated)
	return cus, promoExpires
}

func TestUsagePageRows(t *testing.T) {
	a := newTestAPI(t)
	cus, promoExp := usageCustomer(t, a, "rows-co")
	// 8 credits from the promo lot, then 5 that take its last 2 and 3 from the purchase.
	first := a.meter(t, cus, usageEvent{"chat.request", "8", map[string]string{"user": "alice", "project": "apollo"}})
	split := a.meter(t, cus, usageEvent{"image.generate", "1", nil})
	tokens := a.meter(t, cus, usageEvent{"gpt-4o.tokens", "1000", map[string]string{"user": "bob"}})

	b := usageSignIn(t, a, cus)
	d := b.page("/portal/usage")
	if got, want := usageIDs(d, "usage-row"), []string{tokens[0], split[0], first[0]}; !slices.Equal(got, want) {
		t.Fatalf("rows %v, want newest first %v", got, want)
	}
	f := views.NewFmt("", "")
	row := func(id string) *goquery.Selection {
		return d.Find(`[data-testid="usage-row"][data-entry="` + id + `"]`)
	}
	cell := func(id, col string) string { return usageText(row(id).Find(`[data-testid="usage-` + col + `"]`)) }

	t.Run("a debit from one lot", func(t *testing.T) {
		id := first[0]
		checks := map[string]string{"feature": "Chat request", "quantity": "8 requests", "credits": "8 credits", "version": "Price book v1",
			"burns": "from: Promo grant · expires " + f.Date(promoExp)}
		for col, want := range checks {
			if got := cell(id, col); got != want {
				t.Errorf("%s: %q, want %q", col, got, want)
			}
		}
		if dt := row(id).Find("time").AttrOr("datetime", ""); dt != testStart.Format(time.RFC3339) {
			t.Errorf("time datetime %q, want %q", dt, testStart.Format(time.RFC3339))
		}
		var tags []string
		row(id).Find(`[data-testid="usage-tag"]`).Each(func(_ int, s *goquery.Selection) { tags = append(tags, usageText(s)) })
		if !slices.Equal(tags, []string{"project: apollo", "user: alice"}) {
			t.Errorf("tags %v", tags)
		}
		if href := row(id).Find(`[data-testid="usage-tag"]`).Last().AttrOr("href", ""); href != "/portal/usage?tag=user&value=alice" {
			t.Errorf("tag link %q", href)
		}
	})
	t.Run("a debit split between lots says what each gave", func(t *testing.T) {
		var burns []string
		row(split[0]).Find(`[data-testid="usage-burn"]`).Each(func(_ int, s *goquery.Selection) { burns = append(burns, usageText(s)) })
		want := []string{"from: Promo grant · expires " + f.Date(promoExp) + " · 2 credits", "from: Scale pack ($100.00) · 3 credits"}
		if !slices.Equal(burns, want) {
			t.Fatalf("burns %q, want %q", burns, want)
		}
		if got := cell(split[0], "credits"); got != "5 credits" {
			t.Fatalf("credits %q", got)
		}
	})
	t.Run("fractional credits and units", func(t *testing.T) {
		if got := cell(tokens[0], "credits"); got != "2.5 credits" {
			t.Fatalf("credits %q, want 2.5 credits", got)
		}
		if got := cell(tokens[0], "quantity"); got != "1,000 tokens" {
			t.Fatalf("quantity %q, want 1,000 tokens", got)
		}
		if got := cell(tokens[0], "burns"); got != "from: Scale pack ($100.00)" {
			t.Fatalf("burns %q", got)
		}
	})
	t.Run("the form offers the price book's features and the tags seen", func(t *testing.T) {
		var features, tags []string
		d.Find(`#usage-feature option`).Each(func(_ int, s *goquery.Selection) { features = append(features, s.AttrOr("value", "")) })
		d.Find(`#usage-tag option`).Each(func(_ int, s *goquery.Selection) { tags = append(tags, s.AttrOr("value", "")) })
		if !slices.Equal(features, []string{"", "chat.request", "image.generate", "document.analyze", "gpt-4o.tokens"}) {
			t.Errorf("feature options %v", features)
		}
		if !slices.Equal(tags, []string{"", "project", "user"}) {
			t.Errorf("tag options %v", tags)
		}
		for _, id := range []string{"usage-feature", "usage-from", "usage-to", "usage-tag", "usage-value"} {
			if d.Find(`label[for="`+id+`"]`).Length() != 1 {
				t.Errorf("input #%s has no label", id)
			}
		}
		form := d.Find(`form[data-testid="usage-filters"]`)
		if form.AttrOr("method", "") != "get" || form.AttrOr("action", "") != "/portal/usage" || form.AttrOr("hx-get", "") != "/portal/usage" ||
			form.AttrOr("hx-push-url", "") != "true" || form.AttrOr("hx-indicator", "") == "" {
			t.Errorf("filter form attributes: %v", form.Nodes[0].Attr)
		}
		if d.Find("#usage-loading.htmx-indicator").Length() != 1 {
			t.Error("no loading indicator")
		}
	})
	t.Run("the CSV link carries the filters", func(t *testing.T) {
		d := b.page("/portal/usage?feature=chat.request&from=2026-03-01&to=2026-03-10&tag=user&value=alice")
		href := d.Find(`[data-testid="usage-csv"]`).AttrOr("href", "")
		want := "/portal/usage.csv?feature=chat.request&from=2026-03-01&tag=user&to=2026-03-10&value=alice"
		if href != want {
			t.Fatalf("CSV link %q, want %q", href, want)
		}
	})
}

func TestUsageFilters(t *testing.T) {
	a := newTestAPI(t)
	cus, _ := usageCustomer(t, a, "filters-co")
	// Tue 10 Mar 12:00 UTC (10 Mar in New York too).
	day1 := a.meter(t, cus, repeatEvent(2, usageEvent{"chat.request", "1", map[string]string{"user": "alice"}})...)
	// Wed 11 Mar 03:00 UTC, still 10 Mar 23:00 in New York (EDT, UTC-4).
	a.Clock.Advance(15 * time.Hour)
	day2 := a.meter(t, cus, repeatEvent(3, usageEvent{"image.generate", "1", map[string]string{"user": "bob"}})...)
	// Thu 12 Mar 03:00 UTC, 11 Mar in New York.
	a.Clock.Advance(24 * time.Hour)
	day3 := a.meter(t, cus, repeatEvent(4, usageEvent{"chat.request", "1", map[string]string{"user": "alice", "project": "x"}})...)
	all := slices.Concat(day1, day2, day3)

	b := usageSignIn(t, a, cus)
	same := func(t *testing.T, path string, want ...[]string) {
		t.Helper()
		got := usageIDs(b.page(path), "usage-row")
		w := slices.Concat(want...)
		slices.Sort(got)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Fatalf("GET %s: %d rows %v, want %d %v", path, len(got), got, len(w), w)
		}
	}
	t.Run("none", func(t *testing.T) { same(t, "/portal/usage", all) })
	t.Run("feature", func(t *testing.T) {
		same(t, "/portal/usage?feature=chat.request", day1, day3)
		same(t, "/portal/usage?feature=image.generate", day2)
	})
	t.Run("tag", func(t *testing.T) {
		same(t, "/portal/usage?tag=user&value=alice", day1, day3)
		same(t, "/portal/usage?tag=user&value=bob", day2)
		same(t, "/portal/usage?tag=project&value=x", day3)
		same(t, "/portal/usage?tag=user&value=carol")
		// A key without a value filters nothing yet (the form is half filled).
		same(t, "/portal/usage?tag=user", all)
	})
	t.Run("dates in UTC without a time zone cookie", func(t *testing.T) {
		same(t, "/portal/usage?from=2026-03-11&to=2026-03-11", day2)
		same(t, "/portal/usage?from=2026-03-11", day2, day3)
		same(t, "/portal/usage?to=2026-03-10", day1)
	})
	t.Run("all together", func(t *testing.T) {
		same(t, "/portal/usage?feature=chat.request&from=2026-03-12&to=2026-03-12&tag=project&value=x", day3)
		same(t, "/portal/usage?feature=image.generate&tag=user&value=alice")
	})
	t.Run("dates in the customer's time zone", func(t *testing.T) {
		b.setTZ("America/New_York")
		defer b.setTZ("UTC")
		same(t, "/portal/usage?from=2026-03-10&to=2026-03-10", day1, day2)
		same(t, "/portal/usage?from=2026-03-11&to=2026-03-11", day3)
		d := b.page("/portal/usage?from=2026-03-10&to=2026-03-10")
		if tz := usageText(d.Find(`[data-testid="usage-timezone"]`)); !strings.Contains(tz, "America/New_York") {
			t.Fatalf("time zone note %q", tz)
		}
		// Times show in New York: 11 Mar 03:00 UTC is 10 Mar 23:00 there.
		f := views.NewFmt("", "America/New_York")
		want := f.DateTime(testStart.Add(15 * time.Hour))
		if got := usageText(d.Find(`[data-entry="` + day2[0] + `"] [data-testid="usage-time"]`)); got != want || !strings.Contains(got, "23:00") {
			t.Fatalf("time %q, want %q", got, want)
		}
	})
	t.Run("the form shows the filters back", func(t *testing.T) {
		d := b.page("/portal/usage?feature=image.generate&from=2026-03-01&to=2026-03-11&tag=user&value=bob")
		if v := d.Find(`#usage-feature option[selected]`).AttrOr("value", ""); v != "image.generate" {
			t.Errorf("feature selected %q", v)
		}
		if v := d.Find(`#usage-from`).AttrOr("value", ""); v != "2026-03-01" {
			t.Errorf("from %q", v)
		}
		if v := d.Find(`#usage-to`).AttrOr("value", ""); v != "2026-03-11" {
			t.Errorf("to %q", v)
		}
		if v := d.Find(`#usage-tag option[selected]`).AttrOr("value", ""); v != "user" {
			t.Errorf("tag selected %q", v)
		}
		if v := d.Find(`#usage-value`).AttrOr("value", ""); v != "bob" {
			t.Errorf("value %q", v)
		}
		var sugg []string
		d.Find(`#usage-tag-values option`).Each(func(_ int, s *goquery.Selection) { sugg = append(sugg, s.AttrOr("value", "")) })
		if !slices.Equal(sugg, []string{"alice", "bob"}) {
			t.Errorf("value suggestions %v", sugg)
		}
		if s := usageText(d.Find(`[data-testid="usage-summary"]`)); !strings.Contains(s, "Image generation") || !strings.Contains(s, "user: bob") {
			t.Errorf("summary %q", s)
		}
		// A feature the price book no longer has is still shown as the filter.
		d = b.page("/portal/usage?feature=old.feature")
		if v := d.Find(`#usage-feature option[selected]`).AttrOr("value", ""); v != "old.feature" {
			t.Errorf("unknown feature selected %q", v)
		}
		if d.Find(`[data-testid="usage-empty"]`).Length() != 1 {
			t.Error("no empty state for an unknown feature")
		}
	})
	t.Run("bad filters are explained, not applied", func(t *testing.T) {
		for _, q := range []string{"from=2026-03-12&to=2026-03-10", "from=yesterday", "to=2026-13-01", `tag=a"b&value=x`} {
			r := b.fetch(b.a.HTTP.URL+"/portal/usage?"+q).want(t, http.StatusUnprocessableEntity)
			d := usageParse(t, r.Raw)
			if d.Find(`[data-testid="usage-error"][role="alert"]`).Length() != 1 || d.Find(`[data-testid="usage-row"]`).Length() != 0 {
				t.Errorf("%s: want an error and no rows; body %.400s", q, r.Raw)
			}
			// The form is still there to fix them.
			if d.Find(`form[data-testid="usage-filters"]`).Length() != 1 {
				t.Errorf("%s: no form", q)
			}
		}
		r := b.fetch(b.a.HTTP.URL+"/portal/usage?from=2026-03-12&to=2026-03-10", "HX-Request", "true").want(t, http.StatusUnprocessableEntity)
		if !strings.Contains(string(r.Raw), "The end date is before the start date.") || strings.Contains(string(r.Raw), "<html") {
			t.Errorf("htmx error: %.400s", r.Raw)
		}
	})
}

func TestUsagePagination(t *testing.T) {
	a := newTestAPI(t)
	cus, _ := usageCustomer(t, a, "pages-co")
	want := a.meter(t, cus, repeatEvent(123, usageEvent{"chat.request", "1", map[string]string{"user": "alice"}})...)
	a.meter(t, cus, repeatEvent(7, usageEvent{"image.generate", "1", nil})...) // filtered out below
	b := usageSignIn(t, a, cus)

	for _, htmx := range []bool{false, true} {
		t.Run(fmt.Sprintf("htmx=%v", htmx), func(t *testing.T) {
			got, links := b.walk(t, "/portal/usage?tag=user&value=alice", "usage", htmx)
			if len(links) != 2 {
				t.Fatalf("followed %d links, want 2 (pages of 50)", len(links))
			}
			for _, l := range links {
				if !strings.Contains(l, "tag=user") || !strings.Contains(l, "value=alice") || !strings.Contains(l, "cursor=") {
					t.Fatalf("next page link %q lost the filters", l)
				}
			}
			seen := map[string]bool{}
			for _, id := range got {
				if seen[id] {
					t.Fatalf("row %s shown twice", id)
				}
				seen[id] = true
			}
			if len(got) != len(want) {
				t.Fatalf("walked %d rows, want %d", len(got), len(want))
			}
			for _, id := range want {
				if !seen[id] {
					t.Fatalf("row %s never shown", id)
				}
			}
		})
	}
	t.Run("a page past the first links back to the newest", func(t *testing.T) {
		d := b.page("/portal/usage?cursor=" + want[60])
		if href := d.Find(`[data-testid="usage-newest"]`).AttrOr("href", ""); href != "/portal/usage" {
			t.Fatalf("newest link %q", href)
		}
	})
	t.Run("a broken cursor is an error, not an empty page", func(t *testing.T) {
		r := b.fetch(b.a.HTTP.URL + "/portal/usage?cursor=garbage")
		if r.Status != http.StatusBadRequest {
			t.Fatalf("status %d", r.Status)
		}
	})
}

func TestUsageHTMXPartial(t *testing.T) {
	a := newTestAPI(t)
	cus, _ := usageCustomer(t, a, "htmx-co")
	ids := a.meter(t, cus, usageEvent{"chat.request", "1", map[string]string{"user": "alice"}}, usageEvent{"image.generate", "1", nil})
	b := usageSignIn(t, a, cus)

	r := b.fetch(b.a.HTTP.URL+"/portal/usage?feature=image.generate", "HX-Request", "true", "HX-Target", "usage-results").want(t, http.StatusOK)
	body := string(r.Raw)
	if strings.Contains(body, "<html") || strings.Contains(body, "<nav") || strings.Contains(body, "<form") {
		t.Fatalf("partial has the page around it: %.300s", body)
	}
	if !strings.HasPrefix(body, `<section id="usage-results"`) {
		t.Fatalf("partial does not start with the results: %.200s", body)
	}
	d := usageParse(t, r.Raw)
	if got := usageIDs(d, "usage-row"); !slices.Equal(got, ids[1:]) {
		t.Fatalf("partial rows %v, want %v", got, ids[1:])
	}
	if d.Find(`datalist#usage-tag-values[hx-swap-oob="true"]`).Length() != 1 {
		t.Fatal("no out-of-band tag value suggestions")
	}
	if vary := strings.Join(r.Header.Values("Vary"), ", "); !strings.Contains(vary, "HX-Request") {
		t.Fatalf("Vary %q: a cached fragment could be shown as a page", vary)
	}
	// htmx restoring history wants the whole page.
	r = b.fetch(b.a.HTTP.URL+"/portal/usage", "HX-Request", "true", "HX-History-Restore-Request", "true").want(t, http.StatusOK)
	if !strings.Contains(string(r.Raw), "<html") {
		t.Fatal("history restore got a fragment")
	}
	// The page renders the same results partial.
	full := b.page("/portal/usage?feature=image.generate")
	if full.Find(`section#usage-results[data-testid="usage-results"]`).Length() != 1 {
		t.Fatal("the page does not render the results partial")
	}
}

func TestUsageEmptyStates(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "quiet-co")
	b := usageSignIn(t, a, cus)
	d := b.page("/portal/usage")
	if got := usageText(d.Find(`[data-testid="usage-empty"] h3`)); got != "No usage yet" {
		t.Fatalf("empty state %q", got)
	}
	if d.Find(`[data-testid="usage-table"]`).Length() != 0 || d.Find(`[data-testid="usage-csv"]`).Length() != 0 {
		t.Fatal("an empty history has a table or an export")
	}
	a.grant(t, cus, "10", billing.SourcePurchase)
	a.meter(t, cus, usageEvent{"chat.request", "1", nil})
	d = b.page("/portal/usage?from=2026-01-01&to=2026-01-31")
	if got := usageText(d.Find(`[data-testid="usage-empty"] h3`)); got != "No usage in this period" {
		t.Fatalf("filtered empty state %q", got)
	}
	if d.Find(`[data-testid="usage-empty"] a[href="/portal/usage"]`).Length() != 1 {
		t.Fatal("no way to clear the filters")
	}
}

// readUsageCSV downloads the export and returns its rows (after the header).
func readUsageCSV(t *testing.T, b *usageBrowser, query string) (http.Header, [][]string) {
	t.Helper()
	r := b.fetch(b.a.HTTP.URL+"/portal/usage.csv"+query).want(t, http.StatusOK)
	recs, err := csv.NewReader(strings.NewReader(string(r.Raw))).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	header := []string{"time_utc", "time_local", "entry_id", "feature", "feature_name", "quantity", "unit", "credits",
		"price_version", "metadata", "lots_burned", "lots_burned_from"}
	if len(recs) == 0 || !slices.Equal(recs[0], header) {
		t.Fatalf("CSV header %v, want %v", recs, header)
	}
	return r.Header, recs[1:]
}

func TestUsageCSV(t *testing.T) {
	a := newTestAPI(t)
	cus, promoExp := usageCustomer(t, a, "csv-co")
	var events []usageEvent
	for i := range 250 {
		user := "alice"
		if i%2 == 1 {
			user = "bob"
		}
		events = append(events, usageEvent{"gpt-4o.tokens", "1000", map[string]string{"user": user, "team": "=1+2"}})
	}
	ids := a.meter(t, cus, events...)
	a.Clock.Advance(48 * time.Hour)
	later := a.meter(t, cus, usageEvent{"chat.request", "3", nil})
	b := usageSignIn(t, a, cus)
	b.setTZ("Asia/Tokyo")

	t.Run("everything", func(t *testing.T) {
		h, rows := readUsageCSV(t, b, "")
		if ct := h.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if cd := h.Get("Content-Disposition"); cd != `attachment; filename="usage-csv-co-`+usageToday(t, a, "Asia/Tokyo")+`.csv"` {
			t.Errorf("Content-Disposition %q", cd)
		}
		if len(rows) != 251 {
			t.Fatalf("%d rows, want 251 (more than two pages of 100)", len(rows))
		}
		seen := map[string]bool{}
		for _, r := range rows {
			if seen[r[2]] {
				t.Fatalf("entry %s twice", r[2])
			}
			seen[r[2]] = true
		}
		for _, id := range append(ids, later...) {
			if !seen[id] {
				t.Fatalf("entry %s missing", id)
			}
		}
		if rows[0][2] != later[0] {
			t.Fatalf("first row %v, want the newest debit %s", rows[0], later[0])
		}
		want := []string{"2026-03-12T12:00:00Z", "2026-03-12T21:00:00+09:00", later[0], "chat.request", "Chat request", "3", "request",
			"3", "1", "", "", "Scale pack ($100.00)"}
		want[10] = rows[0][10] // the lot id, checked below
		if !slices.Equal(rows[0], want) {
			t.Fatalf("row %q,\nwant %q", rows[0], want)
		}
		if !strings.HasPrefix(rows[0][10], "lot_") || !strings.HasSuffix(rows[0][10], "=3") {
			t.Fatalf("lots_burned %q", rows[0][10])
		}
		// The oldest: 2.5 credits, the first four of them from the promo lot.
		oldest := rows[len(rows)-1]
		if oldest[2] != ids[0] || oldest[5] != "1000" || oldest[6] != "token" || oldest[7] != "2.5" {
			t.Fatalf("oldest row %q", oldest)
		}
		if oldest[9] != "team==1+2; user=alice" {
			t.Fatalf("metadata %q", oldest[9])
		}
		if want := "Promo grant (expires " + promoExp.Format(time.RFC3339) + ")"; oldest[11] != want {
			t.Fatalf("lots_burned_from %q, want %q", oldest[11], want)
		}
		// Exact decimals add up exactly.
		var total billing.Credits
		for _, r := range rows {
			c, err := billing.ParseCredits(r[7])
			if err != nil {
				t.Fatalf("credits %q: %v", r[7], err)
			}
			total += c
		}
		if total != billing.CreditsOf(628) { // 250 x 2.5 + 3
			t.Fatalf("credits sum to %s, want 628", total)
		}
	})
	t.Run("filtered by tag: every matching row, across pages", func(t *testing.T) {
		h, rows := readUsageCSV(t, b, "?tag=user&value=alice")
		if len(rows) != 125 {
			t.Fatalf("%d rows, want 125", len(rows))
		}
		for _, r := range rows {
			if !strings.Contains(r[9], "user=alice") {
				t.Fatalf("row %q is not alice's", r)
			}
		}
		if cd := h.Get("Content-Disposition"); !strings.Contains(cd, "usage-csv-co-"+usageToday(t, a, "Asia/Tokyo")+"-user-alice.csv") {
			t.Errorf("Content-Disposition %q", cd)
		}
	})
	t.Run("filtered by feature and local dates", func(t *testing.T) {
		_, rows := readUsageCSV(t, b, "?feature=chat.request&from=2026-03-12&to=2026-03-12")
		if len(rows) != 1 || rows[0][2] != later[0] {
			t.Fatalf("rows %q", rows)
		}
		_, rows = readUsageCSV(t, b, "?from=2026-03-10&to=2026-03-10")
		if len(rows) != 250 {
			t.Fatalf("%d rows on 10 Mar, want 250", len(rows))
		}
	})
	t.Run("the tag filter matches values exactly", func(t *testing.T) {
		_, rows := readUsageCSV(t, b, "?tag=team&value=%3D1%2B2")
		if len(rows) != 250 {
			t.Fatalf("%d rows", len(rows))
		}
	})
	t.Run("bad filters", func(t *testing.T) {
		r := b.fetch(b.a.HTTP.URL + "/portal/usage.csv?from=2026-03-12&to=2026-03-01")
		if r.Status != http.StatusUnprocessableEntity || strings.Contains(r.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("status %d, disposition %q", r.Status, r.Header.Get("Content-Disposition"))
		}
	})
	t.Run("empty", func(t *testing.T) {
		_, rows := readUsageCSV(t, b, "?feature=document.analyze")
		if len(rows) != 0 {
			t.Fatalf("%d rows", len(rows))
		}
	})
}

// TestUsageOnlyOwnData: nothing in a request can show another customer's
// usage or ledger: neither their ids in any parameter, nor their cursors.
func TestUsageOnlyOwnData(t *testing.T) {
	a := newTestAPI(t)
	mine, _ := usageCustomer(t, a, "mine-co")
	theirs, _ := usageCustomer(t, a, "theirs-co")
	myIDs := a.meter(t, mine, repeatEvent(60, usageEvent{"chat.request", "1", map[string]string{"user": "alice"}})...)
	theirIDs := a.meter(t, theirs, repeatEvent(60, usageEvent{"chat.request", "1", map[string]string{"user": "alice"}})...)
	a.do("POST", "/api/v1/adjustments", a.Admin, map[string]any{"customer": theirs, "credits": 5, "reason": "Their secret adjustment"}).
		want(t, http.StatusCreated)
	b := usageSignIn(t, a, mine)

	their := map[string]bool{}
	for _, id := range theirIDs {
		their[id] = true
	}
	checkRows := func(t *testing.T, what string, ids []string) {
		t.Helper()
		for _, id := range ids {
			if their[id] {
				t.Fatalf("%s shows the other customer's entry %s", what, id)
			}
		}
	}
	baseline := usageIDs(b.page("/portal/usage"), "usage-row")
	if len(baseline) != 50 {
		t.Fatalf("baseline %d rows", len(baseline))
	}
	for _, ref := range []string{theirs, "theirs-co"} {
		for _, param := range []string{"customer", "customer_id", "id", "cus", "external_id"} {
			q := "?" + param + "=" + url.QueryEscape(ref)
			got := usageIDs(b.page("/portal/usage"+q), "usage-row")
			if !slices.Equal(got, baseline) {
				t.Fatalf("/portal/usage%s changed the rows", q)
			}
			_, rows := readUsageCSV(t, b, q)
			var csvIDs []string
			for _, r := range rows {
				csvIDs = append(csvIDs, r[2])
			}
			checkRows(t, "CSV "+q, csvIDs)
			if len(csvIDs) != len(myIDs) {
				t.Fatalf("CSV %s has %d rows, want %d", q, len(csvIDs), len(myIDs))
			}
			d := b.page("/portal/ledger" + q)
			checkRows(t, "ledger "+q, usageIDs(d, "ledger-row"))
			if strings.Contains(d.Text(), "Their secret adjustment") {
				t.Fatalf("ledger %s shows the other customer's adjustment", q)
			}
		}
	}
	// A cursor taken from the other customer's history only moves within mine.
	for _, cur := range []string{theirIDs[30], theirIDs[0]} {
		checkRows(t, "usage cursor", usageIDs(b.page("/portal/usage?cursor="+cur), "usage-row"))
		checkRows(t, "ledger cursor", usageIDs(b.page("/portal/ledger?cursor="+cur), "ledger-row"))
		_, rows := readUsageCSV(t, b, "?cursor="+cur)
		for _, r := range rows {
			if their[r[2]] {
				t.Fatal("CSV cursor leaked")
			}
		}
	}
	// Their lots are not listed either.
	if n := b.page("/portal/ledger").Find(`[data-testid="ledger-lot"]`).Length(); n != 2 {
		t.Fatalf("%d lots listed, want my 2", n)
	}
	// Signed out, nothing is served.
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/portal/usage", "/portal/usage.csv", "/portal/ledger"} {
		res, err := anon.Get(a.HTTP.URL + p + "?customer=" + mine)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("GET %s signed out: %d, want 303 to the start page", p, res.StatusCode)
		}
	}
}

// usageToday is the ledger's today (the test clock) in a time zone.
func usageToday(t *testing.T, a *testAPI, tz string) string {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	return a.Clock.Now().In(loc).Format(time.DateOnly)
}

// TestUsageCSVFormulas: text that others wrote (tags, lot reasons) can not
// turn into a spreadsheet formula.
func TestUsageCSVFormulas(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "formula-co")
	a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": cus, "credits": 100, "source": "purchase",
		"reason": `=HYPERLINK("http://evil.example")`}).want(t, http.StatusCreated)
	a.meter(t, cus, usageEvent{"chat.request", "1", map[string]string{"@cmd": "x", "-2+3": "y"}})
	b := usageSignIn(t, a, cus)
	_, rows := readUsageCSV(t, b, "")
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	for i, cell := range rows[0] {
		if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
			t.Fatalf("column %d: %q starts a formula", i, cell)
		}
	}
	if got := rows[0][11]; got != `'=HYPERLINK("http://evil.example")` {
		t.Fatalf("lots_burned_from %q", got)
	}
}
