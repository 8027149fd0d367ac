package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/views"
)

// PlanStore is what the Plan tab needs from storage (*db.DB, the payments
// store). Errors: not_found, conflict, validation_failed.
type PlanStore interface {
	FindSubscription(ctx context.Context, customer string) (*billing.Subscription, error)
	StartSubscription(ctx context.Context, in db.SubscribeInput) (db.SubscriptionResult, error)
	ChangePlan(ctx context.Context, customer, key string, dry bool, actor billing.Actor) (db.SubscriptionResult, error)
	ChangeSubscriptionPlan(ctx context.Context, in db.PlanChangeInput) (db.SubscriptionResult, error)
	CancelSubscription(ctx context.Context, customer string, atPeriodEnd bool, actor billing.Actor) (billing.Subscription, error)
	ResumeSubscription(ctx context.Context, customer string, actor billing.Actor) (billing.Subscription, error)
	SubscriptionCredits(ctx context.Context, sub billing.Subscription) (db.PlanUsage, error)
	ListSubscriptionInvoices(ctx context.Context, customerID string, limit int) ([]db.SubscriptionInvoice, error)
	AdvanceSandbox(ctx context.Context, by time.Duration) (db.AdvanceResult, error)
	SandboxNow(ctx context.Context) (time.Time, error)
	PriceBookVersion(ctx context.Context, version int64) (*billing.PriceBook, error)
}

// planService is how the Plan tab starts a provider's checkout
// (payments.Service).
type planService interface {
	StartPlanCheckout(ctx context.Context, customerID string, plan billing.Plan, version int64, key, successURL, cancelURL string) (billing.CardSetup, error)
	SetPlanCancel(ctx context.Context, providerSubscriptionID string, cancel bool, key string) error
}

// planChanger is how the Plan tab moves a provider's subscription to
// another price (payments.Service with Stripe): prorate charges the
// difference now, computed at at.
type planChanger interface {
	ChangeProviderPlan(ctx context.Context, subscription string, plan billing.Plan, version int64, prorate bool, at time.Time, key string) (string, error)
}

// planControls says what the customer may do to sub here: change plan and
// cancel or keep it, in the sandbox and with Stripe (Stripe is told
// first, and Tally records what it accepted).
func (s *Server) planControls(sub *billing.Subscription) (change, cancel bool) {
	if sub == nil {
		return false, false
	}
	if sub.Provider == db.ProviderSandbox {
		return s.sandboxMode(), s.sandboxMode()
	}
	_, ok := s.cfg.Payments.Service.(planService)
	_, changes := s.cfg.Payments.Service.(planChanger)
	cancel = ok && !s.sandboxMode() && sub.Provider == db.ProviderStripe && sub.ProviderID != ""
	return cancel && changes, cancel
}

func (s *Server) planStore() (PlanStore, bool) {
	ps, ok := s.cfg.Payments.Store.(PlanStore)
	return ps, ok && s.cfg.Payments.Service != nil
}

// registerPlans adds the Plan tab: signed-in customers only (their own
// subscription), CSRF on every form.
func (s *Server) registerPlans() {
	if _, ok := s.planStore(); !ok {
		return
	}
	s.e.GET("/api/v1/customers/:id/subscription", s.getSubscription, s.requireKey(billing.ScopeRead))
	p := s.e.Group("/portal/plan", s.csrf(), s.requireCustomer)
	p.GET("", s.planPage)
	p.POST("", s.applyPlan)
	p.POST("/confirm", s.confirmPlan)
	p.POST("/clock", s.advanceClock) // demo mode in the sandbox only
	p.GET("/return", s.planReturn)
	p.GET("/receipts/:id", s.planReceipt)
}

// plansOffered says whether the Plan tab shows: payments are set up and
// the price book has plans.
func (s *Server) plansOffered(ctx context.Context) bool {
	if _, ok := s.planStore(); !ok {
		return false
	}
	pb, err := s.prices.CurrentPriceBook(ctx)
	return err == nil && pb != nil && len(pb.Plans) > 0
}

