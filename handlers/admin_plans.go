package handlers

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/views"
)

// adminPlanStore is what the admin console's plan pages need from storage
// (*db.DB). Errors: not_found, conflict.
type adminPlanStore interface {
	SubscribersPerPlan(ctx context.Context) ([]db.PlanSubscribers, error)
	ListPlanSubscribers(ctx context.Context, key string, limit int) ([]db.PlanSubscriber, error)
	FindSubscription(ctx context.Context, customer string) (*billing.Subscription, error)
	SubscriptionCredits(ctx context.Context, sub billing.Subscription) (db.PlanUsage, error)
	GrantFreePeriodFrom(ctx context.Context, customer string, start time.Time, actor billing.Actor) (db.SubscriptionResult, error)
	PriceBookVersion(ctx context.Context, version int64) (*billing.PriceBook, error)
}

// adminPlans is the plan store, when the store keeps subscriptions.
func (s *Server) adminPlans() (adminPlanStore, bool) {
	ps, ok := s.store.(adminPlanStore)
	return ps, ok
}

// adminSubscriberPage is how many subscribers a plan's page lists.
const adminSubscriberPage = 100

// planRows are the current price book's plans with their subscribers and
// MRR, then the plans no longer in it that still have subscribers; and the
// MRR of all, per currency.
func (s *Server) planRows(ctx context.Context) (views.AdminPlansPage, error) {
	var d views.AdminPlansPage
	pb, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return d, err
	}
	d.Version = pb.Version
	ps, ok := s.adminPlans()
	var per []db.PlanSubscribers
	if ok {
		if per, err = ps.SubscribersPerPlan(ctx); err != nil {
			return d, err
		}
	}
	index := map[string]int{}
	for _, p := range pb.Plans {
		index[p.Key] = len(d.Plans)
		d.Plans = append(d.Plans, views.AdminPlanRow{Plan: p})
	}
	retired := map[string]int{}
	total := map[string]int64{}
	for _, g := range per {
		var row *views.AdminPlanRow
		if i, ok := index[g.Plan]; ok {
			row = &d.Plans[i]
		} else {
			i, ok := retired[g.Plan]
			if !ok {
				i = len(d.Retired)
				retired[g.Plan] = i
				d.Retired = append(d.Retired, views.AdminPlanRow{Plan: billing.Plan{Key: g.Plan, Name: g.Plan}})
			}
			row = &d.Retired[i]
		}
		row.Subscribers += g.Subscribers
		row.MRR = append(row.MRR, g.MRR)
		total[g.MRR.Currency] += g.MRR.Amount
	}
	d.MRR = moneyList(total)
	if len(d.MRR) == 0 {
		d.MRR = []billing.Money{{Currency: pb.Currency}}
	}
	return d, nil
}

// moneyList is a sum per currency as a list, by currency.
func moneyList(m map[string]int64) []billing.Money {
	out := make([]billing.Money, 0, len(m))
	for cur, v := range m {
		out = append(out, billing.Money{Amount: v, Currency: cur})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out
}

// GET /admin/plans (support and up).
func (s *Server) adminPlansPage(c echo.Context) error {
	d, err := s.planRows(c.Request().Context())
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AdminPlansView(s.adminShell(c, "Plans", "plans"), d))
}

// GET /admin/plans/:key (support and up): the plan's live subscribers.
func (s *Server) adminPlanSubscribers(c echo.Context) error {
	ctx := c.Request().Context()
	all, err := s.planRows(ctx)
	if err != nil {
		return err
	}
	key := c.Param("key")
	var d views.AdminPlanSubscribers
	found := false
	for _, r := range all.Plans {
		if r.Plan.Key == key {
			d.Row, found = r, true
		}
	}
	for _, r := range all.Retired {
		if r.Plan.Key == key {
			d.Row, d.Retired, found = r, true, true
		}
	}
	if !found {
		return billing.Errorf(billing.CodeNotFound, "There is no plan %q in the price book.", key)
	}
	if !d.Retired {
		var err error
		if d.Migration, d.MigrationNote, err = s.planMigration(ctx, key); err != nil { // admin_plan_migration.go
			return err
		}
	}
	if ps, ok := s.adminPlans(); ok {
		subs, err := ps.ListPlanSubscribers(ctx, key, adminSubscriberPage+1)
		if err != nil {
			return err
		}
		if len(subs) > adminSubscriberPage {
			subs, d.More = subs[:adminSubscriberPage], true
		}
		for _, p := range subs {
			row := views.AdminSubscriberRow{
				Customer: billing.Customer{ID: p.Customer, ExternalID: p.ExternalID, Name: p.Name, Email: p.Email},
				Status:   p.Status, PeriodEnd: p.PeriodEnd, PriceVersion: p.PriceVersion, CancelAtPeriodEnd: p.CancelAtPeriodEnd}
			if p.NextPlan == key && p.NextPriceVersion != p.PriceVersion {
				row.MovesTo = p.NextPriceVersion
			}
			d.Rows = append(d.Rows, row)
		}
	}
	return render(c, http.StatusOK, views.AdminPlanSubscribersView(s.adminShell(c, d.Row.Plan.Name, "plans"), d))
}

