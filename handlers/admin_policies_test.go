package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
)

// policyForm is the policy form as the page fills it, with changes.
func policyForm(t *testing.T, r response, changes map[string]string) url.Values {
	t.Helper()
	form := url.Values{}
	doc(t, r).Find(`[data-testid="policy-form"] input`).Each(func(_ int, s *goquery.Selection) {
		name, _ := s.Attr("name")
		val, _ := s.Attr("value")
		if name != "" && name != "_csrf" {
			form.Set(name, val)
		}
	})
	for k, v := range changes {
		form.Set(k, v)
	}
	return form
}

func TestAdminPolicies(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	v := a.signIn(t, "admin@staff.test")
	support := a.signIn(t, "support@staff.test")

	// Support reads: the values, no way to save.
	r := support.get("/admin/policies").want(t, http.StatusOK)
	if testID(t, r, "policy-read-only") == "" || doc(t, r).Find(`[data-testid="policy-submit"]`).Length() != 0 ||
		doc(t, r).Find(`fieldset[disabled]`).Length() != 3 {
		t.Fatalf("support's page: %.500s", r.Raw)
	}
	if got, _ := doc(t, r).Find(`[data-testid="policy-refund_window"]`).Attr("value"); got != "30" {
		t.Fatalf("refund window shown as %q, want 30 (days)", got)
	}
	if !strings.Contains(testID(t, r, "example-refundable"), "2026") || testID(t, r, "example-purchase-expiry") != "Never" {
		t.Fatalf("example: %q / %q", testID(t, r, "example-refundable"), testID(t, r, "example-purchase-expiry"))
	}
	if doc(t, r).Find(`nav a[href="/admin/policies"]`).Length() != 1 {
		t.Fatal("no Policies in the nav")
	}

	page := v.get("/admin/policies").want(t, http.StatusOK)
	// Every fault beside its field, all at once; nothing saved.
	r = v.adminPost("/admin/policies", "/admin/policies", policyForm(t, page, map[string]string{
		"refund_window": "-3", "custom_min": "20", "custom_max": "10", "low_balance_percent": "150", "hold_ttl": "abc", "reason": "",
		"refill_max_amount_per_month": "-5"}))
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid form: %d", r.Status)
	}
	for field, want := range map[string]string{"error-refund_window": "negative", "error-custom_max": "below the smallest",
		"error-low_balance_percent": "100", "error-hold_ttl": "", "error-reason": "Say why", "error-refill_max_amount_per_month": "negative"} {
		if got := testID(t, r, field); got == "" || !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	if by, _ := doc(t, r).Find(`[data-testid="policy-custom_max"]`).Attr("aria-describedby"); by != "policy-custom_max-help policy-custom_max-error" {
		t.Errorf("the field is not tied to its error: aria-describedby %q", by)
	}
	if got, _ := doc(t, r).Find(`[data-testid="policy-custom_min"]`).Attr("value"); got != "20" {
		t.Errorf("the typed value is lost: %q", got)
	}
	if cur, _ := a.DB.CurrentPolicy(ctx); cur.Version != 0 {
		t.Fatalf("an invalid form saved version %d", cur.Version)
	}

	// A change that moves no money saves at once, with a flash and an audit record.
	r = v.adminPost("/admin/policies", "/admin/policies", policyForm(t, page, map[string]string{"hold_ttl": "120", "reason": "shorter holds"}))
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/policies" {
		t.Fatalf("save: %d %q %.300s", r.Status, r.Header.Get("Location"), r.Raw)
	}
	cur, _ := a.DB.CurrentPolicy(ctx)
	if cur.Version != 1 || cur.Policy.HoldTTL != 2*time.Minute || cur.Actor != billing.AdminActor(a.Admin.ID) {
		t.Fatalf("after save: %+v", cur)
	}
	r = v.get("/admin/policies")
	if !strings.Contains(string(r.Raw), "Policy saved as version 1") || doc(t, r).Find(`[data-testid="policy-history-row"]`).Length() != 1 {
		t.Fatalf("flash or history missing: %.600s", r.Raw)
	}
	// The kernel uses it at once: a hold without ttl_seconds lives 2 minutes.
	cus := a.namedCustomer(t, "pol", "Policy Co")
	a.grant(t, cus, "100", billing.SourcePurchase)
	h := a.hold(t, cus, 1, 0)
	if exp, _ := time.Parse(time.RFC3339Nano, h["expires_at"].(string)); !exp.Equal(a.Clock.Now().Add(2 * time.Minute)) {
		t.Fatalf("hold expires %v, want in 2 minutes", h["expires_at"])
	}

	// A change that touches money asks first.
	page = v.get("/admin/policies")
	form := policyForm(t, page, map[string]string{"refund_window": "14", "promo_expiry": "30", "reason": "two-week refunds"})
	r = v.adminPost("/admin/policies", "/admin/policies", form).want(t, http.StatusOK)
	if testID(t, r, "confirm") == "" || doc(t, r).Find(`[data-testid="confirm-change"]`).Length() != 2 || !strings.Contains(string(r.Raw), "14 days") {
		t.Fatalf("confirmation: %.800s", r.Raw)
	}
	if cur, _ := a.DB.CurrentPolicy(ctx); cur.Version != 1 {
		t.Fatal("the confirmation step saved")
	}
	// A stale confirmation (someone saved meanwhile) is refused.
	stale := cur.Policy
	stale.LowBalancePercent = 20
	if _, err := a.DB.UpdatePolicy(ctx, 1, stale, billing.AdminActor(a.Owner.ID), "owner's change"); err != nil {
		t.Fatal(err)
	}
	form.Set("confirm", "1")
	r = v.adminPost("/admin/policies", "/admin/policies", form)
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Raw), "changed by") {
		t.Fatalf("stale save: %d %.400s", r.Status, r.Raw)
	}
	page = v.get("/admin/policies")
	form = policyForm(t, page, map[string]string{"refund_window": "14", "promo_expiry": "30", "reason": "two-week refunds", "confirm": "1",
		"refill_max_amount_per_month": "200"})
	v.adminPost("/admin/policies", "/admin/policies", form).want(t, http.StatusSeeOther)
	cur, _ = a.DB.CurrentPolicy(ctx)
	if cur.Version != 3 || cur.Policy.RefundWindow != 14*24*time.Hour || cur.Policy.PromoExpiry != 30*24*time.Hour || cur.Policy.LowBalancePercent != 20 ||
		cur.Policy.RefillMaxAmountPerMonth != 200_00 {
		t.Fatalf("after the confirmed save: %+v", cur)
	}
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditPolicyUpdated})
	if len(recs) != 3 || recs[0].Reason != "two-week refunds" || !strings.Contains(recs[0].After, `"refund_window":1209600000000000`) {
		t.Fatalf("audit: %+v", recs)
	}

	// The grant form's empty expiry is the policy's promo expiry.
	cr := v.get("/admin/customers/" + cus)
	if !strings.Contains(testID(t, cr, "grant-expires-hint"), "in 30 days, the policy's default: to the end of ") {
		t.Fatalf("the grant form does not say the default expiry")
	}
	r = v.adminPost("/admin/customers/"+cus, "/admin/customers/"+cus+"/grant", url.Values{"credits": {"10"}, "reason": {"promo"}}).want(t, http.StatusOK)
	want := a.Clock.Now().UTC().Add(30 * 24 * time.Hour).Format(time.DateOnly)
	if v, _ := doc(t, r).Find(`input[name="expires"]`).Attr("value"); v != want {
		t.Fatalf("the confirmation's expiry = %q, want %q", v, want)
	}

	// A price book with a custom top-up range of its own wins over the
	// policy's bounds: the page says so beside them, with the range.
	if got := testID(t, v.get("/admin/policies"), "policy-custom-overridden"); got != "" {
		t.Fatalf("the price book sets no range, yet the page says %q", got)
	}
	pb, err := a.DB.CurrentPriceBook(ctx)
	if err != nil || pb == nil {
		t.Fatal(pb, err)
	}
	next := *pb
	next.CustomTopUp = &billing.CustomTopUp{Min: 5_00, Max: 250_00}
	if _, _, err := a.DB.PublishPriceBook(ctx, next); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(strings.Fields(testID(t, v.get("/admin/policies"), "policy-custom-overridden")), " ")
	if want := fmt.Sprintf("(version %d) sets its own custom top-up range, $5.00 to $250.00", pb.Version+1); !strings.Contains(got, want) {
		t.Fatalf("the note = %q, want it to contain %q", got, want)
	}
}

