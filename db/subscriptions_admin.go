package db

import (
	"context"
	"strconv"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The admin console's reads and writes of subscriptions.

// PlanSubscriber is one live subscriber of a plan, for the admin console's
// subscriber list.
type PlanSubscriber struct {
	Customer          string
	ExternalID        string
	Name, Email       string
	Status            string
	PeriodEnd         time.Time
	PriceVersion      int64
	CancelAtPeriodEnd bool
	Provider          string
	// NextPlan and NextPriceVersion: a move waiting for the period's end
	// (a downgrade, or a migration to another version of this plan).
	NextPlan         string
	NextPriceVersion int64
}

// ListPlanSubscribers returns the live (active or past due) subscribers of
// plan key, whose period ends soonest first, at most limit.
func (d *DB) ListPlanSubscribers(ctx context.Context, key string, limit int) ([]PlanSubscriber, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT s.customer_id, c.external_id, c.name, c.email, s.status, s.current_period_end,
		s.price_version, s.cancel_at_period_end, s.provider, COALESCE(s.next_plan_key, ''), COALESCE(s.next_price_version, 0)
		FROM subscriptions s JOIN customers c ON c.id = s.customer_id
		WHERE s.plan_key = ? AND s.status != 'canceled' ORDER BY s.current_period_end, s.id LIMIT ?`, key, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []PlanSubscriber{}
	for rows.Next() {
		var p PlanSubscriber
		var end int64
		if err := rows.Scan(&p.Customer, &p.ExternalID, &p.Name, &p.Email, &p.Status, &end, &p.PriceVersion, &p.CancelAtPeriodEnd, &p.Provider, &p.NextPlan, &p.NextPriceVersion); err != nil {
			return nil, err
		}
		p.PeriodEnd = fromMicros(end)
		out = append(out, p)
	}
	return out, rows.Err()
}

// GrantFreePeriodFrom is GrantFreePeriod for the period that starts at
// start (the current period's end the admin was shown), exactly once: the
// same start again is a replay that writes nothing (Replayed), so a
// confirmation pressed twice grants one period. When the subscription's
// period has moved on since (another grant, a renewal), it is a conflict.
// Errors: not_found, conflict.
func (d *DB) GrantFreePeriodFrom(ctx context.Context, customer string, start time.Time, actor billing.Actor) (SubscriptionResult, error) {
	var out SubscriptionResult
	err := d.liveSubscription(ctx, customer, func(t *Tx, _ *wallet, sub billing.Subscription) error {
		// The invoice key GrantFreePeriod uses for the period starting at start.
		invoice := "free_" + sub.ID[4:] + "_" + strconv.FormatInt(micros(start), 36)
		if _, found, err := t.periodByInvoice(invoice); err != nil || found {
			out = SubscriptionResult{Subscription: sub, Replayed: found}
			return err
		}
		if micros(sub.CurrentPeriodEnd) != micros(start) {
			return billing.Errorf(billing.CodeConflict, "The subscription's period has changed since this page was shown: nothing was granted.")
		}
		plan, err := t.planAt(sub.Plan, sub.PriceVersion)
		if err != nil {
			return err
		}
		now, err := t.subNow(sub)
		if err != nil {
			return err
		}
		out, err = t.renew(RenewInput{Subscription: sub.ID, Invoice: invoice, Start: start,
			Amount: billing.Money{Currency: plan.Price.Currency}, Actor: actor, CloseAt: now})
		if err != nil {
			return err
		}
		// The admin's audit record (billing.WithAudit) goes with the grant.
		return t.auditFrom(ctx, func(r *billing.AuditRecord) {
			r.Before, r.After = start.UTC().Format(time.RFC3339), out.Subscription.CurrentPeriodEnd.UTC().Format(time.RFC3339)
		})
	})
	return out, err
}
