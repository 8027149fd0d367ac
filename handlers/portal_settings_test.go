package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// settingsFixture is a customer with a top-up of 1,000, spend today and a
// hold, an overdraft the product set, signed in on the settings page.
func settingsFixture(t *testing.T) (*testAPI, *portalVisitor, string) {
	t.Helper()
	a := newTestAPI(t)
	a.namedCustomer(t, "alpha", "Alpha Labs")
	a.grant(t, "alpha", "1000", "purchase")
	a.usage("alpha", "image.generate", "3", "").want(t, http.StatusCreated) // 15 credits
	a.do("PUT", "/api/v1/customers/alpha/limits", a.Admin, map[string]any{"overdraft_limit": json.Number("50")}).want(t, http.StatusOK)
	v := newPortalVisitor(t, a)
	v.signIn("alpha")
	return a, v, v.csrf("/portal/settings")
}

func TestSettingsPage(t *testing.T) {
	a, v, _ := settingsFixture(t)
	a.hold(t, "alpha", 5, 300)

	r := v.get("/portal/settings").want(t, http.StatusOK)
	d := doc(t, r)
	for id, want := range map[string]string{
		"settings-spent-today":       "20", // 15 spent + 5 reserved
		"settings-spent-month":       "20",
		"settings-cap-today":         "no cap",
		"settings-reserved":          "Includes 5 credits reserved",
		"settings-default-threshold": "100 credits",
		"settings-overdraft":         "−50",
		"settings-help":              "refused with an error; your balance is untouched",
	} {
		if got := testID(t, r, id); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to contain %q", id, got, want)
		}
	}
	if d.Find(`nav a[aria-current="page"]`).Text() != "Spend controls" {
		t.Error("the Spend controls tab is not marked current")
	}
	for _, name := range []string{"daily_cap", "monthly_cap", "low_balance_threshold"} {
		in := d.Find(`form[data-testid="settings-form"] input[name="` + name + `"]`)
		id, _ := in.Attr("id")
		if in.Length() != 1 || d.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("field %s has no labelled input", name)
		}
	}
	if d.Find(`input[name="overdraft_limit"]`).Length() != 0 {
		t.Error("the page offers to change the overdraft limit")
	}
	form := d.Find(`form[data-testid="settings-form"]`)
	if m, _ := form.Attr("method"); m != "post" {
		t.Error("the form does not post without JavaScript")
	}
	if hp, _ := form.Attr("hx-post"); hp != "/portal/settings" {
		t.Error("the form is not enhanced with hx-post")
	}
}

