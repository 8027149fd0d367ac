package handlers_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/payments"
)

func TestAdminCustomerList(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	v := a.signIn(t, "support@staff.test")
	r := v.get("/admin/customers").want(t, http.StatusOK)
	if !strings.Contains(testID(t, r, "customers-empty"), "No customers yet") {
		t.Fatalf("empty state: %q", testID(t, r, "customers-empty"))
	}
	for i := range 27 {
		a.namedCustomer(t, fmt.Sprintf("ext-%02d", i), fmt.Sprintf("Customer %02d", i))
		a.Clock.Advance(time.Second)
	}
	flagged := a.namedCustomer(t, "flagged", "Disputed Ltd")
	a.grant(t, flagged, "12.5", "purchase")
	if err := a.DB.FlagCustomer(context.Background(), flagged, "payment disputed"); err != nil {
		t.Fatal(err)
	}
	r = v.get("/admin/customers").want(t, http.StatusOK)
	rows := doc(t, r).Find(`[data-testid="customer-row"]`)
	if rows.Length() != 25 {
		t.Fatalf("first page: %d rows, want 25", rows.Length())
	}
	first := rows.First()
	if first.AttrOr("data-customer", "") != flagged || !strings.Contains(first.Find(`[data-testid="customer-status"]`).Text(), "Flagged") ||
		strings.TrimSpace(first.Find(`[data-testid="customer-balance"]`).Text()) != "12.5" {
		t.Fatalf("newest row: %q", strings.Join(strings.Fields(first.Text()), " "))
	}
	next, ok := doc(t, r).Find(`[data-testid="customers-next"]`).Attr("href")
	if !ok {
		t.Fatal("no next page link")
	}
	r = v.get(next).want(t, http.StatusOK)
	if n := doc(t, r).Find(`[data-testid="customer-row"]`).Length(); n != 3 {
		t.Fatalf("second page: %d rows, want 3", n)
	}
	for q, want := range map[string]int{"ext-07": 1, "customer 1": 10, "EXT-2": 7, "flagged@example": 1, "nobody": 0} {
		r := v.get("/admin/customers?q="+url.QueryEscape(q)).want(t, http.StatusOK)
		if n := doc(t, r).Find(`[data-testid="customer-row"]`).Length(); n != want {
			t.Errorf("search %q: %d rows, want %d", q, n, want)
		}
		if want == 0 && !strings.Contains(testID(t, r, "customers-empty"), "No customer matches") {
			t.Errorf("search %q: empty state %q", q, testID(t, r, "customers-empty"))
		}
	}
	if r := v.get("/admin/customers?cursor=nope"); r.Status != http.StatusBadRequest {
		t.Errorf("bad cursor: %d, want 400", r.Status)
	}
}

func TestAdminCustomerPage(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "page", "Page Co")
	a.grant(t, cus, "250", "purchase")
	a.usage("page", "chat.request", "3", "").want(t, http.StatusCreated)
	support := a.signIn(t, "support@staff.test")
	r := support.get("/admin/customers/"+cus).want(t, http.StatusOK)
	if got := testID(t, r, "admin-balance"); got != "247" {
		t.Errorf("balance %q, want 247", got)
	}
	d := doc(t, r)
	if d.Find(`[data-testid="ledger-lot"]`).Length() != 1 || d.Find(`[data-testid="ledger-row"]`).Length() != 2 {
		t.Errorf("lots %d, entries %d", d.Find(`[data-testid="ledger-lot"]`).Length(), d.Find(`[data-testid="ledger-row"]`).Length())
	}
	if got := strings.Join(strings.Fields(d.Find(`[data-testid="usage-feature"]`).Text()), " "); got != "Chat request chat.request 3 credits · 1 event" {
		t.Errorf("usage %q", got)
	}
	// The admin page never links into the portal: /portal/usage would open
	// whatever portal session the browser holds (another customer's, after
	// a read-only view), not this customer's usage.
	if d.Find(`[data-testid="ledger-title"]`).Length() != 2 {
		t.Errorf("ledger titles: %d", d.Find(`[data-testid="ledger-title"]`).Length())
	}
	d.Find(`main a[href]`).Each(func(_ int, s *goquery.Selection) {
		if h := s.AttrOr("href", ""); strings.HasPrefix(h, "/portal") {
			t.Errorf("the admin customer page links to %q (%q)", h, s.Text())
		}
	})
	if got := testID(t, r, "refill-summary"); got != "Auto-refill: off" {
		t.Errorf("refill %q", got)
	}
	if d.Find(`[data-testid="actions"]`).Length() != 0 || testID(t, r, "read-only-note") == "" {
		t.Error("support sees the action forms")
	}
	admin := a.signIn(t, "admin@staff.test")
	r = admin.get("/admin/customers/page").want(t, http.StatusOK) // an external id works too
	if doc(t, r).Find(`[data-testid="grant-form"]`).Length() != 1 {
		t.Error("an admin does not see the grant form")
	}
	if r := admin.get("/admin/customers/nobody"); r.Status != http.StatusNotFound || testID(t, r, "error-page") == "" {
		t.Errorf("unknown customer: %d", r.Status)
	}
}

