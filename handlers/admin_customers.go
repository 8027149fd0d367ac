package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers/forms"
	"github.com/tally-billing/tally/views"
)

const adminPageSize = 25

// GET /admin/customers: search by e-mail, name or external id; newest first.
func (s *Server) adminCustomers(c echo.Context) error {
	d := views.AdminCustomerList{Query: strings.TrimSpace(c.QueryParam("q")), Cursor: c.QueryParam("cursor")}
	if len(d.Query) > 200 {
		return billing.Errorf(billing.CodeValidation, "Search for at most 200 characters.").With("param", "q")
	}
	var err error
	d.Rows, d.Next, err = s.store.FindAdminCustomers(c.Request().Context(), billing.AdminCustomerFilter{Query: d.Query, Limit: adminPageSize, Cursor: d.Cursor})
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AdminCustomersPage(s.adminShell(c, "Customers", "customers"), d))
}

// GET /admin/customers/:id.
func (s *Server) adminCustomer(c echo.Context) error {
	return s.renderAdminCustomer(c, http.StatusOK, views.AdminForms{})
}

// renderAdminCustomer renders the customer page, with a failed form's
// values and errors when status is not 200.
func (s *Server) renderAdminCustomer(c echo.Context, status int, fm views.AdminForms) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	d := views.AdminCustomerPage{Customer: cu, Forms: fm}
	if d.Ledger, err = s.ledgerData(ctx, cu.ID, "", ""); err != nil {
		return err
	}
	if len(d.Ledger.Rows) > 20 {
		d.Ledger.Rows = d.Ledger.Rows[:20]
	}
	d.Balance = d.Ledger.Balance
	if d.Freeze, err = s.store.FindFreeze(ctx, cu.ID); err != nil {
		return err
	}
	if d.Freeze != nil {
		d.FreezeBy = s.actorName(ctx, d.Freeze.By)
	}
	if d.Flags, err = s.store.FindCustomerFlags(ctx, cu.ID); err != nil {
		return err
	}
	if err := s.adminHoldsAndPolicy(ctx, &d); err != nil {
		return err
	}
	if d.Settings, err = s.portal.FindCustomerSettings(ctx, cu.ID); err != nil {
		return err
	}
	if d.Subscription, err = s.adminSubscription(ctx, cu.ID); err != nil {
		return err
	}
	if s.cfg.Payments.Store != nil {
		if d.Purchases, err = s.purchases(ctx, cu.ID); err != nil {
			return err
		}
		rs, ok, err := s.cfg.Payments.Store.FindRefillSettings(ctx, cu.ID)
		if err != nil {
			return err
		}
		if ok {
			d.Refill = &rs
		}
		if d.Notices, err = s.cfg.Payments.Store.FindNotices(ctx, cu.ID, 5); err != nil {
			return err
		}
	}
	// Usage: the last 30 days of rollups, summed per feature.
	now := s.store.Now().UTC()
	days, err := s.ledger.FindUsageDays(ctx, cu.ID, now.AddDate(0, 0, -29).Format(time.DateOnly), now.Format(time.DateOnly))
	if err != nil {
		return err
	}
	byFeature := map[string]int{}
	for _, u := range days {
		i, ok := byFeature[u.Feature]
		if !ok {
			i = len(d.Usage)
			byFeature[u.Feature] = i
			d.Usage = append(d.Usage, billing.UsageDay{Feature: u.Feature})
		}
		d.Usage[i].Credits += u.Credits
		d.Usage[i].Quantity += u.Quantity
		d.Usage[i].Events += u.Events
	}
	sort.Slice(d.Usage, func(i, j int) bool { return d.Usage[i].Credits > d.Usage[j].Credits })
	if len(d.Usage) > 0 {
		// The features by the names customers see (a retired one by its key).
		pb, err := s.prices.CurrentPriceBook(ctx)
		if err != nil {
			return err
		}
		d.FeatureNames = map[string]string{}
		if pb != nil {
			for _, f := range pb.Features {
				d.FeatureNames[f.Key] = f.Name
			}
		}
	}
	return render(c, status, views.AdminCustomerView(s.adminShell(c, adminCustomerTitle(cu), "customers"), d))
}

