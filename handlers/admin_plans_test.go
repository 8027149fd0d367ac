package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// planAdminAPI is a payments test server with the plan price book and one
// admin of each role.
func planAdminAPI(t *testing.T) (*payAPI, *adminAPI) {
	t.Helper()
	return planAdminAPIWith(t, newPayAPI(t))
}

// planAdminAPIWith is planAdminAPI on the payments test server p.
func planAdminAPIWith(t *testing.T, p *payAPI) (*payAPI, *adminAPI) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	a := &adminAPI{testAPI: p.testAPI}
	for _, x := range []struct {
		u    *billing.AdminUser
		role string
	}{{&a.Owner, billing.RoleOwner}, {&a.Admin, billing.RoleAdmin}, {&a.Support, billing.RoleSupport}} {
		var err error
		if *x.u, err = p.DB.CreateAdmin(ctx, x.role+"@staff.test", adminTestPassword, x.role); err != nil {
			t.Fatal(err)
		}
	}
	return p, a
}

func subscribe(t *testing.T, p *payAPI, customer, plan string) billing.Subscription {
	t.Helper()
	res, err := p.DB.StartSubscription(context.Background(), db.SubscribeInput{Customer: customer, Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	return res.Subscription
}

// TestAdminPlans: the plans of the price book with their terms, their
// subscribers and MRR (hand computed: Starter $19.00 x 2 = $38.00, Pro
// $49.00, in all $87.00), and a plan's subscriber list linking to the
// customers. Support may read both.
func TestAdminPlans(t *testing.T) {
	p, a := planAdminAPI(t)
	v := a.signIn(t, "support@staff.test")

	r := v.get("/admin/plans").want(t, http.StatusOK)
	if doc(t, r).Find(`nav a[href="/admin/plans"][aria-current="page"]`).Length() != 1 {
		t.Fatal("no current Plans nav item")
	}
	if n := doc(t, r).Find(`[data-testid="plan-row"]`).Length(); n != 2 {
		t.Fatalf("%d plan rows, want 2", n)
	}
	if got := testID(t, r, "plans-mrr-total"); got != "$0.00" {
		t.Fatalf("MRR without subscribers: %q", got)
	}

	idA, _ := p.shopper(t, "pa")
	idB, _ := p.shopper(t, "pb")
	idC, _ := p.shopper(t, "pc")
	subscribe(t, p, idA, "starter")
	subscribe(t, p, idB, "starter")
	subscribe(t, p, idC, "pro")

	r = v.get("/admin/plans").want(t, http.StatusOK)
	if got := testID(t, r, "plans-mrr-total"); got != "$87.00" {
		t.Errorf("MRR = %q, want $87.00", got)
	}
	card := func(key string) map[string]string {
		sel := doc(t, r).Find(`[data-testid="plan-row"][data-plan="` + key + `"]`)
		out := map[string]string{}
		for _, id := range []string{"plan-name", "plan-price", "plan-credits", "plan-rollover", "plan-packs", "plan-subscribers", "plan-mrr"} {
			out[id] = strings.Join(strings.Fields(sel.Find(`[data-testid="`+id+`"]`).Text()), " ")
		}
		return out
	}
	for key, want := range map[string]map[string]string{
		"starter": {"plan-name": "Starter", "plan-price": "$19.00", "plan-credits": "2,000 every month", "plan-rollover": "Up to 1,000 unused credits roll over for a month",
			"plan-packs": "Allowed", "plan-subscribers": "2", "plan-mrr": "$38.00"},
		"pro": {"plan-name": "Pro", "plan-price": "$49.00", "plan-credits": "6,000 every month", "plan-rollover": "Unused credits roll over for a month",
			"plan-packs": "Allowed", "plan-subscribers": "1", "plan-mrr": "$49.00"},
	} {
		got := card(key)
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s %s = %q, want %q", key, id, got[id], w)
			}
		}
	}

	r = v.get("/admin/plans/starter").want(t, http.StatusOK)
	rows := doc(t, r).Find(`[data-testid="subscriber-row"]`)
	if rows.Length() != 2 {
		t.Fatalf("%d starter subscribers, want 2", rows.Length())
	}
	seen := map[string]bool{}
	for i := range rows.Length() {
		row := rows.Eq(i)
		id, _ := row.Attr("data-customer")
		href, _ := row.Find(`[data-testid="subscriber-link"]`).Attr("href")
		if href != "/admin/customers/"+id {
			t.Errorf("subscriber %s links to %q", id, href)
		}
		if st := strings.TrimSpace(row.Find(`[data-testid="subscriber-status"]`).Text()); st != "Active" {
			t.Errorf("subscriber %s status %q", id, st)
		}
		if ver := strings.Join(strings.Fields(row.Find(`[data-testid="subscriber-version"]`).Text()), " "); !strings.HasSuffix(ver, "v2") {
			t.Errorf("subscriber %s price book %q, want v2", id, ver)
		}
		seen[id] = true
	}
	if !seen[idA] || !seen[idB] || seen[idC] {
		t.Fatalf("starter subscribers %v: want %s and %s", seen, idA, idB)
	}
	if r := v.get("/admin/plans/enterprise"); r.Status != http.StatusNotFound {
		t.Fatalf("an unknown plan: %d, want 404", r.Status)
	}
	r = v.get("/admin/plans/pro").want(t, http.StatusOK)
	if n := doc(t, r).Find(`[data-testid="subscriber-row"]`).Length(); n != 1 {
		t.Fatalf("%d pro subscribers, want 1", n)
	}
}

