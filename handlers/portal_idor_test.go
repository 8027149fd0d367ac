package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// TestPortalNoIDOR: signed in as Alpha, every portal page, partial, export
// and form is tried with Bravo's ids in every parameter a handler might read.
// Alpha must never see Bravo's data nor change it.
func TestPortalNoIDOR(t *testing.T) {
	a := newTestAPI(t)
	a.namedCustomer(t, "alpha-idor", "Alpha Labs")
	bravo := a.namedCustomer(t, "bravo-idor", "Bravo Corp")
	// Figures and strings that only Bravo's data holds.
	a.grant(t, "alpha-idor", "1000", "purchase")
	a.usage("alpha-idor", "chat.request", "7", "").want(t, http.StatusCreated)
	a.grant(t, "bravo-idor", "98765.432", "purchase")
	for range 3 {
		body := map[string]any{"customer": "bravo-idor", "feature": "document.analyze", "quantity": 1,
			"metadata": map[string]any{"user": "bravo-secret-user"}}
		a.do("POST", "/api/v1/usage", a.Meter, body).want(t, http.StatusCreated)
	}
	bravoCaps := map[string]any{"daily_cap": json.Number("4321"), "monthly_cap": json.Number("54321"), "overdraft_limit": json.Number("0")}
	a.do("PUT", "/api/v1/customers/bravo-idor/limits", a.Admin, bravoCaps).want(t, http.StatusOK)
	if err := a.DB.UpdateCustomerSettings(t.Context(), bravo, billing.CustomerSettings{LowBalanceThreshold: ptrCredits(billing.CreditsOf(3333))}); err != nil {
		t.Fatal(err)
	}
	// What only Bravo's data holds; Bravo's feature may be public (a price
	// list), so it counts only on pages that do not show it anyway.
	bravoMarks := []string{bravo, "bravo-idor", "Bravo Corp", "bravo-idor@example.test", "98,735.432", "98735.432",
		"bravo-secret-user", "4,321", "54,321", "3,333"}
	bravoFeature := []string{"document.analyze", "Document analysis"}

	v := newPortalVisitor(t, a)
	v.signIn("alpha-idor")
	token := v.csrf("/portal/settings")

	params := []string{"customer", "customer_id", "customerId", "cid", "cus", "id", "external_id", "user", "account", "wallet", "ref", "as"}
	refs := []string{bravo, "bravo-idor"}
	routes := []string{"/portal", "/portal/usage", "/portal/usage.csv", "/portal/ledger", "/portal/settings", "/portal/partials/balance"}
	// And every other page the portal has, with Bravo's id for any path parameter.
	for _, rt := range a.Server.Echo().Routes() {
		if rt.Method != http.MethodGet || !strings.HasPrefix(rt.Path, "/portal/") || rt.Path == "/portal/events" ||
			strings.HasPrefix(rt.Path, "/portal/session/") || slices.Contains(routes, rt.Path) {
			continue
		}
		path := rt.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") || seg == "*" {
				path = strings.Replace(path, seg, bravo, 1)
			}
		}
		routes = append(routes, path)
	}
	leaksOf := func(marks []string) func(r response) string {
		return func(r response) string {
			body := string(r.Raw)
			for _, m := range marks {
				if strings.Contains(body, m) {
					return m
				}
			}
			return ""
		}
	}
	leaks := leaksOf(bravoMarks)
	for _, route := range routes {
		marks := bravoMarks
		plain := v.get(route)
		t.Logf("GET %s as Alpha: %d", route, plain.Status)
		if m := leaks(plain); m != "" {
			t.Fatalf("GET %s as Alpha shows Bravo's %q", route, m)
		}
		for _, m := range bravoFeature {
			if !strings.Contains(string(plain.Raw), m) {
				marks = append(marks, m)
			}
		}
		leaks := leaksOf(marks)
		for _, htmx := range []bool{false, true} {
			var headers []string
			if htmx {
				headers = []string{"HX-Request", "true"}
			}
			for _, ref := range refs {
				q := url.Values{}
				for _, p := range params {
					q.Set(p, ref)
				}
				for i, path := range []string{route + "?" + q.Encode(), route + "/" + ref, route + "?customer=" + ref + "&feature=document.analyze"} {
					r := v.get(path, headers...)
					if r.Status >= 500 {
						t.Fatalf("GET %s: %d", path, r.Status)
					}
					leaks := leaks
					if i == 2 { // the page may echo the filter it was asked for
						leaks = leaksOf(bravoMarks)
					}
					if m := leaks(r); m != "" {
						t.Fatalf("GET %s (htmx %v) as Alpha shows Bravo's %q; status %d", path, htmx, m, r.Status)
					}
				}
			}
		}
	}
	// The pages that exist show Alpha's data for those parameters.
	for _, path := range []string{"/portal?customer=" + bravo, "/portal/settings?customer=" + bravo} {
		r := v.get(path).want(t, http.StatusOK)
		if !strings.Contains(string(r.Raw), "Alpha Labs") {
			t.Fatalf("GET %s does not show Alpha's page", path)
		}
	}
	if got := testID(t, v.get("/portal/partials/balance?customer="+bravo), "header-balance-value"); got != "993" {
		t.Fatalf("balance partial with Bravo's id shows %q, want Alpha's 993", got)
	}
	// The event stream is Alpha's whatever the query says.
	res, _ := v.stream("/portal/events?customer=" + bravo + "&customer_id=bravo-idor")
	if got := nextBalance(t, readEvents(res), 5*time.Second); got != "993" {
		t.Fatalf("event stream with Bravo's id shows %q, want Alpha's 993", got)
	}

	// Saving with Bravo's ids in every field and in the query changes
	// Alpha's controls only.
	form := url.Values{"_csrf": {token}, "daily_cap": {"11"}, "monthly_cap": {"111"}, "low_balance_threshold": {"1"},
		"overdraft_limit": {"1000000"}}
	for _, p := range params {
		form.Set(p, bravo)
	}
	for _, htmx := range []bool{false, true} {
		var headers []string
		if htmx {
			headers = []string{"HX-Request", "true"}
		}
		r := v.post("/portal/settings?customer="+bravo+"&id=bravo-idor", form, headers...)
		if r.Status != http.StatusSeeOther && r.Status != http.StatusOK {
			t.Fatalf("POST /portal/settings (htmx %v): %d; body %.300s", htmx, r.Status, r.Raw)
		}
		if m := leaks(r); m != "" {
			t.Fatalf("POST /portal/settings (htmx %v) shows Bravo's %q", htmx, m)
		}
	}
	if lim := limitsOf(t, a, "bravo-idor"); lim.DailyCap == nil || *lim.DailyCap != billing.CreditsOf(4321) ||
		lim.MonthlyCap == nil || *lim.MonthlyCap != billing.CreditsOf(54321) {
		t.Fatalf("Bravo's caps changed: %+v", lim)
	}
	if set, err := a.DB.FindCustomerSettings(t.Context(), bravo); err != nil || set.LowBalanceThreshold == nil || *set.LowBalanceThreshold != billing.CreditsOf(3333) {
		t.Fatalf("Bravo's threshold changed: %v %v", set.LowBalanceThreshold, err)
	}
	lim := portalCapsOf(t, a, "alpha-idor")
	if lim.DailyCap == nil || *lim.DailyCap != billing.CreditsOf(11) || lim.OverdraftLimit != 0 {
		t.Fatalf("Alpha's limits %+v, want daily cap 11 and no overdraft", lim)
	}
	// Other state-changing routes refuse or ignore Bravo's ids too.
	for _, rt := range stateChangingPortalRoutes(a) {
		if rt[1] == "/portal/settings" || rt[1] == "/portal/sign-out" || rt[1] == "/demo/sign-in" {
			continue
		}
		r := v.send(rt[0], a.HTTP.URL+rt[1], form, "Content-Type", "application/x-www-form-urlencoded")
		if m := leaks(r); m != "" {
			t.Fatalf("%s %s shows Bravo's %q", rt[0], rt[1], m)
		}
	}
	if got := v.signedInAs(); got != "Alpha Labs" {
		t.Fatalf("signed in as %q after all that, want Alpha Labs", got)
	}
	if b := a.balance(t, "bravo-idor"); credits(t, b["balance"]) != billing.Credits(98735432) {
		t.Fatalf("Bravo's balance changed: %v", b["balance"])
	}
}

func ptrCredits(c billing.Credits) *billing.Credits { return &c }