func TestAdminAPIKeyEdit(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	v := a.signIn(t, "admin@staff.test")
	support := a.signIn(t, "support@staff.test")
	path := "/admin/api-keys/" + a.MeterKey.ID

	r := support.get(path).want(t, http.StatusOK)
	if doc(t, r).Find(`[data-testid="api-key-save"]`).Length() != 0 || doc(t, r).Find(`fieldset[disabled]`).Length() != 1 {
		t.Fatalf("support's view of a key: %.400s", r.Raw)
	}
	support.adminPost(path, path, url.Values{"scope": {"read"}}).want(t, http.StatusForbidden)

	r = v.get(path).want(t, http.StatusOK)
	if c, _ := doc(t, r).Find(`input[name="scope"][value="metering"]`).Attr("checked"); c != "" && c != "checked" {
		t.Fatalf("scope not checked: %q", c)
	}
	// Errors beside the fields; nothing changes.
	r = v.adminPost(path, path, url.Values{"scope": {"root"}, "daily_cap": {"-1"}, "origins": {"not an origin"}})
	if r.Status != http.StatusUnprocessableEntity || testID(t, r, "error-scope") == "" || testID(t, r, "error-daily_cap") == "" || testID(t, r, "error-origins") == "" {
		t.Fatalf("invalid edit: %d", r.Status)
	}
	// The metering key meters.
	cus := a.customer(t, "keyed")
	a.grant(t, cus, "100", billing.SourcePurchase)
	a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated)

	// (A portal key: only portal and admin keys may list origins.)
	r = v.adminPost(path, path, url.Values{"scope": {"portal"}, "daily_cap": {"50"}, "rate_limit": {"7"}, "origins": {"https://app.example.com"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/api-keys" {
		t.Fatalf("edit: %d %.300s", r.Status, r.Raw)
	}
	if r := v.get("/admin/api-keys"); !strings.Contains(string(r.Raw), "portal scope, caps 50 a day, 7 req/s") {
		t.Fatalf("no flash: %.500s", r.Raw)
	}
	k := findKeyByID(t, a, a.MeterKey.ID)
	if k.Scope != billing.ScopePortal || k.Limits.DailyCap == nil || *k.Limits.DailyCap != billing.CreditsOf(50) || k.RateLimit != 7 ||
		strings.Join(k.AllowedOrigins, ",") != "https://app.example.com" {
		t.Fatalf("key after the edit: %+v", k)
	}
	// It applies to the key's next request: a portal key can't meter.
	a.usage(cus, "chat.request", "1", "").wantError(t, http.StatusForbidden, billing.CodeForbidden)
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditAPIKeyUpdated})
	if len(recs) != 1 || recs[0].Actor != billing.AdminActor(a.Admin.ID) || !strings.Contains(recs[0].Before, `"scope":"metering"`) ||
		!strings.Contains(recs[0].After, `"scope":"portal"`) || !strings.Contains(recs[0].After, "app.example.com") || strings.Contains(recs[0].After, a.Meter) {
		t.Fatalf("audit: %+v", recs)
	}
	// A revoked key can't be edited.
	if _, err := a.DB.RevokeAPIKey(ctx, a.ReadKey.ID); err != nil {
		t.Fatal(err)
	}
	rp := "/admin/api-keys/" + a.ReadKey.ID
	if r := v.get(rp); testID(t, r, "api-key-revoked") == "" {
		t.Fatal("the revoked key's page offers the form")
	}
	r = v.adminPost("/admin/api-keys", rp, url.Values{"scope": {"admin"}})
	if r.Status != http.StatusSeeOther || findKeyByID(t, a, a.ReadKey.ID).Scope != billing.ScopeRead {
		t.Fatalf("editing a revoked key: %d, scope %s", r.Status, findKeyByID(t, a, a.ReadKey.ID).Scope)
	}
}

