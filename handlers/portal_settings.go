package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// GET /portal/settings: spend controls, the caps a customer sets on their own
// spending and the balance at which the portal warns them.
func (s *Server) settingsPage(c echo.Context) error {
	return s.renderSettings(c, http.StatusOK, nil, false)
}

// POST /portal/settings saves spend controls. The customer is always the
// signed-in one: nothing in the form names a customer, and the overdraft
// limit is not the customer's to change. Invalid input comes back as the
// form with the errors next to their fields (422) and saves nothing.
// Without JavaScript a save redirects with a flash message; with htmx it
// answers the form with a confirmation.
func (s *Server) saveSettings(c echo.Context) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	f := s.publicShell(c, "").Fmt
	in := views.SettingsInput{
		DailyCap:            c.FormValue(views.SettingsFieldDaily),
		MonthlyCap:          c.FormValue(views.SettingsFieldMonthly),
		LowBalanceThreshold: c.FormValue(views.SettingsFieldThreshold),
	}
	sc, errs := parseSpendControls(in, f)
	if len(errs) == 0 {
		err := s.portal.UpdateSpendControls(ctx, cid, sc)
		var be *billing.Error
		switch {
		case errors.As(err, &be) && be.Code == billing.CodeValidation:
			// The domain's rules are the last word; show its verdict on its field.
			field, _ := be.Details["param"].(string)
			if field == "" {
				field = views.SettingsFieldDaily
			}
			errs[field] = be.Message
		case err != nil:
			return err
		}
	}
	if len(errs) > 0 {
		in.Errors = errs
		return s.renderSettings(c, http.StatusUnprocessableEntity, &in, false)
	}
	if c.Request().Header.Get("HX-Request") != "true" {
		flash(c, "success", "Spend controls saved.")
		return c.Redirect(http.StatusSeeOther, "/portal/settings")
	}
	return s.renderSettings(c, http.StatusOK, nil, true)
}

// renderSettings answers with the settings page, or for htmx with the form
// partial. in is what the customer typed (nil: the saved values).
func (s *Server) renderSettings(c echo.Context, status int, in *views.SettingsInput, saved bool) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	htmx := c.Request().Header.Get("HX-Request") == "true"
	var sh views.Shell
	if htmx {
		sh = s.publicShell(c, "Spend controls")
	} else {
		var err error
		if sh, err = s.shell(c, "Spend controls", "settings"); err != nil {
			return err
		}
	}
	v, err := s.settingsView(ctx, cid, sh.Fmt)
	if err != nil {
		return err
	}
	if in != nil {
		v.Input = *in
	}
	v.Saved = saved
	switch {
	case !htmx:
		return render(c, status, views.SettingsPage(sh, v))
	case saved:
		return render(c, status, views.SettingsSaved(sh, v))
	}
	return render(c, status, views.SettingsForm(sh, v))
}

// settingsView reads what the settings page shows for a customer.
func (s *Server) settingsView(ctx context.Context, customerID string, f views.Fmt) (views.SettingsView, error) {
	var v views.SettingsView
	cu, err := s.ledger.FindCustomer(ctx, customerID)
	if err != nil {
		return v, err
	}
	set, err := s.portal.FindCustomerSettings(ctx, customerID)
	if err != nil {
		return v, err
	}
	last, err := s.portal.LastTopUp(ctx, customerID)
	if err != nil {
		return v, err
	}
	spend, err := s.portal.CustomerSpend(ctx, customerID)
	if err != nil {
		return v, err
	}
	bal, err := s.ledger.Balance(ctx, customerID)
	if err != nil {
		return v, err
	}
	now := time.Now().UTC()
	v.Usage = views.SettingsUsage{
		Today: spend.Day, Month: spend.Month, Reserved: bal.Held,
		Caps:         cu.CustomerCaps.Tighter(cu.Limits.Caps()), // both apply: the meters show the tighter
		ProviderCaps: cu.Limits.Caps(),
		DayResets:    time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC),
		MonthResets:  time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC),
	}
	v.Input = views.SettingsInput{
		DailyCap:            views.SettingsValue(f, cu.CustomerCaps.DailyCap),
		MonthlyCap:          views.SettingsValue(f, cu.CustomerCaps.MonthlyCap),
		LowBalanceThreshold: views.SettingsValue(f, set.LowBalanceThreshold),
	}
	v.LastTopUp = last
	v.DefaultThreshold = billing.CustomerSettings{}.Threshold(last)
	v.Overdraft = cu.Limits.OverdraftLimit
	v.ProviderCaps = cu.Limits.Caps()
	return v, nil
}