func TestSettingsSave(t *testing.T) {
	t.Run("without JavaScript", func(t *testing.T) {
		a, v, tok := settingsFixture(t)
		r := v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"100"}, "monthly_cap": {"2,500.5"}, "low_balance_threshold": {"75"}})
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal/settings" {
			t.Fatalf("save: %d to %q; body %.300s", r.Status, r.Header.Get("Location"), r.Raw)
		}
		page := v.get("/portal/settings").want(t, http.StatusOK)
		if got := testID(t, page, "flash"); got != "Spend controls saved. ×" && !strings.HasPrefix(got, "Spend controls saved.") {
			t.Fatalf("flash %q", got)
		}
		if testID(t, v.get("/portal/settings"), "flash") != "" {
			t.Fatal("the flash shows twice")
		}
		lim := portalCapsOf(t, a, "alpha")
		if *lim.DailyCap != billing.CreditsOf(100) || *lim.MonthlyCap != 2500500 || lim.OverdraftLimit != billing.CreditsOf(50) {
			t.Fatalf("limits %+v: want daily 100, monthly 2500.5 and the overdraft of 50 kept", lim)
		}
		d := doc(t, page)
		for name, want := range map[string]string{"daily_cap": "100", "monthly_cap": "2500.5", "low_balance_threshold": "75"} {
			if got, _ := d.Find(`input[name="` + name + `"]`).Attr("value"); got != want {
				t.Errorf("%s shows %q after saving, want %q", name, got, want)
			}
		}
		if got := testID(t, page, "settings-cap-today"); got != "100" {
			t.Errorf("daily meter cap %q, want 100", got)
		}
		// The header warns from the new threshold on.
		set, _ := a.DB.FindCustomerSettings(t.Context(), mustID(t, a, "alpha"))
		if set.LowBalanceThreshold == nil || *set.LowBalanceThreshold != billing.CreditsOf(75) {
			t.Fatalf("threshold %v, want 75", set.LowBalanceThreshold)
		}
		// Empty fields remove the caps and restore the default threshold.
		v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {""}, "monthly_cap": {"  "}, "low_balance_threshold": {""}})
		lim = portalCapsOf(t, a, "alpha")
		set, _ = a.DB.FindCustomerSettings(t.Context(), mustID(t, a, "alpha"))
		if lim.DailyCap != nil || lim.MonthlyCap != nil || set.LowBalanceThreshold != nil || lim.OverdraftLimit != billing.CreditsOf(50) {
			t.Fatalf("after clearing: %+v threshold %v", lim, set.LowBalanceThreshold)
		}
	})

	t.Run("with htmx", func(t *testing.T) {
		a, v, tok := settingsFixture(t)
		r := v.post("/portal/settings", url.Values{"daily_cap": {"40"}, "monthly_cap": {"400"}}, "HX-Request", "true", "X-CSRF-Token", tok)
		r.want(t, http.StatusOK)
		body := string(r.Raw)
		if strings.Contains(body, "<html") || !strings.Contains(body, `id="settings-form"`) {
			t.Fatalf("htmx save answers more or less than the form: %.300s", body)
		}
		if got := testID(t, r, "settings-saved"); got != "Spend controls saved." {
			t.Fatalf("confirmation %q", got)
		}
		usage := doc(t, r).Find(`#settings-usage[hx-swap-oob]`)
		if usage.Length() != 1 || !strings.Contains(usage.Find(`[data-testid="settings-cap-today"]`).Text(), "40") {
			t.Fatal("the meters are not sent again with the new caps")
		}
		if lim := portalCapsOf(t, a, "alpha"); *lim.DailyCap != billing.CreditsOf(40) || *lim.MonthlyCap != billing.CreditsOf(400) {
			t.Fatalf("limits %+v", lim)
		}
	})

	t.Run("the API enforces a saved cap", func(t *testing.T) {
		a, v, tok := settingsFixture(t)
		v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"20"}})
		a.usage("alpha", "image.generate", "1", "").want(t, http.StatusCreated) // 15 + 5 = 20: at the cap
		before := a.balance(t, "alpha")["balance"]
		a.usage("alpha", "image.generate", "1", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
		if after := a.balance(t, "alpha")["balance"]; after != before {
			t.Fatalf("a refused request changed the balance: %v to %v", before, after)
		}
		if got := testID(t, v.get("/portal/settings"), "settings-meter-today"); !strings.Contains(got, "Cap reached") {
			t.Fatalf("daily meter %q, want 'Cap reached'", got)
		}
	})
}

