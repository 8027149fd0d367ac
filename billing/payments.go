package billing

import (
	"context"
	"fmt"
	"math"
	"math/bits"
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
	// For subscriptions (plans.go):
	Invoice      *ProviderInvoice
	Subscription *ProviderSubscription
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
// mimics Stripe's test cards. A declined card is an outcome, not an error:
// Charge returns a Payment with status failed and the reason. Errors:
// validation_failed, not_found, no_payment_method, idempotency_conflict,
// nothing_to_refund, invalid_request (a bad webhook signature) and
// payment_provider_error (the provider is unreachable or refused the
// request; nothing was charged unless a later event says so).
type PaymentProvider interface {
	// Name is "stripe" or "sandbox".
	Name() string
	// EnsureCustomer returns the provider's customer for c, creating it
	// when existingID is empty.
	EnsureCustomer(ctx context.Context, c Customer, existingID string) (string, error)
	// StartCardSetup creates a hosted page where the customer adds a card.
	StartCardSetup(ctx context.Context, providerCustomerID, successURL, cancelURL string) (CardSetup, error)
	// CompleteCardSetup reads the card a finished setup saved, when the
	// setup was started for providerCustomerID: another customer's setup
	// (or one without a customer) is not_found, so a setup id that leaked
	// completes for its own customer only.
	CompleteCardSetup(ctx context.Context, providerCustomerID, setupID string) (Card, error)
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

// Top-up states.
const (
	TopUpPending        = "pending"
	TopUpRequiresAction = "requires_action"
	TopUpSucceeded      = "succeeded"
	TopUpFailed         = "failed"
	TopUpRefunded       = "refunded"
)

// Top-up origins.
const (
	OriginPortal     = "portal"
	OriginAutoRefill = "auto_refill"
	OriginAPI        = "api"
)

// TopUp is a purchase of credits with a saved card.
type TopUp struct {
	ID              string     `json:"id"`
	Object          string     `json:"object"`
	Customer        string     `json:"customer"`
	Origin          string     `json:"origin"`
	PackID          string     `json:"pack,omitempty"`
	Description     string     `json:"description"`
	Credits         Credits    `json:"credits"`
	Price           Money      `json:"price"`
	Status          string     `json:"status"`
	Provider        string     `json:"provider"`
	PaymentID       string     `json:"payment_id,omitempty"`
	CardBrand       string     `json:"card_brand,omitempty"`
	CardLast4       string     `json:"card_last4,omitempty"`
	FailureReason   string     `json:"failure_reason,omitempty"`
	NextActionURL   string     `json:"next_action_url,omitempty"`
	ReceiptURL      string     `json:"receipt_url,omitempty"`
	Lot             string     `json:"lot,omitempty"`
	RefundableUntil *time.Time `json:"refundable_until,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"` // when the purchased credits expire (an admin's policy)
	RefundedCredits Credits    `json:"refunded_credits"`
	RefundedAmount  int64      `json:"refunded_amount"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`

	Replayed bool `json:"-"`
}

// PaymentPolicy is how purchases become lots and what can be bought.
type PaymentPolicy struct {
	// RefundWindow: purchased credits can be refunded for this long
	// ("credits do not expire, but become non-refundable after 30 days").
	RefundWindow time.Duration
	// PurchaseExpiry, when set, makes purchased credits expire this long
	// after the purchase (an admin's default expiry policy). 0: never.
	PurchaseExpiry time.Duration
	// CustomMin and CustomMax bound a custom top-up amount (minor units).
	CustomMin, CustomMax int64
	// RefillMaxPerMonth caps the auto-refills of a customer who set no cap
	// of their own (the operator's policy); 0: no cap.
	RefillMaxPerMonth int
	// RefillMaxAmountPerMonth caps what the auto-refills of a customer who
	// set no amount cap of their own may charge a month (minor units); 0:
	// no cap.
	RefillMaxAmountPerMonth int64
}

// RefillCountCap is the most auto-refills a customer's settings allow a
// month: their own cap, else the policy's; ok is false for no cap.
func RefillCountCap(set RefillSettings, pol PaymentPolicy) (int, bool) {
	if set.MaxRefillsPerMonth != nil {
		return *set.MaxRefillsPerMonth, true
	}
	return pol.RefillMaxPerMonth, pol.RefillMaxPerMonth > 0
}

// RefillAmountCap is the most a customer's auto-refills may charge a month
// (minor units): their own cap, else the policy's; ok is false for no cap.
func RefillAmountCap(set RefillSettings, pol PaymentPolicy) (int64, bool) {
	if set.MaxAmountPerMonth != nil {
		return *set.MaxAmountPerMonth, true
	}
	return pol.RefillMaxAmountPerMonth, pol.RefillMaxAmountPerMonth > 0
}

// DefaultPaymentPolicy: 30-day refunds, no expiry, custom top-ups $5-$1,000.
var DefaultPaymentPolicy = PaymentPolicy{RefundWindow: 30 * 24 * time.Hour, CustomMin: 5_00, CustomMax: 1000_00}

// BaseRate is the pack custom amounts are priced by: the smallest pack
// (the most a credit costs), so a custom amount never undercuts a pack.
func (pb *PriceBook) BaseRate() (CreditPack, bool) {
	if pb == nil || len(pb.Packs) == 0 {
		return CreditPack{}, false
	}
	best := pb.Packs[0]
	for _, p := range pb.Packs[1:] {
		// credits/price lower is a dearer credit: compare cross-multiplied.
		if int64(p.Credits)*best.Price.Amount < int64(best.Credits)*p.Price.Amount {
			best = p
		}
	}
	return best, true
}

// CustomPolicy is pol with the price book's custom top-up range, when it
// has one.
func (pb *PriceBook) CustomPolicy(pol PaymentPolicy) PaymentPolicy {
	if pb != nil && pb.CustomTopUp != nil {
		pol.CustomMin, pol.CustomMax = pb.CustomTopUp.Min, pb.CustomTopUp.Max
	}
	return pol
}

// customBase is the rate custom amounts are priced at: the price book's
// credits per unit of currency, or its base rate (the smallest pack).
func (pb *PriceBook) customBase() (CreditPack, bool) {
	if pb != nil && pb.CustomTopUp != nil && pb.CustomTopUp.CreditsPerUnit > 0 {
		return CreditPack{ID: "custom", Credits: pb.CustomTopUp.CreditsPerUnit,
			Price: Money{Amount: minorPerUnit(pb.Currency), Currency: pb.Currency}}, true
	}
	return pb.BaseRate()
}

// minorPerUnit is how many minor units make one major unit (100 cents).
func minorPerUnit(currency string) int64 {
	v := int64(1)
	for range MinorUnits(currency) {
		v *= 10
	}
	return v
}

// CustomCredits prices a custom top-up of amount minor units at the base
// rate (or the price book's custom rate), rounded down to the millicredit.
func CustomCredits(pb *PriceBook, amount int64, pol PaymentPolicy) (Credits, Money, error) {
	pol = pb.CustomPolicy(pol)
	base, ok := pb.customBase()
	if !ok {
		return 0, Money{}, Errorf(CodeValidation, "custom amounts need a credit pack in the price book to price them")
	}
	if amount < pol.CustomMin || amount > pol.CustomMax {
		return 0, Money{}, Errorf(CodeValidation, "a custom top-up must be between %d and %d (in minor units of %s)", pol.CustomMin, pol.CustomMax, base.Price.Currency).
			With("param", "amount").With("min", pol.CustomMin).With("max", pol.CustomMax)
	}
	// amount * credits / price fits in 64 bits: amount <= 1e8, credits <= 1e15 ... use 128-bit to be safe.
	c := mulDivFloor(amount, int64(base.Credits), base.Price.Amount)
	return Credits(c), Money{Amount: amount, Currency: base.Price.Currency}, nil
}

// PriceForCredits is what credits cost at the base rate, rounded up to the
// minor unit (a custom amount is never free), and at least CustomMin.
func PriceForCredits(pb *PriceBook, credits Credits, pol PaymentPolicy) (Money, error) {
	pol = pb.CustomPolicy(pol)
	base, ok := pb.customBase()
	if !ok {
		return Money{}, Errorf(CodeValidation, "custom amounts need a credit pack in the price book to price them")
	}
	num := mulDivFloor(int64(credits), base.Price.Amount, 1)
	amount := num / int64(base.Credits)
	if num%int64(base.Credits) != 0 {
		amount++
	}
	amount = max(amount, pol.CustomMin)
	if amount > pol.CustomMax {
		return Money{}, Errorf(CodeValidation, "that is more than the largest top-up allowed")
	}
	return Money{Amount: amount, Currency: base.Price.Currency}, nil
}

func mulDivFloor(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}

// RefundFor is the refund of unused credits of a purchase: the unused share
// of the price, rounded up to the minor unit (the customer's favour), never
// more than was paid.
func RefundFor(t TopUp, unused Credits) int64 {
	if unused <= 0 || t.Credits <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(t.Price.Amount), uint64(unused))
	q, r := bits.Div64(hi, lo, uint64(t.Credits))
	amt := int64(q)
	if r != 0 {
		amt++
	}
	return min(amt, t.Price.Amount-t.RefundedAmount)
}

// Refill modes.
const (
	RefillPack   = "pack"   // buy a credit pack
	RefillTarget = "target" // bring the balance back up to Target
)

// RefillSettings are a customer's auto-refill choices.
type RefillSettings struct {
	Enabled            bool    `json:"enabled"`
	Threshold          Credits `json:"threshold"`
	Mode               string  `json:"mode"`
	PackID             string  `json:"pack,omitempty"`
	Target             Credits `json:"target,omitempty"`
	MaxRefillsPerMonth *int    `json:"max_refills_per_month"`
	MaxAmountPerMonth  *int64  `json:"max_amount_per_month"`
	Failures           int     `json:"failures"`
	PausedReason       string  `json:"paused_reason,omitempty"`
}

// Validate checks refill settings against the price book and the payment
// policy. A monthly amount ceiling below the smallest refill's price (the
// pack's, or in target mode what target − threshold credits cost) is
// refused: every refill would be skipped for it (the runner's
// RefillAmountCap check). The error's details carry "refill_price" and
// "ceiling" (Money) for the views' wording.
func (r *RefillSettings) Validate(pb *PriceBook, pol PaymentPolicy) error {
	if r.Threshold < 0 || r.Threshold > MaxCredits {
		return Errorf(CodeValidation, "the threshold must be zero or more").With("param", "threshold")
	}
	switch r.Mode {
	case RefillPack:
		if _, ok := pb.Pack(r.PackID); !ok {
			return Errorf(CodeValidation, "choose a credit pack to buy").With("param", "pack")
		}
	case RefillTarget:
		if r.Target <= r.Threshold {
			return Errorf(CodeValidation, "the balance to refill to must be above the threshold").With("param", "target")
		}
		if r.Target > MaxCredits {
			return Errorf(CodeValidation, "the balance to refill to is too large").With("param", "target")
		}
	default:
		return Errorf(CodeValidation, "choose what to buy: a pack, or refill to a balance").With("param", "mode")
	}
	if r.MaxRefillsPerMonth != nil && (*r.MaxRefillsPerMonth < 1 || *r.MaxRefillsPerMonth > 1000) {
		return Errorf(CodeValidation, "at most 1 to 1,000 refills a month").With("param", "max_refills_per_month")
	}
	if r.MaxAmountPerMonth != nil && (*r.MaxAmountPerMonth < 1 || *r.MaxAmountPerMonth > 1_000_000_00) {
		return Errorf(CodeValidation, "the monthly amount ceiling must be more than zero").With("param", "max_amount_per_month")
	}
	if r.MaxAmountPerMonth != nil {
		if price, ok := r.SmallestRefillPrice(pb, pol); ok && price.Amount > *r.MaxAmountPerMonth {
			ceiling := Money{Amount: *r.MaxAmountPerMonth, Currency: price.Currency}
			return Errorf(CodeValidation, "one refill costs more than the monthly amount ceiling: it would stop every refill").
				With("param", "max_amount_per_month").With("refill_price", price).With("ceiling", ceiling)
		}
	}
	return nil
}

// SmallestRefillPrice is the least one refill of these settings can charge:
// the pack's price, or in target mode the price of target − threshold
// credits (a refill starts below the threshold, so it buys at least that
// many, rounded up to the whole credit as RefillCredits does). ok is false
// when it cannot be priced (no such pack, no base rate).
func (r *RefillSettings) SmallestRefillPrice(pb *PriceBook, pol PaymentPolicy) (Money, bool) {
	switch r.Mode {
	case RefillPack:
		p, ok := pb.Pack(r.PackID)
		return p.Price, ok
	case RefillTarget:
		need, ok := RefillCredits(r.Target, r.Threshold)
		if !ok {
			return Money{}, false
		}
		m, err := PriceForCredits(pb, need, pol)
		return m, err == nil
	}
	return Money{}, false
}

// RefillBackoff is how long after a failed refill the next attempt waits;
// after the last, auto-refill pauses.
var RefillBackoff = []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour}

