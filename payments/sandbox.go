package payments

import (
	"context"
	"encoding/json"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The sandbox's test cards: Stripe's test numbers, with the same outcomes.
const (
	SandboxCardSucceeds     = "4242424242424242" // charges succeed
	SandboxCardDeclined     = "4000000000000002" // declined: "Your card was declined."
	SandboxCardAuthenticate = "4000002760003184" // asks for 3-D Secure on every charge
)

// sandboxCards maps the last four digits of a test card to its number.
var sandboxCards = map[string]string{
	SandboxCardSucceeds[12:]:     SandboxCardSucceeds,
	SandboxCardDeclined[12:]:     SandboxCardDeclined,
	SandboxCardAuthenticate[12:]: SandboxCardAuthenticate,
}

const msgSandboxCards = "the sandbox accepts only the test cards 4242 4242 4242 4242 (succeeds), 4000 0000 0000 0002 (declined) and 4000 0027 6000 3184 (asks to authenticate)"

// SandboxProvider is an offline PaymentProvider for demos and tests
// (`tally serve --demo` without a Stripe key). It mimics Stripe's test
// cards and keeps setups, payments and idempotency keys in memory: a restart
// forgets them, but saved cards keep working because a sandbox payment
// method id names its test card (pm_sandbox_4242_<random>). It is safe for
// concurrent use.
//
// Its two pages are served by the HTTP layer, which calls back into it:
//
//   - GET baseURL/sandbox/cards/new?setup=<id>&return=...&cancel=...: a card
//     form; on POST call AddCard and redirect to the success URL with
//     ?session_id=<id> (return), or to cancel. Both query values are
//     site-relative when they are on baseURL; CardSetup(id) has the stored
//     absolute URLs, which a page can trust more than a query.
//   - GET baseURL/sandbox/authenticate/<payment id>?return=...: the bank's
//     3-D Secure page; show Authentication(id), and on POST call
//     Authenticate(id, approve), feed the returned event into the same
//     handling as Stripe's webhooks, and redirect to return (site-relative
//     when on baseURL; absent for an off-session charge, then the portal).
//
// The sandbox has no webhooks (ParseEvent always fails) and no hosted
// receipts (ReceiptURL is empty).
type SandboxProvider struct {
	baseURL string
	now     func() time.Time

	mu        sync.Mutex
	customers map[string]string // Tally customer id -> cus_sandbox_...
	setups    map[string]*SandboxCardSetup
	cards     map[string]billing.Card // added in this process, for their expiry
	payments  map[string]*sandboxPayment
	charges   map[string]replay // idempotency key -> payment id
	refunds   map[string]replay // idempotency key -> refund id
	refundOf  map[string]billing.Refund
	checkouts map[string]string // idempotency key -> setup id

	// Recall, when set, finds a succeeded payment this process did not
	// make (one made before a restart, or the demo's history) in Tally's
	// own records: the sandbox keeps its payments in memory only, and
	// without it could never refund them.
	Recall func(ctx context.Context, paymentID string) (billing.Money, bool)
}

var _ billing.PaymentProvider = (*SandboxProvider)(nil)

// replay is what an idempotency key was first used for.
type replay struct {
	fingerprint string
	id          string
}

type sandboxPayment struct {
	pay         billing.Payment
	amount      billing.Money
	description string
	metadata    map[string]string
	returnURL   string
	refunded    int64
	decided     *billing.PaymentEvent // set by Authenticate
	approved    bool
}

// SandboxCardSetup is a card setup of the sandbox: what its card page needs.
type SandboxCardSetup struct {
	ID                 string
	ProviderCustomerID string
	// SuccessURL is the success URL given to StartCardSetup with
	// ?session_id=<ID> appended, as Stripe does.
	SuccessURL string
	CancelURL  string
	// Card is the card added (nil until AddCard succeeds).
	Card *billing.Card
	// Checkout is set for a checkout (StartCheckout): the card form pays it
	// when the card is added. PaymentID is that payment.
	Checkout  *CheckoutRequest
	PaymentID string
}

// SandboxAuthentication is a sandbox payment as its 3-D Secure page shows it.
type SandboxAuthentication struct {
	PaymentID   string
	Amount      billing.Money
	Description string
	Card        *billing.Card
	Status      string // requires_action until Authenticate, then succeeded or failed
	// ReturnURL is the charge's ReturnURL: where to send the customer after
	// the page (empty for an off-session charge).
	ReturnURL string
}

// NewSandbox returns a sandbox whose pages live under baseURL, Tally's
// public URL (http://127.0.0.1:8080).
func NewSandbox(baseURL string) *SandboxProvider {
	return &SandboxProvider{
		baseURL:   strings.TrimRight(baseURL, "/"),
		now:       time.Now,
		customers: map[string]string{},
		setups:    map[string]*SandboxCardSetup{},
		cards:     map[string]billing.Card{},
		payments:  map[string]*sandboxPayment{},
		charges:   map[string]replay{},
		refunds:   map[string]replay{},
		refundOf:  map[string]billing.Refund{},
		checkouts: map[string]string{},
	}
}

// Name is "sandbox".
func (s *SandboxProvider) Name() string { return "sandbox" }

// EnsureCustomer returns existingID, or a cus_sandbox_ id (the same one for
// the same Tally customer, as Stripe's idempotency would).
func (s *SandboxProvider) EnsureCustomer(_ context.Context, c billing.Customer, existingID string) (string, error) {
	if existingID != "" {
		return existingID, nil
	}
	if c.ID == "" {
		return "", billing.Errorf(billing.CodeValidation, "a customer id is needed to create the sandbox customer")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.customers[c.ID]
	if !ok {
		id = randomID("cus_sandbox_")
		s.customers[c.ID] = id
	}
	return id, nil
}

// StartCardSetup makes a setup and returns the sandbox card page's URL.
func (s *SandboxProvider) StartCardSetup(_ context.Context, providerCustomerID, successURL, cancelURL string) (billing.CardSetup, error) {
	if providerCustomerID == "" {
		return billing.CardSetup{}, billing.Errorf(billing.CodeValidation, "the customer has no sandbox customer yet")
	}
	if err := checkAbsURL("success URL", successURL); err != nil {
		return billing.CardSetup{}, err
	}
	if err := checkAbsURL("cancel URL", cancelURL); err != nil {
		return billing.CardSetup{}, err
	}
	id := randomID("cs_sandbox_")
	setup := &SandboxCardSetup{
		ID:                 id,
		ProviderCustomerID: providerCustomerID,
		SuccessURL:         withQuery(successURL, SessionIDParam, id),
		CancelURL:          cancelURL,
	}
	s.mu.Lock()
	s.setups[id] = setup
	s.mu.Unlock()
	page := s.baseURL + "/sandbox/cards/new?setup=" + id +
		"&return=" + url.QueryEscape(s.onSite(setup.SuccessURL)) +
		"&cancel=" + url.QueryEscape(s.onSite(cancelURL))
	return billing.CardSetup{URL: page, ProviderID: id}, nil
}

// CardSetup returns a setup, for the card page.
func (s *SandboxProvider) CardSetup(setupID string) (SandboxCardSetup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setup, ok := s.setups[setupID]
	if !ok {
		return SandboxCardSetup{}, errNoSetup()
	}
	out := *setup
	out.Card = cloneCard(setup.Card)
	if setup.Checkout != nil {
		co := *setup.Checkout
		out.Checkout = &co
	}
	return out, nil
}

// onSite makes u site-relative ("/portal/cards/added?session_id=...") when
// it is on the sandbox's own base URL, as the pages' return links always
// are: the pages live on that site, and a relative link passes a same-site
// check against open redirects. Any other URL is left absolute.
func (s *SandboxProvider) onSite(u string) string {
	if rest, ok := strings.CutPrefix(u, s.baseURL); ok && s.baseURL != "" && strings.HasPrefix(rest, "/") && !strings.HasPrefix(rest, "//") {
		return rest
	}
	return u
}

func errNoSetup() error {
	return billing.Errorf(billing.CodeNotFound, "no such card setup: start again from the portal")
}

// AddCard is the card page's submit: it checks the card like a card form
// would (Luhn, expiry in the future, a 3 or 4 digit CVC), accepts only the
// three test cards, and saves it on the setup. A two-digit year means
// 20xx. Errors: not_found (no such setup), conflict (the setup already has
// a card), validation_failed with a message for the customer and the field
// in Details["param"] (number, exp_month, exp_year, cvc).
func (s *SandboxProvider) AddCard(setupID, number string, expMonth, expYear int, cvc string) (billing.Card, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setup, ok := s.setups[setupID]
	if !ok {
		return billing.Card{}, errNoSetup()
	}
	if setup.Card != nil {
		return billing.Card{}, billing.Errorf(billing.CodeConflict, "this card setup is already finished")
	}
	card, err := s.checkCard(number, expMonth, expYear, cvc)
	if err != nil {
		return billing.Card{}, err
	}
	if co := setup.Checkout; co != nil {
		// A checkout pays as it takes the card, as Stripe Checkout does: a
		// declined card stays on the page with the bank's answer, and
		// another card can be tried.
		s.cards[card.ProviderID] = card
		pay, err := s.chargeLocked(billing.ChargeRequest{ProviderCustomerID: setup.ProviderCustomerID, PaymentMethodID: card.ProviderID,
			Amount: co.Amount, Description: co.Description, Metadata: co.Metadata, IdempotencyKey: co.IdempotencyKey + ":" + card.ProviderID,
			ReturnURL: setup.SuccessURL})
		if err != nil {
			return billing.Card{}, err
		}
		if pay.Status == billing.PaymentFailed {
			return billing.Card{}, billing.Errorf(billing.CodeCardDeclined, "%s Try another card.", pay.FailureReason).With("param", "number")
		}
		setup.PaymentID = pay.ProviderID
	}
	setup.Card = &card
	s.cards[card.ProviderID] = card
	return card, nil
}

// StartCheckout makes a setup that also pays: the sandbox's card form shows
// the amount and charges the card when it is added (the test cards'
// outcomes apply; a declined card stays on the form). The same idempotency
// key gives the same page.
func (s *SandboxProvider) StartCheckout(_ context.Context, req CheckoutRequest) (billing.CardSetup, error) {
	if err := checkCheckout(req); err != nil {
		return billing.CardSetup{}, err
	}
	s.mu.Lock()
	id, ok := s.checkouts[req.IdempotencyKey]
	s.mu.Unlock()
	if !ok {
		setup, err := s.StartCardSetup(context.Background(), req.ProviderCustomerID, req.SuccessURL, req.CancelURL)
		if err != nil {
			return billing.CardSetup{}, err
		}
		id = setup.ProviderID
		s.mu.Lock()
		co := req
		co.Metadata = maps.Clone(req.Metadata)
		s.setups[id].Checkout = &co
		s.checkouts[req.IdempotencyKey] = id
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	setup := s.setups[id]
	page := s.baseURL + "/sandbox/cards/new?setup=" + id +
		"&return=" + url.QueryEscape(s.onSite(setup.SuccessURL)) +
		"&cancel=" + url.QueryEscape(s.onSite(setup.CancelURL))
	return billing.CardSetup{URL: page, ProviderID: id}, nil
}

// CompleteCheckout returns a finished checkout's card and payment.
// validation_failed when no card was added yet or the setup is not a
// checkout; not_found for an unknown id.
func (s *SandboxProvider) CompleteCheckout(_ context.Context, setupID string) (CheckoutResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setup, ok := s.setups[setupID]
	if !ok {
		return CheckoutResult{}, errNoSetup()
	}
	if setup.Checkout == nil {
		return CheckoutResult{}, billing.Errorf(billing.CodeValidation, "this card setup does not pay anything")
	}
	p, ok := s.payments[setup.PaymentID]
	if setup.Card == nil || !ok {
		return CheckoutResult{}, billing.Errorf(billing.CodeValidation, "the checkout is not finished: no card was added")
	}
	return CheckoutResult{Card: *setup.Card, Payment: clonePayment(p.pay), Metadata: maps.Clone(setup.Checkout.Metadata)}, nil
}

// SetupCharge is what a setup's card form pays (ok false: it only saves
// the card).
func (s *SandboxProvider) SetupCharge(setupID string) (billing.Money, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setup, ok := s.setups[setupID]
	if !ok || setup.Checkout == nil {
		return billing.Money{}, "", false
	}
	return setup.Checkout.Amount, setup.Checkout.Description, true
}

// checkCard checks every field, so a card form can show all that is wrong
// at once: the error's Message and param are the first problem, and
// Details["errors"] maps each field at fault (number, exp_month, exp_year,
// cvc) to its message.
func (s *SandboxProvider) checkCard(number string, expMonth, expYear int, cvc string) (billing.Card, error) {
	errs := map[string]string{}
	var first string
	invalid := func(param, msg string) {
		if _, ok := errs[param]; !ok {
			errs[param] = msg
		}
		if first == "" {
			first = param
		}
	}
	digits := strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(number))
	switch {
	case len(digits) < 12 || len(digits) > 19 || !allDigits(digits):
		invalid("number", "Enter the card number: 12 to 19 digits.")
	case !luhn(digits):
		invalid("number", "The card number is invalid: check the digits.")
	case len(digits) != 16 || sandboxCards[digits[12:]] != digits:
		invalid("number", "This card cannot be used here: "+msgSandboxCards+".")
	}
	if expMonth < 1 || expMonth > 12 {
		invalid("exp_month", "The expiry month must be 1 to 12.")
	}
	if expYear >= 0 && expYear < 100 {
		expYear += 2000
	}
	now := s.now()
	switch {
	case expYear < 2000 || expYear > now.Year()+50:
		invalid("exp_year", "The expiry year is invalid.")
	case expMonth >= 1 && expMonth <= 12 && !now.Before(time.Date(expYear, time.Month(expMonth)+1, 1, 0, 0, 0, 0, time.UTC)):
		// A card is good through the last day of its expiry month.
		invalid("exp_year", "The card has expired.")
	}
	cvc = strings.TrimSpace(cvc)
	if len(cvc) < 3 || len(cvc) > 4 || !allDigits(cvc) {
		invalid("cvc", "The security code (CVC) is 3 or 4 digits.")
	}
	if first != "" {
		return billing.Card{}, billing.Errorf(billing.CodeValidation, "%s", errs[first]).With("param", first).With("errors", errs)
	}
	last4 := digits[12:]
	return billing.Card{
		ProviderID: randomID("pm_sandbox_" + last4 + "_"),
		Brand:      "visa", // the three test cards are Visa
		Last4:      last4,
		ExpMonth:   expMonth,
		ExpYear:    expYear,
	}, nil
}

// CompleteCardSetup returns the card AddCard saved on the setup, if the
// setup was started for providerCustomerID (another customer's is not_found).
func (s *SandboxProvider) CompleteCardSetup(_ context.Context, providerCustomerID, setupID string) (billing.Card, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setup, ok := s.setups[setupID]
	if !ok || providerCustomerID == "" || setup.ProviderCustomerID != providerCustomerID {
		return billing.Card{}, errNoSetup()
	}
	if setup.Card == nil {
		return billing.Card{}, billing.Errorf(billing.CodeValidation, "the card setup is not finished: no card was saved")
	}
	return *setup.Card, nil
}

// SetDefaultCard checks the ids; the sandbox keeps no defaults.
func (s *SandboxProvider) SetDefaultCard(_ context.Context, providerCustomerID, paymentMethodID string) error {
	if providerCustomerID == "" {
		return billing.Errorf(billing.CodeValidation, "a sandbox customer is needed to set the default card")
	}
	_, err := sandboxCard(paymentMethodID)
	return err
}

// DetachCard checks the id; the sandbox keeps no attachments.
func (s *SandboxProvider) DetachCard(_ context.Context, paymentMethodID string) error {
	_, err := sandboxCard(paymentMethodID)
	return err
}

// sandboxCard reads the test card a payment method id names.
func sandboxCard(pmID string) (string, error) {
	rest, ok := strings.CutPrefix(pmID, "pm_sandbox_")
	last4, random, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || random == "" || sandboxCards[last4] == "" {
		if strings.HasPrefix(pmID, "pm_") {
			return "", billing.Errorf(billing.CodeNoPaymentMethod, "this card was saved with another payment provider; add it again")
		}
		return "", billing.Errorf(billing.CodeValidation, "%q is not a sandbox payment method id", pmID)
	}
	return last4, nil
}

// Charge charges a test card, once per idempotency key: 4242 succeeds,
// 0002 fails with "Your card was declined.", 3184 requires action (on- and
// off-session alike: the customer must come to the authentication page,
// NextActionURL). Reusing a key for another request is idempotency_conflict.
func (s *SandboxProvider) Charge(_ context.Context, req billing.ChargeRequest) (billing.Payment, error) {
	if err := checkCharge(req); err != nil {
		return billing.Payment{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chargeLocked(req)
}

// chargeLocked is Charge with s.mu held.
func (s *SandboxProvider) chargeLocked(req billing.ChargeRequest) (billing.Payment, error) {
	last4, err := sandboxCard(req.PaymentMethodID)
	if err != nil {
		return billing.Payment{}, err
	}
	fp := fingerprint(req)
	if r, ok := s.charges[req.IdempotencyKey]; ok {
		if r.fingerprint != fp {
			return billing.Payment{}, errKeyReused()
		}
		return clonePayment(s.payments[r.id].pay), nil
	}
	id := randomID("pi_sandbox_")
	card, ok := s.cards[req.PaymentMethodID]
	if !ok {
		card = billing.Card{ProviderID: req.PaymentMethodID, Brand: "visa", Last4: last4}
	}
	pay := billing.Payment{ProviderID: id, Card: &card}
	switch sandboxCards[last4] {
	case SandboxCardSucceeds:
		pay.Status = billing.PaymentSucceeded
	case SandboxCardDeclined:
		pay.Status, pay.FailureCode, pay.FailureReason = billing.PaymentFailed, "card_declined", msgDeclined
	case SandboxCardAuthenticate:
		pay.Status = billing.PaymentRequiresAction
		pay.NextActionURL = s.baseURL + "/sandbox/authenticate/" + id
		if req.ReturnURL != "" {
			pay.NextActionURL += "?return=" + url.QueryEscape(s.onSite(req.ReturnURL))
		}
		if req.OffSession { // as Stripe says it for an off-session charge
			pay.FailureCode, pay.FailureReason = "authentication_required", msgAuthRequired
		}
	}
	meta := make(map[string]string, len(req.Metadata))
	for k, v := range req.Metadata {
		meta[k] = v
	}
	s.payments[id] = &sandboxPayment{pay: pay, amount: req.Amount, description: req.Description, metadata: meta, returnURL: req.ReturnURL}
	s.charges[req.IdempotencyKey] = replay{fingerprint: fp, id: id}
	return clonePayment(pay), nil
}

func errKeyReused() error {
	return billing.Errorf(billing.CodeIdempotencyConflict, "this idempotency key was already used for a different request")
}

// fingerprint identifies a charge request, as Stripe compares parameters
// under one idempotency key.
func fingerprint(req billing.ChargeRequest) string {
	b, _ := json.Marshal(req) // maps marshal with sorted keys
	return string(b)
}

// Authentication returns a payment for the sandbox's 3-D Secure page.
func (s *SandboxProvider) Authentication(paymentID string) (SandboxAuthentication, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[paymentID]
	if !ok {
		return SandboxAuthentication{}, errNoPayment()
	}
	return SandboxAuthentication{
		PaymentID:   paymentID,
		Amount:      p.amount,
		Description: p.description,
		Card:        cloneCard(p.pay.Card),
		Status:      p.pay.Status,
		ReturnURL:   p.returnURL,
	}, nil
}

func errNoPayment() error {
	return billing.Errorf(billing.CodeNotFound, "no such sandbox payment")
}

// Authenticate is the customer's answer on the 3-D Secure page: approve
// makes the payment succeed, otherwise it fails. It returns the event the
// HTTP layer must handle like a Stripe webhook: payment_intent.succeeded or
// payment_intent.payment_failed, with a unique ID and the TopUpID from the
// charge's metadata. Answering again the same way returns the same event
// (same ID: processed once); the other way, or for a payment that did not
// ask to authenticate, is a conflict.
func (s *SandboxProvider) Authenticate(paymentID string, approve bool) (billing.PaymentEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[paymentID]
	if !ok {
		return billing.PaymentEvent{}, errNoPayment()
	}
	if p.decided != nil {
		if p.approved != approve {
			return billing.PaymentEvent{}, billing.Errorf(billing.CodeConflict, "this payment was already %s", map[bool]string{true: "authenticated", false: "refused"}[p.approved])
		}
		return cloneEvent(*p.decided), nil
	}
	if p.pay.Status != billing.PaymentRequiresAction {
		return billing.PaymentEvent{}, billing.Errorf(billing.CodeConflict, "this payment does not wait for authentication (it is %s)", p.pay.Status)
	}
	ev := billing.PaymentEvent{
		ID:        randomID("evt_sandbox_"),
		PaymentID: paymentID,
		TopUpID:   p.metadata[MetadataTopUp],
		Card:      cloneCard(p.pay.Card),
		Created:   s.now().UTC(),
	}
	p.pay.NextActionURL = ""
	if approve {
		p.pay.Status, p.pay.FailureCode, p.pay.FailureReason = billing.PaymentSucceeded, "", ""
		ev.Type = billing.EventPaymentSucceeded
	} else {
		p.pay.Status, p.pay.FailureCode, p.pay.FailureReason = billing.PaymentFailed, "payment_intent_authentication_failure", msgAuthFailed
		ev.Type = billing.EventPaymentFailed
		ev.FailureReason = msgAuthFailed
	}
	p.decided, p.approved = &ev, approve
	return cloneEvent(ev), nil
}

// payment is a payment made here, or one Recall remembers (s.mu held).
func (s *SandboxProvider) payment(ctx context.Context, paymentID string) (*sandboxPayment, bool) {
	if p, ok := s.payments[paymentID]; ok {
		return p, true
	}
	if s.Recall == nil {
		return nil, false
	}
	amount, ok := s.Recall(ctx, paymentID)
	if !ok {
		return nil, false
	}
	p := &sandboxPayment{pay: billing.Payment{ProviderID: paymentID, Status: billing.PaymentSucceeded}, amount: amount}
	s.payments[paymentID] = p
	return p, true
}

// FindPayment returns a payment's current state.
func (s *SandboxProvider) FindPayment(ctx context.Context, paymentID string) (billing.Payment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payment(ctx, paymentID)
	if !ok {
		return billing.Payment{}, errNoPayment()
	}
	return clonePayment(p.pay), nil
}

// Refund refunds part or all of a succeeded payment, once per idempotency
// key. Errors: not_found, validation_failed (not succeeded, another
// currency, more than is left), nothing_to_refund (fully refunded),
// idempotency_conflict.
func (s *SandboxProvider) Refund(ctx context.Context, paymentID string, amount billing.Money, key string) (billing.Refund, error) {
	if err := checkRefund(paymentID, "pi_sandbox_", amount, key); err != nil {
		return billing.Refund{}, err
	}
	fp := paymentID + "|" + amount.Currency + "|" + strconv.FormatInt(amount.Amount, 10)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refunds[key]; ok {
		if r.fingerprint != fp {
			return billing.Refund{}, errKeyReused()
		}
		return s.refundOf[r.id], nil
	}
	p, ok := s.payment(ctx, paymentID)
	if !ok {
		return billing.Refund{}, errNoPayment()
	}
	switch left := p.amount.Amount - p.refunded; {
	case p.pay.Status != billing.PaymentSucceeded:
		return billing.Refund{}, billing.Errorf(billing.CodeValidation, "only a succeeded payment can be refunded (this one is %s)", p.pay.Status)
	case amount.Currency != p.amount.Currency:
		return billing.Refund{}, billing.Errorf(billing.CodeValidation, "the refund's currency (%s) is not the payment's (%s)", amount.Currency, p.amount.Currency)
	case left == 0:
		return billing.Refund{}, billing.Errorf(billing.CodeNothingToRefund, "the payment is already fully refunded")
	case amount.Amount > left:
		return billing.Refund{}, billing.Errorf(billing.CodeValidation, "the refund (%d) is more than what is left of the payment (%d)", amount.Amount, left)
	}
	p.refunded += amount.Amount
	r := billing.Refund{ProviderID: randomID("re_sandbox_"), Status: "succeeded"}
	s.refunds[key] = replay{fingerprint: fp, id: r.ProviderID}
	s.refundOf[r.ProviderID] = r
	return r, nil
}

// ParseEvent fails: the sandbox has no webhooks; its events come from
// Authenticate.
func (s *SandboxProvider) ParseEvent([]byte, string) (billing.PaymentEvent, bool, error) {
	return billing.PaymentEvent{}, false, billing.Errorf(billing.CodeInvalidRequest, "the sandbox payment provider has no webhooks: configure Stripe to receive them")
}

func cloneCard(c *billing.Card) *billing.Card {
	if c == nil {
		return nil
	}
	cp := *c
	return &cp
}

func clonePayment(p billing.Payment) billing.Payment {
	p.Card = cloneCard(p.Card)
	return p
}

func cloneEvent(e billing.PaymentEvent) billing.PaymentEvent {
	e.Card = cloneCard(e.Card)
	return e
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// luhn reports whether a string of digits passes the Luhn check.
func luhn(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// SetupReturnURL is where the sandbox's card page sends the customer after
// saving a card: the success URL of the setup, with ?session_id= as Stripe
// Checkout does.
func (s *SandboxProvider) SetupReturnURL(setupID string) (string, error) {
	cs, err := s.CardSetup(setupID)
	if err != nil {
		return "", err
	}
	return cs.SuccessURL, nil
}
