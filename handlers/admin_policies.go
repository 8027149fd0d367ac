package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers/forms"
	"github.com/tally-billing/tally/views"
)

// policyStore is where the policy lives (*db.DB).
type policyStore interface {
	CurrentPolicy(ctx context.Context) (billing.PolicyVersion, error)
	PolicyHistory(ctx context.Context, limit int) ([]billing.PolicyVersion, error)
	UpdatePolicy(ctx context.Context, based int64, p billing.Policy, actor billing.Actor, reason string) (billing.PolicyVersion, error)
}

// registerAdminPolicies mounts /admin/policies: support reads, admins and
// owners edit.
func (s *Server) registerAdminPolicies(g *echo.Group, support, admin echo.MiddlewareFunc) {
	if _, ok := s.store.(policyStore); !ok {
		return // a store without policies (a test's wrapper): the flags' policy applies
	}
	g.GET("/policies", s.adminPolicies, support)
	g.POST("/policies", s.adminPolicySave, admin)
}

// policy is the policy in force: the stored one, or, for a store without
// policies (tests' fakes), the payments configuration's with the defaults.
func (s *Server) policy(ctx context.Context) billing.Policy {
	if ps, ok := s.store.(policyStore); ok {
		if v, err := ps.CurrentPolicy(ctx); err == nil {
			return v.Policy
		} else {
			s.log.Error("reading the policy; using the configured one", "err", err)
		}
	}
	p := billing.DefaultPolicy
	if pp := s.cfg.Payments.Policy; pp.CustomMax > 0 {
		p.RefundWindow, p.PurchaseExpiry, p.CustomMin, p.CustomMax, p.RefillMaxPerMonth = pp.RefundWindow, pp.PurchaseExpiry, pp.CustomMin, pp.CustomMax, pp.RefillMaxPerMonth
		p.RefillMaxAmountPerMonth = pp.RefillMaxAmountPerMonth
	}
	return p
}

// policyCurrency is the currency custom top-up bounds are typed in: the
// price book's base pack's (usd without a price book).
func (s *Server) policyCurrency(ctx context.Context) string {
	if s.prices != nil {
		if pb, err := s.prices.CurrentPriceBook(ctx); err == nil && pb != nil {
			if base, ok := pb.BaseRate(); ok {
				return base.Price.Currency
			}
		}
	}
	return "usd"
}

// GET /admin/policies.
func (s *Server) adminPolicies(c echo.Context) error {
	ctx := c.Request().Context()
	cur, err := s.store.(policyStore).CurrentPolicy(ctx)
	if err != nil {
		return err
	}
	cur2 := s.policyCurrency(ctx)
	return s.renderPolicies(c, http.StatusOK, nil, policyValues(s.publicShell(c, "").Fmt, cur, cur2), nil)
}

// policyValues are the form's fields for a policy, as a person types them.
func policyValues(f views.Fmt, v billing.PolicyVersion, currency string) map[string]string {
	p := v.Policy
	days := func(d time.Duration) string { return strconv.FormatInt(int64(d/(24*time.Hour)), 10) }
	secs := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
	return map[string]string{
		"version":                     strconv.FormatInt(v.Version, 10),
		"refund_window":               days(p.RefundWindow),
		"purchase_expiry":             days(p.PurchaseExpiry),
		"promo_expiry":                days(p.PromoExpiry),
		"custom_min":                  f.MoneyInput(billing.Money{Amount: p.CustomMin, Currency: currency}),
		"custom_max":                  f.MoneyInput(billing.Money{Amount: p.CustomMax, Currency: currency}),
		"low_balance_percent":         strconv.Itoa(p.LowBalancePercent),
		"hold_ttl":                    secs(p.HoldTTL),
		"hold_max_ttl":                secs(p.HoldMaxTTL),
		"refill_max_per_month":        strconv.Itoa(p.RefillMaxPerMonth),
		"refill_max_amount_per_month": f.MoneyInput(billing.Money{Amount: p.RefillMaxAmountPerMonth, Currency: currency}),
		"default_overdraft":           p.DefaultOverdraft.String(),
	}
}

func (s *Server) renderPolicies(c echo.Context, status int, flash *views.Flash, values, errs map[string]string) error {
	ctx := c.Request().Context()
	ps := s.store.(policyStore)
	cur, err := ps.CurrentPolicy(ctx)
	if err != nil {
		return err
	}
	versions, err := ps.PolicyHistory(ctx, 50)
	if err != nil {
		return err
	}
	currency := s.policyCurrency(ctx)
	sh := s.adminShell(c, "Policies", "policies")
	if flash != nil {
		sh.Flash = flash
	}
	d := views.AdminPoliciesPage{Current: cur, Currency: strings.ToUpper(currency), Now: s.store.Now(), Values: values, Errors: errs,
		Names: map[string]string{}}
	if s.prices != nil {
		if pb, err := s.prices.CurrentPriceBook(ctx); err == nil && pb != nil && pb.CustomTopUp != nil && pb.CustomTopUp.Max > 0 {
			d.PriceBookRange, d.PriceBookVersion = pb.CustomTopUp, pb.Version
		}
	}
	money := func(a int64) string { return sh.Fmt.Money(billing.Money{Amount: a, Currency: currency}) }
	for i, v := range versions {
		h := views.AdminPolicyVersion{PolicyVersion: v}
		if i+1 < len(versions) {
			h.Changes = billing.DiffPolicy(versions[i+1].Policy, v.Policy, money)
		}
		d.History = append(d.History, h)
	}
	if admins, err := s.store.FindAdmins(ctx); err == nil {
		for _, a := range admins {
			d.Names[a.ID] = a.Email
		}
	}
	return render(c, status, views.AdminPoliciesView(sh, d))
}

