package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Store is what the payment service needs from storage (*db.DB).
type Store interface {
	FindCustomer(ctx context.Context, ref string) (billing.Customer, error)
	Balance(ctx context.Context, ref string) (billing.Balance, error)
	CurrentPriceBook(ctx context.Context) (*billing.PriceBook, error)

	ProviderCustomer(ctx context.Context, customerID, provider string) (string, error)
	SaveProviderCustomer(ctx context.Context, customerID, provider, providerID string) error
	SaveCard(ctx context.Context, customerID, provider string, c billing.Card) (billing.Card, error)
	FindCards(ctx context.Context, customerID, provider string) ([]billing.Card, error)
	SetDefaultCard(ctx context.Context, customerID, cardID string) (billing.Card, error)
	RemoveCard(ctx context.Context, customerID, cardID string) (billing.Card, error)

	CreateTopUp(ctx context.Context, in billing.TopUp, key, paymentMethodID string) (billing.TopUp, bool, error)
	RecordPayment(ctx context.Context, topUpID string, p billing.Payment, pol billing.PaymentPolicy) (billing.TopUp, error)
	FindTopUp(ctx context.Context, id string) (billing.TopUp, error)
	ApplyPaymentEvent(ctx context.Context, provider string, ev billing.PaymentEvent, pol billing.PaymentPolicy) (bool, error)
	RefundTopUpBy(ctx context.Context, topUpID string, actor billing.Actor, reason string) (billing.TopUp, int64, bool, error)

	FindRefillSettings(ctx context.Context, customerID string) (billing.RefillSettings, bool, error)
	RefillMonth(ctx context.Context, customerID string, now time.Time) (int, int64, error)
	RecoverRefillJobs(ctx context.Context) (int, error)
	ClaimRefillJob(ctx context.Context) (billing.RefillJob, bool, error)
	NextRefillAt(ctx context.Context) (time.Time, error)
	SkipRefillJob(ctx context.Context, job billing.RefillJob, why, reason string, data map[string]any) error
	RetryRefillJobLater(ctx context.Context, job billing.RefillJob, after time.Duration, why string) error
	AttachRefillTopUp(ctx context.Context, job billing.RefillJob, topUpID string) error
	RefillSignal() <-chan struct{}
}

// Service runs purchases: one-click top-ups, saved cards, auto-refill jobs,
// provider events and refunds. It calls the provider and records what the
// provider said; the database makes the grant exactly once.
type Service struct {
	Provider billing.PaymentProvider
	Store    Store
	Policy   billing.PaymentPolicy
	// Policies, when set, is the policy in force (the admin console edits
	// it while Tally runs); Policy is used without it.
	Policies func(context.Context) billing.PaymentPolicy
	Log      *slog.Logger
	Now      func() time.Time
	// OnRefill is told each refill job's outcome (metrics).
	OnRefill func(result string)
	// ReturnURL is where a customer comes back to after authenticating an
	// auto-refill their bank held (the portal's /portal/top-ups/return).
	// Stripe gives a link to authenticate an off-session payment only when
	// the charge has one; without it the customer has no way to confirm.
	ReturnURL string
}