// TestAdminFreePeriod: the customer page shows the subscription; an admin
// gives a free period after a confirmation that says what happens, with a
// reason (required) kept in the audit log; the same confirmation pressed
// again grants nothing more; support sees no action.
func TestAdminFreePeriod(t *testing.T) {
	p, a := planAdminAPI(t)
	id, _ := p.shopper(t, "fp")
	sub := subscribe(t, p, id, "starter")
	page := "/admin/customers/" + id

	sv := a.signIn(t, "support@staff.test")
	r := sv.get(page).want(t, http.StatusOK)
	if got := testID(t, r, "subscription-plan"); got != "Starter" {
		t.Fatalf("support sees plan %q", got)
	}
	if doc(t, r).Find(`[data-testid="free-period-form"]`).Length() != 0 {
		t.Fatal("support is offered a free period")
	}
	if r := sv.adminPost(page, page+"/free-period", url.Values{"reason": {"goodwill"}}); r.Status != http.StatusForbidden {
		t.Fatalf("support's free period: %d, want 403", r.Status)
	}

	v := a.signIn(t, "admin@staff.test")
	r = v.get(page).want(t, http.StatusOK)
	for id, want := range map[string]string{"subscription-plan": "Starter", "subscription-status": "Active",
		"subscription-credits": "2,000 left of 2,000", "subscription-rolled-over": "0"} {
		if got := testID(t, r, id); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if doc(t, r).Find(`[data-testid="free-period-form"]`).Length() != 1 {
		t.Fatal("no free period form for an admin")
	}
	// A plan invoice is listed with the purchases but is not refunded from here.
	if n := doc(t, r).Find(`[data-testid="refund-form"]`).Length(); n != 0 {
		t.Errorf("%d refund forms beside plan invoices", n)
	}

	// No reason: the error beside the field, nothing written.
	r = v.adminPost(page, page+"/free-period", url.Values{"reason": {"  "}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(testID(t, r, "error-free-period-reason"), "Say why") {
		t.Fatalf("no reason: %d %q", r.Status, testID(t, r, "error-free-period-reason"))
	}
	// The confirmation says what will happen and writes nothing.
	r = v.adminPost(page, page+"/free-period", url.Values{"reason": {"outage on 9 March"}}).want(t, http.StatusOK)
	if got := testID(t, r, "confirm-text"); !strings.Contains(got, "2,000 credits are added now and nothing is charged for that period") ||
		!strings.Contains(got, "The next charge moves from 10 Apr to 10 May") {
		t.Fatalf("confirmation: %q", got)
	}
	if got := testID(t, r, "confirm-after"); got != "4,000" {
		t.Fatalf("balance after: %q", got)
	}
	if got := p.available(t, id); got != billing.CreditsOf(2000) {
		t.Fatalf("the confirmation wrote: %s", got)
	}
	form := formValues(t, r, `[data-testid="confirm"] form`)
	if loc := v.location(v.post(page+"/free-period", form), http.StatusSeeOther); loc != page {
		t.Fatalf("after the grant: %s", loc)
	}
	// The current period's 2,000 credits live on to 10 Apr (the free
	// period does not close it early, which would expire 1,000 of them
	// over Starter's rollover cap), beside the free period's 2,000.
	if got := p.available(t, id); got != billing.CreditsOf(4000) {
		t.Fatalf("after the free period: %s", got)
	}
	r = v.get(page).want(t, http.StatusOK)
	if got := testID(t, r, "subscription-period"); got != "10 Apr – 10 May" || !strings.Contains(testID(t, r, "admin-subscription"), "free period ahead") {
		t.Errorf("the period after a free one: %q", got)
	}
	if f := testID(t, r, "flash"); !strings.Contains(f, "a free month of Starter: 2,000 credits added; the next charge is on 10 May") {
		t.Fatalf("flash: %q", f)
	}
	// The free period is listed with the purchases as free, not as paid.
	var free []string
	doc(t, r).Find(`[data-testid="purchase-figures"]`).Each(func(_ int, s *goquery.Selection) {
		if txt := strings.Join(strings.Fields(s.Text()), " "); strings.Contains(txt, "Free") {
			free = append(free, txt)
		}
	})
	if len(free) != 1 || free[0] != "+2,000 — Free" {
		t.Errorf("free periods among the purchases: %q, want one, +2,000 — Free", free)
	}
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditFreePeriod})
	if len(recs) != 1 || recs[0].Reason != "outage on 9 March" || recs[0].Customer != id || recs[0].Actor != billing.AdminActor(a.Admin.ID) ||
		recs[0].Before != sub.CurrentPeriodEnd.UTC().Format("2006-01-02T15:04:05Z07:00") {
		t.Fatalf("audit: %+v", recs)
	}
	// The same confirmation again: nothing more.
	v.location(v.post(page+"/free-period", form), http.StatusSeeOther)
	if got := p.available(t, id); got != billing.CreditsOf(4000) {
		t.Fatalf("a second press: %s", got)
	}
	if f := testID(t, v.get(page), "flash"); !strings.Contains(f, "granted already") {
		t.Fatalf("second press flash: %q", f)
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditFreePeriod}); len(recs) != 1 {
		t.Fatalf("a second press audited: %d records", len(recs))
	}
	// A confirmation of another period (a page from before a renewal):
	// nothing granted, the flash says why.
	stale := url.Values{}
	for k, vs := range form {
		stale[k] = vs
	}
	stale.Set("period", sub.CurrentPeriodStart.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"))
	v.location(v.post(page+"/free-period", stale), http.StatusSeeOther)
	if f := testID(t, v.get(page), "flash"); !strings.Contains(f, "nothing was granted") {
		t.Fatalf("stale confirmation flash: %q", f)
	}
	if got := p.available(t, id); got != billing.CreditsOf(4000) {
		t.Fatalf("a stale confirmation: %s", got)
	}
	// A tampered period: not a valid confirmation.
	bad := url.Values{}
	for k, vs := range form {
		bad[k] = vs
	}
	bad.Set("period", "yesterday")
	if r := v.post(page+"/free-period", bad); r.Status != http.StatusUnprocessableEntity || testID(t, r, "error-free-period-reason") == "" {
		t.Fatalf("a bad period: %d", r.Status)
	}

	// A customer without a subscription: no panel, and the action says why.
	other, _ := p.shopper(t, "nosub")
	r = v.get("/admin/customers/"+other).want(t, http.StatusOK)
	if doc(t, r).Find(`[data-testid="admin-subscription"]`).Length() != 0 {
		t.Fatal("a subscription panel without a subscription")
	}
	v.location(v.adminPost("/admin/customers/"+other, "/admin/customers/"+other+"/free-period", url.Values{"reason": {"x"}}), http.StatusSeeOther)
	if f := testID(t, v.get("/admin/customers/"+other), "flash"); !strings.Contains(f, "no live subscription") {
		t.Fatalf("no subscription: flash %q", f)
	}
	// A purchase the product recorded through the API was paid, there.
	a.grant(t, id, "500", "purchase")
	var recorded []string
	doc(t, v.get(page)).Find(`[data-testid="purchases"] li`).Each(func(_ int, s *goquery.Selection) {
		if txt := strings.Join(strings.Fields(s.Text()), " "); strings.Contains(txt, "+500") {
			recorded = append(recorded, txt)
		}
	})
	if len(recorded) != 1 || !strings.HasSuffix(recorded[0], "+500 — Paid") {
		t.Errorf("a purchase recorded through the API: %q, want it Paid", recorded)
	}
}
