package payments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/tally-billing/tally/billing"
)

// StripeConfig configures NewStripe. Its String and GoString hide the
// secrets, so printing a config (or a provider) never shows them.
type StripeConfig struct {
	// SecretKey is the account's secret (sk_...) or restricted (rk_...) key
	// (env TALLY_STRIPE_SECRET_KEY).
	SecretKey string
	// WebhookSecret signs the events of Tally's webhook endpoint (whsec_...,
	// env TALLY_STRIPE_WEBHOOK_SECRET).
	WebhookSecret string
	// APIBase replaces https://api.stripe.com, e.g. for stripe-mock (env
	// TALLY_STRIPE_API_BASE). Empty: Stripe's.
	APIBase string
	// HTTPClient makes the API calls. Nil: stripe-go's (80 s timeout).
	HTTPClient *http.Client
}

// String describes the config without its secrets.
func (c StripeConfig) String() string {
	base := c.APIBase
	if base == "" {
		base = stripe.APIURL
	}
	return fmt.Sprintf("StripeConfig{SecretKey: %s, WebhookSecret: %s, APIBase: %s}", redacted(c.SecretKey), redacted(c.WebhookSecret), base)
}

// GoString is String, for %#v.
func (c StripeConfig) GoString() string { return c.String() }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// StripeProvider charges cards with Stripe. It holds no state besides its
// configuration and is safe for concurrent use.
type StripeProvider struct {
	api           *client.API
	secretKey     string
	webhookSecret string
}

var _ billing.PaymentProvider = (*StripeProvider)(nil)

// NewStripe returns a Stripe provider. Both secrets are required: without
// webhooks, payments that finish later (3-D Secure, refunds, disputes) would
// never reach Tally. stripe-go's logger is silenced: failures come back as
// *billing.Error and are logged (or not) by whoever handles them.
func NewStripe(cfg StripeConfig) (*StripeProvider, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("payments: the Stripe secret key is missing (TALLY_STRIPE_SECRET_KEY)")
	}
	if !strings.HasPrefix(cfg.SecretKey, "sk_") && !strings.HasPrefix(cfg.SecretKey, "rk_") {
		return nil, errors.New("payments: the Stripe secret key must start with sk_ or rk_ (TALLY_STRIPE_SECRET_KEY); a publishable key (pk_) will not do")
	}
	if cfg.WebhookSecret == "" {
		return nil, errors.New("payments: the Stripe webhook signing secret is missing (TALLY_STRIPE_WEBHOOK_SECRET, whsec_...)")
	}
	var apiURL *string
	if cfg.APIBase != "" {
		u, err := url.Parse(cfg.APIBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("payments: TALLY_STRIPE_API_BASE must be an http(s) URL such as http://localhost:12111, not %q", cfg.APIBase)
		}
		apiURL = stripe.String(strings.TrimRight(cfg.APIBase, "/"))
	}
	quiet := &stripe.LeveledLogger{Level: stripe.LevelNull}
	backend := func(t stripe.SupportedBackend, u *string) stripe.Backend {
		// One config per backend: GetBackendWithConfig fills in the URL.
		return stripe.GetBackendWithConfig(t, &stripe.BackendConfig{HTTPClient: cfg.HTTPClient, LeveledLogger: quiet, URL: u})
	}
	backends := &stripe.Backends{
		API:     backend(stripe.APIBackend, apiURL),
		Connect: backend(stripe.ConnectBackend, nil),
		Uploads: backend(stripe.UploadsBackend, nil),
	}
	return &StripeProvider{
		api:           client.New(cfg.SecretKey, backends),
		secretKey:     cfg.SecretKey,
		webhookSecret: cfg.WebhookSecret,
	}, nil
}

// Name is "stripe".
func (p *StripeProvider) Name() string { return "stripe" }

// String is "stripe": printing the provider never prints its key.
func (p *StripeProvider) String() string { return "stripe" }

// GoString is String, for %#v.
func (p *StripeProvider) GoString() string { return p.String() }

