package handlers_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

func TestLedgerPage(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "ledger-co")
	grant := func(body map[string]any) string {
		body["customer"] = cus
		r := a.do("POST", "/api/v1/grants", a.Admin, body).want(t, http.StatusCreated)
		return obj(t, r.Body["lot"])["id"].(string)
	}
	refundBy := testStart.Add(30 * 24 * time.Hour)
	purchase := grant(map[string]any{"credits": 1000, "source": "purchase", "reason": "Scale pack ($100.00)", "refundable_until": refundBy})
	promoExp := testStart.Add(10 * 24 * time.Hour)
	promo := grant(map[string]any{"credits": 500, "source": "promo", "reason": "Welcome credits", "expires_at": promoExp})
	// A plan allowance that runs out in 2 days, before any usage (it
	// burns after the promo: priority 20).
	plan := grant(map[string]any{"credits": 200, "source": "subscription", "reason": "Pro plan allowance", "expires_at": testStart.Add(48 * time.Hour)})
	far := grant(map[string]any{"credits": 50, "source": "promo", "reason": "Anniversary gift", "expires_at": testStart.Add(90 * 24 * time.Hour)})
	a.Clock.Advance(72 * time.Hour) // the plan lot expires (written when the page reads the balance)
	debits := a.meter(t, cus, usageEvent{"chat.request", "5", nil})
	a.do("POST", "/api/v1/adjustments", a.Admin, map[string]any{"customer": cus, "credits": -10, "reason": "Duplicate charge corrected"}).
		want(t, http.StatusCreated)
	h := a.hold(t, cus, 20, 0)
	a.do("POST", "/api/v1/holds/"+h["id"].(string)+"/release", a.Meter, nil).want(t, http.StatusOK)

	b := usageSignIn(t, a, cus)
	d := b.page("/portal/ledger")
	now := testStart.Add(72 * time.Hour)
	f := views.NewFmt("", "")

	t.Run("reminders of credits expiring within 30 days", func(t *testing.T) {
		var got []string
		d.Find(`[data-testid="ledger-reminder"]`).Each(func(_ int, s *goquery.Selection) { got = append(got, usageText(s)) })
		// 5 chat requests and the -10 adjustment burned 15 of the promo's 500.
		want := []string{"485 credits expire on " + f.Date(promoExp) + " (in 7 days) · Welcome credits"}
		if !slices.Equal(got, want) {
			t.Fatalf("reminders %q, want %q", got, want)
		}
	})
	t.Run("lots", func(t *testing.T) {
		lot := func(id string) *goquery.Selection { return d.Find(`[data-testid="ledger-lot"][data-lot="` + id + `"]`) }
		text := func(id, part string) string {
			return usageText(lot(id).Find(`[data-testid="ledger-lot-` + part + `"]`))
		}
		// Live lots in burn order: promo (10) by expiry, then the purchase (50).
		var live []string
		d.Find(`[data-testid="ledger-lots"] > ul [data-testid="ledger-lot"]`).Each(func(_ int, s *goquery.Selection) {
			live = append(live, s.AttrOr("data-lot", ""))
		})
		if !slices.Equal(live, []string{promo, far, purchase}) {
			t.Fatalf("live lots %v, want %v", live, []string{promo, far, purchase})
		}
		if got := text(promo, "remaining"); got != "485 of 500 left" {
			t.Errorf("promo remaining %q", got)
		}
		if got := text(promo, "expiry"); got != "Expires "+f.Date(promoExp) {
			t.Errorf("promo expiry %q", got)
		}
		if got := text(purchase, "expiry"); got != "Never expires" {
			t.Errorf("purchase expiry %q", got)
		}
		if got := text(purchase, "refundable"); got != "Refundable until "+f.Date(refundBy) {
			t.Errorf("purchase refundable %q", got)
		}
		if v := lot(purchase).Find(`[role="progressbar"]`).AttrOr("aria-valuenow", ""); v != "100" {
			t.Errorf("purchase bar %q", v)
		}
		if v := lot(promo).Find(`[role="progressbar"]`).AttrOr("aria-valuenow", ""); v != "97" {
			t.Errorf("promo bar %q", v)
		}
		past := d.Find(`[data-testid="ledger-past-lots"] [data-testid="ledger-lot"]`)
		if past.Length() != 1 || past.AttrOr("data-lot", "") != plan {
			t.Fatalf("past lots: %d", past.Length())
		}
		if got := text(plan, "state"); got != "Expired" {
			t.Errorf("plan state %q", got)
		}
	})
	rowsOf := func(d *goquery.Document) map[string]*goquery.Selection {
		out := map[string]*goquery.Selection{}
		d.Find(`[data-testid="ledger-row"]`).Each(func(_ int, s *goquery.Selection) {
			out[s.AttrOr("data-type", "")+":"+usageText(s.Find(`[data-testid="ledger-title"]`))] = s
		})
		return out
	}
	t.Run("entries", func(t *testing.T) {
		rows := rowsOf(d)
		want := map[string][2]string{ // type:title -> amount, kind
			"grant:Scale pack ($100.00)":                   {"+1,000", "Top-up"},
			"grant:Welcome credits":                        {"+500", "Grant"},
			"grant:Pro plan allowance":                     {"+200", "Grant"},
			"grant:Anniversary gift":                       {"+50", "Grant"},
			"expiry:Pro plan allowance expired":            {"−200", "Expired"},
			"debit:Chat request":                           {"−5", "Usage"},
			"adjustment:Duplicate charge corrected":        {"−10", "Adjustment"},
			"hold:Credits reserved for a call in progress": {"—", "Reserved"},
			"hold_release:Reserved credits released":       {"—", "Released"},
		}
		if len(rows) != len(want) {
			keys := []string{}
			for k := range rows {
				keys = append(keys, k)
			}
			t.Fatalf("rows %v, want %d", keys, len(want))
		}
		for k, w := range want {
			r, ok := rows[k]
			if !ok {
				t.Errorf("no row %s", k)
				continue
			}
			if got := usageText(r.Find(`[data-testid="ledger-amount"]`)); got != w[0] {
				t.Errorf("%s amount %q, want %q", k, got, w[0])
			}
			if got := usageText(r.Find(`[data-testid="ledger-kind"]`)); got != w[1] {
				t.Errorf("%s kind %q, want %q", k, got, w[1])
			}
		}
		debit := rows["debit:Chat request"]
		if got := usageText(debit.Find(`[data-testid="ledger-details"]`)); got != "5 requests · from: Welcome credits · expires "+f.Date(promoExp) {
			t.Errorf("debit details %q", got)
		}
		day := now.Format(time.DateOnly)
		if href := debit.Find(`[data-testid="ledger-usage-link"]`).AttrOr("href", ""); href != "/portal/usage?feature=chat.request&from="+day+"&to="+day {
			t.Errorf("debit link %q", href)
		}
		if debit.AttrOr("data-entry", "") != debits[0] {
			t.Errorf("debit entry %q", debit.AttrOr("data-entry", ""))
		}
		if got := usageText(rows["grant:Welcome credits"].Find(`[data-testid="ledger-details"]`)); got != "Promotional credits · expires "+f.Date(promoExp) {
			t.Errorf("promo grant details %q", got)
		}
		if got := usageText(rows["hold:Credits reserved for a call in progress"].Find(`[data-testid="ledger-balance"]`)); got != "Balance 1,535" {
			t.Errorf("hold balance %q", got)
		}
		// The newest entry first.
		if first := d.Find(`[data-testid="ledger-row"]`).First().AttrOr("data-type", ""); first != billing.EntryHoldRelease {
			t.Errorf("first row %s", first)
		}
	})
	t.Run("type filter", func(t *testing.T) {
		cases := map[string]int{"grant": 4, "debit": 1, "expiry": 1, "adjustment": 1, "refund": 0}
		for typ, n := range cases {
			d := b.page("/portal/ledger?type=" + typ)
			rows := d.Find(`[data-testid="ledger-row"]`)
			if rows.Length() != n {
				t.Errorf("type %s: %d rows, want %d", typ, rows.Length(), n)
			}
			rows.Each(func(_ int, s *goquery.Selection) {
				if s.AttrOr("data-type", "") != typ {
					t.Errorf("type %s shows a %s", typ, s.AttrOr("data-type", ""))
				}
			})
			if cur := d.Find(`[data-testid="ledger-types"] a[aria-current="true"]`).AttrOr("href", ""); cur != "/portal/ledger?type="+typ {
				t.Errorf("type %s: current filter %q", typ, cur)
			}
			if n == 0 && d.Find(`[data-testid="ledger-empty"]`).Length() != 1 {
				t.Errorf("type %s: no empty state", typ)
			}
		}
		r := b.fetch(b.a.HTTP.URL + "/portal/ledger?type=bogus")
		if r.Status != http.StatusBadRequest {
			t.Errorf("unknown type: %d", r.Status)
		}
	})
	t.Run("htmx gets the history alone", func(t *testing.T) {
		r := b.fetch(b.a.HTTP.URL+"/portal/ledger?type=grant", "HX-Request", "true", "HX-Target", "ledger-history").want(t, http.StatusOK)
		body := string(r.Raw)
		if !strings.HasPrefix(body, `<section id="ledger-history"`) || strings.Contains(body, "<html") || strings.Contains(body, "ledger-lot") {
			t.Fatalf("partial: %.300s", body)
		}
		if n := usageParse(t, r.Raw).Find(`[data-testid="ledger-row"]`).Length(); n != 4 {
			t.Fatalf("%d rows", n)
		}
	})
}