func adminCustomerTitle(cu billing.Customer) string {
	if cu.Name != "" {
		return cu.Name
	}
	if cu.Email != "" {
		return cu.Email
	}
	return cu.ExternalID
}

// adminForm reads an action's form: its values as typed (to show again)
// and its errors, all at once.
type adminForm struct {
	*forms.Form
	name string
}

func (s *Server) readAdminForm(c echo.Context, name string) adminForm {
	return adminForm{Form: readForm(c), name: name}
}

// reason reads the mandatory reason.
func (f adminForm) reason() string {
	r := strings.TrimSpace(f.Value("reason"))
	switch {
	case r == "":
		f.Fail("reason", "Say why: the reason is kept in the audit log.")
	case len(r) > 500:
		f.Fail("reason", "Keep the reason under 500 characters.")
	}
	return r
}

func (f adminForm) views() views.AdminForms {
	vals := map[string]string{}
	for k := range f.Values {
		vals[k] = f.Value(k)
	}
	return views.AdminForms{Open: f.name, Values: vals, Errors: f.Errors}
}

// failed renders the customer page with the form's errors beside its fields.
func (s *Server) failed(c echo.Context, f adminForm) error {
	return s.renderAdminCustomer(c, http.StatusUnprocessableEntity, f.views())
}

// confirmKey is a fresh idempotency key for a confirmation page: the
// confirmed request carries it, so pressing the button twice (or a retry)
// moves the money once.
func confirmKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "admin_" + base64.RawURLEncoding.EncodeToString(b)
}

// POST /admin/customers/:id/grant: promo credits, with an optional expiry.
// Without confirm=1 it shows the confirmation; with it, it grants.
func (s *Server) adminGrant(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	f := s.readAdminForm(c, "grant")
	amount := f.Credits("credits", forms.Opts{Required: "Enter the credits to grant, such as 500.", Negative: "Enter a positive number: to take credits away, use Deduct."})
	if amount != nil && *amount == 0 {
		f.Fail("credits", "Enter more than zero credits.")
	}
	// A date picked means the credits last until the end of that day, UTC
	// (billing.EndOfDayUTC); an empty one, the policy's promo expiry,
	// counted the same way. The form keeps what was typed: a refused
	// submit never fills the date in.
	var expires *time.Time
	if v := strings.TrimSpace(f.Value("expires")); v == "" {
		expires = s.policy(ctx).PromoExpiresAt(s.store.Now())
	} else {
		day, err := time.Parse(time.DateOnly, v)
		switch {
		case err != nil:
			f.Fail("expires", "Enter a date like 2026-12-31, or leave it empty for credits that never expire.")
		case !billing.EndOfDayUTC(day).After(s.store.Now()):
			f.Fail("expires", "Pick today or a date after today.")
		default:
			end := billing.EndOfDayUTC(day)
			expires = &end
		}
	}
	reason := f.reason()
	if !f.Valid() {
		return s.failed(c, f)
	}
	b, err := s.ledger.Balance(ctx, cu.ID)
	if err != nil {
		return err
	}
	if b.Balance > billing.MaxCredits-*amount {
		f.Fail("credits", "That many credits would pass what a wallet may hold.")
		return s.failed(c, f)
	}
	if c.FormValue("confirm") != "1" || c.FormValue("key") == "" {
		fields := map[string]string{"credits": amount.String(), "reason": reason, "key": confirmKey()}
		if expires != nil {
			fields["expires"] = expires.UTC().Format(time.DateOnly)
		}
		return render(c, http.StatusOK, views.AdminConfirmPage(s.adminShell(c, "Confirm grant", "customers"), views.AdminConfirm{
			Customer: cu, Action: "grant", Action2: "Grant " + s.publicShell(c, "").Fmt.Credits(*amount) + " credits",
			Credits: *amount, Before: b.Balance, After: b.Balance + *amount, Expires: expires, Reason: reason, Fields: fields}))
	}
	g, err := s.ledger.Grant(ctx, billing.GrantRequest{Customer: cu.ID, Credits: *amount, Source: billing.SourcePromo, Reason: reason,
		ExpiresAt: expires, IdempotencyKey: c.FormValue("key"), Actor: billing.AdminActor(currentAdmin(c).User.ID)})
	if err != nil {
		return s.actionError(c, f, "credits", err)
	}
	return adminFlashTo(c, "success", "Granted "+s.publicShell(c, "").Fmt.Credits(g.Credits)+" credits to "+adminCustomerTitle(cu)+".", "/admin/customers/"+cu.ID)
}