// entriesOf is a customer's ledger through the API, newest first.
func (a *adminAPI) entriesOf(t *testing.T, cus string) []map[string]any {
	t.Helper()
	return a.walk(t, "/api/v1/customers/"+cus+"/ledger")
}

func TestAdminGrant(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "grantee", "Grantee Inc")
	a.grant(t, cus, "10", "purchase")
	v := a.signIn(t, "admin@staff.test")
	page := "/admin/customers/" + cus
	post := func(f url.Values) response { return v.adminPost(page, page+"/grant", f) }

	for _, tc := range []struct {
		name   string
		form   url.Values
		errors map[string]string
	}{
		{"empty", url.Values{}, map[string]string{"credits": "Enter the credits", "reason": "Say why"}},
		{"not a number", url.Values{"credits": {"ten"}, "reason": {"promo"}}, map[string]string{"credits": ""}},
		{"negative", url.Values{"credits": {"-5"}, "reason": {"promo"}}, map[string]string{"credits": "Deduct"}},
		{"zero", url.Values{"credits": {"0"}, "reason": {"promo"}}, map[string]string{"credits": "more than zero"}},
		{"past expiry", url.Values{"credits": {"5"}, "reason": {"promo"}, "expires": {"2020-01-01"}}, map[string]string{"expires": "after today"}},
		{"bad expiry", url.Values{"credits": {"5"}, "reason": {"promo"}, "expires": {"soon"}}, map[string]string{"expires": "like 2026-12-31"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(tc.form)
			if r.Status != http.StatusUnprocessableEntity {
				t.Fatalf("%d, want 422", r.Status)
			}
			for field, want := range tc.errors {
				if got := testID(t, r, "error-grant-"+field); got == "" || !strings.Contains(got, want) {
					t.Errorf("%s error %q, want %q", field, got, want)
				}
			}
			if doc(t, r).Find(`[data-testid="action-grant"][open]`).Length() != 1 {
				t.Error("the failed form is not open")
			}
		})
	}
	// The first post shows the confirmation and moves nothing.
	expires := testStart.AddDate(0, 1, 0).Format(time.DateOnly)
	r := post(url.Values{"credits": {"1,500"}, "reason": {"Launch promo"}, "expires": {expires}}).want(t, http.StatusOK)
	if got := testID(t, r, "confirm-after"); got != "1,510" {
		t.Fatalf("confirmation says the balance becomes %q, want 1,510", got)
	}
	if b := credits(t, a.balance(t, cus)["balance"]); b != billing.CreditsOf(10) {
		t.Fatalf("the confirmation page moved money: %v", b)
	}
	form := url.Values{}
	doc(t, r).Find(`[data-testid="confirm"] form input`).Each(func(_ int, s *goquery.Selection) {
		form.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	if form.Get("confirm") != "1" || form.Get("key") == "" {
		t.Fatalf("confirmation form: %v", form)
	}
	// Confirming twice (a double click, a retry) grants once.
	for range 2 {
		r = v.post(page+"/grant", form)
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != page {
			t.Fatalf("confirm: %d to %q; %.300s", r.Status, r.Header.Get("Location"), r.Raw)
		}
	}
	if msg := testID(t, v.get(page), "flash"); !strings.Contains(msg, "Granted 1,500 credits to Grantee Inc") {
		t.Errorf("flash %q", msg)
	}
	if b := credits(t, a.balance(t, cus)["balance"]); b != billing.CreditsOf(1510) {
		t.Fatalf("balance %v, want 1510", b)
	}
	es := a.entriesOf(t, cus)
	if len(es) != 2 || es[0]["reason"] != "Launch promo" || es[0]["source"] != "promo" {
		t.Fatalf("entries: %v", es)
	}
	recs := a.audit(t, billing.AuditFilter{Customer: cus, Action: "ledger.grant"})
	if len(recs) != 2 || recs[0].Actor != billing.AdminActor(a.Admin.ID) || recs[0].Before != "10" || recs[0].After != "1510" || recs[0].Reason != "Launch promo" {
		t.Fatalf("audit: %+v", recs)
	}
	lots := a.balance(t, cus)["lots"].([]any)
	if len(lots) != 2 {
		t.Fatalf("lots: %v", lots)
	}
	var promo map[string]any
	for _, l := range lots {
		if l.(map[string]any)["source"] == "promo" {
			promo = l.(map[string]any)
		}
	}
	if promo == nil || fmt.Sprint(promo["expires_at"]) != expires+"T23:59:59.999999Z" {
		t.Fatalf("the promo lot's expiry: %v, want the end of %s", promo, expires)
	}
}

func TestAdminDeduct(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "deductee", "Deductee")
	a.grant(t, cus, "100", "purchase")
	v := a.signIn(t, "owner@staff.test")
	page := "/admin/customers/" + cus
	r := v.adminPost(page, page+"/deduct", url.Values{"credits": {"150"}, "reason": {"goodwill reversal"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(testID(t, r, "error-deduct-credits"), "100 credits available") {
		t.Fatalf("too much: %d %q", r.Status, testID(t, r, "error-deduct-credits"))
	}
	r = v.adminPost(page, page+"/deduct", url.Values{"credits": {"40"}}).want(t, http.StatusUnprocessableEntity)
	if testID(t, r, "error-deduct-reason") == "" {
		t.Fatal("no reason error")
	}
	r = v.adminPost(page, page+"/deduct", url.Values{"credits": {"40"}, "reason": {"duplicate grant"}}).want(t, http.StatusOK)
	if got := testID(t, r, "confirm-after"); got != "60" {
		t.Fatalf("confirmation after %q", got)
	}
	form := url.Values{}
	doc(t, r).Find(`[data-testid="confirm"] form input`).Each(func(_ int, s *goquery.Selection) {
		form.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	if r := v.post(page+"/deduct", form); r.Status != http.StatusSeeOther {
		t.Fatalf("confirm: %d %.300s", r.Status, r.Raw)
	}
	if b := credits(t, a.balance(t, cus)["balance"]); b != billing.CreditsOf(60) {
		t.Fatalf("balance %v, want 60", b)
	}
	recs := a.audit(t, billing.AuditFilter{Customer: cus, Action: "ledger.adjustment"})
	if len(recs) != 1 || recs[0].Actor != billing.AdminActor(a.Owner.ID) || recs[0].Reason != "duplicate grant" || recs[0].After != "60" {
		t.Fatalf("audit: %+v", recs)
	}
}

func TestAdminLimits(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "limited", "Limited")
	v := a.signIn(t, "admin@staff.test")
	page := "/admin/customers/" + cus
	r := v.adminPost(page, page+"/limits", url.Values{"overdraft": {"-1"}, "daily_cap": {"x"}, "reason": {"r"}}).want(t, http.StatusUnprocessableEntity)
	if testID(t, r, "error-limits-overdraft") == "" || testID(t, r, "error-limits-daily_cap") == "" {
		t.Fatalf("errors: %q %q", testID(t, r, "error-limits-overdraft"), testID(t, r, "error-limits-daily_cap"))
	}
	// A daily cap over the monthly one is said in words, beside the daily cap.
	r = v.adminPost(page, page+"/limits", url.Values{"overdraft": {"0"}, "daily_cap": {"50"}, "monthly_cap": {"10"}, "reason": {"r"}}).want(t, http.StatusUnprocessableEntity)
	if got := testID(t, r, "error-limits-daily_cap"); got != "The daily cap can't be more than the monthly cap." {
		t.Errorf("daily over monthly: %q", got)
	}
	if r := v.adminPost(page, page+"/limits", url.Values{"overdraft": {"5"}}); testID(t, r, "error-limits-reason") == "" {
		t.Fatal("no reason error")
	}
	r = v.adminPost(page, page+"/limits", url.Values{"overdraft": {"5"}, "daily_cap": {"50"}, "monthly_cap": {""}, "reason": {"trusted customer"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %.300s", r.Status, r.Raw)
	}
	lim := limitsOf(t, a.testAPI, cus)
	if lim.OverdraftLimit != billing.CreditsOf(5) || lim.DailyCap == nil || *lim.DailyCap != billing.CreditsOf(50) || lim.MonthlyCap != nil {
		t.Fatalf("limits %+v", lim)
	}
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditLimitsSet})
	if len(recs) != 1 || recs[0].Customer != cus || !strings.Contains(recs[0].Before, `"overdraft_limit":0`) || !strings.Contains(recs[0].After, `"daily_cap":50`) {
		t.Fatalf("audit: %+v", recs)
	}
}

func TestAdminFlagAndPortalLink(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "disputed", "Disputed")
	if err := a.DB.FlagCustomer(context.Background(), cus, "payment for top-up tu_1 disputed"); err != nil {
		t.Fatal(err)
	}
	v := a.signIn(t, "admin@staff.test")
	page := "/admin/customers/" + cus
	r := v.get(page).want(t, http.StatusOK)
	if !strings.Contains(testID(t, r, "flag-open"), "disputed") {
		t.Fatalf("flag: %q", testID(t, r, "flag-open"))
	}
	action, _ := doc(t, r).Find(`[data-testid="flag-open"] form`).Attr("action")
	if r := v.adminPost(page, action, nil); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("clear without a reason: %d", r.Status)
	}
	if r := v.adminPost(page, action, url.Values{"reason": {"won the dispute"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("clear: %d %.300s", r.Status, r.Raw)
	}
	r = v.get(page)
	if testID(t, r, "flag-open") != "" || testID(t, r, "flag-cleared") == "" {
		t.Fatal("the flag is still open")
	}
	if r := v.adminPost(page, action, url.Values{"reason": {"again"}}); r.Status != http.StatusNotFound {
		t.Fatalf("clear twice: %d", r.Status)
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditDisputeCleared}); len(recs) != 1 || recs[0].Reason != "won the dispute" {
		t.Fatalf("audit: %+v", recs)
	}

	if r := v.adminPost(page, page+"/portal-link", nil); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("link without a reason: %d", r.Status)
	}
	// The link is on a page of its own that stays (a flash fades after 8
	// seconds), with a copy button and when it stops working.
	r = v.adminPost(page, page+"/portal-link", url.Values{"reason": {"customer asked by e-mail"}}).want(t, http.StatusOK)
	link := testID(t, r, "portal-link")
	if !strings.HasPrefix(link, "http") || !strings.Contains(link, "/portal/session/") {
		t.Fatalf("the page shows no link: %q", link)
	}
	pd := doc(t, r)
	if pd.Find(`[data-testid="portal-link-copy"][data-copy="#portal-link"]`).Length() != 1 || pd.Find(`#portal-link-copied[role="status"]`).Length() != 1 {
		t.Error("no copy button announcing Copied")
	}
	if got := strings.Join(strings.Fields(testID(t, r, "portal-link-expiry")), " "); !strings.Contains(got, "works once, and only until") || !strings.Contains(got, "5 minutes from now") {
		t.Errorf("expiry note %q", got)
	}
	if f := testID(t, r, "flash"); strings.Contains(f, "/portal/session/") {
		t.Errorf("the link is in a fading flash: %q", f)
	}
	customer := newPortalVisitor(t, a.testAPI)
	if r := customer.open(link); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal" {
		t.Fatalf("the link %q: %d to %q", link, r.Status, r.Header.Get("Location"))
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditPortalLinkSent, Customer: cus}); len(recs) != 1 {
		t.Fatalf("audit: %+v", recs)
	}
}

