package billing

import (
	"context"
	"time"
)

// Payment error codes.
const (
	CodeCardDeclined       = "card_declined"        // the bank refused the charge (402)
	CodeNoPaymentMethod    = "no_payment_method"    // no saved card to charge (422)
	CodeRefundWindowClosed = "refund_window_closed" // the purchase is past its refundable_until (422)
	CodeNothingToRefund    = "nothing_to_refund"    // every credit of the purchase was used or refunded (422)
	CodePaymentProvider    = "payment_provider_error"
)

// Card is a saved payment method as a customer sees it.
type Card struct {
	ID         string `json:"id"`          // Tally's id for the saved card (card_...)
	ProviderID string `json:"provider_id"` // the provider's payment method id (pm_... at Stripe)
	Brand      string `json:"brand"`       // visa, mastercard, amex...
	Last4      string `json:"last4"`
	ExpMonth   int    `json:"exp_month"`
	ExpYear    int    `json:"exp_year"`
	Default    bool   `json:"default"`
}

// Payment states, as the provider reports them.
const (
	PaymentSucceeded      = "succeeded"
	PaymentRequiresAction = "requires_action" // 3-D Secure: the customer must authenticate
	PaymentFailed         = "failed"
	PaymentProcessing     = "processing"
)

// ChargeRequest asks a provider to charge a saved card off-session.
type ChargeRequest struct {
	ProviderCustomerID string
	PaymentMethodID    string // the provider's id
	Amount             Money
	Description        string
	// IdempotencyKey is sent to the provider: a retried charge charges once.
	IdempotencyKey string
	// Metadata travels with the payment and comes back in webhooks; Tally
	// puts its top-up id there ("tally_top_up").
	Metadata map[string]string
	// ReturnURL is where a customer comes back to after authenticating.
	ReturnURL string
	// OffSession is true when the customer is not present (auto-refill);
	// false for a click in the portal, which may then ask to authenticate.
	OffSession bool
}

// Payment is a provider's answer about a charge.
type Payment struct {
	ProviderID    string // the provider's payment id (pi_... at Stripe)
	Status        string // PaymentSucceeded, PaymentRequiresAction, PaymentFailed, PaymentProcessing
	NextActionURL string // where to authenticate, when Status is requires_action
	FailureCode   string
	FailureReason string // a message fit for the customer ("Your card was declined.")
	ReceiptURL    string
	Card          *Card
}

// CardSetup is where to send a customer to add a card.
type CardSetup struct {
	URL        string // the hosted page (Stripe Checkout in setup mode, or the sandbox's card form)
	ProviderID string // the provider's session id
}

// Refund is a provider's answer about a refund.
type Refund struct {
	ProviderID string
	Status     string // succeeded, pending, failed
}

// PaymentEvent is a provider's event (a Stripe webhook, or the sandbox's
// equivalent) reduced to what Tally acts on. Both providers' events go
// through the same handling.
type PaymentEvent struct {
	ID   string // unique per event: processed once
	Type string // one of the Event* constants
	// For payments:
	PaymentID     string
	TopUpID       string // from the payment's metadata
	FailureReason string
	NextActionURL string
	ReceiptURL    string
	Card          *Card
	// For card setups:
	ProviderCustomerID string
	SetupSessionID     string
	// For refunds and disputes:
	AmountRefunded int64 // minor units, cumulative
	DisputeID      string
	Created        time.Time
}

// Payment event types (Stripe's names).
const (
	EventCheckoutCompleted     = "checkout.session.completed"
	EventSetupSucceeded        = "setup_intent.succeeded"
	EventPaymentSucceeded      = "payment_intent.succeeded"
	EventPaymentFailed         = "payment_intent.payment_failed"
	EventPaymentRequiresAction = "payment_intent.requires_action"
	EventChargeRefunded        = "charge.refunded"
	EventChargeDisputeCreated  = "charge.dispute.created"
)

// PaymentProvider is a card processor: Stripe, or the offline sandbox that
// mimics Stripe's test cards. Errors: card_declined (with the reason in the
// message), payment_provider_error (the provider is unreachable or refused
// the request; nothing was charged unless a later event says so).
type PaymentProvider interface {
	// Name is "stripe" or "sandbox".
	Name() string
	// EnsureCustomer returns the provider's customer for c, creating it
	// when existingID is empty.
	EnsureCustomer(ctx context.Context, c Customer, existingID string) (string, error)
	// StartCardSetup creates a hosted page where the customer adds a card.
	StartCardSetup(ctx context.Context, providerCustomerID, successURL, cancelURL string) (CardSetup, error)
	// CompleteCardSetup reads the card a finished setup saved.
	CompleteCardSetup(ctx context.Context, setupID string) (Card, error)
	// SetDefaultCard makes a card the customer's default at the provider.
	SetDefaultCard(ctx context.Context, providerCustomerID, paymentMethodID string) error
	// DetachCard removes a card from the customer at the provider.
	DetachCard(ctx context.Context, paymentMethodID string) error
	// Charge charges a saved card off-session, exactly once per idempotency key.
	Charge(ctx context.Context, req ChargeRequest) (Payment, error)
	// FindPayment reads a payment's current state (after authentication).
	FindPayment(ctx context.Context, paymentID string) (Payment, error)
	// Refund refunds amount of a payment, exactly once per idempotency key.
	Refund(ctx context.Context, paymentID string, amount Money, idempotencyKey string) (Refund, error)
	// ParseEvent verifies a webhook's signature and reduces it to a
	// PaymentEvent. invalid_request when the signature is missing, wrong or
	// stale; ok is false for event types Tally ignores.
	ParseEvent(payload []byte, signature string) (ev PaymentEvent, ok bool, err error)
}
