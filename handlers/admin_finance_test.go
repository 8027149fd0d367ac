package handlers_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The finance view against a hand-computed fixture:
//
//	10 Mar 12:00  A buys 1,000 credits for $10.00; uses 250; gets 100 promo credits expiring 11 Mar
//	12 Mar 12:00  A's promo lot has expired (100 credits of breakage); B buys 1,000 credits for $10.00
//	10 Apr 13:00  now: A's purchase (refundable until 9 Apr) is past its window, B's (until 11 Apr) is not
//
// Now: 1,750 purchased credits outstanding; worth $7.50 (A: 750 of 1,000 at $10.00) past the
// window and $10.00 (B) still refundable. March: $20.00 revenue, 2,000 purchased and 100 promo
// credits granted, 250 burned, 100 expired. The last 30 days (12 Mar to 10 Apr): 12 Mar only,
// $10.00, 1,000 purchased, 100 expired.
// TestAdminFinanceWithoutPayments: before the first payment, MRR is a dash
// (not a bare 0 without a currency), there is no empty "top-ups" list, and
// the note under the table does not describe revenue columns it lacks.
func TestAdminFinanceWithoutPayments(t *testing.T) {
	a := newAdminAPI(t)
	a.grant(t, a.customer(t, "granted"), "100", "promo") // activity, but no payment
	r := a.signIn(t, "owner@staff.test").get("/admin/finance").want(t, http.StatusOK)
	row := doc(t, r).Find(`[data-testid="finance-row"]`).First()
	if row.Length() == 0 {
		t.Fatal("the grant is not in the table")
	}
	// Its period is written as the page writes dates, not as an ISO day.
	day, _ := time.Parse(time.DateOnly, row.AttrOr("data-day", ""))
	if got, want := strings.TrimSpace(row.Find("th").Text()), day.Format("2 Jan 2006"); day.IsZero() || got != want {
		t.Errorf("the row's day reads %q, want %q", got, want)
	}
	if got := testID(t, r, "mrr-none"); got != "—" {
		t.Errorf("MRR without payments: %q, want a dash", got)
	}
	d := doc(t, r)
	if d.Find(`[data-testid="finance-mrr"] dl`).Length() != 0 {
		t.Error("an empty list of top-ups under MRR")
	}
	if d.Find(`[data-testid="finance-table"] th:contains("Revenue")`).Length() != 0 {
		t.Error("revenue columns without payments")
	}
	if got := testID(t, r, "finance-mrr-note"); strings.Contains(got, "Revenue is top-ups") || !strings.Contains(got, "No payments yet") {
		t.Errorf("the note under the table: %q", got)
	}
}