// POST /admin/customers/:id/deduct: takes credits away (an adjustment),
// after the same confirmation.
func (s *Server) adminDeduct(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	f := s.readAdminForm(c, "deduct")
	amount := f.Credits("credits", forms.Opts{Required: "Enter the credits to deduct, such as 500.", Negative: "Enter a positive number: the credits to take away."})
	if amount != nil && *amount == 0 {
		f.Fail("credits", "Enter more than zero credits.")
	}
	reason := f.reason()
	if !f.Valid() {
		return s.failed(c, f)
	}
	b, err := s.ledger.Balance(ctx, cu.ID)
	if err != nil {
		return err
	}
	if *amount > b.Available {
		f.Fail("credits", "The customer has "+s.publicShell(c, "").Fmt.Credits(max(b.Available, 0))+" credits available: deduct at most that.")
		return s.failed(c, f)
	}
	if c.FormValue("confirm") != "1" || c.FormValue("key") == "" {
		return render(c, http.StatusOK, views.AdminConfirmPage(s.adminShell(c, "Confirm deduction", "customers"), views.AdminConfirm{
			Customer: cu, Action: "deduct", Action2: "Deduct " + s.publicShell(c, "").Fmt.Credits(*amount) + " credits",
			Credits: *amount, Before: b.Balance, After: b.Balance - *amount, Reason: reason,
			Fields: map[string]string{"credits": amount.String(), "reason": reason, "key": confirmKey()}}))
	}
	_, _, err = s.ledger.Adjust(ctx, billing.AdjustmentRequest{Customer: cu.ID, Credits: -*amount, Reason: reason,
		IdempotencyKey: c.FormValue("key"), Actor: billing.AdminActor(currentAdmin(c).User.ID)})
	if err != nil {
		return s.actionError(c, f, "credits", err)
	}
	return adminFlashTo(c, "success", "Deducted "+s.publicShell(c, "").Fmt.Credits(*amount)+" credits from "+adminCustomerTitle(cu)+".", "/admin/customers/"+cu.ID)
}

// actionError puts a refused change's reason beside the field it concerns
// (validation, insufficient credits, a reused key); other errors go to the
// error handler.
func (s *Server) actionError(c echo.Context, f adminForm, field string, err error) error {
	switch billing.ErrorCode(err) {
	case billing.CodeValidation, billing.CodeInsufficientCredits, billing.CodeOutOfRange, billing.CodeIdempotencyConflict:
		switch errorParam(err) {
		case "reason":
			field = "reason"
		case "expires_at":
			field = "expires"
		}
		f.Fail(field, billing.ErrorMessage(err))
		return s.failed(c, f)
	}
	return err
}

// errorParam is the request field a domain error names ("" for none).
func errorParam(err error) string {
	var e *billing.Error
	if errors.As(err, &e) {
		p, _ := e.Details["param"].(string)
		return p
	}
	return ""
}

// POST /admin/customers/:id/limits: the operator's overdraft limit and
// spend caps (the customer's own caps apply beside them). Not a money
// movement: no confirmation, but a reason and an audit record with the
// limits before and after.
func (s *Server) adminLimits(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	f := s.readAdminForm(c, "limits")
	var lim billing.Limits
	if v := f.Credits("overdraft", forms.Opts{Negative: "The overdraft limit can't be negative: 0 allows none."}); v != nil {
		lim.OverdraftLimit = *v
	}
	lim.DailyCap = f.Credits("daily_cap", forms.Opts{Negative: "A cap can't be negative: leave it empty for no cap."})
	lim.MonthlyCap = f.Credits("monthly_cap", forms.Opts{Negative: "A cap can't be negative: leave it empty for no cap."})
	reason := f.reason()
	if f.Valid() {
		if err := lim.Validate(); err != nil {
			field := map[string]string{"daily_cap": "daily_cap", "monthly_cap": "monthly_cap", "overdraft_limit": "overdraft"}[errorParam(err)]
			if field == "" {
				field = "overdraft"
			}
			f.Fail(field, views.LimitsErrorText(err))
		}
	}
	if !f.Valid() {
		return s.failed(c, f)
	}
	// The store writes the audit record (limits before and after) in the
	// change's own transaction.
	if _, err := s.ledger.SetLimits(s.audited(c, billing.AuditLimitsSet, cu.ID, reason, "", ""), cu.ID, lim); err != nil {
		return s.actionError(c, f, "overdraft", err)
	}
	return adminFlashTo(c, "success", "Limits saved for "+adminCustomerTitle(cu)+".", "/admin/customers/"+cu.ID)
}