// EnsureCustomer creates the Stripe customer of c (email, name, metadata
// tally_customer) unless existingID is set. The idempotency key is derived
// from c.ID: a retry within Stripe's 24 hours (say, after Tally crashed
// before storing the id) returns the same customer instead of a second one.
func (p *StripeProvider) EnsureCustomer(ctx context.Context, c billing.Customer, existingID string) (string, error) {
	if existingID != "" {
		return existingID, nil
	}
	if c.ID == "" {
		return "", billing.Errorf(billing.CodeValidation, "a customer id is needed to create the Stripe customer")
	}
	params := &stripe.CustomerParams{}
	if c.Email != "" {
		params.Email = stripe.String(c.Email)
	}
	if c.Name != "" {
		params.Name = stripe.String(c.Name)
	}
	params.AddMetadata(MetadataCustomer, c.ID)
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey("tally-customer-" + c.ID))
	cus, err := p.api.Customers.New(params)
	if err != nil {
		return "", p.apiError(err, "create the customer at Stripe")
	}
	return cus.ID, nil
}

// StartCardSetup creates a Checkout Session in setup mode for cards: the
// customer adds a card on Stripe's hosted page (Tally's pages load no
// Stripe.js) and comes back to successURL?session_id=<session id>.
func (p *StripeProvider) StartCardSetup(ctx context.Context, providerCustomerID, successURL, cancelURL string) (billing.CardSetup, error) {
	if providerCustomerID == "" {
		return billing.CardSetup{}, billing.Errorf(billing.CodeValidation, "the customer has no Stripe customer yet")
	}
	if err := checkAbsURL("success URL", successURL); err != nil {
		return billing.CardSetup{}, err
	}
	if err := checkAbsURL("cancel URL", cancelURL); err != nil {
		return billing.CardSetup{}, err
	}
	params := &stripe.CheckoutSessionParams{
		Mode:               stripe.String(string(stripe.CheckoutSessionModeSetup)),
		Customer:           stripe.String(providerCustomerID),
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}),
		SuccessURL:         stripe.String(withQuery(successURL, SessionIDParam, "{CHECKOUT_SESSION_ID}")),
		CancelURL:          stripe.String(cancelURL),
	}
	params.Context = ctx
	params.SetIdempotencyKey(randomID("tally-setup-"))
	s, err := p.api.CheckoutSessions.New(params)
	if err != nil {
		return billing.CardSetup{}, p.apiError(err, "start the card setup at Stripe")
	}
	return billing.CardSetup{URL: s.URL, ProviderID: s.ID}, nil
}

// CompleteCardSetup reads the card a finished Checkout Session saved: the
// session must belong to providerCustomerID (StartCardSetup made it for that
// customer; so must its setup intent and card be, when Stripe names their
// customer), otherwise not_found, as for a session that does not exist. Its
// setup intent must have succeeded (the card is then attached to the
// customer) with a card payment method.
func (p *StripeProvider) CompleteCardSetup(ctx context.Context, providerCustomerID, setupID string) (billing.Card, error) {
	if !strings.HasPrefix(setupID, "cs_") {
		return billing.Card{}, billing.Errorf(billing.CodeValidation, "%q is not a Stripe Checkout Session id", setupID)
	}
	if providerCustomerID == "" {
		return billing.Card{}, errNoStripeSetup()
	}
	params := &stripe.CheckoutSessionParams{}
	params.AddExpand("setup_intent.payment_method")
	params.Context = ctx
	s, err := p.api.CheckoutSessions.Get(setupID, params)
	if err != nil {
		return billing.Card{}, p.apiError(err, "read the card setup at Stripe")
	}
	if s.Customer == nil || s.Customer.ID != providerCustomerID {
		return billing.Card{}, errNoStripeSetup()
	}
	si := s.SetupIntent
	if si != nil && si.Customer != nil && si.Customer.ID != providerCustomerID {
		return billing.Card{}, errNoStripeSetup()
	}
	if si == nil || si.Status != stripe.SetupIntentStatusSucceeded || si.PaymentMethod == nil || si.PaymentMethod.Card == nil {
		return billing.Card{}, billing.Errorf(billing.CodeValidation, "the card setup is not finished: no card was saved")
	}
	if pm := si.PaymentMethod; pm.Customer != nil && pm.Customer.ID != providerCustomerID {
		return billing.Card{}, errNoStripeSetup()
	}
	return stripeCard(si.PaymentMethod), nil
}

// errNoStripeSetup is the answer for a Checkout Session that is not the
// customer's: the same as for one that does not exist, so a session id says
// nothing about another customer.
func errNoStripeSetup() error {
	return billing.Errorf(billing.CodeNotFound, "no such card setup: start again from the portal")
}