// liveSub is the customer's live subscription (nil: none, or ended) and
// the plan it pays for.
func (s *Server) liveSub(ctx context.Context, ps PlanStore, cid string) (*billing.Subscription, *billing.Plan, error) {
	sub, err := ps.FindSubscription(ctx, cid)
	if err != nil || sub == nil || sub.Status == billing.SubCanceled {
		return nil, nil, err
	}
	p, err := planAt(ctx, ps, sub.Plan, sub.PriceVersion)
	return sub, p, err
}

func planAt(ctx context.Context, ps PlanStore, key string, version int64) (*billing.Plan, error) {
	pb, err := ps.PriceBookVersion(ctx, version)
	if err != nil {
		return nil, err
	}
	p, ok := pb.Plan(key)
	if !ok {
		return nil, billing.Errorf(billing.CodeNotFound, "Plan %q is not in price book version %d.", key, version)
	}
	return &p, nil
}

// GET /portal/plan: the current plan, its credits this period, the plans
// side by side and the plan's invoices.
func (s *Server) planPage(c echo.Context) error {
	ctx := c.Request().Context()
	ps, _ := s.planStore()
	cid := currentCustomer(c).CustomerID
	sh, err := s.shell(c, "Plan", "plan")
	if err != nil {
		return err
	}
	pb, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return err
	}
	page := views.PlanPage{Sandbox: s.sandboxMode(), Clock: s.sandboxMode() && s.cfg.Portal.Demo}
	if page.SandboxNow, err = ps.SandboxNow(ctx); err != nil {
		return err
	}
	if page.Sub, page.Current, err = s.liveSub(ctx, ps, cid); err != nil {
		return err
	}
	if sub := page.Sub; sub != nil {
		page.ChangeHere, page.Manage = s.planControls(sub)
		if sub.NextPlan != "" {
			if page.Next, err = planAt(ctx, ps, sub.NextPlan, sub.NextPriceVersion); err != nil {
				return err
			}
		}
		u, err := ps.SubscriptionCredits(ctx, *sub)
		if err != nil {
			return err
		}
		page.Granted, page.Left, page.RolledOver = u.Granted, u.Left, u.RolledOver
		if page.Pending, err = s.renewalPending(ctx, ps, sub, u); err != nil {
			return err
		}
		// The period that ended: the current one, or the one before it
		// when the provider moved the period on already.
		page.PendingSince = sub.CurrentPeriodEnd
		if !u.Renewed && sub.Provider != db.ProviderSandbox && sub.CurrentPeriodEnd.After(s.store.Now()) {
			page.PendingSince = sub.CurrentPeriodStart
		}
	}
	if pb != nil {
		for _, p := range pb.Plans {
			ch := views.PlanChoice{Plan: p}
			switch {
			case page.Sub == nil:
				ch.Kind = views.ChoiceSubscribe
			case p.Key == page.Sub.Plan:
				ch.Kind = views.ChoiceCurrent
			case !page.ChangeHere, page.Pending: // no change while a renewal waits for its payment
			case p.Key == page.Sub.NextPlan:
				ch.Kind = views.ChoiceScheduled
			case billing.IsUpgrade(*page.Current, p):
				ch.Kind = views.ChoiceUpgrade
			default:
				ch.Kind = views.ChoiceDowngrade
			}
			page.Choices = append(page.Choices, ch)
		}
	}
	invs, err := ps.ListSubscriptionInvoices(ctx, cid, 24)
	if err != nil {
		return err
	}
	for _, inv := range invs {
		name := inv.Plan
		if p, ok := pb.Plan(inv.Plan); ok {
			name = p.Name
		}
		page.Invoices = append(page.Invoices, views.PlanInvoice{ID: inv.ID, PlanName: name, Kind: inv.Kind, Start: inv.PeriodStart,
			End: inv.PeriodEnd, Credits: inv.Credits, Amount: inv.Amount, Paid: inv.CreatedAt})
	}
	return render(c, http.StatusOK, views.PlanPageView(sh, page))
}