// MaxRefillFailures pauses auto-refill after this many failures in a row.
const MaxRefillFailures = 3

// Notice is an outbox event a customer should see in the portal (a
// declined refill, auto-refill paused or waiting for them, a dispute) until
// they dismiss it or it is resolved. Its wording is the views' (from Type
// and Data); nothing in storage holds prose.
type Notice struct {
	ID        int64          `json:"id"` // the event's seq
	Customer  string         `json:"customer"`
	Type      string         `json:"type"`
	Data      map[string]any `json:"data"`
	CreatedAt time.Time      `json:"created_at"`
}

// Reasons an auto-refill did not run (the "reason" of its autorefill.failed
// event when no payment was tried).
const (
	RefillSkipNoCard        = "no_card"
	RefillSkipMonthlyCount  = "monthly_count" // data: limit (refills a month)
	RefillSkipMonthlyAmount = "monthly_amount"
	RefillSkipNoPrice       = "no_price" // data: detail (the pricing error's message)
)

// IsNotice reports whether an outbox event is one the portal shows as a
// notice: auto-refill paused or waiting for the customer, a dispute, an
// auto-refill that did not run, and a declined one the first time (later
// declines of the same streak only add to it; the pause says when it ends).
func IsNotice(typ string, data map[string]any) bool {
	switch typ {
	case EventAutoRefillPaused, EventAutoRefillActionRequired, EventDisputeOpened, EventInvoicePaymentFailed:
		return true
	case EventAutoRefillFailed:
		if _, skipped := data["reason"]; skipped {
			return true
		}
		return fmt.Sprint(data["failures"]) == "1"
	}
	return false
}

