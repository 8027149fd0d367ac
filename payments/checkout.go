package payments

import (
	"context"

	"github.com/tally-billing/tally/billing"
)

// CheckoutRequest asks a provider for a hosted page where the customer
// enters a new card and pays a top-up in one step; the card is saved for
// later off-session charges (auto-refill, one-click top-ups).
type CheckoutRequest struct {
	ProviderCustomerID string
	Amount             billing.Money
	Description        string
	// Metadata travels with the payment (tally_top_up, tally_customer) and
	// comes back from CompleteCheckout and in webhooks.
	Metadata map[string]string
	// IdempotencyKey is derived from the top-up: starting the same top-up's
	// checkout twice gives the same page.
	IdempotencyKey string
	// SuccessURL gets ?session_id=<id> appended (SessionIDParam).
	SuccessURL, CancelURL string
}

// CheckoutResult is a finished checkout: the card it saved and the payment
// (succeeded, or requires_action with the bank's page, or failed).
type CheckoutResult struct {
	Card     billing.Card
	Payment  billing.Payment
	Metadata map[string]string // the request's, as the provider kept it
}

// CheckoutProvider is a provider that can take a new card and pay in one
// step: Stripe Checkout in payment mode with setup_future_usage=off_session,
// or the sandbox's card form carrying the amount. Both providers implement
// it. Errors: validation_failed (a checkout not finished, or not a checkout),
// not_found, payment_provider_error.
type CheckoutProvider interface {
	StartCheckout(ctx context.Context, req CheckoutRequest) (billing.CardSetup, error)
	CompleteCheckout(ctx context.Context, sessionID string) (CheckoutResult, error)
}

// StartTopUpCheckout records a top-up to be paid with a new card and returns
// the provider's page that takes the card and pays it. The key identifies
// the click (as for TopUp): the same click gives the same top-up and page.
// Errors: validation_failed (the request, or a provider without checkout),
// invalid_request (no key), payment_provider_error.
func (s *Service) StartTopUpCheckout(ctx context.Context, customerID string, req billing.TopUpRequest, successURL, cancelURL string) (billing.TopUp, billing.CardSetup, error) {
	cp, ok := s.Provider.(CheckoutProvider)
	if !ok {
		return billing.TopUp{}, billing.CardSetup{}, billing.Errorf(billing.CodeValidation, "this payment provider cannot take a card and pay in one step")
	}
	if err := billing.CheckIdempotencyKey(req.Key); err != nil || req.Key == "" {
		return billing.TopUp{}, billing.CardSetup{}, billing.Errorf(billing.CodeInvalidRequest, "A top-up needs a key that identifies the click.")
	}
	credits, price, desc, err := s.Quote(ctx, req)
	if err != nil {
		return billing.TopUp{}, billing.CardSetup{}, err
	}
	origin := req.Origin
	if origin == "" {
		origin = billing.OriginPortal
	}
	tu, _, err := s.Store.CreateTopUp(ctx, billing.TopUp{Customer: customerID, Origin: origin, PackID: req.PackID, Description: desc,
		Credits: credits, Price: price, Provider: s.Provider.Name()}, req.Key, "")
	if err != nil {
		return tu, billing.CardSetup{}, err
	}
	if tu.Status != billing.TopUpPending {
		return tu, billing.CardSetup{}, billing.Errorf(billing.CodeConflict, "This purchase is already %s.", tu.Status).With("top_up", tu.ID)
	}
	pc, err := s.providerCustomer(ctx, customerID)
	if err != nil {
		return tu, billing.CardSetup{}, err
	}
	setup, err := cp.StartCheckout(ctx, CheckoutRequest{ProviderCustomerID: pc, Amount: tu.Price, Description: tu.Description,
		Metadata:       map[string]string{MetadataTopUp: tu.ID, MetadataCustomer: customerID},
		IdempotencyKey: "tally_checkout_" + tu.ID, SuccessURL: successURL, CancelURL: cancelURL})
	return tu, setup, err
}

// CompleteTopUpCheckout is the customer back from a checkout page: the card
// it took is saved and becomes the default (the one the next top-up and
// auto-refill charge), and the payment is recorded, which grants the
// credits once it succeeded (the webhook may have done it already). A
// checkout of another customer is not_found.
func (s *Service) CompleteTopUpCheckout(ctx context.Context, customerID, sessionID string) (billing.TopUp, billing.Card, error) {
	cp, ok := s.Provider.(CheckoutProvider)
	if !ok {
		return billing.TopUp{}, billing.Card{}, billing.Errorf(billing.CodeValidation, "this payment provider cannot take a card and pay in one step")
	}
	res, err := cp.CompleteCheckout(ctx, sessionID)
	if err != nil {
		return billing.TopUp{}, billing.Card{}, err
	}
	tu, err := s.Store.FindTopUp(ctx, res.Metadata[MetadataTopUp])
	if err != nil || tu.Customer != customerID {
		return billing.TopUp{}, billing.Card{}, billing.Errorf(billing.CodeNotFound, "No such purchase.")
	}
	card, err := s.saveDefaultCard(ctx, customerID, res.Card)
	if err != nil {
		return tu, card, err
	}
	tu, err = s.Store.RecordPayment(ctx, tu.ID, res.Payment, s.policy(ctx))
	return tu, card, err
}

// saveDefaultCard saves a card the customer just added and makes it the
// default, here and at the provider: a customer who adds a card (after a
// decline, say) means to pay with it.
func (s *Service) saveDefaultCard(ctx context.Context, customerID string, card billing.Card) (billing.Card, error) {
	saved, err := s.Store.SaveCard(ctx, customerID, s.Provider.Name(), card)
	if err != nil {
		return billing.Card{}, err
	}
	if !saved.Default {
		if saved, err = s.Store.SetDefaultCard(ctx, customerID, saved.ID); err != nil {
			return saved, err
		}
	}
	if pc, err := s.providerCustomer(ctx, customerID); err == nil {
		if err := s.Provider.SetDefaultCard(ctx, pc, saved.ProviderID); err != nil {
			s.log().Warn("setting the default card at the provider", "err", err)
		}
	}
	return saved, nil
}