func TestAdminAuditPage(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "audited", "Audited, \"Quoted\"")
	a.grant(t, cus, "10", "purchase")
	a.usage("audited", "chat.request", "1", "").want(t, http.StatusCreated)
	v := a.signIn(t, "support@staff.test")
	r := v.get("/admin/audit").want(t, http.StatusOK)
	actions := doc(t, r).Find(`[data-testid="audit-row"]`).Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-action", "") })
	if strings.Join(actions, ",") != "admin.signed_in,ledger.debit,ledger.grant" {
		t.Fatalf("audit rows %v", actions)
	}
	// Who and whose by name, the id beside: the key that metered the debit
	// and the customer it was for.
	debit := doc(t, r).Find(`[data-testid="audit-row"][data-action="ledger.debit"]`)
	if who := strings.Join(strings.Fields(debit.Find(`[data-testid="audit-who"]`).Text()), " "); a.MeterKey.Name == "" || who != a.MeterKey.Name+" API key" {
		t.Fatalf("debit by %q, want the key's name %q", who, a.MeterKey.Name)
	}
	if txt := debit.Text(); !strings.Contains(txt, `Audited, "Quoted"`) || !strings.Contains(txt, cus) {
		t.Fatalf("debit row names no customer: %q", txt)
	}
	r = v.get("/admin/audit?actor=api_key:"+a.MeterKey.ID).want(t, http.StatusOK)
	if n := doc(t, r).Find(`[data-testid="audit-row"]`).Length(); n != 1 {
		t.Fatalf("actor filter: %d rows", n)
	}
	r = v.get("/admin/audit?customer=audited&action=ledger.grant").want(t, http.StatusOK)
	if n := doc(t, r).Find(`[data-testid="audit-row"]`).Length(); n != 1 {
		t.Fatalf("customer and action filter: %d rows", n)
	}
	if r := v.get("/admin/audit?action=nope"); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("unknown action: %d", r.Status)
	}
	r = v.get("/admin/audit?actor=nobody").want(t, http.StatusOK)
	if testID(t, r, "audit-empty") == "" {
		t.Fatal("no empty state")
	}
	// Every recorded action can be chosen in the filter, and opened by URL.
	offered := doc(t, r).Find(`#action option`).Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("value", "") })
	for _, action := range []string{billing.AuditHoldReleased, billing.AuditPolicyUpdated, billing.AuditAPIKeyUpdated, billing.AuditWebhookCreated, "ledger.refund"} {
		if !slices.Contains(offered, action) {
			t.Errorf("the action filter does not offer %s", action)
		}
		if r := v.get("/admin/audit?action=" + action); r.Status != http.StatusOK {
			t.Errorf("?action=%s: %d", action, r.Status)
		}
	}
	// Staff by the e-mail the log shows for them.
	r = v.get("/admin/audit?actor=Support@staff.test").want(t, http.StatusOK)
	byMail := doc(t, r).Find(`[data-testid="audit-row"]`).Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-action", "") })
	if strings.Join(byMail, ",") != "admin.signed_in" {
		t.Errorf("actor by e-mail: rows %v, want support's sign-in", byMail)
	}
	if got := doc(t, r).Find(`#actor`).AttrOr("value", ""); got != "Support@staff.test" {
		t.Errorf("the actor field shows %q, want the e-mail as typed", got)
	}

	r = v.get("/admin/audit.csv").want(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.Contains(r.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV headers: %q %q", ct, r.Header.Get("Content-Disposition"))
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.Raw))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[0][0] != "id" || rows[3][4] != "ledger.grant" || rows[3][6] != "0" || rows[3][7] != "10" {
		t.Fatalf("CSV: %v", rows)
	}
}