func TestSettingsValidation(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		daily, monthly, threshold      string
		field                          string // the field with the error
		message                        string
		lang                           string
		wantDaily, wantMonthly, wantTh string // saved, when valid
	}{
		{name: "negative daily cap", daily: "-5", field: "daily_cap", message: "can't be negative"},
		{name: "negative with a real minus", monthly: "−5", field: "monthly_cap", message: "can't be negative"},
		{name: "negative threshold", threshold: "-1", field: "low_balance_threshold", message: "can't be negative"},
		{name: "four decimals", daily: "1.2345", field: "daily_cap", message: "three decimals"},
		{name: "not a number", monthly: "lots", field: "monthly_cap", message: "Enter a number"},
		{name: "exponent", daily: "1e3", field: "daily_cap", message: "Enter a number"},
		{name: "two decimal points", threshold: "1.2.3.4", field: "low_balance_threshold", message: "Enter a number"},
		{name: "bad grouping", daily: "1,00,000", field: "daily_cap", message: "Enter a number"},
		{name: "too large", monthly: "2000000000000", field: "monthly_cap", message: "largest amount"},
		{name: "daily over monthly", daily: "500", monthly: "100", field: "daily_cap", message: "more than the monthly cap (100 credits)"},
		{name: "grouped thousands", daily: "1,000", monthly: "12,500.25", wantDaily: "1000", wantMonthly: "12500.25"},
		{name: "spaces and leading zeros", daily: " 0050 ", threshold: "0.5", wantDaily: "50", wantTh: "0.5"},
		{name: "zero", daily: "0", monthly: "0", wantDaily: "0", wantMonthly: "0"},
		{name: "German decimal comma", daily: "2,5", monthly: "1.000", lang: "de-DE", wantDaily: "2.5", wantMonthly: "1000"},
		{name: "German grouping and decimals", monthly: "1.234,5", lang: "de", wantMonthly: "1234.5"},
	} {
		for _, htmx := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: "", true: " (htmx)"}[htmx], func(t *testing.T) {
				a, v, tok := settingsFixture(t)
				v.lang = tc.lang
				// Saved values the rejected form must leave alone.
				v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"7"}, "monthly_cap": {"70"}, "low_balance_threshold": {"9"}})
				headers := []string{}
				if htmx {
					headers = []string{"HX-Request", "true"}
				}
				form := url.Values{"_csrf": {tok}, "daily_cap": {tc.daily}, "monthly_cap": {tc.monthly}, "low_balance_threshold": {tc.threshold}}
				r := v.post("/portal/settings", form, headers...)
				lim := portalCapsOf(t, a, "alpha")
				set, _ := a.DB.FindCustomerSettings(t.Context(), mustID(t, a, "alpha"))
				if tc.field == "" {
					if r.Status != http.StatusSeeOther && r.Status != http.StatusOK {
						t.Fatalf("valid form: %d; body %.500s", r.Status, r.Raw)
					}
					for _, c := range []struct {
						got  *billing.Credits
						want string
					}{{lim.DailyCap, tc.wantDaily}, {lim.MonthlyCap, tc.wantMonthly}, {set.LowBalanceThreshold, tc.wantTh}} {
						got := ""
						if c.got != nil {
							got = c.got.String()
						}
						if got != c.want {
							t.Fatalf("saved %q, want %q (limits %+v threshold %v)", got, c.want, lim, set.LowBalanceThreshold)
						}
					}
					return
				}
				if r.Status != http.StatusUnprocessableEntity {
					t.Fatalf("invalid form: %d, want 422; body %.500s", r.Status, r.Raw)
				}
				if got := testID(t, r, "settings-error-"+tc.field); !strings.Contains(got, tc.message) {
					t.Fatalf("error next to %s: %q, want it to contain %q", tc.field, got, tc.message)
				}
				d := doc(t, r)
				in := d.Find(`input[name="` + tc.field + `"]`)
				if inv, _ := in.Attr("aria-invalid"); inv != "true" {
					t.Fatal("the field is not marked aria-invalid")
				}
				if desc, _ := in.Attr("aria-describedby"); desc != "settings-"+tc.field+"-error" {
					t.Fatalf("aria-describedby %q", desc)
				}
				if got, _ := in.Attr("value"); got != form.Get(tc.field) {
					t.Fatalf("the field shows %q, want what was typed, %q", got, form.Get(tc.field))
				}
				if htmx == strings.Contains(string(r.Raw), "<html") {
					t.Fatalf("htmx %v, but the answer is %.100s", htmx, r.Raw)
				}
				if *lim.DailyCap != billing.CreditsOf(7) || *lim.MonthlyCap != billing.CreditsOf(70) || *set.LowBalanceThreshold != billing.CreditsOf(9) ||
					lim.OverdraftLimit != billing.CreditsOf(50) {
					t.Fatalf("a rejected form changed something: %+v threshold %v", lim, *set.LowBalanceThreshold)
				}
			})
		}
	}
}

// mustID resolves an external id to the customer's cus_ id.
func mustID(t *testing.T, a *testAPI, ref string) string {
	t.Helper()
	id, err := a.DB.ResolveCustomer(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The operator's caps (PUT /limits) and the customer's (the portal) are two
// sets: the portal cannot raise or remove the operator's, shows it as a
// limit, refuses a higher cap beside its field, and both apply.
func TestSettingsKeepOperatorCaps(t *testing.T) {
	a, v, tok := settingsFixture(t) // 15 credits spent today
	a.do("PUT", "/api/v1/customers/alpha/limits", a.Admin, map[string]any{"daily_cap": json.Number("40"), "overdraft_limit": json.Number("50")}).
		want(t, http.StatusOK)

	page := v.get("/portal/settings").want(t, http.StatusOK)
	if got := testID(t, page, "settings-cap-today"); got != "40" {
		t.Errorf("today's meter shows the cap %q, want the operator's 40", got)
	}
	// The meter and the form say whose cap that is, and what an empty field means.
	if got := testID(t, page, "settings-cap-owner-today"); got != "Your app's cap" {
		t.Errorf("today's meter names its cap %q, want the product's", got)
	}
	if got := testID(t, page, "settings-caps-intro"); got != "Leave a cap empty for no cap of your own; Your app's caps still apply." {
		t.Errorf("caps intro %q", got)
	}
	if got := doc(t, page).Find("#settings-daily_cap-help").Text(); !strings.Contains(got, "40 credits a day") || !strings.Contains(got, "not a higher one") {
		t.Errorf("the daily cap's help %q does not state the operator's cap", got)
	}

	// Above the operator's cap: an error beside the field, nothing saved.
	r := v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"80"}}, "HX-Request", "true")
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("a cap above the operator's: %d, want 422", r.Status)
	}
	if got := testID(t, r, "settings-error-daily_cap"); !strings.Contains(got, "caps your account at 40 credits a day") || !strings.Contains(got, "leave it empty to keep Your app's cap") {
		t.Fatalf("error beside the field: %q", got)
	}
	// Clearing every cap in the portal leaves the operator's.
	v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {""}, "monthly_cap": {""}}).want(t, http.StatusSeeOther)
	if lim := limitsOf(t, a, "alpha"); lim.DailyCap == nil || *lim.DailyCap != billing.CreditsOf(40) || lim.OverdraftLimit != billing.CreditsOf(50) {
		t.Fatalf("the portal changed the operator's limits: %+v", lim)
	}
	// 15 + 30 > 40: the operator's cap refuses.
	e := a.usage("alpha", "image.generate", "6", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	if e["scope"] != billing.CapScopeCustomer {
		t.Fatalf("refused by %v, want the operator's cap", e["scope"])
	}
	// A lower cap of the customer's own applies too: 15 + 10 > 20.
	v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"20"}}).want(t, http.StatusSeeOther)
	if got := testID(t, v.get("/portal/settings"), "settings-cap-owner-today"); got != "your cap" {
		t.Errorf("with the customer's lower cap, today's meter names %q, want theirs", got)
	}
	e = a.usage("alpha", "image.generate", "2", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	if e["scope"] != billing.CapScopeCustomerSelf {
		t.Fatalf("refused by %v, want the customer's own cap", e["scope"])
	}
	if lim := limitsOf(t, a, "alpha"); *lim.DailyCap != billing.CreditsOf(40) {
		t.Fatalf("the operator's cap is %v after the customer's save", *lim.DailyCap)
	}
}