// planConfirmation reads what the customer chose (action, plan) and says
// what it will do (the dry run of a plan change).
func (s *Server) planConfirmation(c echo.Context) (views.PlanConfirm, error) {
	ctx := c.Request().Context()
	ps, _ := s.planStore()
	cid := currentCustomer(c).CustomerID
	conf := views.PlanConfirm{Action: c.FormValue("action"), Key: c.FormValue("key")}
	if conf.Key == "" {
		conf.Key = newClickKey()
	}
	sub, cur, err := s.liveSub(ctx, ps, cid)
	if err != nil {
		return conf, err
	}
	conf.Sub, conf.Current = sub, cur
	switch conf.Action {
	case views.PlanSubscribe, views.PlanChange:
		pb, err := s.prices.CurrentPriceBook(ctx)
		if err != nil {
			return conf, err
		}
		p, ok := pb.Plan(c.FormValue("plan"))
		if !ok {
			return conf, billing.Errorf(billing.CodeNotFound, "That plan is no longer offered. Reload the page to see the plans.")
		}
		conf.Plan = p
		if conf.Action == views.PlanSubscribe {
			if sub != nil {
				return conf, billing.Errorf(billing.CodeConflict, "You already have a plan; change it instead.")
			}
			conf.Stripe = !s.sandboxMode()
			return conf, nil
		}
	case views.PlanCancel, views.PlanResume:
	default:
		return conf, billing.Errorf(billing.CodeValidation, "Choose a plan, or to cancel or keep yours.")
	}
	if sub == nil {
		return conf, billing.Errorf(billing.CodeNotFound, "You have no plan to change.")
	}
	if change, cancel := s.planControls(sub); (conf.Action == views.PlanChange && !change) || !cancel {
		return conf, billing.Errorf(billing.CodeConflict, "This plan is billed by Stripe: contact us to change it.")
	}
	if conf.Action == views.PlanResume && sub.Provider != db.ProviderSandbox && !sub.CancelAtPeriodEnd && sub.NextPlan == "" {
		return conf, billing.Errorf(billing.CodeConflict, "There is no cancellation to take back.")
	}
	if conf.Action == views.PlanChange {
		u, err := ps.SubscriptionCredits(ctx, *sub)
		if err != nil {
			return conf, err
		}
		if pending, err := s.renewalPending(ctx, ps, sub, u); err != nil || pending {
			if err == nil {
				err = billing.Errorf(billing.CodeConflict, "Your plan's renewal is waiting for its payment: change plan once it has gone through.")
			}
			return conf, err
		}
		in := db.PlanChangeInput{Customer: cid, Plan: conf.Plan.Key, Dry: true, Actor: billing.CustomerActor(cid)}
		if sub.Provider != db.ProviderSandbox {
			in.Key = c.FormValue("key") // a confirmation posted again: its change may be recorded already
			at, err := s.planChangeTime(c)
			if err != nil {
				return conf, err
			}
			in.At, conf.At = at, strconv.FormatInt(at.Unix(), 10)
		}
		res, err := ps.ChangeSubscriptionPlan(ctx, in)
		if err != nil {
			return conf, err
		}
		conf.Quote = res.Quote
		if q := res.Quote; sub.Provider != db.ProviderSandbox && q.Upgrade && sub.NextPlan != "" {
			// Stripe's price is the waiting plan's (or version's) already:
			// it would prorate from it, not from what the quote says.
			if sub.Migrating() {
				return conf, billing.Errorf(billing.CodeConflict, "Your plan's new terms start on %s: upgrade after that.",
					sub.CurrentPeriodEnd.UTC().Format("2 Jan 2006"))
			}
			return conf, billing.Errorf(billing.CodeConflict, "Your switch to another plan is waiting for the period's end: keep your plan first, then upgrade.")
		}
	}
	if conf.Action == views.PlanResume && sub.NextPlan != "" {
		conf.Plan = *cur
	}
	return conf, nil
}

