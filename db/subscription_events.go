package db

import (
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/tally-billing/tally/billing"
)

// applySubscriptionEvent keeps Tally's subscriptions in step with a
// provider's events (each applied once: ApplyPaymentEvent keys them by
// event id). invoice.paid grants the invoice's period exactly once per
// invoice and per period, whichever comes first (it may start the
// subscription, when its checkout's answer has not arrived);
// invoice.payment_failed starts the dunning (past due; canceled when the
// provider gives up); customer.subscription.updated and .deleted sync the
// status, period, cancellation and plan.
func (t *Tx) applySubscriptionEvent(provider string, ev billing.PaymentEvent) error {
	switch {
	case ev.Invoice != nil && ev.Type == billing.EventProviderInvoicePaid:
		inv := ev.Invoice
		if inv.Reason == "subscription_update" || inv.Reason == "manual" {
			return nil // a proration or one-off invoice: its credits come with the plan change
		}
		sub, err := t.findSubscription(inv.Subscription)
		if billing.ErrorCode(err) == billing.CodeNotFound {
			return t.startProviderSubscription(provider, inv)
		}
		if err != nil {
			return err
		}
		_, err = t.renew(RenewInput{Subscription: sub.ID, Invoice: inv.ID, Start: inv.PeriodStart, End: inv.PeriodEnd, Amount: inv.Amount,
			Actor: billing.SystemActor("payment_provider")})
		if billing.ErrorCode(err) == billing.CodeConflict {
			return nil // a canceled subscription's late invoice: nothing renews
		}
		return err
	case ev.Invoice != nil && ev.Type == billing.EventProviderInvoiceFailed:
		inv := ev.Invoice
		_, err := t.paymentFailed(InvoiceFailedInput{Subscription: inv.Subscription, Invoice: inv.ID, Amount: inv.Amount,
			Attempt: inv.Attempt, Final: inv.Final})
		if billing.ErrorCode(err) == billing.CodeNotFound {
			return nil // a subscription Tally did not start
		}
		return err
	case ev.Subscription != nil:
		ps := *ev.Subscription
		sub, err := t.findSubscription(ps.ID)
		if billing.ErrorCode(err) == billing.CodeNotFound {
			return nil // its first invoice.paid creates it
		}
		if err != nil || sub.Status == billing.SubCanceled {
			return err
		}
		if ev.Type == billing.EventProviderSubscriptionDeleted {
			ps.Status = "canceled"
		}
		var plan billing.Plan
		version := sub.PriceVersion
		if key := billing.PlanKeyOf(ps.PlanRef); key != "" && key != sub.Plan {
			// The version Tally set on the subscription with the price
			// (a plan change made here), else the current one (a change in
			// the provider's dashboard).
			err = billing.Errorf(billing.CodeNotFound, "no version in the metadata")
			if v, _ := strconv.ParseInt(ps.Metadata[metaPriceVersion], 10, 64); v > 0 && ps.Metadata[metaPlan] == key {
				plan, err = t.planAt(key, v)
				version = v
			}
			if billing.ErrorCode(err) == billing.CodeNotFound {
				plan, version, err = t.currentPlan(key)
			}
			if err != nil {
				return err
			}
		}
		w, err := t.loadWallet(sub.Customer)
		if err != nil {
			return err
		}
		if plan.Key != "" {
			done, err := t.providerUpgrade(w, sub, ps, plan, version)
			if err != nil || done {
				return err
			}
		}
		ch, ok := billing.PlanSync(ptr(t.state(w, w.lots)), sub, ps, plan, version, t.Now)
		if !ok {
			return nil
		}
		_, err = t.apply(w, &ch)
		return err
	}
	return nil
}

// startProviderSubscription starts the subscription a provider's first
// paid invoice names: the customer and plan come from the subscription's
// metadata (set at checkout), or else from the provider's customer and the
// price's lookup key.
func (t *Tx) startProviderSubscription(provider string, inv *billing.ProviderInvoice) error {
	customer := inv.Metadata[metaCustomer]
	if customer == "" && inv.Customer != "" {
		err := t.queryRow(`SELECT customer_id FROM payment_customers WHERE provider = ? AND provider_customer_id = ?`, provider, inv.Customer).Scan(&customer)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	key := inv.Metadata[metaPlan]
	if key == "" {
		key = billing.PlanKeyOf(inv.PlanRef)
	}
	if customer == "" || key == "" {
		return nil // not a subscription Tally started
	}
	var exists int
	if err := t.queryRow(`SELECT COUNT(*) FROM customers WHERE id = ?`, customer).Scan(&exists); err != nil || exists == 0 {
		return err
	}
	version, _ := strconv.ParseInt(inv.Metadata[metaPriceVersion], 10, 64)
	_, err := t.startSubscription(customer, SubscribeInput{Plan: key, PriceVersion: version, Provider: provider, ProviderID: inv.Subscription,
		Invoice: inv.ID, Start: inv.PeriodStart, End: inv.PeriodEnd, Actor: billing.SystemActor("payment_provider")})
	if billing.ErrorCode(err) == billing.CodeConflict {
		return nil // the customer subscribes already (another subscription): this one is not Tally's to grant
	}
	return err
}

// Metadata keys a provider's subscription carries (set at checkout; a
// plan change made in the portal adds the change's).
const (
	metaCustomer     = "tally_customer"
	metaPlan         = "tally_plan"
	metaPriceVersion = "tally_price_version"
	metaChange       = "tally_change"    // the click of an upgrade made in the portal
	metaChangeAt     = "tally_change_at" // when it was prorated, unix seconds
)

// providerUpgrade is an upgrade made in the portal that the provider's
// customer.subscription.updated reports before the request that made it
// recorded it (the event raced the provider's answer): its prorated
// credits are granted here, under the click's key, so the request finds
// them granted. done: the upgrade was applied (and the period synced).
func (t *Tx) providerUpgrade(w *wallet, sub billing.Subscription, ps billing.ProviderSubscription, plan billing.Plan, version int64) (bool, error) {
	key, at := ps.Metadata[metaChange], ps.Metadata[metaChangeAt]
	if key == "" || ps.Metadata[billing.MetaEffective] != billing.EffectiveNow || ps.Metadata[metaPlan] != plan.Key {
		return false, nil
	}
	sec, err := strconv.ParseInt(at, 10, 64)
	if err != nil || sec <= 0 {
		return false, nil
	}
	invoice := providerUpgradeInvoice(sub, key)
	if _, found, err := t.periodByInvoice(invoice); err != nil || found {
		return false, err // granted already: a later change in the provider's dashboard syncs as usual
	}
	from, err := t.planAt(sub.Plan, sub.PriceVersion)
	if err != nil || !billing.IsUpgrade(from, plan) {
		return false, err
	}
	res, err := t.changePlan(w, sub, plan, version, invoice, time.Unix(sec, 0).UTC(), billing.SystemActor("payment_provider"), false)
	if err != nil {
		return false, err
	}
	ch, ok := billing.PlanSync(ptr(t.state(w, w.lots)), res.Subscription, ps, billing.Plan{}, version, t.Now)
	if ok {
		_, err = t.apply(w, &ch)
	}
	return true, err
}