// StartCheckout creates a Checkout Session in payment mode: the customer
// enters a card on Stripe's hosted page and pays the top-up in one step;
// setup_future_usage=off_session saves the card on the customer for later
// off-session charges (auto-refill). The PaymentIntent carries the
// request's metadata, so its payment_intent.* webhooks find the top-up.
// The idempotency key is the request's (derived from the top-up): starting
// the same top-up's checkout again gives the same session.
func (p *StripeProvider) StartCheckout(ctx context.Context, req CheckoutRequest) (billing.CardSetup, error) {
	if err := checkCheckout(req); err != nil {
		return billing.CardSetup{}, err
	}
	params := &stripe.CheckoutSessionParams{
		Mode:               stripe.String(string(stripe.CheckoutSessionModePayment)),
		Customer:           stripe.String(req.ProviderCustomerID),
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String(req.Amount.Currency),
				UnitAmount:  stripe.Int64(req.Amount.Amount),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String(req.Description)},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{
			SetupFutureUsage: stripe.String("off_session"),
			Description:      stripe.String(req.Description),
			Metadata:         req.Metadata,
		},
		SuccessURL: stripe.String(withQuery(req.SuccessURL, SessionIDParam, "{CHECKOUT_SESSION_ID}")),
		CancelURL:  stripe.String(req.CancelURL),
	}
	for k, v := range req.Metadata {
		params.AddMetadata(k, v)
	}
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey(req.IdempotencyKey))
	s, err := p.api.CheckoutSessions.New(params)
	if err != nil {
		return billing.CardSetup{}, p.apiError(err, "start the checkout at Stripe")
	}
	return billing.CardSetup{URL: s.URL, ProviderID: s.ID}, nil
}

// CompleteCheckout reads a payment-mode Checkout Session the customer came
// back from: its PaymentIntent (the payment's state) and the card it was
// paid with, which Checkout attached to the customer.
func (p *StripeProvider) CompleteCheckout(ctx context.Context, sessionID string) (CheckoutResult, error) {
	if !strings.HasPrefix(sessionID, "cs_") {
		return CheckoutResult{}, billing.Errorf(billing.CodeValidation, "%q is not a Stripe Checkout Session id", sessionID)
	}
	params := &stripe.CheckoutSessionParams{}
	params.AddExpand("payment_intent.payment_method")
	params.AddExpand("payment_intent.latest_charge")
	params.Context = ctx
	s, err := p.api.CheckoutSessions.Get(sessionID, params)
	if err != nil {
		return CheckoutResult{}, p.apiError(err, "read the checkout at Stripe")
	}
	if s.Mode != stripe.CheckoutSessionModePayment {
		return CheckoutResult{}, billing.Errorf(billing.CodeValidation, "this Checkout Session does not pay anything")
	}
	pi := s.PaymentIntent
	if s.Status != stripe.CheckoutSessionStatusComplete || pi == nil || pi.PaymentMethod == nil || pi.PaymentMethod.Card == nil {
		return CheckoutResult{}, billing.Errorf(billing.CodeValidation, "the checkout is not finished: no card was added")
	}
	meta := s.Metadata
	if len(meta) == 0 {
		meta = pi.Metadata
	}
	return CheckoutResult{Card: stripeCard(pi.PaymentMethod), Payment: paymentFromIntent(pi), Metadata: meta}, nil
}

// SetDefaultCard makes the card the customer's invoice default at Stripe.
func (p *StripeProvider) SetDefaultCard(ctx context.Context, providerCustomerID, paymentMethodID string) error {
	if providerCustomerID == "" || paymentMethodID == "" {
		return billing.Errorf(billing.CodeValidation, "a Stripe customer and payment method are needed to set the default card")
	}
	params := &stripe.CustomerParams{
		InvoiceSettings: &stripe.CustomerInvoiceSettingsParams{DefaultPaymentMethod: stripe.String(paymentMethodID)},
	}
	params.Context = ctx
	params.SetIdempotencyKey(randomID("tally-default-card-"))
	if _, err := p.api.Customers.Update(providerCustomerID, params); err != nil {
		return p.apiError(err, "set the default card at Stripe")
	}
	return nil
}

