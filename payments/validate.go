package payments

import (
	"net/url"
	"strings"

	"github.com/tally-billing/tally/billing"
)

// Both providers validate calls the same way, before any network call.

func checkAbsURL(name, u string) error {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return billing.Errorf(billing.CodeValidation, "the %s must be an absolute http(s) URL, not %q", name, u)
	}
	return nil
}

// checkCharge validates a charge request the same way for both providers.
func checkCharge(req billing.ChargeRequest) error {
	if req.PaymentMethodID == "" {
		return billing.Errorf(billing.CodeNoPaymentMethod, "no saved card to charge")
	}
	if err := checkPayment("charge", req.ProviderCustomerID, req.Amount, req.IdempotencyKey); err != nil {
		return err
	}
	if !req.OffSession && req.ReturnURL == "" {
		return billing.Errorf(billing.CodeValidation, "an on-session charge needs a return URL for 3-D Secure")
	}
	if req.ReturnURL != "" {
		return checkAbsURL("return URL", req.ReturnURL)
	}
	return nil
}

// checkCheckout validates a checkout (a new card and a payment in one step)
// the same way for both providers.
func checkCheckout(req CheckoutRequest) error {
	if err := checkPayment("checkout", req.ProviderCustomerID, req.Amount, req.IdempotencyKey); err != nil {
		return err
	}
	if err := checkAbsURL("success URL", req.SuccessURL); err != nil {
		return err
	}
	return checkAbsURL("cancel URL", req.CancelURL)
}

// checkPayment checks what every payment (a charge, a checkout) needs.
func checkPayment(what, providerCustomerID string, amount billing.Money, key string) error {
	switch {
	case providerCustomerID == "":
		return billing.Errorf(billing.CodeValidation, "the %s needs the provider's customer id", what)
	case amount.Amount <= 0:
		return billing.Errorf(billing.CodeValidation, "the amount to %s must be more than zero", map[string]string{"charge": "charge", "checkout": "pay"}[what])
	case !isCurrency(amount.Currency):
		return billing.Errorf(billing.CodeValidation, "the currency must be a lower-case ISO 4217 code such as usd, not %q", amount.Currency)
	case key == "":
		return billing.Errorf(billing.CodeValidation, "a %s needs an idempotency key", what)
	}
	return nil
}

func checkRefund(paymentID, prefix string, amount billing.Money, key string) error {
	switch {
	case !strings.HasPrefix(paymentID, prefix):
		return billing.Errorf(billing.CodeValidation, "%q is not a payment id of this provider", paymentID)
	case amount.Amount <= 0:
		return billing.Errorf(billing.CodeValidation, "the amount to refund must be more than zero")
	case key == "":
		return billing.Errorf(billing.CodeValidation, "a refund needs an idempotency key")
	}
	return nil
}

func isCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'a' || c[i] > 'z' {
			return false
		}
	}
	return true
}