// NoticeTypes are the event types IsNotice may accept.
var NoticeTypes = []string{EventAutoRefillFailed, EventAutoRefillPaused, EventAutoRefillActionRequired, EventDisputeOpened,
	EventInvoicePaymentFailed}

// NoticeResolvers are the event types ResolvedBy may accept as later.
var NoticeResolvers = []string{EventAutoRefillSucceeded, EventSubscriptionRenewed, EventInvoicePaymentFailed}

// ResolvedBy reports whether a later event of type later resolves a notice
// of type typ: an auto-refill that went through answers the notices of
// refills that did not.
func ResolvedBy(typ, later string) bool {
	if typ == EventInvoicePaymentFailed {
		// A paid period, or the next attempt's news, answers a failed invoice.
		return later == EventSubscriptionRenewed || later == EventInvoicePaymentFailed
	}
	return later == EventAutoRefillSucceeded && typ != EventDisputeOpened
}

// RefillJob is one auto-refill to run: created by the debit that took the
// balance below the threshold, stored so it survives restarts.
type RefillJob struct {
	ID         string
	CustomerID string
	Attempts   int // declined attempts so far
}

// TopUpRequest is one purchase: a pack, or a custom amount.
type TopUpRequest struct {
	PackID string
	Amount int64 // custom amount in minor units (when PackID is empty)
	// Credits buys exactly this many credits at the base rate (auto-refill's
	// "bring the balance back up to N").
	Credits Credits
	// Key identifies the click (or refill attempt): the same key is the same
	// purchase, so a double click or a resubmitted form charges once.
	Key        string
	Origin     string
	ReturnURL  string // where the customer comes back after authenticating
	OffSession bool
}