// POST /portal/plan/confirm asks once before a plan change, saying what
// will happen: "You will get 2,300 credits now and pay $12.40 today."
func (s *Server) confirmPlan(c echo.Context) error {
	conf, err := s.planConfirmation(c)
	if err != nil {
		return err
	}
	dlg := views.PlanConfirmDialog(s.publicShell(c, "Confirm"), conf)
	if isHTMX(c) {
		return render(c, http.StatusOK, dlg)
	}
	full, err := s.shell(c, "Confirm", "plan")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.Modal(full, dlg))
}

// POST /portal/plan does what the confirmation said, once for its key, and
// goes back to the Plan tab with a flash.
func (s *Server) applyPlan(c echo.Context) error {
	ctx := c.Request().Context()
	ps, _ := s.planStore()
	cid := currentCustomer(c).CustomerID
	key := c.FormValue("key")
	if !strings.HasPrefix(key, "click_") || len(key) > 64 {
		return billing.Errorf(billing.CodeInvalidRequest, "This form has expired; start again.")
	}
	conf, err := s.planConfirmation(c)
	if err != nil {
		return err
	}
	f := s.publicShell(c, "").Fmt
	actor := billing.CustomerActor(cid)
	var msg string
	switch conf.Action {
	case views.PlanSubscribe:
		if conf.Stripe {
			svc, ok := s.cfg.Payments.Service.(planService)
			if !ok {
				return billing.Errorf(billing.CodeValidation, "Plans cannot be bought here yet.")
			}
			pb, err := s.prices.CurrentPriceBook(ctx)
			if err != nil {
				return err
			}
			setup, err := svc.StartPlanCheckout(ctx, cid, conf.Plan, pb.Version, key, s.absURL(c, "/portal/plan/return"), s.absURL(c, "/portal/plan"))
			if err != nil {
				return err
			}
			return redirect(c, setup.URL)
		}
		// The click's key names the first invoice: a second press of the
		// same confirmation starts nothing more.
		res, err := ps.StartSubscription(ctx, db.SubscribeInput{Customer: cid, Plan: conf.Plan.Key, Invoice: "sbx_inv_" + cid + "_" + key, Actor: actor})
		if err != nil {
			return err
		}
		msg = "You are on " + conf.Plan.Name + ": " + f.Credits(conf.Plan.Credits) + " credits were added. It renews on " + f.Date(res.Subscription.CurrentPeriodEnd) + "."
	case views.PlanChange:
		var res db.SubscriptionResult
		if conf.Sub.Provider == db.ProviderSandbox {
			res, err = ps.ChangePlan(ctx, cid, conf.Plan.Key, false, actor)
		} else {
			res, err = s.changeProviderPlan(ctx, conf, key, actor)
		}
		if err != nil {
			return err
		}
		if q := res.Quote; q.Upgrade {
			msg = "You are on " + conf.Plan.Name + ": " + f.Credits(q.CreditsNow) + " credits were added and " + f.Money(q.AmountNow) + " was charged."
		} else {
			msg = "Your plan switches to " + conf.Plan.Name + " on " + f.Date(res.Subscription.CurrentPeriodEnd) + "."
		}
	case views.PlanCancel:
		if err := s.tellProvider(ctx, conf.Sub, true, key); err != nil {
			return err
		}
		sub, err := ps.CancelSubscription(ctx, cid, true, actor)
		if err != nil {
			return err
		}
		msg = "Your plan is canceled: it ends on " + f.Date(sub.CurrentPeriodEnd) + ". Your credits stay until they expire."
	case views.PlanResume:
		if conf.Sub.CancelAtPeriodEnd {
			if err := s.tellProvider(ctx, conf.Sub, false, key); err != nil {
				return err
			}
		}
		if sub := conf.Sub; sub.Provider != db.ProviderSandbox && sub.NextPlan != "" && sub.NextPlan != sub.Plan {
			// Stripe bills the waiting plan's price from the next
			// invoice: put the current plan's back.
			svc, ok := s.cfg.Payments.Service.(planChanger)
			if !ok {
				return billing.Errorf(billing.CodeConflict, "This plan cannot be changed here.")
			}
			if _, err := svc.ChangeProviderPlan(ctx, sub.ProviderID, *conf.Current, sub.PriceVersion, false, time.Time{}, key); err != nil {
				return err
			}
		}
		sub, err := ps.ResumeSubscription(ctx, cid, actor)
		if err != nil {
			return err
		}
		msg = "Your " + conf.Current.Name + " plan continues; it renews on " + f.Date(sub.CurrentPeriodEnd) + "."
	}
	flash(c, "success", msg)
	return redirect(c, "/portal/plan")
}