// parseSpendControls reads the settings form. Every field is checked, so the
// customer sees all that is wrong at once; errs is keyed by field name.
func parseSpendControls(in views.SettingsInput, f views.Fmt) (billing.SpendControls, map[string]string) {
	decimal := views.SettingsDecimal(f)
	errs := map[string]string{}
	var sc billing.SpendControls
	for _, fld := range []struct {
		name, raw, negative string
		dst                 **billing.Credits
	}{
		{views.SettingsFieldDaily, in.DailyCap, "A cap can't be negative. Leave it empty for no cap.", &sc.DailyCap},
		{views.SettingsFieldMonthly, in.MonthlyCap, "A cap can't be negative. Leave it empty for no cap.", &sc.MonthlyCap},
		{views.SettingsFieldThreshold, in.LowBalanceThreshold, "The warning level can't be negative. Leave it empty for the default.", &sc.LowBalanceThreshold},
	} {
		c, msg := parseFormCredits(fld.raw, decimal)
		switch {
		case msg == errNegative:
			errs[fld.name] = fld.negative
		case msg != "":
			errs[fld.name] = msg
		default:
			*fld.dst = c
		}
	}
	if sc.DailyCap != nil && sc.MonthlyCap != nil && *sc.DailyCap > *sc.MonthlyCap && errs[views.SettingsFieldDaily] == "" {
		errs[views.SettingsFieldDaily] = "The daily cap can't be more than the monthly cap (" + f.CreditsWord(*sc.MonthlyCap) + ")."
	}
	return sc, errs
}

const errNegative = "negative"

// parseFormCredits reads an amount of credits as a person types it: spaces
// and thousands separators allowed, the decimal separator "." or ",". When
// one separator could be either ("1,000"), the reader's decimal separator
// decides. Empty is nil. msg says what is wrong (errNegative for a negative
// amount, which each field words its own way).
func parseFormCredits(raw, decimal string) (c *billing.Credits, msg string) {
	s := strings.NewReplacer(" ", "", "\u00a0", "", "\u202f", "", "\u2009", "", "'", "", "_", "").Replace(strings.TrimSpace(raw))
	if s == "" {
		return nil, ""
	}
	const nan = "Enter a number of credits, such as 500 or 12.5."
	neg := false
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		neg, s = true, rest
	} else if rest, ok := strings.CutPrefix(s, "−"); ok {
		neg, s = true, rest
	}
	// Which of "." and "," is the decimal separator, if any.
	dec := ""
	dot, comma := strings.LastIndex(s, "."), strings.LastIndex(s, ",")
	switch {
	case dot >= 0 && comma >= 0:
		dec = map[bool]string{true: ".", false: ","}[dot > comma]
	case dot >= 0 || comma >= 0:
		sep, at := ".", dot
		if comma >= 0 {
			sep, at = ",", comma
		}
		grouping := strings.Count(s, sep) > 1 || (len(s)-at-1 == 3 && sep != decimal && at > 0)
		if !grouping {
			dec = sep
		}
	}
	whole, frac, hasFrac := s, "", false
	if dec != "" {
		i := strings.LastIndex(s, dec)
		whole, frac, hasFrac = s[:i], s[i+1:], true
	}
	// Thousands separators: the other one, in groups of three.
	group := map[string]string{".": ",", ",": ".", "": "."}[dec]
	if dec == "" && comma >= 0 {
		group = ","
	}
	if parts := strings.Split(whole, group); len(parts) > 1 {
		if len(parts[0]) == 0 || len(parts[0]) > 3 {
			return nil, nan
		}
		for _, p := range parts[1:] {
			if len(p) != 3 {
				return nil, nan
			}
		}
		whole = strings.Join(parts, "")
	}
	if !digitsOnly(whole) || !digitsOnly(frac) || (whole == "" && frac == "") || (hasFrac && frac == "") {
		return nil, nan
	}
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	canon := whole
	if frac != "" {
		canon += "." + frac
	}
	v, err := billing.ParseCredits(canon)
	switch {
	case err != nil && strings.Contains(billing.ErrorMessage(err), "decimals"):
		return nil, "Use at most three decimals: 0.001 is the smallest amount of credits."
	case err != nil:
		return nil, "That is more than the largest amount Tally accepts (one trillion credits)."
	case neg && v != 0:
		return nil, errNegative
	}
	return &v, ""
}

func digitsOnly(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
