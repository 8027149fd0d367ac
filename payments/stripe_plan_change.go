package payments

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/tally-billing/tally/billing"
)

// PlanPriceChange moves a provider's subscription to another plan's price.
// Prorate (an upgrade) charges the prorated difference at once, computed
// at ProrateAt (the moment Tally's quote was made, so both agree), and
// fails without changing anything when the payment does not go through;
// without it (a downgrade, a migration, taking a downgrade back) the new
// price applies from the next invoice and nothing is charged now.
type PlanPriceChange struct {
	Subscription string // the provider's subscription id
	Plan         billing.Plan
	PriceVersion int64
	Prorate      bool
	ProrateAt    time.Time
	// Key identifies the click (or the migration): a retry sends the
	// same request, which the provider answers once.
	Key string
}

// PlanChanger is a subscription provider that can move a subscription to
// another price (Stripe). Errors: validation_failed, not_found,
// payment_provider_error (a refused card among them).
type PlanChanger interface {
	ChangePlanPrice(ctx context.Context, req PlanPriceChange) (invoice string, err error)
}

var _ PlanChanger = (*StripeProvider)(nil)

// ChangePlanPrice reads the subscription's item and sets its price to the
// plan's (found or created by lookup key), with the subscription's
// metadata naming the plan and version. An upgrade asks Stripe to invoice
// the proration now (always_invoice) and to fail rather than leave it
// unpaid (error_if_incomplete); the proration invoice's id comes back when
// Stripe names it (stripe-mock's fixture names none). Its
// invoice.paid (billing_reason subscription_update) grants nothing: the
// prorated credits come with the plan change, keyed by the click.
func (p *StripeProvider) ChangePlanPrice(ctx context.Context, req PlanPriceChange) (string, error) {
	if !strings.HasPrefix(req.Subscription, "sub_") {
		return "", billing.Errorf(billing.CodeValidation, "%q is not a Stripe subscription id", req.Subscription)
	}
	if req.Plan.Key == "" || req.Key == "" {
		return "", billing.Errorf(billing.CodeValidation, "a plan change needs a plan and a key")
	}
	gp := &stripe.SubscriptionParams{}
	gp.Context = ctx
	cur, err := p.api.Subscriptions.Get(req.Subscription, gp)
	if err != nil {
		return "", p.apiError(err, "read the subscription")
	}
	if cur.Items == nil || len(cur.Items.Data) == 0 {
		return "", billing.Errorf(billing.CodePaymentProvider, "Stripe's subscription %s has no item to change.", req.Subscription)
	}
	price, err := p.planPrice(ctx, req.Plan)
	if err != nil {
		return "", err
	}
	params := &stripe.SubscriptionParams{
		Items: []*stripe.SubscriptionItemsParams{{ID: stripe.String(cur.Items.Data[0].ID), Price: stripe.String(price)}},
	}
	params.AddMetadata(metaPlanKey, req.Plan.Key)
	params.AddMetadata(metaPlanVersion, strconv.FormatInt(req.PriceVersion, 10))
	// Tally reads a price change whose effective is period_end as a change
	// scheduled for the period's end, not as a switch now
	// (billing.PlanSync).
	params.AddMetadata(billing.MetaEffective, billing.EffectiveNow)
	if req.Prorate {
		// The click, so that Stripe's customer.subscription.updated can
		// grant the upgrade's credits if it arrives before Tally records it.
		params.AddMetadata("tally_change", req.Key)
		params.AddMetadata("tally_change_at", strconv.FormatInt(req.ProrateAt.Unix(), 10))
		params.ProrationBehavior = stripe.String("always_invoice")
		params.PaymentBehavior = stripe.String("error_if_incomplete")
		if !req.ProrateAt.IsZero() {
			params.ProrationDate = stripe.Int64(req.ProrateAt.Unix())
		}
	} else {
		params.ProrationBehavior = stripe.String("none")
		params.AddMetadata(billing.MetaEffective, billing.EffectivePeriodEnd)
	}
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey("tally_plan_change_" + req.Subscription + "_" + req.Key))
	s, err := p.api.Subscriptions.Update(req.Subscription, params)
	if err != nil {
		return "", p.apiError(err, "change the subscription's plan")
	}
	if req.Prorate && s.LatestInvoice != nil {
		return s.LatestInvoice.ID, nil
	}
	return "", nil
}

// Subscription metadata naming the plan (as checkout sets it).
const (
	metaPlanKey     = "tally_plan"
	metaPlanVersion = "tally_price_version"
)

// ChangeProviderPlan moves a provider's subscription to plan at version
// (PlanChanger): prorate charges the prorated difference now, computed at
// at; key identifies the click. It returns the proration invoice's id when
// the provider names one. Errors: validation_failed (a provider that
// changes no plans), not_found, payment_provider_error.
func (s *Service) ChangeProviderPlan(ctx context.Context, subscription string, plan billing.Plan, version int64, prorate bool, at time.Time, key string) (string, error) {
	pc, ok := s.Provider.(PlanChanger)
	if !ok {
		return "", billing.Errorf(billing.CodeValidation, "this payment provider changes no plans")
	}
	return pc.ChangePlanPrice(ctx, PlanPriceChange{Subscription: subscription, Plan: plan, PriceVersion: version, Prorate: prorate,
		ProrateAt: at, Key: key})
}
