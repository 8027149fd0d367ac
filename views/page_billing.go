package views

import (
	"time"

	"github.com/tally-billing/tally/billing"
)

// BillingPage is the Billing tab: top-ups, saved cards, auto-refill and
// receipts.
type BillingPage struct {
	Sandbox    bool // sandbox payments: say so
	TopUp      TopUpPanel
	Cards      []billing.Card
	Refill     RefillForm
	Purchases  []Purchase
	CardsError string
}

// TopUpPanel is the one-click top-up: a button per pack and a custom amount.
type TopUpPanel struct {
	Packs      []billing.CreditPack
	Card       *billing.Card // the default card; nil: add one first
	CustomMin  billing.Money
	CustomMax  billing.Money
	CustomRate string // "100 credits per $1.00"
	Flow       bool   // opened for a top-up from the product (flow=top_up)
	Sandbox    bool
	// CustomValue and CustomError re-show a custom amount that was refused,
	// as typed, with why.
	CustomValue string
	CustomError string
	// Options are the packs with the click keys of their pay buttons, and
	// CustomKey the custom amount's (paying with a new card needs them).
	Options   []PayOption
	CustomKey string
	Focus     bool // shown on the focused top-up page
}

// TopUpConfirm asks once before money moves.
type TopUpConfirm struct {
	PackID  string
	Amount  int64 // custom amount, minor units
	Credits billing.Credits
	Price   billing.Money
	Card    billing.Card
	Key     string // identifies this click: a double submit charges once
	Error   string
}

// RefillForm is the auto-refill settings with what they will do.
type RefillForm struct {
	Settings    billing.RefillSettings
	Packs       []billing.CreditPack
	Errors      map[string]string
	Values      map[string]string // as typed, when re-shown with errors
	NextCredits billing.Credits   // what the next refill buys
	NextPrice   billing.Money
	MonthCount  int
	MonthAmount billing.Money
	HasCard     bool
	Saved       bool
}

// TopUpStatus is the page a customer waits on while a payment settles.
type TopUpStatus struct {
	TopUp     billing.TopUp
	ReturnURL string // flow=top_up: where to go when it succeeds
	RetryKey  string // a declined purchase: the click key to pay it with another card
}

// TopUpFailed is a declined purchase, and the click key to pay it with
// another card.
type TopUpFailed struct {
	TopUp    billing.TopUp
	RetryKey string
}

// Purchase is what a pay button buys (a pack, or an amount in minor
// units), or a row of the purchases list (TopUp, Recorded).
type Purchase struct {
	PackID string
	Amount int64
	TopUp  billing.TopUp
	// Recorded: a purchase the product recorded (a grant with source
	// purchase, not paid here): no price, card or receipt here.
	Recorded bool
	// Disputed: the payment was disputed (a chargeback): what was left of
	// its credits is frozen until the dispute is resolved.
	Disputed bool
	// ReceiptURL is the receipt of a plan invoice (page_plan.go); "" for
	// a top-up, whose receipt is /portal/receipts/{id}.
	ReceiptURL string
}

// Receipt is a printable receipt.
type Receipt struct {
	TopUp   billing.TopUp
	Product string
	Email   string
	Name    string
	// Account is the customer's id in the product (external_id): a
	// receipt of a customer with no name or e-mail is billed to it.
	Account string
	Issued  time.Time
}

// SandboxCardForm is the sandbox's stand-in for Stripe Checkout.
type SandboxCardForm struct {
	Setup, Return, Cancel string
	Number, Exp, CVC      string
	Errors                map[string]string // by field: number, exp, cvc
	Error                 string            // not about one field
	Pay                   *billing.Money    // a checkout: what the form pays
	Description           string            // what is bought
	// Declined: the card was valid and its bank refused the payment; the
	// summary says so (SandboxDeclinedSummary), not "fix the field".
	Declined bool
}

// A declined card's words on the card page: the summary, and the card
// number field's message.
const (
	SandboxDeclinedSummary = "Your card was declined. Nothing was charged. Try another card."
	SandboxDeclinedField   = "Declined by the card's bank."
)

// SandboxAuth is the sandbox's stand-in for a bank's 3-D Secure page.
type SandboxAuth struct {
	PaymentID   string
	Amount      billing.Money
	Card        string // "Visa •••• 3184"
	Description string // what is bought
	Return      string
}

// boolAttr is "true" or "false", for ARIA states (an empty aria-invalid
// means false).
func boolAttr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TopUpFocus is the focused top-up a `flow: top_up` link opens: why the
// customer is here, the one pack that covers what they need with a button
// that pays it, and the other ways to buy below.
type TopUpFocus struct {
	Panel              TopUpPanel // packs, the saved card, the custom amount
	Balance, Available billing.Credits
	Required           billing.Credits // what the refused action needed (0: not said)
	Low, Depleted      bool
	Suggested          *PayOption // nil: no packs
	Others             []PayOption
}

// PayOption is a pack with the click key of its pay button.
type PayOption struct {
	Pack billing.CreditPack
	Key  string
}

// RefillCeilingTooLow is the auto-refill form's error beside a monthly
// amount ceiling below one refill's price (billing.RefillSettings.Validate
// refuses it: every refill would be skipped).
func RefillCeilingTooLow(f Fmt, price, ceiling billing.Money) string {
	return "One refill costs " + f.Money(price) + ": a ceiling of " + f.Money(ceiling) + " would stop every refill."
}