// A cap below what its window already counts is saved (the customer may
// mean it), and said beside it: every request is refused until the window
// resets, at midnight UTC or on the 1st.
func TestSettingsCapBelowSpend(t *testing.T) {
	a, v, tok := settingsFixture(t) // 15 credits spent today
	now := a.Clock.Now().UTC()
	next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	monthNote := "This month's use (15 credits) is already above this cap, so requests are refused until it resets at 1 " + next.Month().String() + " (UTC)."
	r := v.post("/portal/settings", url.Values{"daily_cap": {"10"}, "monthly_cap": {"12"}}, "HX-Request", "true", "X-CSRF-Token", tok).want(t, http.StatusOK)
	if got := testID(t, r, "settings-saved"); got != "Spend controls saved." {
		t.Fatalf("confirmation %q", got)
	}
	if got, want := testID(t, r, "settings-note-daily_cap"), "Today's use (15 credits) is already above this cap, so requests are refused until it resets at midnight UTC."; got != want {
		t.Errorf("daily note %q, want %q", got, want)
	}
	if got := testID(t, r, "settings-note-monthly_cap"); got != monthNote {
		t.Errorf("monthly note %q, want %q", got, monthNote)
	}
	if desc, _ := doc(t, r).Find(`#settings-daily_cap`).Attr("aria-describedby"); !strings.Contains(desc, "settings-daily_cap-note") {
		t.Errorf("the daily cap is not described by its note: %q", desc)
	}
	if lim := portalCapsOf(t, a, "alpha"); *lim.DailyCap != billing.CreditsOf(10) {
		t.Fatalf("not saved: %+v", lim)
	}
	// Without JavaScript: the page after the redirect says the same; a cap
	// the spend exactly reaches "has reached" it; one above it, nothing.
	v.post("/portal/settings", url.Values{"_csrf": {tok}, "daily_cap": {"15"}, "monthly_cap": {"100"}}).want(t, http.StatusSeeOther)
	page := v.get("/portal/settings").want(t, http.StatusOK)
	if got := testID(t, page, "settings-note-daily_cap"); !strings.HasPrefix(got, "Today's use (15 credits) has already reached this cap") {
		t.Errorf("daily note %q", got)
	}
	if n := doc(t, page).Find(`[data-testid="settings-note-monthly_cap"]`).Length(); n != 0 {
		t.Errorf("a monthly cap above the month's spend has a note")
	}
}

// Spend controls and auto-refill word a refused form's summary alike.
func TestSettingsErrorSummaryWording(t *testing.T) {
	_, v, tok := settingsFixture(t)
	r := v.post("/portal/settings", url.Values{"daily_cap": {"lots"}}, "HX-Request", "true", "X-CSRF-Token", tok).want(t, http.StatusUnprocessableEntity)
	if got := testID(t, r, "settings-error-summary"); got != "Fix the field marked below: nothing was saved." {
		t.Errorf("one field: %q", got)
	}
	r = v.post("/portal/settings", url.Values{"daily_cap": {"lots"}, "monthly_cap": {"-1"}}, "HX-Request", "true", "X-CSRF-Token", tok).want(t, http.StatusUnprocessableEntity)
	if got := testID(t, r, "settings-error-summary"); got != "Fix the 2 fields marked below: nothing was saved." {
		t.Errorf("two fields: %q", got)
	}
}