// A frozen account's debits and holds answer 403 account_frozen (the quote
// agrees), the portal says why, and unfreezing lets them through again.
func TestAdminFreeze(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "icy", "Icy Ltd")
	a.grant(t, cus, "100", "purchase")
	v := a.signIn(t, "admin@staff.test")
	page := "/admin/customers/" + cus
	if r := v.adminPost(page, page+"/freeze", nil); r.Status != http.StatusUnprocessableEntity || testID(t, r, "error-freeze-reason") == "" {
		t.Fatalf("freeze without a reason: %d", r.Status)
	}
	if r := v.adminPost(page, page+"/freeze", url.Values{"reason": {"chargeback fraud"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("freeze: %d %.300s", r.Status, r.Raw)
	}
	r := v.get(page)
	if !strings.Contains(testID(t, r, "frozen"), "chargeback fraud") || doc(t, r).Find(`[data-testid="unfreeze-form"]`).Length() != 1 {
		t.Fatalf("frozen banner %q", testID(t, r, "frozen"))
	}
	if got := testID(t, r, "frozen-by"); got != "admin@staff.test" {
		t.Errorf("the banner names who froze it %q, want their e-mail", got)
	}
	if r := v.get("/admin/customers"); testID(t, r, "badge-frozen") == "" {
		t.Error("the list shows no Frozen badge")
	}
	a.usage("icy", "chat.request", "1", "").wantError(t, http.StatusForbidden, "account_frozen")
	a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": cus, "credits": 5}).wantError(t, http.StatusForbidden, "account_frozen")
	q := a.do("GET", "/api/v1/quote?customer=icy&feature=chat.request&quantity=1", a.Read, nil).want(t, http.StatusOK)
	if q.Body["affordable"] != false || q.Body["reason"] != "account_frozen" {
		t.Fatalf("quote of a frozen account: %v", q.Body)
	}
	customer := newPortalVisitor(t, a.testAPI)
	customer.signIn("icy")
	if msg := testID(t, customer.get("/portal").want(t, http.StatusOK), "frozen-notice"); !strings.Contains(msg, "on hold") {
		t.Fatalf("portal notice %q", msg)
	}
	if r := v.adminPost(page, page+"/freeze", url.Values{"reason": {"again"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("freeze twice: %d", r.Status)
	}
	if msg := testID(t, v.get(page), "flash"); !strings.Contains(msg, "already frozen") {
		t.Fatalf("freeze twice says %q", msg)
	}
	if r := v.adminPost(page, page+"/unfreeze", url.Values{"reason": {"resolved with the bank"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("unfreeze: %d", r.Status)
	}
	a.usage("icy", "chat.request", "1", "").want(t, http.StatusCreated)
	if testID(t, customer.get("/portal"), "frozen-notice") != "" {
		t.Error("the portal still says the account is on hold")
	}
	recs := a.audit(t, billing.AuditFilter{Customer: cus, Actor: "admin"})
	var actions []string
	for _, r := range recs {
		actions = append(actions, r.Action+":"+r.Reason)
	}
	if strings.Join(actions, ",") != "customer.unfrozen:resolved with the bank,customer.frozen:chargeback fraud" {
		t.Fatalf("audit: %v", actions)
	}
}

// An admin refunds a purchase inside its window from the customer page,
// after a confirmation that says what is returned; the refund entry carries
// the admin and their reason.
func TestAdminRefund(t *testing.T) {
	p := newPayAPI(t)
	ctx := context.Background()
	if _, err := p.DB.CreateAdmin(ctx, "admin@staff.test", adminTestPassword, billing.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	a := &adminAPI{testAPI: p.testAPI}
	id, shopper := p.shopper(t, "refundee")
	shopper.addCard(cardOK)
	shopper.buy("pack_1000").want(t, http.StatusSeeOther)
	tid := p.lastTopUp(t, id)
	p.usage(id, "chat.request", "250", "").want(t, http.StatusCreated)

	v := a.signIn(t, "admin@staff.test")
	page := "/admin/customers/" + id
	r := v.get(page).want(t, http.StatusOK)
	if doc(t, r).Find(`[data-testid="refund-form"]`).Length() != 1 {
		t.Fatal("no refund form for a paid purchase")
	}
	if r := v.adminPost(page, page+"/topups/"+tid+"/refund", nil); r.Status != http.StatusUnprocessableEntity || testID(t, r, "error-refund-"+tid+"-reason") == "" {
		t.Fatalf("refund without a reason: %d", r.Status)
	}
	if r := v.adminPost(page, "/admin/customers/"+p.namedCustomer(t, "other", "Other")+"/topups/"+tid+"/refund", url.Values{"reason": {"x"}}); r.Status != http.StatusNotFound {
		t.Fatalf("another customer's top-up: %d, want 404", r.Status)
	}
	r = v.adminPost(page, page+"/topups/"+tid+"/refund", url.Values{"reason": {"unhappy with quality"}}).want(t, http.StatusOK)
	if got := testID(t, r, "confirm-submit"); got != "Refund $7.50 for 750 unused credits" {
		t.Fatalf("confirmation button %q", got)
	}
	if got := p.available(t, id); got != billing.CreditsOf(750) {
		t.Fatalf("the confirmation moved money: %s", got)
	}
	form := url.Values{}
	doc(t, r).Find(`[data-testid="confirm"] form input`).Each(func(_ int, s *goquery.Selection) {
		form.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	// A provider that does not have the payment (the sandbox after a
	// restart, before it recalled payments) refuses before anything moves,
	// and the refusal is said beside the reason: it was a bare "Not found"
	// page, after the credits had been taken.
	was := p.Service.Provider
	p.Service.Provider = payments.NewSandbox("http://tally.test")
	r = v.post(page+"/topups/"+tid+"/refund", form)
	p.Service.Provider = was
	if msg := testID(t, r, "error-refund-"+tid+"-reason"); r.Status != http.StatusUnprocessableEntity || !strings.Contains(msg, "Nothing was refunded and no credits were removed") {
		t.Fatalf("refund the provider cannot make: %d %q", r.Status, msg)
	}
	if got := p.available(t, id); got != billing.CreditsOf(750) {
		t.Fatalf("a refused refund moved credits: %s", got)
	}
	for range 2 { // a second press refunds nothing more
		if r := v.post(page+"/topups/"+tid+"/refund", form); r.Status != http.StatusSeeOther {
			t.Fatalf("confirm: %d %.300s", r.Status, r.Raw)
		}
	}
	if msg := testID(t, v.get(page), "flash"); !strings.Contains(msg, "Refunded $7.50") {
		t.Errorf("flash %q", msg)
	}
	if got := p.available(t, id); got != 0 {
		t.Fatalf("balance after the refund: %s", got)
	}
	recs := a.audit(t, billing.AuditFilter{Customer: id, Action: "ledger.refund"})
	if len(recs) != 1 || recs[0].Actor.Kind != billing.ActorAdmin || recs[0].Reason != "unhappy with quality" {
		t.Fatalf("audit: %+v", recs)
	}
	p.verify(t)
}

// Support opens a customer's portal read-only: it shows what the customer
// sees, refuses every portal write, is logged, and leaves the customer's
// own session alone.
func TestAdminViewPortalReadOnly(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "viewed", "Viewed Co")
	a.grant(t, cus, "42", "purchase")
	customer := newPortalVisitor(t, a.testAPI)
	customer.signIn("viewed")

	v := a.signIn(t, "support@staff.test")
	page := "/admin/customers/" + cus
	if r := v.adminPost(page, page+"/view-portal", nil); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("without a reason: %d", r.Status)
	}
	r := v.adminPost(page, page+"/view-portal", url.Values{"reason": {"ticket 1234: balance question"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal" {
		t.Fatalf("open: %d to %q; %.300s", r.Status, r.Header.Get("Location"), r.Raw)
	}
	r = v.get("/portal").want(t, http.StatusOK)
	if testID(t, r, "read-only-view") == "" || testID(t, r, "header-balance-value") != "42" {
		t.Fatalf("the view: banner %q, balance %q", testID(t, r, "read-only-view"), testID(t, r, "header-balance-value"))
	}
	tok := v.csrf("/portal/settings")
	for _, path := range []string{"/portal/settings", "/portal/top-ups/confirm", "/portal/refill"} {
		if r := v.post(path, url.Values{"_csrf": {tok}, "daily_cap": {"1"}}); r.Status != http.StatusForbidden {
			t.Errorf("POST %s in a read-only view: %d, want 403", path, r.Status)
		}
	}
	if lim := portalCapsOf(t, a.testAPI, cus); lim.DailyCap != nil {
		t.Fatal("a read-only view saved a cap")
	}
	if customer.signedInAs() != "Viewed Co" {
		t.Fatal("the customer's own session ended")
	}
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditPortalViewed})
	if len(recs) != 1 || recs[0].Actor != billing.AdminActor(a.Support.ID) || recs[0].Customer != cus || recs[0].Reason != "ticket 1234: balance question" {
		t.Fatalf("audit: %+v", recs)
	}
}

// A grant's expiry date means the end of that day, UTC: the confirmation,
// the lot and the Policies page all name the day picked (or the policy's
// day), never the next one; a refused submit does not fill the date in.
func TestAdminGrantExpiryDates(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	cus := a.namedCustomer(t, "dated", "Dated Co")
	v := a.signIn(t, "owner@staff.test")
	page := "/admin/customers/" + cus
	confirmForm := func(r response) url.Values {
		form := url.Values{}
		doc(t, r).Find(`[data-testid="confirm"] form input`).Each(func(_ int, s *goquery.Selection) {
			form.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
		})
		return form
	}

	// A picked date: 15 Jan 2027.
	r := v.adminPost(page, page+"/grant", url.Values{"credits": {"250.5"}, "reason": {"promo"}, "expires": {"2027-01-15"}}).want(t, http.StatusOK)
	if got := testID(t, r, "confirm-expires"); got != "At the end of 15 Jan 2027 (UTC)" {
		t.Errorf("confirmation expiry %q, want the end of 15 Jan 2027", got)
	}
	form := confirmForm(r)
	if form.Get("expires") != "2027-01-15" {
		t.Errorf("the confirmation sends expires=%q", form.Get("expires"))
	}
	v.post(page+"/grant", form).want(t, http.StatusSeeOther)
	lot := a.balance(t, cus)["lots"].([]any)[0].(map[string]any)
	if got := fmt.Sprint(lot["expires_at"]); got != "2027-01-15T23:59:59.999999Z" {
		t.Errorf("the lot expires at %s, want the end of 15 Jan 2027 UTC", got)
	}
	if got := strings.Join(strings.Fields(testID(t, v.get(page), "ledger-lot-expiry")), " "); got != "Expires 15 Jan 2027" {
		t.Errorf("the lot says %q, want Expires 15 Jan 2027", got)
	}

	// The policy's default: 30 days after 10 Mar 2026 12:00 is 9 Apr.
	cur, err := a.DB.CurrentPolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pol := cur.Policy
	pol.PromoExpiry = 30 * 24 * time.Hour
	if _, err := a.DB.UpdatePolicy(ctx, cur.Version, pol, billing.AdminActor(a.Owner.ID), "promo expiry"); err != nil {
		t.Fatal(err)
	}
	if got := testID(t, v.get("/admin/policies"), "example-promo-expiry"); !strings.HasPrefix(strings.Join(strings.Fields(got), " "), "At the end of 9 Apr 2026 (UTC)") {
		t.Errorf("Policies says promo credits expire %q, want the end of 9 Apr 2026", got)
	}
	if got := testID(t, v.get(page), "grant-expires-hint"); !strings.Contains(got, "to the end of 9 Apr 2026") {
		t.Errorf("the grant form's hint %q", got)
	}
	// A refused submit keeps the date empty, as typed.
	r = v.adminPost(page, page+"/grant", url.Values{"credits": {"10"}}).want(t, http.StatusUnprocessableEntity)
	if got := doc(t, r).Find(`#grant-expires`).AttrOr("value", "?"); got != "" {
		t.Errorf("after a refused submit the empty date field holds %q", got)
	}
	r = v.adminPost(page, page+"/grant", url.Values{"credits": {"10"}, "reason": {"promo"}}).want(t, http.StatusOK)
	if got := testID(t, r, "confirm-expires"); got != "At the end of 9 Apr 2026 (UTC)" {
		t.Errorf("confirmation expiry with the policy's default %q, want the end of 9 Apr 2026", got)
	}
	v.post(page+"/grant", confirmForm(r)).want(t, http.StatusSeeOther)
	for _, l := range a.balance(t, cus)["lots"].([]any) {
		if l := l.(map[string]any); fmt.Sprint(l["remaining"]) == "10" && fmt.Sprint(l["expires_at"]) != "2026-04-09T23:59:59.999999Z" {
			t.Errorf("the default lot expires at %v, want the end of 9 Apr 2026 UTC", l["expires_at"])
		}
	}
}

// A purchase past its refund window says the window closed: it said
// "Refundable until" a date already gone.
func TestAdminRefundWindowClosed(t *testing.T) {
	p := newPayAPI(t)
	ctx := context.Background()
	if _, err := p.DB.CreateAdmin(ctx, "support@staff.test", adminTestPassword, billing.RoleSupport); err != nil {
		t.Fatal(err)
	}
	a := &adminAPI{testAPI: p.testAPI}
	id, shopper := p.shopper(t, "late")
	shopper.addCard(cardOK)
	shopper.buy("pack_1000").want(t, http.StatusSeeOther)
	tu, err := p.DB.FindTopUp(ctx, p.lastTopUp(t, id))
	if err != nil || tu.RefundableUntil == nil {
		t.Fatalf("top-up %+v %v: want a refund window", tu, err)
	}
	v := a.signIn(t, "support@staff.test")
	page := "/admin/customers/" + id
	if got := testID(t, v.get(page), "purchase-refund-window"); !strings.HasPrefix(got, "Refundable until ") {
		t.Errorf("inside the window: %q", got)
	}
	p.Clock.Advance(tu.RefundableUntil.Sub(p.Clock.Now()) + time.Hour)
	if got := testID(t, v.get(page), "purchase-refund-window"); !strings.HasPrefix(got, "Refund window closed ") {
		t.Errorf("after the window: %q, want Refund window closed", got)
	}
}

// The audit log's Before → After is readable: no JSON, no nanoseconds, no
// ISO times (the CSV keeps the raw values).
func TestAdminAuditReadable(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	cus := a.namedCustomer(t, "readable", "Readable Co")
	v := a.signIn(t, "owner@staff.test")
	page := "/admin/customers/" + cus
	v.adminPost(page, page+"/limits", url.Values{"overdraft": {"0"}, "daily_cap": {"50"}, "reason": {"trusted"}}).want(t, http.StatusSeeOther)
	v.adminPost(page, page+"/portal-link", url.Values{"reason": {"asked"}}).want(t, http.StatusOK)
	cur, err := a.DB.CurrentPolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pol := cur.Policy
	pol.RefundWindow = 14 * 24 * time.Hour
	if _, err := a.DB.UpdatePolicy(ctx, cur.Version, pol, billing.AdminActor(a.Owner.ID), "two weeks"); err != nil {
		t.Fatal(err)
	}
	d := doc(t, v.get("/admin/audit").want(t, http.StatusOK))
	change := func(action string) string {
		return strings.Join(strings.Fields(d.Find(`[data-testid="audit-row"][data-action="`+action+`"] [data-testid="audit-change"]`).First().Text()), " ")
	}
	if got := change(billing.AuditLimitsSet); got != "Daily cap: no cap → 50" {
		t.Errorf("limits: %q", got)
	}
	if got := change(billing.AuditPolicyUpdated); !strings.HasPrefix(got, "Refund window: ") || !strings.HasSuffix(got, " → 14 days") {
		t.Errorf("policy: %q", got)
	}
	if got := change(billing.AuditPortalLinkSent); strings.Contains(got, "T12:") || !strings.Contains(got, "10 Mar, 12:") {
		t.Errorf("portal link: %q, want the time as the When column writes it", got)
	}
	d.Find(`[data-testid="audit-change"]`).Each(func(_ int, s *goquery.Selection) {
		if txt := s.Text(); strings.ContainsAny(txt, "{}\"") || strings.Contains(txt, "000000000") {
			t.Errorf("raw JSON in the audit log: %q", txt)
		}
	})
}
