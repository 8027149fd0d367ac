package payments

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tally-billing/tally/billing"
)

// ParseEvent verifies a webhook (the body as received and its
// Stripe-Signature header) and reduces it to a PaymentEvent. The signature
// must match the webhook secret and be at most 5 minutes old
// (webhook.DefaultTolerance); otherwise invalid_request. Events of any API
// version are accepted (see the package comment); ok is false for types
// Tally ignores, and for objects Tally did not create (a payment-mode
// Checkout Session, a charge or dispute without a PaymentIntent).
//
// setup_intent.succeeded carries Card with ProviderID only (webhooks do
// not expand the payment method): checkout.session.completed followed by
// CompleteCardSetup(SetupSessionID) gives the full card. payment_intent.*
// events carry the card's details only when the event has them (a failed
// payment's last_payment_error does), and a ReceiptURL only with API
// versions before 2022-11-15; FindPayment reads both.
func (p *StripeProvider) ParseEvent(payload []byte, signature string) (billing.PaymentEvent, bool, error) {
	ev, err := webhook.ConstructEventWithOptions(payload, signature, p.webhookSecret, webhook.ConstructEventOptions{
		Tolerance:                webhook.DefaultTolerance,
		IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		return billing.PaymentEvent{}, false, webhookError(err)
	}
	if ev.ID == "" || ev.Data == nil || len(ev.Data.Raw) == 0 {
		return billing.PaymentEvent{}, false, billing.Errorf(billing.CodeInvalidRequest, "the webhook is not a Stripe event: no id or data.object")
	}
	out := billing.PaymentEvent{ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0).UTC()}
	ok, err := reduceEvent(&out, ev.Data.Raw)
	if err != nil {
		return billing.PaymentEvent{}, false, &billing.Error{Code: billing.CodeInvalidRequest, Message: "the webhook's " + out.Type + " object could not be read", Cause: err}
	}
	if !ok {
		return billing.PaymentEvent{}, false, nil
	}
	return out, true, nil
}

func webhookError(err error) error {
	msg := "the webhook's body is not a Stripe event"
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		msg = "the webhook has no Stripe-Signature header"
	case errors.Is(err, webhook.ErrTooOld):
		msg = "the webhook's signature is more than 5 minutes old"
	case errors.Is(err, webhook.ErrInvalidHeader), errors.Is(err, webhook.ErrNoValidSignature):
		msg = "the webhook's signature does not match the webhook secret"
	}
	return &billing.Error{Code: billing.CodeInvalidRequest, Message: msg, Cause: err}
}

// reduceEvent fills out from the event's data.object; false when Tally
// ignores the event.
func reduceEvent(out *billing.PaymentEvent, raw json.RawMessage) (bool, error) {
	switch out.Type {
	case billing.EventCheckoutCompleted:
		var s whCheckoutSession
		if err := json.Unmarshal(raw, &s); err != nil {
			return false, err
		}
		if s.Mode != "setup" || s.ID == "" {
			return false, nil
		}
		out.SetupSessionID, out.ProviderCustomerID = s.ID, string(s.Customer)
		return true, nil

	case billing.EventSetupSucceeded:
		var si whSetupIntent
		if err := json.Unmarshal(raw, &si); err != nil {
			return false, err
		}
		out.ProviderCustomerID = string(si.Customer)
		out.Card = si.PaymentMethod.card()
		return true, nil

	case billing.EventPaymentSucceeded, billing.EventPaymentFailed, billing.EventPaymentRequiresAction:
		var pi whPaymentIntent
		if err := json.Unmarshal(raw, &pi); err != nil {
			return false, err
		}
		if pi.ID == "" {
			return false, errors.New("no payment intent id")
		}
		out.PaymentID = pi.ID
		out.TopUpID = pi.Metadata[MetadataTopUp]
		out.Card = pi.PaymentMethod.card()
		ch := pi.LatestCharge.charge
		if ch == nil && pi.Charges != nil && len(pi.Charges.Data) > 0 {
			ch = &pi.Charges.Data[len(pi.Charges.Data)-1] // API versions before 2022-11-15
		}
		var next, errType, code, decline, msg string
		if pi.NextAction != nil && pi.NextAction.RedirectToURL != nil {
			next = pi.NextAction.RedirectToURL.URL
		}
		if e := pi.LastPaymentError; e != nil {
			errType, code, decline, msg = e.Type, e.Code, e.DeclineCode, e.Message
			if c := e.PaymentMethod.card(); c != nil && (out.Card == nil || out.Card.Last4 == "") {
				out.Card = c
			}
		}
		if ch != nil && (out.Card == nil || out.Card.Last4 == "") {
			if c := ch.card(); c != nil {
				out.Card = c
			}
		}
		switch out.Type {
		case billing.EventPaymentSucceeded:
			if ch != nil {
				out.ReceiptURL = ch.ReceiptURL
			}
		case billing.EventPaymentRequiresAction:
			out.NextActionURL = next
		case billing.EventPaymentFailed:
			// The event names the outcome; the status may already be
			// requires_payment_method (retryable) or canceled.
			_, _, _, out.FailureReason = intentOutcome("requires_payment_method", "", errType, code, decline, msg)
		}
		return true, nil

	case billing.EventChargeRefunded:
		var ch whCharge
		if err := json.Unmarshal(raw, &ch); err != nil {
			return false, err
		}
		if ch.PaymentIntent == "" {
			return false, nil // not a charge Tally made: Tally charges through PaymentIntents
		}
		out.PaymentID = string(ch.PaymentIntent)
		out.TopUpID = ch.Metadata[MetadataTopUp]
		out.AmountRefunded = ch.AmountRefunded
		return true, nil

	case billing.EventChargeDisputeCreated:
		var d whDispute
		if err := json.Unmarshal(raw, &d); err != nil {
			return false, err
		}
		if d.PaymentIntent == "" || d.ID == "" {
			return false, nil
		}
		out.PaymentID = string(d.PaymentIntent)
		out.DisputeID = d.ID
		out.TopUpID = d.Metadata[MetadataTopUp]
		return true, nil
	}
	return reduceSubscriptionEvent(out, raw) // stripe_subscriptions.go
}

