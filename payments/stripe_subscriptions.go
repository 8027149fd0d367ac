package payments

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/tally-billing/tally/billing"
)

// SubscriptionCheckoutRequest asks for a hosted page where the customer
// subscribes to a plan (Stripe Checkout in subscription mode).
type SubscriptionCheckoutRequest struct {
	ProviderCustomerID string
	Customer           string // Tally's customer id (the subscription's metadata)
	Plan               billing.Plan
	PriceVersion       int64
	// IdempotencyKey identifies the click: the same click gives the same page.
	IdempotencyKey string
	// SuccessURL gets ?session_id=<id> appended (SessionIDParam).
	SuccessURL, CancelURL string
}

// SubscriptionProvider is a provider that sells plans on its own hosted
// page and reports their invoices by webhook (Stripe). Errors:
// validation_failed, payment_provider_error.
type SubscriptionProvider interface {
	StartSubscriptionCheckout(ctx context.Context, req SubscriptionCheckoutRequest) (billing.CardSetup, error)
	// SetCancelAtPeriodEnd schedules (or takes back) the end of a
	// provider's subscription at its period's end. key identifies the
	// click.
	SetCancelAtPeriodEnd(ctx context.Context, subscriptionID string, cancel bool, key string) error
}

var _ SubscriptionProvider = (*StripeProvider)(nil)

// StartSubscriptionCheckout finds the plan's Stripe Price by its lookup key
// (billing.PlanLookupKey), creating it the first time, and opens a
// subscription-mode Checkout Session for it. The subscription carries
// tally_customer, tally_plan and tally_price_version: its first
// invoice.paid starts the subscription in Tally and grants the period's
// credits, whether or not the customer comes back to the success URL.
func (p *StripeProvider) StartSubscriptionCheckout(ctx context.Context, req SubscriptionCheckoutRequest) (billing.CardSetup, error) {
	if req.ProviderCustomerID == "" || req.Plan.Key == "" || req.SuccessURL == "" || req.CancelURL == "" {
		return billing.CardSetup{}, billing.Errorf(billing.CodeValidation, "a subscription checkout needs a customer, a plan and return URLs")
	}
	price, err := p.planPrice(ctx, req.Plan)
	if err != nil {
		return billing.CardSetup{}, err
	}
	meta := map[string]string{"tally_customer": req.Customer, "tally_plan": req.Plan.Key,
		"tally_price_version": strconv.FormatInt(req.PriceVersion, 10)}
	params := &stripe.CheckoutSessionParams{
		Mode:               stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:           stripe.String(req.ProviderCustomerID),
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}),
		LineItems:          []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}},
		SubscriptionData:   &stripe.CheckoutSessionSubscriptionDataParams{Metadata: meta},
		SuccessURL:         stripe.String(withQuery(req.SuccessURL, SessionIDParam, "{CHECKOUT_SESSION_ID}")),
		CancelURL:          stripe.String(req.CancelURL),
	}
	for k, v := range meta {
		params.AddMetadata(k, v)
	}
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey(req.IdempotencyKey))
	s, err := p.api.CheckoutSessions.New(params)
	if err != nil {
		return billing.CardSetup{}, p.apiError(err, "start the subscription's checkout at Stripe")
	}
	return billing.CardSetup{URL: s.URL, ProviderID: s.ID}, nil
}

// SetCancelAtPeriodEnd sets cancel_at_period_end on a Stripe subscription:
// Stripe stops invoicing it after the period (its
// customer.subscription.updated and, at the end, .deleted follow).
func (p *StripeProvider) SetCancelAtPeriodEnd(ctx context.Context, subscriptionID string, cancel bool, key string) error {
	if !strings.HasPrefix(subscriptionID, "sub_") {
		return billing.Errorf(billing.CodeValidation, "%q is not a Stripe subscription id", subscriptionID)
	}
	params := &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(cancel)}
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey(key))
	if _, err := p.api.Subscriptions.Update(subscriptionID, params); err != nil {
		return p.apiError(err, "change the subscription")
	}
	return nil
}

// planPrice is the id of plan's recurring Stripe Price: found by lookup
// key, or created with it (and a product named after the plan). Creating
// carries an idempotency key of the lookup key, so two processes racing
// make one price.
func (p *StripeProvider) planPrice(ctx context.Context, plan billing.Plan) (string, error) {
	key := billing.PlanLookupKey(plan)
	lp := &stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{key})}
	lp.Context = ctx
	it := p.api.Prices.List(lp)
	for it.Next() {
		if pr := it.Price(); pr.LookupKey == key && pr.Active {
			return pr.ID, nil
		}
	}
	if err := it.Err(); err != nil {
		return "", p.apiError(err, "look the plan's price up")
	}
	params := &stripe.PriceParams{
		Currency:    stripe.String(plan.Price.Currency),
		UnitAmount:  stripe.Int64(plan.Price.Amount),
		Recurring:   &stripe.PriceRecurringParams{Interval: stripe.String(plan.Interval)},
		LookupKey:   stripe.String(key),
		ProductData: &stripe.PriceProductDataParams{Name: stripe.String(plan.Name)},
	}
	params.AddMetadata("tally_plan", plan.Key)
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey("tally-price-" + key))
	pr, err := p.api.Prices.New(params)
	if err != nil {
		return "", p.apiError(err, "create the plan's price")
	}
	return pr.ID, nil
}