// planChangeTime is when a provider's plan change is prorated: the
// confirmation's (the form's at), or now for a new confirmation. A
// confirmation older than planConfirmLife has expired: its quote would be
// stale.
func (s *Server) planChangeTime(c echo.Context) (time.Time, error) {
	now := s.store.Now().UTC().Truncate(time.Second)
	v := c.FormValue("at")
	if v == "" {
		return now, nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	at := time.Unix(sec, 0).UTC()
	if err != nil || at.After(now.Add(time.Minute)) || now.Sub(at) > planConfirmLife {
		return time.Time{}, billing.Errorf(billing.CodeInvalidRequest, "This confirmation has expired; start again.")
	}
	return at, nil
}

// planConfirmLife is how long a plan change's confirmation holds its quote.
const planConfirmLife = 15 * time.Minute

// changeProviderPlan changes a provider's subscription's plan: the
// provider first (an upgrade charges the prorated difference now, at the
// confirmation's time, and fails with the card; a downgrade changes the
// price from the next invoice), then Tally records it: the upgrade's
// credits once for the click, whether this request, its retry or the
// provider's customer.subscription.updated (whose metadata names the click)
// comes first.
func (s *Server) changeProviderPlan(ctx context.Context, conf views.PlanConfirm, key string, actor billing.Actor) (db.SubscriptionResult, error) {
	ps, _ := s.planStore()
	svc, ok := s.cfg.Payments.Service.(planChanger)
	if !ok || conf.Quote == nil {
		return db.SubscriptionResult{}, billing.Errorf(billing.CodeConflict, "This plan cannot be changed here.")
	}
	pb, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return db.SubscriptionResult{}, err
	}
	sec, _ := strconv.ParseInt(conf.At, 10, 64)
	at := time.Unix(sec, 0).UTC()
	if _, err := svc.ChangeProviderPlan(ctx, conf.Sub.ProviderID, conf.Plan, pb.Version, conf.Quote.Upgrade, at, key); err != nil {
		return db.SubscriptionResult{}, err
	}
	return ps.ChangeSubscriptionPlan(ctx, db.PlanChangeInput{Customer: conf.Sub.Customer, Plan: conf.Plan.Key, Key: key, At: at, Actor: actor})
}

// tellProvider schedules (or takes back) a provider's subscription's end
// at its period's end before Tally records it; a sandbox subscription has
// nobody to tell.
func (s *Server) tellProvider(ctx context.Context, sub *billing.Subscription, cancel bool, key string) error {
	if sub == nil || sub.Provider == db.ProviderSandbox {
		return nil
	}
	svc, ok := s.cfg.Payments.Service.(planService)
	if !ok {
		return billing.Errorf(billing.CodeConflict, "This plan cannot be changed here.")
	}
	return svc.SetPlanCancel(ctx, sub.ProviderID, cancel, key)
}

