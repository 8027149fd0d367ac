package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// secretOf is the secret a secret page shows (its input's value).
func secretOf(t *testing.T, r response) string {
	t.Helper()
	v, _ := doc(t, r).Find(`[data-testid="secret"]`).Attr("value")
	return v
}

func (a *adminAPI) auditCount(t *testing.T, action string) int {
	t.Helper()
	return len(a.audit(t, billing.AuditFilter{Action: action, Limit: 100}))
}

func TestAdminWebhooks(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	v := a.signIn(t, "admin@staff.test")
	support := a.signIn(t, "support@staff.test")

	// Empty: support reads, without the form.
	r := support.get("/admin/webhooks").want(t, http.StatusOK)
	if testID(t, r, "webhooks-empty") == "" || doc(t, r).Find(`[data-testid="webhook-form"]`).Length() != 0 {
		t.Fatalf("support's empty list: %.400s", r.Raw)
	}
	if !strings.Contains(testID(t, r, "admin-email"), "support@") || doc(t, r).Find(`nav a[href="/admin/webhooks"]`).Length() != 1 || doc(t, r).Find(`nav a[href="/admin/api-keys"]`).Length() != 1 {
		t.Fatal("the nav lacks Webhooks or API keys")
	}

	// Validation errors beside their fields; nothing created.
	for name, c := range map[string]struct {
		form  url.Values
		field string
		want  string
	}{
		"empty url":     {url.Values{"all": {"1"}}, "error-url", "Enter the URL"},
		"not http":      {url.Values{"url": {"ftp://example.com/x"}, "all": {"1"}}, "error-url", "The address must start with https://"},
		"not a url":     {url.Values{"url": {"not a url"}, "all": {"1"}}, "error-url", "Enter the endpoint's full address, starting with https://"},
		"private":       {url.Values{"url": {"http://127.0.0.1:9/hook"}, "all": {"1"}}, "error-url", "private"},
		"no types":      {url.Values{"url": {"https://example.com/hook"}}, "error-event_types", "at least one"},
		"unknown type":  {url.Values{"url": {"https://example.com/hook"}, "event_types": {"balance.low", "nope.never"}}, "error-event_types", "nope.never"},
		"long descript": {url.Values{"url": {"https://example.com/hook"}, "all": {"1"}, "description": {strings.Repeat("x", 501)}}, "error-description", "500"},
	} {
		c.form.Set("key", "k-"+name)
		r := v.adminPost("/admin/webhooks", "/admin/webhooks", c.form)
		if r.Status != http.StatusUnprocessableEntity || !strings.Contains(testID(t, r, c.field), c.want) {
			t.Errorf("%s: %d, %s %q", name, r.Status, c.field, testID(t, r, c.field))
		}
	}
	if eps, _ := a.DB.FindWebhookEndpoints(ctx); len(eps) != 0 {
		t.Fatalf("invalid forms created %d endpoints", len(eps))
	}

	// Create: the secret once.
	form := url.Values{"url": {"https://example.com/hooks/tally"}, "event_types": {"balance.low", "grant.created"}, "description": {"Prod"}, "key": {"create-1"}}
	r = v.adminPost("/admin/webhooks", "/admin/webhooks", form).want(t, http.StatusOK)
	secret := secretOf(t, r)
	if !strings.HasPrefix(secret, "whsec_") || doc(t, r).Find(`[data-copy="#secret"]`).Length() != 1 {
		t.Fatalf("secret page: %q; %.300s", secret, r.Raw)
	}
	eps, _ := a.DB.FindWebhookEndpoints(ctx)
	if len(eps) != 1 || eps[0].Secret != secret || strings.Join(eps[0].EventTypes, ",") != "balance.low,grant.created" || eps[0].Description != "Prod" {
		t.Fatalf("endpoints: %+v", eps)
	}
	ep := eps[0]
	// The same form again (a reload) creates nothing and shows no secret.
	r = v.adminPost("/admin/webhooks", "/admin/webhooks", form)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/webhooks/"+ep.ID {
		t.Fatalf("replay: %d to %q", r.Status, r.Header.Get("Location"))
	}
	if eps, _ := a.DB.FindWebhookEndpoints(ctx); len(eps) != 1 {
		t.Fatalf("replay made %d endpoints", len(eps))
	}
	page := v.get("/admin/webhooks/"+ep.ID).want(t, http.StatusOK)
	list := support.get("/admin/webhooks").want(t, http.StatusOK)
	for name, p := range map[string]response{"endpoint page": page, "list": list} {
		if strings.Contains(string(p.Raw), secret) {
			t.Errorf("the %s shows the secret again", name)
		}
	}
	if got := testID(t, page, "webhook-description"); got != "Prod" {
		t.Errorf("the endpoint page shows the description %q, want Prod", got)
	}
	if !strings.Contains(testID(t, page, "flash"), "shown once") || testID(t, list, "webhook-url") != ep.URL || testID(t, page, "deliveries-empty") == "" {
		t.Fatalf("flash %q, list %q", testID(t, page, "flash"), testID(t, list, "webhook-url"))
	}
	if n := a.auditCount(t, billing.AuditWebhookCreated); n != 1 {
		t.Fatalf("%d create audits", n)
	}

	// Edit: errors beside the field, then all events and disabled.
	base := "/admin/webhooks/" + ep.ID
	r = v.adminPost(base, base, url.Values{"event_types": {"nope.never"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(testID(t, r, "error-event_types"), "nope.never") {
		t.Fatalf("bad edit: %d %q", r.Status, testID(t, r, "error-event_types"))
	}
	r = v.adminPost(base, base, url.Values{"all": {"1"}, "description": {"Everything"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("edit: %d", r.Status)
	}
	got, _ := a.DB.FindWebhookEndpoint(ctx, ep.ID)
	if got.Enabled || got.Description != "Everything" || !got.Wants("dispute.opened") {
		t.Fatalf("after edit: %+v", got)
	}
	if p := v.get(base); testID(t, p, "flash") != "Endpoint saved. ×" && !strings.Contains(testID(t, p, "flash"), "saved") {
		t.Fatalf("edit flash %q", testID(t, p, "flash"))
	}
	v.adminPost(base, base, url.Values{"all": {"1"}, "enabled": {"1"}, "description": {"Everything"}}).want(t, http.StatusSeeOther)

	// A test event, and a real event's delivery with a failed attempt, resent.
	v.adminPost(base, base+"/test", nil).want(t, http.StatusSeeOther)
	cus := a.namedCustomer(t, "hooked", "Hooked Co")
	a.grant(t, cus, "50", "promo")
	if _, _, _, err := a.DB.FanOutWebhooks(ctx, 0, 100, true); err != nil {
		t.Fatal(err)
	}
	jobs, err := a.DB.DueWebhookDeliveries(ctx, a.Clock.Now().Add(time.Hour), 10, nil)
	if err != nil || len(jobs) < 2 {
		t.Fatalf("due: %d, %v", len(jobs), err)
	}
	var real billing.WebhookJob
	for _, j := range jobs {
		if strings.HasPrefix(j.Delivery.MessageID, "evt_") {
			real = j
		}
	}
	if err := a.DB.RecordWebhookAttempt(ctx, real, db.WebhookOutcome{Status: billing.DeliveryPending, RetryAt: a.Clock.Now().Add(time.Minute),
		Attempt: billing.WebhookAttempt{At: a.Clock.Now(), StatusCode: 500, LatencyMS: 42, Response: "upstream exploded"}}); err != nil {
		t.Fatal(err)
	}
	page = v.get(base).want(t, http.StatusOK)
	if n := doc(t, page).Find(`[data-testid="delivery"]`).Length(); n < 2 {
		t.Fatalf("%d deliveries shown", n)
	}
	if !strings.Contains(string(page.Raw), "webhook.test") || testID(t, page, "attempt-status") != "500" || !strings.Contains(testID(t, page, "attempt"), "upstream exploded") || !strings.Contains(testID(t, page, "attempt"), "42 ms") {
		t.Fatalf("attempt: %q", testID(t, page, "attempt"))
	}
	r = v.adminPost(base, base+"/deliveries/"+real.Delivery.PublicID+"/resend", url.Values{"event": {real.Delivery.MessageID}})
	if r.Status != http.StatusSeeOther || !strings.Contains(testID(t, v.get(base), "flash"), "queued again") {
		t.Fatalf("resend: %d", r.Status)
	}
	r = v.adminPost(base, base+"/deliveries/whd_1/resend", url.Values{"event": {"bogus"}})
	if r.Status != http.StatusSeeOther || !strings.Contains(testID(t, v.get(base), "flash"), "can't be sent again") {
		t.Fatalf("bad resend: %d", r.Status)
	}
	if a.auditCount(t, billing.AuditWebhookTested) != 1 || a.auditCount(t, billing.AuditWebhookResent) != 1 || a.auditCount(t, billing.AuditWebhookUpdated) != 2 {
		t.Fatal("test, resend or update audit missing")
	}

	// Rotate: a confirmation first, then the new secret once.
	r = v.adminPost(base, base+"/rotate", nil).want(t, http.StatusOK)
	if testID(t, r, "confirm") == "" || secretOf(t, r) != "" {
		t.Fatal("rotate without a confirmation")
	}
	if got, _ := a.DB.FindWebhookEndpoint(ctx, ep.ID); got.Secret != secret {
		t.Fatal("the confirmation rotated")
	}
	r = v.adminPost(base, base+"/rotate", url.Values{"confirm": {"1"}}).want(t, http.StatusOK)
	newSecret := secretOf(t, r)
	if got, _ := a.DB.FindWebhookEndpoint(ctx, ep.ID); !strings.HasPrefix(newSecret, "whsec_") || newSecret == secret || got.Secret != newSecret || got.OldSecret != secret {
		t.Fatalf("rotated: %q", newSecret)
	}
	if p := v.get(base); strings.Contains(string(p.Raw), newSecret) || a.auditCount(t, billing.AuditWebhookSecretRotated) != 1 {
		t.Fatal("the new secret is shown again, or no audit")
	}

	// Support may not write.
	if r := support.adminPost(base, base+"/delete", url.Values{"confirm": {"1"}}); r.Status != http.StatusForbidden {
		t.Fatalf("support delete: %d", r.Status)
	}
	// Delete: confirmation, then gone.
	r = v.adminPost(base, base+"/delete", nil).want(t, http.StatusOK)
	if testID(t, r, "confirm") == "" {
		t.Fatal("delete without a confirmation")
	}
	if _, err := a.DB.FindWebhookEndpoint(ctx, ep.ID); err != nil {
		t.Fatal("the confirmation deleted")
	}
	r = v.adminPost(base, base+"/delete", url.Values{"confirm": {"1"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/webhooks" {
		t.Fatalf("delete: %d", r.Status)
	}
	if _, err := a.DB.FindWebhookEndpoint(ctx, ep.ID); billing.ErrorCode(err) != billing.CodeNotFound {
		t.Fatalf("after delete: %v", err)
	}
	if !strings.Contains(testID(t, v.get("/admin/webhooks"), "flash"), "deleted") || a.auditCount(t, billing.AuditWebhookDeleted) != 1 {
		t.Fatal("delete flash or audit missing")
	}
}

func TestAdminAPIKeys(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	v := a.signIn(t, "owner@staff.test")
	support := a.signIn(t, "support@staff.test")

	r := support.get("/admin/api-keys").want(t, http.StatusOK)
	if n := doc(t, r).Find(`[data-testid="api-key-row"]`).Length(); n != 4 || doc(t, r).Find(`[data-testid="api-key-form"]`).Length() != 0 || doc(t, r).Find(`[data-testid="api-key-revoke"]`).Length() != 0 {
		t.Fatalf("support's list: %d rows", n)
	}
	keys := func() []billing.APIKey {
		ks, err := a.DB.FindAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}

	for name, c := range map[string]struct {
		form  url.Values
		field string
		want  string
	}{
		"no name":    {url.Values{"scope": {"read"}}, "error-name", "Name the key"},
		"no scope":   {url.Values{"name": {"x"}, "scope": {"root"}}, "error-scope", "scope"},
		"bad origin": {url.Values{"name": {"x"}, "scope": {"portal"}, "origins": {"https://ok.example\nnot an origin"}}, "error-origins", "not an origin"},
		"path":       {url.Values{"name": {"x"}, "scope": {"portal"}, "origins": {"https://app.example/path"}}, "error-origins", "not an origin"},
		"neg cap":    {url.Values{"name": {"x"}, "scope": {"metering"}, "daily_cap": {"-5"}}, "error-daily_cap", "negative"},
		"rate":       {url.Values{"name": {"x"}, "scope": {"metering"}, "rate_limit": {"abc"}}, "error-rate_limit", ""},
		// A metering key never mints the widget's tokens: origins on it would never be used.
		"origins on a metering key": {url.Values{"name": {"x"}, "scope": {"metering"}, "origins": {"https://app.example"}}, "error-origins", "Only portal and admin keys"},
	} {
		r := v.adminPost("/admin/api-keys", "/admin/api-keys", c.form)
		if r.Status != http.StatusUnprocessableEntity || testID(t, r, c.field) == "" || !strings.Contains(testID(t, r, c.field), c.want) {
			t.Errorf("%s: %d, %s %q", name, r.Status, c.field, testID(t, r, c.field))
		}
		// The form sits below the list: a summary at its top says what happened.
		if got := testID(t, r, "api-key-errors"); got != "Fix the field marked below: no key was created." {
			t.Errorf("%s: error summary %q", name, got)
		}
	}
	if n := len(keys()); n != 4 {
		t.Fatalf("invalid forms made keys: %d", n)
	}

	form := url.Values{"name": {"Widget server"}, "scope": {"portal"}, "daily_cap": {"1000"},
		"origins": {"https://App.Example.com\n\nhttp://localhost:3000\n"}, "nonce": {"form-" + time.Now().Format(time.RFC3339Nano)}}
	r = v.adminPost("/admin/api-keys", "/admin/api-keys", form).want(t, http.StatusOK)
	secret := secretOf(t, r)
	// The same form again (a reload): no second key, no secret.
	r = v.adminPost("/admin/api-keys", "/admin/api-keys", form)
	if r.Status != http.StatusSeeOther || len(keys()) != 5 || !strings.Contains(testID(t, v.get("/admin/api-keys"), "flash"), "sent already") {
		t.Fatalf("replayed create: %d, %d keys", r.Status, len(keys()))
	}
	if !strings.HasPrefix(secret, "tsk_") {
		t.Fatalf("secret %q", secret)
	}
	var made billing.APIKey
	for _, x := range keys() {
		if x.Name == "Widget server" {
			made = x
		}
	}
	if strings.Join(made.AllowedOrigins, " ") != "http://localhost:3000 https://app.example.com" {
		t.Fatalf("origins %q", made.AllowedOrigins)
	}
	// Last used: stored in the background after a request with the key.
	lastUsed := func() string {
		row := doc(t, v.get("/admin/api-keys")).Find(`[data-testid="api-key-row"]:contains("` + made.Prefix + `")`)
		return strings.TrimSpace(row.Find(`[data-testid="api-key-last-used"]`).Text())
	}
	if got := lastUsed(); got != "never used" {
		t.Fatalf("a key never used shows %q", got)
	}
	// Authenticating is a use of the key (checked only after "never used").
	k, err := a.DB.Authenticate(ctx, secret)
	if err != nil || k.ID != made.ID || k.Scope != billing.ScopePortal || k.Limits.DailyCap == nil || k.Limits.DailyCap.String() != "1000" {
		t.Fatalf("created key: %+v %v", k, err)
	}
	a.do("GET", "/api/v1/customers/"+a.namedCustomer(t, "used", "Used Co")+"/balance", secret, nil).want(t, http.StatusOK)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasPrefix(lastUsed(), "last used") {
		if time.Now().After(deadline) {
			t.Fatalf("last use not shown: %q", lastUsed())
		}
		time.Sleep(20 * time.Millisecond)
	}
	list := v.get("/admin/api-keys").want(t, http.StatusOK)
	if strings.Contains(string(list.Raw), secret) || !strings.Contains(string(list.Raw), made.Prefix) || !strings.Contains(string(list.Raw), "https://app.example.com") {
		t.Fatal("the list shows the secret, or lacks the key")
	}

	base := "/admin/api-keys/" + k.ID
	r = v.adminPost("/admin/api-keys", base+"/origins", url.Values{"origins": {"ftp://nope"}})
	if r.Status != http.StatusUnprocessableEntity || testID(t, r, "error-edit-origins") == "" {
		t.Fatalf("bad origins: %d", r.Status)
	}
	// Not on a metering key (the console let one list them).
	r = v.adminPost("/admin/api-keys", "/admin/api-keys/"+a.MeterKey.ID+"/origins", url.Values{"origins": {"https://shop.example"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(testID(t, r, "error-edit-origins"), "Only portal and admin keys") {
		t.Fatalf("origins on a metering key: %d %q", r.Status, testID(t, r, "error-edit-origins"))
	}
	r = v.adminPost("/admin/api-keys", base+"/origins", url.Values{"origins": {"https://shop.example"}})
	if r.Status != http.StatusSeeOther || !strings.Contains(testID(t, v.get("/admin/api-keys"), "flash"), "1 origin") {
		t.Fatalf("origins: %d", r.Status)
	}
	if live, allowed, _ := a.DB.EmbedKeyAllows(ctx, k.ID, "https://shop.example"); !live || !allowed {
		t.Fatal("the new origin is not allowed")
	}

	r = v.adminPost("/admin/api-keys", base+"/revoke", nil).want(t, http.StatusOK)
	if testID(t, r, "confirm") == "" {
		t.Fatal("revoke without a confirmation")
	}
	if _, err := a.DB.Authenticate(ctx, secret); err != nil {
		t.Fatal("the confirmation revoked")
	}
	if r := support.adminPost("/admin/api-keys", base+"/revoke", url.Values{"confirm": {"1"}}); r.Status != http.StatusForbidden {
		t.Fatalf("support revoke: %d", r.Status)
	}
	r = v.adminPost("/admin/api-keys", base+"/revoke", url.Values{"confirm": {"1"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", r.Status)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := a.DB.Authenticate(ctx, secret); billing.ErrorCode(err) != billing.CodeUnauthorized {
		t.Fatalf("revoked key authenticates: %v", err)
	}
	if p := v.get("/admin/api-keys"); !strings.Contains(testID(t, p, "flash"), "revoked") || testID(t, p, "api-key-revoked") == "" {
		t.Fatal("revoke flash or badge missing")
	}
	for action, want := range map[string]int{billing.AuditAPIKeyCreated: 1, billing.AuditAPIKeyOrigins: 1, billing.AuditAPIKeyRevoked: 1} {
		if n := a.auditCount(t, action); n != want {
			t.Errorf("%s: %d audit records", action, n)
		}
	}
}

// Smaller wording findings of the console review: buttons named with
// their key, a search's results headed by the search, and the customer
// page's forms use Tally's inline errors, not the browser's bubbles.
func TestAdminConsoleWording(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	v := a.signIn(t, "owner@staff.test")

	// Every API key's Edit and Revoke names the key.
	d := doc(t, v.get("/admin/api-keys").want(t, http.StatusOK))
	d.Find(`[data-testid="api-key-row"]`).Each(func(_ int, row *goquery.Selection) {
		name := row.Find(`[data-testid="api-key-name"]`).Text()
		for _, id := range []string{"api-key-edit", "api-key-revoke"} {
			b := row.Find(`[data-testid="` + id + `"]`)
			if b.Length() == 0 {
				continue
			}
			if got := strings.Join(strings.Fields(b.Text()), " "); !strings.HasSuffix(got, " the key "+name) {
				t.Errorf("%s of %q is named %q for screen readers", id, name, got)
			}
		}
	})

	// A search says what it matched.
	a.namedCustomer(t, "lumen-1", "Lumen Studio")
	a.namedCustomer(t, "other-1", "Other Co")
	r := v.get("/admin/customers?q=lumen").want(t, http.StatusOK)
	if got := testID(t, r, "customers-matching"); got != "1 customer matching “lumen”, newest first" {
		t.Errorf("search heading %q", got)
	}
	if testID(t, v.get("/admin/customers"), "customers-matching") != "" {
		t.Error("the full list has a search heading")
	}

	// The customer page's forms are novalidate: the server's inline errors
	// (the view-portal and refund reasons had the browser's bubble).
	cus := a.namedCustomer(t, "forms", "Forms Co")
	d = doc(t, v.get("/admin/customers/"+cus).want(t, http.StatusOK))
	d.Find(`main form[method="post"]`).Each(func(_ int, f *goquery.Selection) {
		if _, ok := f.Attr("novalidate"); !ok && f.Find(`[required]`).Length() > 0 {
			t.Errorf("form %s has required fields but no novalidate", f.AttrOr("action", "?"))
		}
	})
	r = v.adminPost("/admin/customers/"+cus, "/admin/customers/"+cus+"/view-portal", nil).want(t, http.StatusUnprocessableEntity)
	if testID(t, r, "error-view-portal-reason") == "" {
		t.Error("no inline error for the view-portal reason")
	}
}