// DetachCard detaches the payment method from its customer at Stripe; it
// can no longer be charged.
func (p *StripeProvider) DetachCard(ctx context.Context, paymentMethodID string) error {
	if paymentMethodID == "" {
		return billing.Errorf(billing.CodeValidation, "a payment method is needed to remove a card")
	}
	params := &stripe.PaymentMethodDetachParams{}
	params.Context = ctx
	params.SetIdempotencyKey(randomID("tally-detach-"))
	if _, err := p.api.PaymentMethods.Detach(paymentMethodID, params); err != nil {
		return p.apiError(err, "remove the card at Stripe")
	}
	return nil
}

// Charge creates and confirms a card PaymentIntent with the request's
// idempotency key. Declines come back as a failed Payment with a nil error.
//
// On-session (the customer clicked), ReturnURL is required: a card that
// asks for 3-D Secure gives Status requires_action and NextActionURL, the
// bank's page, which returns to ReturnURL; FindPayment (or the
// payment_intent.* webhook) tells the result. Off-session (auto-refill),
// Stripe refuses a card that needs authentication with
// authentication_required; when ReturnURL is set, the PaymentIntent is then
// confirmed again for the customer to authenticate later (idempotency key
// "<key>:authenticate"), so requires_action carries a NextActionURL to send
// them (e-mail, portal banner). Without ReturnURL, NextActionURL is empty
// and the customer must start a new payment in the portal.
func (p *StripeProvider) Charge(ctx context.Context, req billing.ChargeRequest) (billing.Payment, error) {
	if err := checkCharge(req); err != nil {
		return billing.Payment{}, err
	}
	params := &stripe.PaymentIntentParams{
		Amount:             stripe.Int64(req.Amount.Amount),
		Currency:           stripe.String(req.Amount.Currency),
		Customer:           stripe.String(req.ProviderCustomerID),
		PaymentMethod:      stripe.String(req.PaymentMethodID),
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}),
		Confirm:            stripe.Bool(true),
	}
	if req.Description != "" {
		params.Description = stripe.String(req.Description)
	}
	if req.OffSession {
		params.OffSession = stripe.Bool(true)
	} else {
		params.ReturnURL = stripe.String(req.ReturnURL)
	}
	for k, v := range req.Metadata {
		params.AddMetadata(k, v)
	}
	params.AddExpand("latest_charge")
	params.AddExpand("payment_method")
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey(req.IdempotencyKey))
	pi, err := p.api.PaymentIntents.New(params)
	if err == nil {
		return paymentFromIntent(pi), nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) || se.Type != stripe.ErrorTypeCard {
		return billing.Payment{}, p.chargeError(err)
	}
	if isAuthRequired(se) && se.PaymentIntent != nil && se.PaymentIntent.ID != "" {
		return p.authenticateLater(ctx, req, se)
	}
	return declined(se), nil
}

// authenticateLater turns an off-session authentication_required decline
// into requires_action, with a link when the request has a ReturnURL.
func (p *StripeProvider) authenticateLater(ctx context.Context, req billing.ChargeRequest, se *stripe.Error) (billing.Payment, error) {
	pay := billing.Payment{
		ProviderID:    se.PaymentIntent.ID,
		Status:        billing.PaymentRequiresAction,
		FailureCode:   string(stripe.ErrorCodeAuthenticationRequired),
		FailureReason: msgAuthRequired,
		Card:          cardOf(se.PaymentMethod),
	}
	if req.ReturnURL == "" {
		return pay, nil
	}
	params := &stripe.PaymentIntentConfirmParams{
		PaymentMethod: stripe.String(req.PaymentMethodID),
		ReturnURL:     stripe.String(req.ReturnURL),
	}
	params.AddExpand("latest_charge")
	params.AddExpand("payment_method")
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey(req.IdempotencyKey + ":authenticate"))
	pi, err := p.api.PaymentIntents.Confirm(se.PaymentIntent.ID, params)
	if err != nil {
		var ce *stripe.Error
		if errors.As(err, &ce) && ce.Type == stripe.ErrorTypeCard {
			return declined(ce), nil
		}
		// The first answer stands: the customer can still pay in the portal.
		return pay, nil
	}
	out := paymentFromIntent(pi)
	if out.Card == nil || (out.Card.Last4 == "" && pay.Card != nil) {
		out.Card = pay.Card // the error had the card's details
	}
	return out, nil
}