// POST /portal/plan/clock moves the sandbox's test clock on (demo mode in
// the sandbox only): sandbox subscriptions live through what it passes.
func (s *Server) advanceClock(c echo.Context) error {
	if !s.sandboxMode() || !s.cfg.Portal.Demo {
		return billing.Errorf(billing.CodeNotFound, "Not found.")
	}
	ps, _ := s.planStore()
	res, err := ps.AdvanceSandbox(c.Request().Context(), 31*24*time.Hour)
	if err != nil {
		return err
	}
	f := s.publicShell(c, "").Fmt
	msg := "The sandbox clock is now " + f.Date(res.Now) + "."
	switch res.Renewed {
	case 0:
	case 1:
		msg += " 1 plan renewed."
	default:
		msg += " " + f.Int(int64(res.Renewed)) + " plans renewed."
	}
	flash(c, "success", msg)
	return redirect(c, "/portal/plan")
}

// GET /portal/plan/return is the customer back from Stripe's checkout: the
// plan starts when Stripe's invoice.paid arrives (usually within seconds).
func (s *Server) planReturn(c echo.Context) error {
	flash(c, "info", "Thank you. Your plan starts as soon as Stripe confirms the payment; its credits then appear here.")
	return redirect(c, "/portal/plan")
}

// renewalPending says whether sub's renewal is under way without its
// credits (billing.RenewalPending), on its provider's clock.
func (s *Server) renewalPending(ctx context.Context, ps PlanStore, sub *billing.Subscription, u db.PlanUsage) (bool, error) {
	now := s.store.Now()
	if sub.Provider == db.ProviderSandbox {
		var err error
		if now, err = ps.SandboxNow(ctx); err != nil {
			return false, err
		}
	}
	return billing.RenewalPending(sub, u.Renewed, now), nil
}

// planRenewals are the customer's plan renewals to come within the
// forecast's horizon, for the depletion forecast (nil without a plan).
// pending says a renewal is under way whose credits have not arrived
// (a Stripe period ended before its invoice.paid): then no renewal is
// counted, since when (and whether) it comes is the provider's to say, and
// the overview says so instead of a date that has passed.
func (s *Server) planRenewals(ctx context.Context, cid string, now time.Time) (renewals []billing.Lot, pending bool, err error) {
	ps, ok := s.planStore()
	if !ok {
		return nil, false, nil
	}
	sub, cur, err := s.liveSub(ctx, ps, cid)
	if err != nil || sub == nil {
		return nil, false, err
	}
	u, err := ps.SubscriptionCredits(ctx, *sub)
	if err != nil {
		return nil, false, err
	}
	if pending, err = s.renewalPending(ctx, ps, sub, u); err != nil || pending {
		return nil, pending, err
	}
	var next *billing.Plan
	if sub.NextPlan != "" {
		if next, err = planAt(ctx, ps, sub.NextPlan, sub.NextPriceVersion); err != nil {
			return nil, false, err
		}
	}
	// A sandbox subscription's dates follow the sandbox's clock, as its
	// lots' expiries do: the overview says the dates the Plan tab says.
	return billing.PlanRenewals(sub, *cur, next, now, billing.ProjectionHorizon), false, nil
}

// planInvoiceTopUp is a plan invoice as a purchase: its receipt's and the
// purchases list's line.
func (s *Server) planInvoiceTopUp(ctx context.Context, f views.Fmt, cid string, inv db.SubscriptionInvoice) (billing.TopUp, error) {
	name := inv.Plan
	if pb, err := s.prices.CurrentPriceBook(ctx); err != nil {
		return billing.TopUp{}, err
	} else if p, ok := pb.Plan(inv.Plan); ok {
		name = p.Name
	}
	desc := name + " plan, " + f.Date(inv.PeriodStart) + " – " + f.Date(inv.PeriodEnd)
	if inv.Kind == billing.PeriodUpgrade {
		desc = "Upgrade to " + name + " (prorated), to " + f.Date(inv.PeriodEnd)
	}
	return billing.TopUp{ID: inv.ID, Object: "top_up", Customer: cid, Origin: "subscription", Description: desc, Credits: inv.Credits,
		Price: inv.Amount, Status: billing.TopUpSucceeded, CreatedAt: inv.CreatedAt}, nil
}

