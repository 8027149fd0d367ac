// Package payments runs purchases (Service: top-ups, saved cards,
// auto-refill, provider events, refunds) and holds the card processors
// behind billing.PaymentProvider: StripeProvider (stripe-go v76) and
// SandboxProvider, an offline stand-in that mimics Stripe's test cards for
// `tally serve --demo` without a Stripe key. What follows is about the
// providers.
//
// # Outcomes and errors
//
// A charge the bank refuses is an outcome, not an error: Charge returns a
// Payment with Status failed, a FailureCode and a FailureReason fit for the
// customer, and a nil error. Errors are *billing.Error:
//
//   - validation_failed: the call itself is wrong (no idempotency key, a
//     malformed id, a sandbox card form that does not validate);
//   - no_payment_method: the saved card no longer exists at the provider;
//   - not_found: no such payment or card setup;
//   - idempotency_conflict: an idempotency key reused for another request;
//   - conflict (sandbox): a card setup already finished, or a payment
//     already authenticated the other way or not waiting for it;
//   - nothing_to_refund: the payment is already fully refunded;
//   - invalid_request: a webhook whose signature is missing, wrong or stale;
//   - payment_provider_error: the provider is unreachable or refused the
//     request. The cause is kept for logs with the secret key scrubbed.
//
// # Idempotency
//
// Every POST to Stripe carries an Idempotency-Key. Calls that create money
// movements or objects use keys derived from Tally's ids, so a retry after a
// crash or timeout returns the first answer: Charge and Refund use the
// caller's key, EnsureCustomer "tally-customer-<customer id>". Calls whose
// effect depends on the moment (start a card setup, set the default card,
// detach a card) use a fresh "tally-..." key per call: stripe-go's own
// network retries reuse it, but a later call with the same arguments is a
// new request. (A derived key there would replay a stale answer: switching
// the default card A→B→A within 24 hours would silently leave B.) The
// sandbox keeps Stripe's semantics in memory: same key, same answer; same
// key with another request, idempotency_conflict.
//
// # Stripe API versions
//
// Requests: stripe-go v76 sends Stripe-Version 2023-10-16 (stripe.APIVersion)
// on every call, so every API answer has the shape stripe-go expects,
// whatever the account's default version.
//
// Webhooks: Stripe renders an event with the API version of the webhook
// endpoint (the account's default when the endpoint was made in the
// Dashboard), which need not be 2023-10-16, and stripe-go v76 rejects such
// events unless told otherwise. Tally accepts them: ParseEvent verifies the
// signature with webhook.ConstructEventWithOptions and
// IgnoreAPIVersionMismatch, then never decodes the object into stripe-go's
// types. It reads data.object into small local structs holding only fields
// that are the same in every version since 2019 (ids, status, metadata,
// customer, payment_intent, amount_refunded, last_payment_error,
// next_action.redirect_to_url), accepts an id field as a string or as an
// expanded object, and reads a receipt from latest_charge (2022-11-15 and
// later) or from the older charges list. Operators are still advised to pin
// the endpoint to 2023-10-16 (docs/payments.md); nothing breaks if they
// don't.
//
// # Card setup round trip
//
// Both providers send the customer to a hosted page (Stripe Checkout in
// setup mode, or the sandbox's card form) and back to the success URL with
// "?session_id=<setup id>" appended (SessionIDParam). The id comes back in a
// URL anyone can type, so it proves nothing about who started the setup: the
// service passes it to CompleteCardSetup with the signed-in customer's
// provider customer, and the provider answers not_found unless the setup
// was started for that customer (Stripe: the Checkout Session's customer;
// the sandbox: the setup's). A setup completes for its own customer only.
package payments

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// Metadata keys Tally puts on provider objects.
const (
	// MetadataTopUp carries the top-up id on a charge (ChargeRequest.Metadata);
	// events read it back into PaymentEvent.TopUpID.
	MetadataTopUp = "tally_top_up"
	// MetadataCustomer carries the Tally customer id on a Stripe customer.
	MetadataCustomer = "tally_customer"
)

// SessionIDParam is the query parameter that brings the setup id back to
// the success URL of a card setup, for both providers.
const SessionIDParam = "session_id"

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomID returns prefix followed by 10 random bytes in lower-case base32.
func randomID(prefix string) string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return prefix + idEncoding.EncodeToString(b)
}

// withQuery appends "key=value" to u with ? or &, before any fragment. value
// is written as is: Stripe's {CHECKOUT_SESSION_ID} template must not be
// escaped, and the other callers pass ids made of [a-z0-9_].
func withQuery(u, key, value string) string {
	frag := ""
	if i := strings.IndexByte(u, '#'); i >= 0 {
		u, frag = u[:i], u[i:]
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
		if strings.HasSuffix(u, "?") || strings.HasSuffix(u, "&") {
			sep = ""
		}
	}
	return u + sep + key + "=" + value + frag
}

// Customer-facing messages, Stripe's wording.
const (
	msgDeclined        = "Your card was declined."
	msgAuthRequired    = "Your bank asks you to confirm this payment."
	msgAuthFailed      = "We are unable to authenticate your payment method. Please choose a different payment method and try again."
	msgPaymentCanceled = "The payment was canceled."
	msgNotCompleted    = "The payment did not go through. Try again or use another card."
)

// declineMessages holds messages for codes whose event or error came
// without one (Stripe's card_error messages are written for customers and
// are used as they are when present).
var declineMessages = map[string]string{
	"card_declined":                         msgDeclined,
	"generic_decline":                       msgDeclined,
	"insufficient_funds":                    "Your card has insufficient funds.",
	"expired_card":                          "Your card has expired.",
	"incorrect_cvc":                         "Your card's security code is incorrect.",
	"processing_error":                      "An error occurred while processing your card. Try again in a little bit.",
	"incorrect_number":                      "Your card number is incorrect.",
	"authentication_required":               msgAuthRequired,
	"payment_intent_authentication_failure": msgAuthFailed,
	"lost_card":                             msgDeclined, // never tell a customer why: Stripe's advice
	"stolen_card":                           msgDeclined,
	"fraudulent":                            msgDeclined,
}

// customerMessage picks a failure message fit for the customer: Stripe's own
// message for card errors, else one for the decline or error code, else a
// generic one.
func customerMessage(errType, code, declineCode, msg string) string {
	if errType == "card_error" && msg != "" {
		return msg
	}
	if m, ok := declineMessages[declineCode]; ok {
		return m
	}
	if m, ok := declineMessages[code]; ok {
		return m
	}
	return msgNotCompleted
}
