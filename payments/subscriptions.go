package payments

import (
	"context"

	"github.com/tally-billing/tally/billing"
)

// StartPlanCheckout returns the provider's hosted page where the customer
// subscribes to plan (at price book version): Stripe Checkout in
// subscription mode. The subscription's first invoice.paid webhook starts
// it in Tally and grants its credits. The key identifies the click.
// Errors: validation_failed (a provider that sells no plans: the sandbox
// subscribes directly), payment_provider_error.
func (s *Service) StartPlanCheckout(ctx context.Context, customerID string, plan billing.Plan, version int64, key, successURL, cancelURL string) (billing.CardSetup, error) {
	sp, ok := s.Provider.(SubscriptionProvider)
	if !ok {
		return billing.CardSetup{}, billing.Errorf(billing.CodeValidation, "this payment provider sells no plans on a hosted page")
	}
	if err := billing.CheckIdempotencyKey(key); err != nil || key == "" {
		return billing.CardSetup{}, billing.Errorf(billing.CodeInvalidRequest, "A subscription needs a key that identifies the click.")
	}
	pc, err := s.providerCustomer(ctx, customerID)
	if err != nil {
		return billing.CardSetup{}, err
	}
	return sp.StartSubscriptionCheckout(ctx, SubscriptionCheckoutRequest{ProviderCustomerID: pc, Customer: customerID, Plan: plan,
		PriceVersion: version, IdempotencyKey: "tally_plan_checkout_" + customerID + "_" + key, SuccessURL: successURL, CancelURL: cancelURL})
}

// SetPlanCancel schedules (cancel) or takes back the end of a provider's
// subscription at its period's end. The key identifies the click. Errors:
// validation_failed, not_found, payment_provider_error.
func (s *Service) SetPlanCancel(ctx context.Context, providerSubscriptionID string, cancel bool, key string) error {
	sp, ok := s.Provider.(SubscriptionProvider)
	if !ok {
		return billing.Errorf(billing.CodeValidation, "this payment provider runs no subscriptions")
	}
	return sp.SetCancelAtPeriodEnd(ctx, providerSubscriptionID, cancel, "tally_plan_cancel_"+providerSubscriptionID+"_"+key)
}