// policy is the payment policy in force for this request.
func (s *Service) policy(ctx context.Context) billing.PaymentPolicy {
	if s.Policies != nil {
		return s.Policies(ctx)
	}
	return s.Policy
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// providerCustomer returns the customer's id at the provider, creating it.
func (s *Service) providerCustomer(ctx context.Context, customerID string) (string, error) {
	id, err := s.Store.ProviderCustomer(ctx, customerID, s.Provider.Name())
	if err != nil || id != "" {
		return id, err
	}
	c, err := s.Store.FindCustomer(ctx, customerID)
	if err != nil {
		return "", err
	}
	id, err = s.Provider.EnsureCustomer(ctx, c, "")
	if err != nil {
		return "", err
	}
	return id, s.Store.SaveProviderCustomer(ctx, customerID, s.Provider.Name(), id)
}

// StartCardSetup returns the hosted page where the customer adds a card.
func (s *Service) StartCardSetup(ctx context.Context, customerID, successURL, cancelURL string) (billing.CardSetup, error) {
	pc, err := s.providerCustomer(ctx, customerID)
	if err != nil {
		return billing.CardSetup{}, err
	}
	return s.Provider.StartCardSetup(ctx, pc, successURL, cancelURL)
}

// CompleteCardSetup saves the card a finished setup added, if the setup is
// the customer's, and makes it the default: the provider checks that it was
// started for the customer's provider customer (a customer with none has
// started no setup), so another customer's setup id is not_found and saves
// nothing; a card added after a decline must not leave the declined one in
// place, to be declined again on the next click. Errors: not_found,
// validation_failed (the setup is not finished), conflict (the card is
// saved to another customer), payment_provider_error.
func (s *Service) CompleteCardSetup(ctx context.Context, customerID, setupID string) (billing.Card, error) {
	pc, err := s.Store.ProviderCustomer(ctx, customerID, s.Provider.Name())
	if err != nil {
		return billing.Card{}, err
	}
	if pc == "" {
		return billing.Card{}, billing.Errorf(billing.CodeNotFound, "no such card setup: start again from the portal")
	}
	card, err := s.Provider.CompleteCardSetup(ctx, pc, setupID)
	if err != nil {
		return billing.Card{}, err
	}
	return s.saveDefaultCard(ctx, customerID, card)
}

// SetDefaultCard makes a saved card the one top-ups charge.
func (s *Service) SetDefaultCard(ctx context.Context, customerID, cardID string) (billing.Card, error) {
	c, err := s.Store.SetDefaultCard(ctx, customerID, cardID)
	if err != nil {
		return c, err
	}
	pc, err := s.providerCustomer(ctx, customerID)
	if err != nil {
		return c, err
	}
	return c, s.Provider.SetDefaultCard(ctx, pc, c.ProviderID)
}

// RemoveCard removes a saved card here and at the provider.
func (s *Service) RemoveCard(ctx context.Context, customerID, cardID string) (billing.Card, error) {
	c, err := s.Store.RemoveCard(ctx, customerID, cardID)
	if err != nil {
		return c, err
	}
	if err := s.Provider.DetachCard(ctx, c.ProviderID); err != nil {
		s.log().Warn("detaching a card at the provider", "card", c.ID, "err", err)
	}
	return c, nil
}

// DefaultCard is the card top-ups charge (ok = false when none is saved).
func (s *Service) DefaultCard(ctx context.Context, customerID string) (billing.Card, bool, error) {
	cards, err := s.Store.FindCards(ctx, customerID, s.Provider.Name())
	if err != nil || len(cards) == 0 {
		return billing.Card{}, false, err
	}
	for _, c := range cards {
		if c.Default {
			return c, true, nil
		}
	}
	return cards[0], true, nil
}

// PackDescription is what a top-up of pack p says it bought ("Scale: 12,000
// credits", "+ 500 bonus" when the pack has one): its receipts' line.
func PackDescription(p billing.CreditPack) string {
	name := p.Name
	if name == "" {
		name = groupCredits(p.Credits) + " credits"
	}
	if p.Bonus > 0 {
		return fmt.Sprintf("%s: %s credits + %s bonus", name, groupCredits(p.Credits), groupCredits(p.Bonus))
	}
	return fmt.Sprintf("%s: %s credits", name, groupCredits(p.Credits))
}

// Quote prices a top-up request without buying anything.
func (s *Service) Quote(ctx context.Context, req billing.TopUpRequest) (billing.Credits, billing.Money, string, error) {
	pb, err := s.Store.CurrentPriceBook(ctx)
	if err != nil {
		return 0, billing.Money{}, "", err
	}
	switch {
	case req.PackID != "":
		p, ok := pb.Pack(req.PackID)
		if !ok {
			return 0, billing.Money{}, "", billing.Errorf(billing.CodeValidation, "No credit pack %q.", req.PackID).With("param", "pack")
		}
		if !p.IsActive() && req.Origin != billing.OriginAutoRefill {
			// Off sale: auto-refills set up with it keep buying it.
			return 0, billing.Money{}, "", billing.Errorf(billing.CodeValidation, "Credit pack %q is no longer sold.", req.PackID).With("param", "pack")
		}
		return p.Total(), p.Price, PackDescription(p), nil
	case req.Credits > 0:
		pol := s.policy(ctx)
		price, err := billing.PriceForCredits(pb, req.Credits, pol)
		if err != nil {
			return 0, billing.Money{}, "", err
		}
		// Fewer credits than the smallest top-up buys still cost that
		// top-up: buy what it buys, not fewer credits for the same money.
		credits := req.Credits
		if least, _, err := billing.CustomCredits(pb, pb.CustomPolicy(pol).CustomMin, pol); err == nil && credits < least {
			credits = least
		}
		return credits, price, fmt.Sprintf("%s credits", groupCredits(credits)), nil
	default:
		credits, price, err := billing.CustomCredits(pb, req.Amount, s.policy(ctx))
		if err != nil {
			return 0, billing.Money{}, "", err
		}
		return credits, price, fmt.Sprintf("%s credits (custom amount)", groupCredits(credits)), nil
	}
}

// groupCredits writes credits with thousands separators ("1,000", "2,500.5")
// for descriptions: they are shown on receipts, in the purchase list and at
// the provider, next to amounts the portal writes the same way.
func groupCredits(c billing.Credits) string {
	s := c.String()
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if hasFrac {
		b.WriteString("." + frac)
	}
	return sign + b.String()
}

// TopUp buys credits with the customer's default card. The result is the
// top-up: succeeded (credits granted), requires_action (send the customer
// to NextActionURL), failed (FailureReason says why; nothing granted) or
// pending (the provider will tell us by webhook). Errors: no_payment_method,
// validation_failed, payment_provider_error.
func (s *Service) TopUp(ctx context.Context, customerID string, req billing.TopUpRequest) (billing.TopUp, error) {
	if err := billing.CheckIdempotencyKey(req.Key); err != nil || req.Key == "" {
		return billing.TopUp{}, billing.Errorf(billing.CodeInvalidRequest, "A top-up needs a key that identifies the click.")
	}
	card, ok, err := s.DefaultCard(ctx, customerID)
	if err != nil {
		return billing.TopUp{}, err
	}
	if !ok {
		return billing.TopUp{}, billing.Errorf(billing.CodeNoPaymentMethod, "Add a card first: there is no saved card to charge.")
	}
	credits, price, desc, err := s.Quote(ctx, req)
	if err != nil {
		return billing.TopUp{}, err
	}
	origin := req.Origin
	if origin == "" {
		origin = billing.OriginPortal
	}
	tu, created, err := s.Store.CreateTopUp(ctx, billing.TopUp{Customer: customerID, Origin: origin, PackID: req.PackID, Description: desc,
		Credits: credits, Price: price, Provider: s.Provider.Name(), CardBrand: card.Brand, CardLast4: card.Last4}, req.Key, card.ID)
	if err != nil {
		return tu, err
	}
	if !created && tu.Status != billing.TopUpPending {
		return tu, nil // the same click again: its outcome
	}
	return s.charge(ctx, tu, card, req)
}

// charge asks the provider to charge a top-up and records the answer. The
// provider's idempotency key is the top-up's id: a retry (a double click
// that raced the first, a job after a crash) charges once.
func (s *Service) charge(ctx context.Context, tu billing.TopUp, card billing.Card, req billing.TopUpRequest) (billing.TopUp, error) {
	pc, err := s.providerCustomer(ctx, tu.Customer)
	if err != nil {
		return tu, err
	}
	p, err := s.Provider.Charge(ctx, billing.ChargeRequest{ProviderCustomerID: pc, PaymentMethodID: card.ProviderID, Amount: tu.Price,
		Description: tu.Description, IdempotencyKey: "tally_" + tu.ID, Metadata: map[string]string{"tally_top_up": tu.ID, "tally_customer": tu.Customer},
		ReturnURL: req.ReturnURL, OffSession: req.OffSession})
	if err != nil {
		return tu, err
	}
	return s.Store.RecordPayment(ctx, tu.ID, p, s.policy(ctx))
}

// Refresh asks the provider for a top-up's payment state (a customer back
// from authenticating) and records it; the webhook may also settle it.
func (s *Service) Refresh(ctx context.Context, topUpID string) (billing.TopUp, error) {
	tu, err := s.Store.FindTopUp(ctx, topUpID)
	if err != nil || tu.PaymentID == "" || tu.Status == billing.TopUpSucceeded || tu.Status == billing.TopUpRefunded {
		return tu, err
	}
	p, err := s.Provider.FindPayment(ctx, tu.PaymentID)
	if err != nil {
		return tu, err
	}
	return s.Store.RecordPayment(ctx, tu.ID, p, s.policy(ctx))
}

// HandleEvent applies a provider event once (webhooks and the sandbox's
// authentication page both come here).
func (s *Service) HandleEvent(ctx context.Context, ev billing.PaymentEvent) (bool, error) {
	return s.Store.ApplyPaymentEvent(ctx, s.Provider.Name(), ev, s.policy(ctx))
}

// Refund refunds the unused credits of a paid top-up within its refund
// window: the ledger first (so the credits cannot be spent meanwhile), then
// the provider, with an idempotency key per top-up. A failed provider call
// is completed by retrying: the ledger side is not written again. Errors:
// not_found, refund_window_closed, nothing_to_refund, payment_provider_error.
func (s *Service) Refund(ctx context.Context, topUpID string) (billing.TopUp, error) {
	return s.RefundBy(ctx, topUpID, billing.Actor{}, "")
}

// refundable asks the provider, before any credit is removed, whether the
// payment of a paid top-up is there to refund: a payment it does not know
// (or no longer holds as paid) would leave the ledger saying "refunded"
// while no money went back, and no retry could complete it. A provider
// that cannot be reached is not a refusal: the refund goes ahead, and a
// failed provider call is completed by retrying, as Refund says.
func (s *Service) refundable(ctx context.Context, topUpID string) error {
	tu, err := s.Store.FindTopUp(ctx, topUpID)
	if err != nil || tu.Status != billing.TopUpSucceeded || tu.PaymentID == "" {
		return nil // the store's own checks answer these
	}
	p, err := s.Provider.FindPayment(ctx, tu.PaymentID)
	var be *billing.Error
	switch {
	case errors.As(err, &be) && be.Code == billing.CodeNotFound:
		return billing.Errorf(billing.CodePaymentProvider,
			"The payment provider (%s) has no payment %s for top-up %s, so it cannot refund it. Nothing was refunded and no credits were removed.",
			s.Provider.Name(), tu.PaymentID, tu.ID).With("payment", tu.PaymentID)
	case err == nil && p.Status != billing.PaymentSucceeded:
		return billing.Errorf(billing.CodePaymentProvider,
			"The payment provider (%s) holds payment %s of top-up %s as %s, not paid, so it cannot refund it. Nothing was refunded and no credits were removed.",
			s.Provider.Name(), tu.PaymentID, tu.ID, p.Status).With("payment", tu.PaymentID)
	}
	return nil
}

// RefundBy is Refund made by actor (an admin in the console), with their
// reason on the refund entry; zero actor and "" are the API's refund.
func (s *Service) RefundBy(ctx context.Context, topUpID string, actor billing.Actor, reason string) (billing.TopUp, error) {
	if err := s.refundable(ctx, topUpID); err != nil {
		return billing.TopUp{}, err
	}
	tu, amount, _, err := s.Store.RefundTopUpBy(ctx, topUpID, actor, reason)
	if err != nil {
		return tu, err
	}
	if tu.PaymentID != "" && amount > 0 {
		if _, err := s.Provider.Refund(ctx, tu.PaymentID, billing.Money{Amount: amount, Currency: tu.Price.Currency}, "tally_refund_"+tu.ID); err != nil {
			var be *billing.Error
			if errors.As(err, &be) {
				be = be.With("note", "The credits were removed; retry the same request to complete the refund at the payment provider.")
				return tu, be
			}
			return tu, err
		}
	}
	return tu, nil
}