// planPurchases are the customer's plan invoices, for the purchases list.
func (s *Server) planPurchases(ctx context.Context, cid string) ([]views.Purchase, error) {
	ps, ok := s.planStore()
	if !ok {
		return nil, nil
	}
	invs, err := ps.ListSubscriptionInvoices(ctx, cid, 50)
	if err != nil {
		return nil, err
	}
	f := views.NewFmt("", "")
	var out []views.Purchase
	for _, inv := range invs {
		tu, err := s.planInvoiceTopUp(ctx, f, cid, inv)
		if err != nil {
			return nil, err
		}
		out = append(out, views.Purchase{TopUp: tu, ReceiptURL: "/portal/plan/receipts/" + url.PathEscape(inv.ID)})
	}
	return out, nil
}

// GET /portal/plan/receipts/:id is a plan invoice's receipt (the
// customer's own invoices only: another's id is not found).
func (s *Server) planReceipt(c echo.Context) error {
	ctx := c.Request().Context()
	ps, _ := s.planStore()
	cid := currentCustomer(c).CustomerID
	invs, err := ps.ListSubscriptionInvoices(ctx, cid, 500)
	if err != nil {
		return err
	}
	for _, inv := range invs {
		if inv.ID != c.Param("id") {
			continue
		}
		sh, err := s.shell(c, "Receipt", "billing")
		if err != nil {
			return err
		}
		tu, err := s.planInvoiceTopUp(ctx, sh.Fmt, cid, inv)
		if err != nil {
			return err
		}
		cu, err := s.ledger.FindCustomer(ctx, cid)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.ReceiptPage(sh, views.Receipt{TopUp: tu, Product: s.cfg.Portal.ProductName, Email: cu.Email, Name: cu.Name, Account: cu.ExternalID, Issued: inv.CreatedAt}))
	}
	return billing.Errorf(billing.CodeNotFound, "No such receipt.")
}

// subscriptionJSON is a subscription as the API answers it.
type subscriptionJSON struct {
	billing.Subscription
	PeriodCredits struct {
		Granted    billing.Credits `json:"granted"`
		Left       billing.Credits `json:"left"`
		RolledOver billing.Credits `json:"rolled_over"`
	} `json:"period_credits"`
	// RenewalPending: the period ended and its renewal's credits have not
	// arrived (the provider's invoice is not paid yet); until they do,
	// current_period_end is in the past or the new period has no credits.
	RenewalPending bool `json:"renewal_pending"`
}

// GET /api/v1/customers/:id/subscription: the customer's subscription
// with its credits this period (read scope).
func (s *Server) getSubscription(c echo.Context) error {
	ctx := c.Request().Context()
	ps, _ := s.planStore()
	sub, err := ps.FindSubscription(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if sub == nil {
		return billing.Errorf(billing.CodeNotFound, "This customer has no subscription.")
	}
	out := subscriptionJSON{Subscription: *sub}
	if sub.Status != billing.SubCanceled {
		u, err := ps.SubscriptionCredits(ctx, *sub)
		if err != nil {
			return err
		}
		out.PeriodCredits.Granted, out.PeriodCredits.Left, out.PeriodCredits.RolledOver = u.Granted, u.Left, u.RolledOver
		if out.RenewalPending, err = s.renewalPending(ctx, ps, sub, u); err != nil {
			return err
		}
	}
	return writeJSON(c, http.StatusOK, out)
}