// readPolicy reads the policy form: every field's error at once, beside
// it, the parser's first and then billing's rules (Policy.Validate).
func readPolicy(f *forms.Form, currency string) billing.Policy {
	var p billing.Policy
	day := 24 * time.Hour
	whole := func(name, required string) int {
		if v := f.Whole(name, forms.Opts{Required: required, Negative: "Can't be negative."}); v != nil {
			return *v
		}
		return 0
	}
	// Whole caps typed numbers far above any field's limit; Validate
	// words the field's own bound. Capping here keeps the duration math
	// from overflowing.
	days := func(name string) time.Duration {
		return time.Duration(min(whole(name, "Enter a number of days (0 for none)."), 100_000)) * day
	}
	secs := func(name string) time.Duration {
		return time.Duration(min(whole(name, "Enter a number of seconds."), 1_000_000)) * time.Second
	}
	p.RefundWindow = days("refund_window")
	p.PurchaseExpiry = days("purchase_expiry")
	p.PromoExpiry = days("promo_expiry")
	if v := f.Money("custom_min", currency, forms.Opts{Required: "Enter the smallest amount, such as 5.00."}); v != nil {
		p.CustomMin = *v
	}
	if v := f.Money("custom_max", currency, forms.Opts{Required: "Enter the largest amount, such as 1000.00."}); v != nil {
		p.CustomMax = *v
	}
	p.LowBalancePercent = whole("low_balance_percent", "Enter a percentage, such as 10.")
	p.HoldTTL = secs("hold_ttl")
	p.HoldMaxTTL = secs("hold_max_ttl")
	p.RefillMaxPerMonth = whole("refill_max_per_month", "Enter a number of refills (0 for no cap).")
	if v := f.Money("refill_max_amount_per_month", currency, forms.Opts{Required: "Enter an amount, such as 200.00 (0 for no cap).",
		Negative: "Can't be negative: 0 is no cap."}); v != nil {
		p.RefillMaxAmountPerMonth = *v
	}
	if v := f.Credits("default_overdraft", forms.Opts{Required: "Enter the credits a new customer may go below zero (0 for none).",
		Negative: "Can't be negative: 0 allows no overdraft."}); v != nil {
		p.DefaultOverdraft = *v
	}
	for field, msg := range p.Validate() {
		f.Fail(field, msg)
	}
	return p
}

// POST /admin/policies: a new version of the policy. A change that
// touches money (refunds, expiries, top-up bounds, the refill cap) is
// shown for confirmation first; the version the form was read at must
// still be the current one (else conflict: another admin saved meanwhile).
func (s *Server) adminPolicySave(c echo.Context) error {
	ctx := c.Request().Context()
	currency := s.policyCurrency(ctx)
	f := readForm(c)
	p := readPolicy(f, currency)
	reason := strings.TrimSpace(f.Value("reason"))
	switch {
	case reason == "":
		f.Fail("reason", "Say why: the reason is kept in the audit log.")
	case len(reason) > 500:
		f.Fail("reason", "Keep the reason under 500 characters.")
	}
	based, err := strconv.ParseInt(f.Value("version"), 10, 64)
	if err != nil || based < 0 {
		return billing.Errorf(billing.CodeValidation, "The form is missing the policy version it was read at: reload the page.").With("param", "version")
	}
	values := map[string]string{}
	for k := range f.Values {
		if k != "_csrf" && k != "confirm" {
			values[k] = f.Value(k)
		}
	}
	if !f.Valid() {
		return s.renderPolicies(c, http.StatusUnprocessableEntity, nil, values, f.Errors)
	}
	cur, err := s.store.(policyStore).CurrentPolicy(ctx)
	if err != nil {
		return err
	}
	fm := s.publicShell(c, "").Fmt
	changes := billing.DiffPolicy(cur.Policy, p, func(a int64) string { return fm.Money(billing.Money{Amount: a, Currency: currency}) })
	if len(changes) == 0 && cur.Version == based {
		return adminFlashTo(c, "info", "Nothing changed: the policy is as it was.", "/admin/policies")
	}
	money := false
	for _, ch := range changes {
		money = money || ch.Money
	}
	if money && c.FormValue("confirm") != "1" {
		return render(c, http.StatusOK, views.AdminPolicyConfirmView(s.adminShell(c, "Confirm the policy", "policies"), views.AdminPolicyConfirm{
			Changes: changes, Fields: values, Reason: reason, Example: views.NewPolicyExample(p, s.store.Now())}))
	}
	v, err := s.store.(policyStore).UpdatePolicy(ctx, based, p, billing.AdminActor(currentAdmin(c).User.ID), reason)
	if billing.ErrorCode(err) == billing.CodeConflict {
		return s.renderPolicies(c, http.StatusConflict, &views.Flash{Kind: "error", Message: billing.ErrorMessage(err)}, values, nil)
	}
	if err != nil {
		return err
	}
	return adminFlashTo(c, "success", "Policy saved as version "+strconv.FormatInt(v.Version, 10)+". It applies to new credits, holds and top-ups from now on.", "/admin/policies")
}