// The structs below read the few fields Tally needs, the same in every
// Stripe API version. Fields that may be an id or an expanded object use
// idRef, pmRef or chargeRef, which accept both.

type whCheckoutSession struct {
	ID       string `json:"id"`
	Mode     string `json:"mode"`
	Customer idRef  `json:"customer"`
}

type whSetupIntent struct {
	ID            string `json:"id"`
	Customer      idRef  `json:"customer"`
	PaymentMethod pmRef  `json:"payment_method"`
}

type whPaymentIntent struct {
	ID            string            `json:"id"`
	Status        string            `json:"status"`
	Metadata      map[string]string `json:"metadata"`
	PaymentMethod pmRef             `json:"payment_method"`
	LatestCharge  chargeRef         `json:"latest_charge"`
	Charges       *struct {
		Data []whCharge `json:"data"`
	} `json:"charges"` // API versions before 2022-11-15
	LastPaymentError *struct {
		Type          string `json:"type"`
		Code          string `json:"code"`
		DeclineCode   string `json:"decline_code"`
		Message       string `json:"message"`
		PaymentMethod pmRef  `json:"payment_method"`
	} `json:"last_payment_error"`
	NextAction *struct {
		Type          string `json:"type"`
		RedirectToURL *struct {
			URL string `json:"url"`
		} `json:"redirect_to_url"`
	} `json:"next_action"`
}

type whCharge struct {
	ID                   string            `json:"id"`
	PaymentIntent        idRef             `json:"payment_intent"`
	AmountRefunded       int64             `json:"amount_refunded"`
	ReceiptURL           string            `json:"receipt_url"`
	Metadata             map[string]string `json:"metadata"`
	PaymentMethod        string            `json:"payment_method"`
	PaymentMethodDetails *struct {
		Card *whCard `json:"card"`
	} `json:"payment_method_details"`
}

func (c *whCharge) card() *billing.Card {
	if c.PaymentMethodDetails == nil || c.PaymentMethodDetails.Card == nil {
		return nil
	}
	return c.PaymentMethodDetails.Card.toCard(c.PaymentMethod)
}

type whDispute struct {
	ID            string            `json:"id"`
	PaymentIntent idRef             `json:"payment_intent"`
	Metadata      map[string]string `json:"metadata"`
}

type whCard struct {
	Brand    string `json:"brand"`
	Last4    string `json:"last4"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
}

func (c *whCard) toCard(pmID string) *billing.Card {
	return &billing.Card{ProviderID: pmID, Brand: c.Brand, Last4: c.Last4, ExpMonth: c.ExpMonth, ExpYear: c.ExpYear}
}

// idRef is an object's id, written either as "id" or as the expanded
// object {"id": ...}.
type idRef string

func (r *idRef) UnmarshalJSON(b []byte) error {
	var id string
	if err := unmarshalRef(b, &id, func(obj []byte) error {
		var o struct {
			ID string `json:"id"`
		}
		err := json.Unmarshal(obj, &o)
		id = o.ID
		return err
	}); err != nil {
		return err
	}
	*r = idRef(id)
	return nil
}

// pmRef is a payment method: an id, or the expanded object with its card.
type pmRef struct {
	ID   string
	Card *whCard
}

func (r *pmRef) UnmarshalJSON(b []byte) error {
	return unmarshalRef(b, &r.ID, func(obj []byte) error {
		var o struct {
			ID   string  `json:"id"`
			Card *whCard `json:"card"`
		}
		err := json.Unmarshal(obj, &o)
		r.ID, r.Card = o.ID, o.Card
		return err
	})
}

func (r pmRef) card() *billing.Card {
	switch {
	case r.Card != nil:
		return r.Card.toCard(r.ID)
	case r.ID != "":
		return &billing.Card{ProviderID: r.ID}
	}
	return nil
}

// chargeRef is a charge: an id, or the expanded object.
type chargeRef struct {
	ID     string
	charge *whCharge
}

func (r *chargeRef) UnmarshalJSON(b []byte) error {
	return unmarshalRef(b, &r.ID, func(obj []byte) error {
		var c whCharge
		err := json.Unmarshal(obj, &c)
		r.ID, r.charge = c.ID, &c
		return err
	})
}

// unmarshalRef decodes null (nothing), a string (into id) or an object
// (with obj).
func unmarshalRef(b []byte, id *string, obj func([]byte) error) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, id)
	case b[0] == '{':
		return obj(b)
	}
	return errors.New("expected an id or an object")
}