// adminSubscription is the customer page's subscription panel: nil when
// the customer never subscribed (or the store keeps no subscriptions).
func (s *Server) adminSubscription(ctx context.Context, customerID string) (*views.AdminSubscription, error) {
	ps, ok := s.adminPlans()
	if !ok {
		return nil, nil
	}
	sub, err := ps.FindSubscription(ctx, customerID)
	if err != nil || sub == nil {
		return nil, err
	}
	out := &views.AdminSubscription{Sub: *sub, Live: sub.Status != billing.SubCanceled, Ahead: sub.CurrentPeriodStart.After(s.store.Now())}
	pb, err := ps.PriceBookVersion(ctx, sub.PriceVersion)
	if err != nil {
		return nil, err
	}
	out.Plan, ok = pb.Plan(sub.Plan)
	if !ok {
		out.Plan = billing.Plan{Key: sub.Plan, Name: sub.Plan}
	}
	out.FreePlan = out.Plan
	if sub.NextPlan != "" {
		npb, err := ps.PriceBookVersion(ctx, sub.NextPriceVersion)
		if err != nil {
			return nil, err
		}
		if p, ok := npb.Plan(sub.NextPlan); ok {
			out.FreePlan = p
		}
	}
	out.NextEnd = out.FreePlan.PeriodEnd(sub.CurrentPeriodEnd)
	if out.Live {
		u, err := ps.SubscriptionCredits(ctx, *sub)
		if err != nil {
			return nil, err
		}
		out.Granted, out.Left, out.RolledOver = u.Granted, u.Left, u.RolledOver
	}
	return out, nil
}

// POST /admin/customers/:id/free-period (admins): the subscription's next
// period free, its credits now. Without confirm=1 it shows what will
// happen; the confirmed form names the period it grants (period), so a
// second press, or a page from before another grant, grants nothing more.
func (s *Server) adminFreePeriod(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	f := s.readAdminForm(c, "free-period")
	reason := f.reason()
	if !f.Valid() {
		return s.failed(c, f)
	}
	ps, ok := s.adminPlans()
	if !ok {
		return billing.Errorf(billing.CodeNotFound, "Subscriptions are not kept here.")
	}
	sub, err := s.adminSubscription(ctx, cu.ID)
	if err != nil {
		return err
	}
	if sub == nil || !sub.Live {
		// No panel to show the error beside (a page from before a cancel).
		return adminFlashTo(c, "error", adminCustomerTitle(cu)+" has no live subscription: there is no period to give. Nothing was granted.", "/admin/customers/"+cu.ID)
	}
	if sub.Sub.Provider != db.ProviderSandbox {
		f.Fail("reason", "Stripe bills this subscription: waive its next invoice in Stripe instead, so the customer is not charged for the period.")
		return s.failed(c, f)
	}
	if c.FormValue("confirm") != "1" {
		b, err := s.ledger.Balance(ctx, cu.ID)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.AdminFreePeriodConfirmPage(s.adminShell(c, "Confirm free period", "customers"), views.AdminFreePeriodConfirm{
			Customer: cu, Sub: *sub, Reason: reason, Before: b.Balance,
			Fields: map[string]string{"reason": reason, "period": sub.Sub.CurrentPeriodEnd.UTC().Format(time.RFC3339Nano)}}))
	}
	start, err := time.Parse(time.RFC3339Nano, c.FormValue("period"))
	if err != nil {
		f.Fail("reason", "The confirmation was incomplete: review the free period again.")
		return s.failed(c, f)
	}
	res, err := ps.GrantFreePeriodFrom(s.audited(c, billing.AuditFreePeriod, cu.ID, reason, "", ""), cu.ID, start, billing.AdminActor(currentAdmin(c).User.ID))
	if err != nil {
		if billing.ErrorCode(err) == billing.CodeConflict {
			return adminFlashTo(c, "error", billing.ErrorMessage(err), "/admin/customers/"+cu.ID)
		}
		return err
	}
	if res.Replayed {
		return adminFlashTo(c, "success", "This free period was granted already: nothing more was granted.", "/admin/customers/"+cu.ID)
	}
	fm := s.publicShell(c, "").Fmt
	return adminFlashTo(c, "success", "Gave "+adminCustomerTitle(cu)+" a free "+sub.FreePlan.Interval+" of "+sub.FreePlan.Name+": "+fm.Credits(sub.FreePlan.Credits)+
		" credits added; the next charge is on "+fm.Date(res.Subscription.CurrentPeriodEnd)+".", "/admin/customers/"+cu.ID)
}

// registerAdminPlans mounts the plan pages (support may read) and the free
// period action (admins) on the console's group.
func (s *Server) registerAdminPlans(g *echo.Group, support, admin echo.MiddlewareFunc) {
	g.GET("/plans", s.adminPlansPage, support)
	g.GET("/plans/:key", s.adminPlanSubscribers, support)
	g.POST("/customers/:id/free-period", s.adminFreePeriod, admin)
	g.POST("/plans/:key/migrate", s.adminMigratePlan, admin) // admin_plan_migration.go
}
