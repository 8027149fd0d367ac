package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers/forms"
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
	sc, errs := parseCustomerCaps(in, f)
	if len(errs) == 0 {
		err := s.portal.UpdateCustomerCaps(ctx, cid, sc)
		var be *billing.Error
		switch {
		case errors.As(err, &be) && be.Code == billing.CodeValidation:
			// The domain's rules are the last word; show its verdict on its field.
			field, _ := be.Details["param"].(string)
			if field == "" {
				field = views.SettingsFieldDaily
			}
			errs[field] = be.Message
			if limit, ok := be.Details["limit"].(billing.Credits); ok {
				// Above the operator's cap: say whose cap, in the reader's numbers.
				period := map[string]string{views.SettingsFieldDaily: "a day", views.SettingsFieldMonthly: "a month"}[field]
				errs[field] = s.cfg.Portal.ProductName + " caps your account at " + f.CreditsWord(limit) + " " + period +
					". Enter that or less, or leave it empty to keep " + s.cfg.Portal.ProductName + "'s cap."
			}
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
	now := s.store.Now()
	dayResets, monthResets := billing.CapWindowEnds(now)
	v.Usage = views.SettingsUsage{
		Today: spend.Day, Month: spend.Month, Reserved: bal.Held,
		Caps:         cu.CustomerCaps.Tighter(cu.Limits.Caps()), // both apply: the meters show the tighter
		ProviderCaps: cu.Limits.Caps(),
		Product:      s.cfg.Portal.ProductName,
		DayResets:    dayResets,
		MonthResets:  monthResets,
	}
	// A cap of the customer's own that today's or this month's spend (with
	// the open holds, as the caps count them) already reaches is saved, and
	// said beside it: every request is refused until its window resets.
	counted := billing.Spend{Day: spend.Day + bal.Held, Month: spend.Month + bal.Held}
	v.Input = views.SettingsInput{
		DailyCap:            views.SettingsValue(f, cu.CustomerCaps.DailyCap),
		MonthlyCap:          views.SettingsValue(f, cu.CustomerCaps.MonthlyCap),
		LowBalanceThreshold: views.SettingsValue(f, set.LowBalanceThreshold),
		Notes:               views.SettingsCapNotes(f, billing.CapsAlreadyReached(cu.CustomerCaps, counted, now)),
	}
	v.LastTopUp = last
	v.DefaultThreshold = s.policy(ctx).LowBalanceLine(last)
	v.DefaultPercent = s.policy(ctx).LowBalancePercent
	v.Overdraft = cu.Limits.OverdraftLimit
	v.ProviderCaps = cu.Limits.Caps()
	if v.MailPrefs, err = s.mailPrefs(ctx, customerID); err != nil {
		return v, err
	}
	return v, nil
}

// parseCustomerCaps reads the settings form with the forms package. Every
// field is checked, so the customer sees all that is wrong at once; errs is
// keyed by field name.
func parseCustomerCaps(in views.SettingsInput, f views.Fmt) (billing.CustomerCapsInput, map[string]string) {
	fm := forms.New(url.Values{views.SettingsFieldDaily: {in.DailyCap}, views.SettingsFieldMonthly: {in.MonthlyCap},
		views.SettingsFieldThreshold: {in.LowBalanceThreshold}}, localeOf(f))
	const capNegative = "A cap can't be negative. Leave it empty for no cap."
	sc := billing.CustomerCapsInput{
		DailyCap:            fm.Credits(views.SettingsFieldDaily, forms.Opts{Negative: capNegative}),
		MonthlyCap:          fm.Credits(views.SettingsFieldMonthly, forms.Opts{Negative: capNegative}),
		LowBalanceThreshold: fm.Credits(views.SettingsFieldThreshold, forms.Opts{Negative: "The warning level can't be negative. Leave it empty for the default."}),
	}
	if sc.DailyCap != nil && sc.MonthlyCap != nil && *sc.DailyCap > *sc.MonthlyCap {
		fm.Fail(views.SettingsFieldDaily, "The daily cap can't be more than the monthly cap ("+f.CreditsWord(*sc.MonthlyCap)+").")
	}
	return sc, fm.Errors
}