// FindPayment reads a PaymentIntent's current state, with its receipt once
// it succeeded.
func (p *StripeProvider) FindPayment(ctx context.Context, paymentID string) (billing.Payment, error) {
	if !strings.HasPrefix(paymentID, "pi_") {
		return billing.Payment{}, billing.Errorf(billing.CodeValidation, "%q is not a Stripe PaymentIntent id", paymentID)
	}
	params := &stripe.PaymentIntentParams{}
	params.AddExpand("latest_charge")
	params.AddExpand("payment_method")
	params.Context = ctx
	pi, err := p.api.PaymentIntents.Get(paymentID, params)
	if err != nil {
		return billing.Payment{}, p.apiError(err, "read the payment at Stripe")
	}
	return paymentFromIntent(pi), nil
}

// Refund refunds amount (minor units) of a PaymentIntent, once per
// idempotency key. The currency is the payment's: Stripe does not take one.
func (p *StripeProvider) Refund(ctx context.Context, paymentID string, amount billing.Money, key string) (billing.Refund, error) {
	if err := checkRefund(paymentID, "pi_", amount, key); err != nil {
		return billing.Refund{}, err
	}
	params := &stripe.RefundParams{
		PaymentIntent: stripe.String(paymentID),
		Amount:        stripe.Int64(amount.Amount),
	}
	params.Context = ctx
	params.SetIdempotencyKey(idempotencyKey(key))
	r, err := p.api.Refunds.New(params)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Code == stripe.ErrorCodeChargeAlreadyRefunded {
			return billing.Refund{}, &billing.Error{Code: billing.CodeNothingToRefund, Message: "the payment is already fully refunded", Cause: p.scrub(err)}
		}
		return billing.Refund{}, p.apiError(err, "refund the payment at Stripe")
	}
	return billing.Refund{ProviderID: r.ID, Status: refundStatus(r.Status)}, nil
}