func TestLedgerPagination(t *testing.T) {
	a := newTestAPI(t)
	cus, _ := usageCustomer(t, a, "ledger-pages-co")
	a.meter(t, cus, repeatEvent(120, usageEvent{"chat.request", "1", nil})...)
	want := a.walk(t, "/api/v1/customers/"+cus+"/ledger?limit=100")
	b := usageSignIn(t, a, cus)

	for _, htmx := range []bool{false, true} {
		ids, _ := b.walk(t, "/portal/ledger", "ledger", htmx)
		if len(ids) != len(want) {
			t.Fatalf("htmx=%v: %d rows, want %d", htmx, len(ids), len(want))
		}
		for i, e := range want {
			if ids[i] != e["id"] {
				t.Fatalf("htmx=%v: row %d is %s, want %s", htmx, i, ids[i], e["id"])
			}
		}
	}
}

func TestLedgerEmpty(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "new-co")
	d := usageSignIn(t, a, cus).page("/portal/ledger")
	if d.Find(`[data-testid="ledger-lots-empty"]`).Length() != 1 || d.Find(`[data-testid="ledger-empty"]`).Length() != 1 {
		t.Fatal("no empty states")
	}
	if d.Find(`[data-testid="ledger-reminders"]`).Length() != 0 {
		t.Fatal("reminders with no credits")
	}
}