// RefillCredits is what a target-mode auto-refill buys: the credits that
// bring available up to target, rounded up to whole credits. ok is false
// when available is already at or above the target.
func RefillCredits(target, available Credits) (need Credits, ok bool) {
	need = target - available
	if need <= 0 {
		return 0, false
	}
	if r := need % Milli; r != 0 {
		need += Milli - r
	}
	return need, true
}

// RefillAttempt is an auto-refill job as the answer to its payment arrives.
type RefillAttempt struct {
	TopUp    TopUp // the job's top-up, as it was before this answer
	Attempts int   // the job's attempts so far
	Failures int   // declined refills in a row before this one (the settings')
	Now      time.Time
}

// RefillOutcome is what an auto-refill's answer decides for its job and the
// customer's settings.
type RefillOutcome struct {
	JobStatus     string    // succeeded, requires_action, pending (retry later) or failed
	NextAttemptAt time.Time // for pending
	CountAttempt  bool      // the answer was a decline: one more attempt
	Failures      int       // declined refills in a row, after this answer
	Pause         string    // non-empty: pause auto-refill, with this reason
	Reason        string    // the decline's reason
	Wait          time.Duration
	Events        []NewEvent
}

// PlanRefillOutcome decides the auto-refill state machine's next step from a
// payment's answer: a success ends the job and clears the failure count; a
// request to authenticate waits for the customer; a decline retries after
// RefillBackoff and, at MaxRefillFailures in a row, pauses auto-refill. ok
// is false when the answer changes nothing (a replay, or an answer still
// processing), so nothing is counted twice.
func PlanRefillOutcome(a RefillAttempt, p Payment) (RefillOutcome, bool) {
	newStatus := map[string]string{PaymentSucceeded: TopUpSucceeded, PaymentFailed: TopUpFailed,
		PaymentRequiresAction: TopUpRequiresAction}[p.Status]
	if newStatus == "" || newStatus == a.TopUp.Status {
		return RefillOutcome{}, false
	}
	switch p.Status {
	case PaymentSucceeded:
		// autorefill.succeeded is the top-up's own event (its grant).
		return RefillOutcome{JobStatus: "succeeded", Failures: 0}, true
	case PaymentRequiresAction:
		return RefillOutcome{JobStatus: "requires_action", Failures: a.Failures,
			Events: []NewEvent{TopUpEvent(EventAutoRefillActionRequired, &a.TopUp, nil)}}, true
	}
	out := RefillOutcome{CountAttempt: true, Failures: a.Failures + 1, Reason: p.FailureReason}
	if out.Reason == "" {
		out.Reason = "The payment failed."
	}
	data := map[string]any{"failure_reason": out.Reason, "failures": out.Failures}
	if out.Failures >= MaxRefillFailures {
		out.JobStatus = "failed"
		out.Pause = fmt.Sprintf("Paused after %d declined payments in a row (last: %s)", out.Failures, out.Reason)
		out.Events = []NewEvent{TopUpEvent(EventAutoRefillFailed, &a.TopUp, data), TopUpEvent(EventAutoRefillPaused, &a.TopUp, data)}
		return out, true
	}
	out.JobStatus = "pending"
	out.Wait = RefillBackoff[min(a.Attempts, len(RefillBackoff)-1)]
	out.NextAttemptAt = a.Now.Add(out.Wait)
	data["next_attempt_at"] = out.NextAttemptAt.UTC()
	out.Events = []NewEvent{TopUpEvent(EventAutoRefillFailed, &a.TopUp, data)}
	return out, true
}
