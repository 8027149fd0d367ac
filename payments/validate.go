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
	switch {
	case req.PaymentMethodID == "":
		return billing.Errorf(billing.CodeNoPaymentMethod, "no saved card to charge")
	case req.ProviderCustomerID == "":
		return billing.Errorf(billing.CodeValidation, "the charge needs the provider's customer id")
	case req.Amount.Amount <= 0:
		return billing.Errorf(billing.CodeValidation, "the amount to charge must be more than zero")
	case !isCurrency(req.Amount.Currency):
		return billing.Errorf(billing.CodeValidation, "the currency must be a lower-case ISO 4217 code such as usd, not %q", req.Amount.Currency)
	case req.IdempotencyKey == "":
		return billing.Errorf(billing.CodeValidation, "a charge needs an idempotency key")
	case !req.OffSession && req.ReturnURL == "":
		return billing.Errorf(billing.CodeValidation, "an on-session charge needs a return URL for 3-D Secure")
	}
	if req.ReturnURL != "" {
		return checkAbsURL("return URL", req.ReturnURL)
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