// reduceSubscriptionEvent reads invoice.paid, invoice.payment_failed and
// customer.subscription.updated / .deleted; false for any other event, and
// for invoices that belong to no subscription.
func reduceSubscriptionEvent(out *billing.PaymentEvent, raw json.RawMessage) (bool, error) {
	switch out.Type {
	case billing.EventProviderInvoicePaid, billing.EventProviderInvoiceFailed:
		var in whInvoice
		if err := json.Unmarshal(raw, &in); err != nil {
			return false, err
		}
		if in.ID == "" || in.Subscription == "" {
			return false, nil
		}
		inv := &billing.ProviderInvoice{ID: in.ID, Subscription: string(in.Subscription), Customer: string(in.Customer),
			Reason: in.BillingReason, Attempt: in.AttemptCount, Final: in.NextPaymentAttempt == nil,
			Amount:   billing.Money{Amount: in.AmountPaid, Currency: in.Currency},
			Metadata: in.SubscriptionDetails.Metadata}
		if out.Type == billing.EventProviderInvoiceFailed {
			inv.Amount.Amount = in.AmountDue
		}
		// The period is the subscription line's: an invoice's own
		// period_start and period_end are the previous period's.
		for _, l := range in.Lines.Data {
			if l.Proration || l.Period.End == 0 {
				continue
			}
			inv.PeriodStart, inv.PeriodEnd = time.Unix(l.Period.Start, 0).UTC(), time.Unix(l.Period.End, 0).UTC()
			if l.Price != nil {
				inv.PlanRef = l.Price.LookupKey
			}
			break
		}
		if inv.PeriodEnd.IsZero() && out.Type == billing.EventProviderInvoicePaid {
			return false, nil // no subscription period to grant
		}
		out.Invoice = inv
		return true, nil
	case billing.EventProviderSubscriptionUpdated, billing.EventProviderSubscriptionDeleted:
		var s whSubscription
		if err := json.Unmarshal(raw, &s); err != nil {
			return false, err
		}
		if s.ID == "" {
			return false, nil
		}
		ps := &billing.ProviderSubscription{ID: s.ID, Customer: string(s.Customer), Status: s.Status, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
			Metadata: s.Metadata}
		if s.CurrentPeriodEnd > 0 {
			ps.PeriodStart, ps.PeriodEnd = time.Unix(s.CurrentPeriodStart, 0).UTC(), time.Unix(s.CurrentPeriodEnd, 0).UTC()
		}
		if len(s.Items.Data) > 0 && s.Items.Data[0].Price != nil {
			ps.PlanRef = s.Items.Data[0].Price.LookupKey
		}
		out.Subscription = ps
		return true, nil
	}
	return false, nil
}

type whPrice struct {
	ID        string `json:"id"`
	LookupKey string `json:"lookup_key"`
}

type whInvoice struct {
	ID                  string `json:"id"`
	Customer            idRef  `json:"customer"`
	Subscription        idRef  `json:"subscription"`
	BillingReason       string `json:"billing_reason"`
	AmountPaid          int64  `json:"amount_paid"`
	AmountDue           int64  `json:"amount_due"`
	Currency            string `json:"currency"`
	AttemptCount        int    `json:"attempt_count"`
	NextPaymentAttempt  *int64 `json:"next_payment_attempt"`
	SubscriptionDetails struct {
		Metadata map[string]string `json:"metadata"`
	} `json:"subscription_details"`
	Lines struct {
		Data []struct {
			Proration bool `json:"proration"`
			Period    struct {
				Start int64 `json:"start"`
				End   int64 `json:"end"`
			} `json:"period"`
			Price *whPrice `json:"price"`
		} `json:"data"`
	} `json:"lines"`
}

type whSubscription struct {
	ID                 string            `json:"id"`
	Customer           idRef             `json:"customer"`
	Status             string            `json:"status"`
	CurrentPeriodStart int64             `json:"current_period_start"`
	CurrentPeriodEnd   int64             `json:"current_period_end"`
	CancelAtPeriodEnd  bool              `json:"cancel_at_period_end"`
	Metadata           map[string]string `json:"metadata"`
	Items              struct {
		Data []struct {
			Price *whPrice `json:"price"`
		} `json:"data"`
	} `json:"items"`
}