func TestAdminFinance(t *testing.T) {
	p := newPayAPI(t)
	ctx := context.Background()
	if _, err := p.DB.CreateAdmin(ctx, "owner@staff.test", adminTestPassword, billing.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DB.CreateAdmin(ctx, "admin@staff.test", adminTestPassword, billing.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	a := &adminAPI{testAPI: p.testAPI}

	idA, shopperA := p.shopper(t, "fa")
	shopperA.addCard(cardOK)
	shopperA.buy("pack_1000").want(t, http.StatusSeeOther)
	p.usage(idA, "chat.request", "250", "").want(t, http.StatusCreated)
	p.do("POST", "/api/v1/grants", p.Admin, map[string]any{"customer": idA, "credits": 100, "source": "promo", "reason": "welcome",
		"expires_at": testStart.Add(24 * time.Hour).Format(time.RFC3339)}).want(t, http.StatusCreated)
	p.Clock.Advance(48 * time.Hour)
	if got := p.available(t, idA); got != billing.CreditsOf(750) {
		t.Fatalf("A after the expiry: %s", got)
	}
	idB, shopperB := p.shopper(t, "fb")
	shopperB.addCard(cardOK)
	shopperB.buy("pack_1000").want(t, http.StatusSeeOther)
	p.Clock.Advance(29*24*time.Hour + time.Hour)
	_ = idB

	if r := a.signIn(t, "admin@staff.test").get("/admin/finance"); r.Status != http.StatusForbidden {
		t.Fatalf("an admin (not an owner): %d, want 403", r.Status)
	}
	v := a.signIn(t, "owner@staff.test")
	r := v.get("/admin/finance?by=month").want(t, http.StatusOK)
	for id, want := range map[string]string{"liability-total": "$17.50", "liability-refundable": "$10.00", "liability-past": "$7.50",
		"outstanding-purchase": "1,750", "outstanding-promo": "0"} {
		if got := testID(t, r, id); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	row := func(r response, day string) map[string]string {
		t.Helper()
		out := map[string]string{}
		sel := doc(t, r).Find(`[data-testid="finance-row"][data-day="` + day + `"]`)
		if sel.Length() != 1 {
			t.Fatalf("no row for %s", day)
		}
		for _, id := range []string{"revenue-usd", "granted-purchase", "granted-promo", "burned", "expired"} {
			out[id] = strings.TrimSpace(sel.Find(`[data-testid="` + id + `"]`).Text())
		}
		return out
	}
	march := row(r, "2026-03")
	for id, want := range map[string]string{"revenue-usd": "$20.00", "granted-purchase": "2,000", "granted-promo": "100", "burned": "250", "expired": "100"} {
		if march[id] != want {
			t.Errorf("March %s = %q, want %q", id, march[id], want)
		}
	}
	r = v.get("/admin/finance").want(t, http.StatusOK)
	if n := doc(t, r).Find(`[data-testid="finance-row"]`).Length(); n != 1 {
		t.Fatalf("the last 30 days: %d rows, want 1 (12 Mar)", n)
	}
	day := row(r, "2026-03-12")
	for id, want := range map[string]string{"revenue-usd": "$10.00", "granted-purchase": "1,000", "granted-promo": "0", "burned": "0", "expired": "100"} {
		if day[id] != want {
			t.Errorf("12 Mar %s = %q, want %q", id, day[id], want)
		}
	}
	r = v.get("/admin/finance.csv?by=month").want(t, http.StatusOK)
	rows, err := csv.NewReader(strings.NewReader(string(r.Raw))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"month", "revenue_usd", "refunded_usd", "mrr_usd", "granted_purchase", "granted_promo", "granted_subscription", "granted_adjustment", "burned", "expired", "removed", "disputes"},
		{"2026-03", "20.00", "0.00", "", "2000", "100", "0", "0", "250", "100", "0", "0"},
	}
	if len(rows) != len(want) || strings.Join(rows[0], ",") != strings.Join(want[0], ",") || strings.Join(rows[1], ",") != strings.Join(want[1], ",") {
		t.Fatalf("CSV:\n%v\nwant\n%v", rows, want)
	}
	if r := v.get("/admin/finance?by=year"); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("by=year: %d", r.Status)
	}
}

// TestAdminFinanceMRR: MRR beside top-up revenue, against a hand-computed
// fixture (now is 10 Mar 2026, 12:00 UTC):
//
//	A buys 1,000 credits for $10.00 and subscribes to Starter ($19.00 a month)
//	B subscribes to Pro ($49.00 a month)
//	C subscribes to Team ($1,000.00 a year: $83.33 a month, rounded down)
//	D subscribes to Starter and cancels at once (not counted)
//
// MRR: 19.00 + 49.00 + 83.33 = $151.33 from 3 live subscriptions; top-ups
// this month $10.00. Only the current period (2026-03-10, or 2026-03 by
// month) carries MRR, in the table and the CSV.
func TestAdminFinanceMRR(t *testing.T) {
	p, a := planAdminAPI(t)
	pb := planBook()
	pb.Plans = append(pb.Plans, billing.Plan{Key: "team", Name: "Team", Interval: billing.IntervalYear, Price: billing.Money{Amount: 1000_00},
		Credits: billing.CreditsOf(100000), Rollover: billing.Rollover{Policy: billing.RolloverNone}})
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, pb); err != nil {
		t.Fatal(err)
	}
	idA, shopperA := p.shopper(t, "ma")
	shopperA.addCard(cardOK)
	shopperA.buy("pack_1000").want(t, http.StatusSeeOther)
	subscribe(t, p, idA, "starter")
	idB, _ := p.shopper(t, "mb")
	subscribe(t, p, idB, "pro")
	idC, _ := p.shopper(t, "mc")
	subscribe(t, p, idC, "team")
	idD, _ := p.shopper(t, "md")
	subscribe(t, p, idD, "starter")
	if _, err := p.DB.CancelSubscription(ctx, idD, false, billing.AdminActor(a.Owner.ID)); err != nil {
		t.Fatal(err)
	}

	v := a.signIn(t, "owner@staff.test")
	r := v.get("/admin/finance").want(t, http.StatusOK)
	for id, want := range map[string]string{"mrr-usd": "$151.33", "mrr-subscribers": "3", "topups-month-usd": "$10.00"} {
		if got := testID(t, r, id); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	cell := func(r response, day string) string {
		return strings.TrimSpace(doc(t, r).Find(`[data-testid="finance-row"][data-day="` + day + `"] [data-testid="mrr-row-usd"]`).Text())
	}
	if got := cell(r, "2026-03-10"); got != "$151.33" {
		t.Errorf("today's MRR cell = %q", got)
	}
	if n := doc(t, r).Find(`[data-testid="mrr-row-usd"]`).Length(); n != 1 {
		t.Errorf("%d rows show MRR, want 1 (today)", n)
	}
	r = v.get("/admin/finance.csv?by=month").want(t, http.StatusOK)
	rows, err := csv.NewReader(strings.NewReader(string(r.Raw))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0][3] != "mrr_usd" || rows[1][0] != "2026-03" || rows[1][1] != "10.00" || rows[1][3] != "151.33" {
		t.Fatalf("CSV: %v", rows)
	}
}