func findKeyByID(t *testing.T, a *adminAPI, id string) billing.APIKey {
	t.Helper()
	keys, err := a.DB.FindAPIKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("no key %s", id)
	return billing.APIKey{}
}

func TestAdminHolds(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	v := a.signIn(t, "admin@staff.test")
	support := a.signIn(t, "support@staff.test")
	cus := a.namedCustomer(t, "holder", "Holder Co")
	other := a.namedCustomer(t, "other", "Other Co")
	a.grant(t, cus, "100", billing.SourcePurchase)
	a.grant(t, other, "100", billing.SourcePurchase)
	page := "/admin/customers/" + cus

	r := v.get(page).want(t, http.StatusOK)
	if testID(t, r, "holds-empty") == "" {
		t.Fatal("no empty state for holds")
	}
	h := a.hold(t, cus, 30, 600)
	oh := a.hold(t, other, 5, 600)
	id := h["id"].(string)

	r = support.get(page).want(t, http.StatusOK)
	if doc(t, r).Find(`[data-testid="hold-row"]`).Length() != 1 || testID(t, r, "hold-credits") != "30" ||
		!strings.Contains(testID(t, r, "hold-key"), "test metering") || doc(t, r).Find(`[data-testid="hold-release"]`).Length() != 0 {
		t.Fatalf("support's holds: %q %q", testID(t, r, "hold-credits"), testID(t, r, "hold-key"))
	}
	rel := page + "/holds/" + id + "/release"
	if got := doc(t, v.get(page)).Find(`[data-testid="hold-release"]`).Text(); got != "Release the hold of 30 credits, "+id {
		t.Errorf("the Release button is named %q for screen readers, want the hold", got)
	}
	support.adminPost(page, rel, nil).want(t, http.StatusForbidden)

	// The confirmation first; nothing released.
	r = v.adminPost(page, rel, nil).want(t, http.StatusOK)
	if !strings.Contains(testID(t, r, "confirm"), "available to them again") {
		t.Fatalf("confirmation: %.400s", r.Raw)
	}
	if doc(t, r).Find(`#confirm-reason[name="reason"]`).Length() != 1 {
		t.Fatal("the release confirmation asks for no reason")
	}
	if b := a.balance(t, cus); fmt.Sprint(b["held"]) != "30" {
		t.Fatalf("released before the confirmation: %v", b)
	}
	// Another customer's hold is not this customer's to release.
	r = v.adminPost(page, page+"/holds/"+oh["id"].(string)+"/release", url.Values{"confirm": {"1"}})
	if r.Status != http.StatusSeeOther || fmt.Sprint(a.balance(t, other)["held"]) != "5" {
		t.Fatalf("releasing another customer's hold: %d, held %v", r.Status, a.balance(t, other)["held"])
	}
	// The confirmation asks for a reason, as every other action does:
	// without one nothing is released and the error is beside the field.
	r = v.adminPost(page, rel, url.Values{"confirm": {"1"}}).want(t, http.StatusUnprocessableEntity)
	if !strings.Contains(testID(t, r, "error-confirm-reason"), "Say why") {
		t.Fatalf("release without a reason: error %q", testID(t, r, "error-confirm-reason"))
	}
	if b := a.balance(t, cus); fmt.Sprint(b["held"]) != "30" {
		t.Fatalf("released without a reason: %v", b)
	}
	r = v.adminPost(page, rel, url.Values{"confirm": {"1"}, "reason": {"app crashed mid-call"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != page {
		t.Fatalf("release: %d %.2000s", r.Status, r.Raw)
	}
	if b := a.balance(t, cus); fmt.Sprint(b["held"]) != "0" || fmt.Sprint(b["available"]) != "100" {
		t.Fatalf("after the release: %v", b)
	}
	r = v.get(page)
	if !strings.Contains(string(r.Raw), "Released 30 held credits") || testID(t, r, "holds-empty") == "" {
		t.Fatalf("flash or list after the release: %.300s", r.Raw)
	}
	// The kernel's entry names the admin, and the audit record is there.
	actor := billing.AdminActor(a.Admin.ID)
	if recs := a.audit(t, billing.AuditFilter{Action: "ledger.hold_release", Customer: cus}); len(recs) != 1 || recs[0].Actor != actor {
		t.Fatalf("ledger: %+v", recs)
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditHoldReleased, Customer: cus}); len(recs) != 1 || recs[0].Actor != actor || !strings.Contains(recs[0].Before, id) || recs[0].Reason != "app crashed mid-call" {
		t.Fatalf("audit: %+v", recs)
	}
	// A capture by the app is refused now; a second release changes nothing.
	a.do("POST", "/api/v1/holds/"+id+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 1}).wantError(t, http.StatusConflict, billing.CodeHoldNotActive)
	r = v.adminPost(page, rel, nil)
	if r.Status != http.StatusSeeOther || !strings.Contains(string(v.get(page).Raw), "no longer open") {
		t.Fatalf("second release: %d", r.Status)
	}
	a.checkLedgerInvariant(t, cus)
}