// POST /admin/customers/:id/flags/:flag/clear: a dispute looked at.
func (s *Server) adminClearFlag(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	flag, err := strconv.ParseInt(c.Param("flag"), 10, 64)
	if err != nil {
		return billing.Errorf(billing.CodeNotFound, "No such flag.")
	}
	f := s.readAdminForm(c, "flag")
	reason := f.reason()
	if !f.Valid() {
		return s.failed(c, f)
	}
	if err := s.store.ClearCustomerFlag(ctx, cu.ID, flag, billing.AdminActor(currentAdmin(c).User.ID), reason); err != nil {
		return err
	}
	return adminFlashTo(c, "success", "Flag cleared.", "/admin/customers/"+cu.ID)
}

// POST /admin/customers/:id/topups/:topup/refund refunds a purchase's
// unused credits inside its refund window (the payments service's refund,
// made by the admin), after a confirmation that says what leaves and what
// is returned.
func (s *Server) adminRefund(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if s.cfg.Payments.Service == nil {
		return billing.Errorf(billing.CodeNotFound, "Payments are not set up.")
	}
	tu, err := s.cfg.Payments.Store.FindTopUp(ctx, c.Param("topup"))
	if err != nil || tu.Customer != cu.ID {
		return billing.Errorf(billing.CodeNotFound, "This customer has no top-up %q.", c.Param("topup"))
	}
	f := s.readAdminForm(c, "refund-"+tu.ID)
	reason := f.reason()
	if !f.Valid() {
		return s.failed(c, f)
	}
	fm := s.publicShell(c, "").Fmt
	if c.FormValue("confirm") != "1" {
		b, err := s.ledger.Balance(ctx, cu.ID)
		if err != nil {
			return err
		}
		var unused billing.Credits
		for _, l := range b.Lots {
			if l.ID == tu.Lot && !l.Frozen {
				unused = min(l.Remaining, max(0, b.Available))
			}
		}
		amount := billing.RefundFor(tu, unused)
		if tu.Status != billing.TopUpSucceeded || amount <= 0 || (tu.RefundableUntil != nil && !tu.RefundableUntil.After(s.store.Now())) {
			f.Fail("reason", "This purchase can't be refunded: it is past its refund window, not paid, or its credits are used.")
			return s.failed(c, f)
		}
		return render(c, http.StatusOK, views.AdminConfirmPage(s.adminShell(c, "Confirm refund", "customers"), views.AdminConfirm{
			Customer: cu, Action: "topups/" + tu.ID + "/refund",
			Action2: "Refund " + fm.Money(billing.Money{Amount: amount, Currency: tu.Price.Currency}) + " for " + fm.Credits(unused) + " unused credits",
			Credits: unused, Before: b.Balance, After: b.Balance - unused, Reason: reason,
			Fields: map[string]string{"reason": reason}}))
	}
	// A refund is idempotent by itself: a refunded top-up is not refunded again.
	tu, err = s.cfg.Payments.Service.RefundBy(ctx, tu.ID, billing.AdminActor(currentAdmin(c).User.ID), reason)
	if err != nil {
		switch billing.ErrorCode(err) {
		case billing.CodeRefundWindowClosed, billing.CodeNothingToRefund, billing.CodeConflict, billing.CodePaymentProvider, billing.CodeNotFound:
			// The provider's refusal too: the purchase and its reason stay
			// on the page, with what happened to the credits (its note).
			msg := billing.ErrorMessage(err)
			var be *billing.Error
			if errors.As(err, &be) {
				if note, ok := be.Details["note"].(string); ok {
					msg += " " + note
				}
			}
			f.Fail("reason", msg)
			return s.failed(c, f)
		}
		return err
	}
	return adminFlashTo(c, "success", "Refunded "+fm.Money(billing.Money{Amount: tu.RefundedAmount, Currency: tu.Price.Currency})+" to "+adminCustomerTitle(cu)+".", "/admin/customers/"+cu.ID)
}