// idempotencyKey fits a key into Stripe's 255 characters: longer keys are
// replaced by their SHA-256, which keeps them deterministic.
func idempotencyKey(k string) string {
	if len(k) <= 255 {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "tally-sha256-" + hex.EncodeToString(sum[:])
}

func refundStatus(s stripe.RefundStatus) string {
	switch s {
	case stripe.RefundStatusSucceeded:
		return "succeeded"
	case stripe.RefundStatusFailed, stripe.RefundStatusCanceled:
		return "failed"
	default: // pending, requires_action
		return "pending"
	}
}

func isAuthRequired(se *stripe.Error) bool {
	return se.Code == stripe.ErrorCodeAuthenticationRequired || se.DeclineCode == stripe.DeclineCodeAuthenticationRequired
}

// declined is the failed Payment of a card error.
func declined(se *stripe.Error) billing.Payment {
	pay := billing.Payment{
		Status:        billing.PaymentFailed,
		FailureCode:   string(se.Code),
		FailureReason: customerMessage(string(se.Type), string(se.Code), string(se.DeclineCode), se.Msg),
		Card:          cardOf(se.PaymentMethod),
	}
	if se.DeclineCode != "" {
		pay.FailureCode = string(se.DeclineCode)
	}
	if se.PaymentIntent != nil {
		pay.ProviderID = se.PaymentIntent.ID
		if pay.Card == nil {
			pay.Card = cardOf(se.PaymentIntent.PaymentMethod)
		}
	}
	return pay
}

// paymentFromIntent maps a PaymentIntent (from an API answer) to a Payment.
func paymentFromIntent(pi *stripe.PaymentIntent) billing.Payment {
	pay := billing.Payment{ProviderID: pi.ID, Card: cardOf(pi.PaymentMethod)}
	if ch := pi.LatestCharge; ch != nil {
		pay.ReceiptURL = ch.ReceiptURL
		if pay.Card == nil && ch.PaymentMethodDetails != nil && ch.PaymentMethodDetails.Card != nil {
			c := ch.PaymentMethodDetails.Card
			pay.Card = &billing.Card{ProviderID: ch.PaymentMethod, Brand: string(c.Brand), Last4: c.Last4, ExpMonth: int(c.ExpMonth), ExpYear: int(c.ExpYear)}
		}
	}
	var next, errType, code, decline, msg string
	if na := pi.NextAction; na != nil && na.RedirectToURL != nil {
		next = na.RedirectToURL.URL
	}
	if e := pi.LastPaymentError; e != nil {
		errType, code, decline, msg = string(e.Type), string(e.Code), string(e.DeclineCode), e.Msg
	}
	pay.Status, pay.NextActionURL, pay.FailureCode, pay.FailureReason = intentOutcome(string(pi.Status), next, errType, code, decline, msg)
	if pay.Status != billing.PaymentSucceeded {
		pay.ReceiptURL = ""
	}
	return pay
}

// intentOutcome maps a PaymentIntent status (any API version) to Tally's
// payment status, with the failure fields when it failed.
func intentOutcome(status, nextURL, errType, code, declineCode, msg string) (st, next, failCode, failReason string) {
	switch status {
	case "succeeded":
		return billing.PaymentSucceeded, "", "", ""
	case "requires_action", "requires_source_action":
		return billing.PaymentRequiresAction, nextURL, "", ""
	case "processing", "requires_capture":
		return billing.PaymentProcessing, "", "", ""
	case "canceled":
		return billing.PaymentFailed, "", "canceled", msgPaymentCanceled
	default: // requires_payment_method after a failed attempt, requires_confirmation
		failCode = code
		if declineCode != "" {
			failCode = declineCode
		}
		if failCode == "" {
			failCode = "payment_failed"
		}
		return billing.PaymentFailed, "", failCode, customerMessage(errType, code, declineCode, msg)
	}
}

// cardOf maps a card payment method; nil for anything else.
func cardOf(pm *stripe.PaymentMethod) *billing.Card {
	if pm == nil || pm.ID == "" {
		return nil
	}
	if pm.Card == nil {
		return &billing.Card{ProviderID: pm.ID}
	}
	c := stripeCard(pm)
	return &c
}

func stripeCard(pm *stripe.PaymentMethod) billing.Card {
	return billing.Card{
		ProviderID: pm.ID,
		Brand:      string(pm.Card.Brand),
		Last4:      pm.Card.Last4,
		ExpMonth:   int(pm.Card.ExpMonth),
		ExpYear:    int(pm.Card.ExpYear),
	}
}

// chargeError maps a Charge failure that is not a decline.
func (p *StripeProvider) chargeError(err error) error {
	var se *stripe.Error
	if errors.As(err, &se) && se.Code == stripe.ErrorCodeResourceMissing && (se.Param == "payment_method" || se.Param == "customer") {
		return &billing.Error{Code: billing.CodeNoPaymentMethod, Message: "the saved card no longer exists at Stripe; add a card again", Cause: p.scrub(err)}
	}
	return p.apiError(err, "charge the card (nothing was charged unless a later event says so)")
}

// apiError maps a stripe-go error to a *billing.Error; what names what Tally
// was doing. The cause is kept for logs, without the secret key.
func (p *StripeProvider) apiError(err error, what string) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		switch {
		case se.Type == stripe.ErrorTypeIdempotency:
			return &billing.Error{Code: billing.CodeIdempotencyConflict, Message: "this idempotency key was already used for a different request", Cause: p.scrub(err)}
		case se.Code == stripe.ErrorCodeResourceMissing:
			msg := "Stripe has no such object"
			if se.Msg != "" {
				msg = "Stripe says: " + se.Msg // "No such payment_intent: 'pi_...'"
			}
			return &billing.Error{Code: billing.CodeNotFound, Message: p.scrub(errors.New(msg)).Error(), Cause: p.scrub(err)}
		}
		return &billing.Error{Code: billing.CodePaymentProvider, Message: "Stripe refused to " + what, Cause: p.scrub(err)}
	}
	return &billing.Error{Code: billing.CodePaymentProvider, Message: "Stripe could not be reached to " + what + "; try again in a moment", Cause: p.scrub(err)}
}

// scrub returns err's text with the secret key removed, as a new error:
// Stripe's errors can quote the Authorization header, and the original is
// not kept in the chain so nothing can unwrap it back.
func (p *StripeProvider) scrub(err error) error {
	s := err.Error()
	if p.secretKey != "" {
		s = strings.ReplaceAll(s, p.secretKey, "[redacted key]")
	}
	return errors.New(s)
}