// POST /admin/customers/:id/freeze and /unfreeze: a frozen account's
// debits and new holds are refused (403 account_frozen) until unfrozen.
func (s *Server) adminFreeze(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	freeze := strings.HasSuffix(c.Path(), "/freeze")
	name := "unfreeze"
	if freeze {
		name = "freeze"
	}
	f := s.readAdminForm(c, name)
	reason := f.reason()
	if !f.Valid() {
		return s.failed(c, f)
	}
	if err := s.store.SetFrozen(ctx, cu.ID, freeze, billing.AdminActor(currentAdmin(c).User.ID), reason); err != nil {
		if billing.ErrorCode(err) == billing.CodeConflict {
			// A page from before someone else's freeze (or unfreeze).
			return adminFlashTo(c, "error", billing.ErrorMessage(err)+" Nothing was changed.", "/admin/customers/"+cu.ID)
		}
		return err
	}
	if freeze {
		adminFlash(c, "success", adminCustomerTitle(cu)+"'s account is frozen: their debits and holds are refused until you unfreeze it.")
	} else {
		adminFlash(c, "success", adminCustomerTitle(cu)+"'s account is active again.")
	}
	return c.Redirect(http.StatusSeeOther, "/admin/customers/"+cu.ID)
}

// adminViewTTL is how long an admin's read-only view of a portal lasts.
const adminViewTTL = 30 * time.Minute

// POST /admin/customers/:id/view-portal opens the customer's portal in the
// admin's browser, as the customer sees it, read-only: a portal session
// marked with the admin, whose every write is refused; the customer's own
// sessions go on. Recorded in the audit log with the reason.
func (s *Server) adminViewPortal(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	f := s.readAdminForm(c, "view-portal")
	reason := f.reason()
	if !f.Valid() {
		return s.failed(c, f)
	}
	if err := s.audit(c, billing.AuditPortalViewed, cu.ID, reason, "", ""); err != nil {
		return err
	}
	now := time.Now()
	row := billing.CustomerSession{CustomerID: cu.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(adminViewTTL),
		ReadOnlyBy: billing.AdminActor(currentAdmin(c).User.ID).String()}
	if err := s.startSession(c, row, 0, false); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/portal")
}

// POST /admin/customers/:id/portal-link: a single-use sign-in link to the
// customer's billing, shown once to the admin to send on.
func (s *Server) adminPortalLink(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	f := s.readAdminForm(c, "portal-link")
	reason := f.reason()
	if !f.Valid() {
		return s.failed(c, f)
	}
	base := strings.TrimRight(s.cfg.Portal.BaseURL, "/")
	if base == "" {
		base = c.Scheme() + "://" + c.Request().Host
	}
	token, expires, err := s.portal.CreatePortalSession(s.audited(c, billing.AuditPortalLinkSent, cu.ID, reason, "", ""), cu.ID, base+"/", "", billing.PortalSessionTTL)
	if err != nil {
		return err
	}
	// Shown on a page of its own that stays (not a flash that fades), with
	// a copy button, like a new API key's secret.
	return render(c, http.StatusOK, views.AdminPortalLinkView(s.adminShell(c, "Portal sign-in link", "customers"), views.AdminPortalLink{
		Customer: cu, URL: base + "/portal/session/" + token, Expires: expires, TTL: billing.PortalSessionTTL}))
}

// actorName names who did something the way the audit log does: a staff
// member by e-mail, a system job as "Tally (job)", others as kind:id.
func (s *Server) actorName(ctx context.Context, a billing.Actor) string {
	switch a.Kind {
	case billing.ActorAdmin:
		if n := s.adminNames(ctx)[a.ID]; n != "" {
			return n
		}
	case billing.ActorSystem:
		return "Tally (" + a.ID + ")"
	}
	return a.String()
}
