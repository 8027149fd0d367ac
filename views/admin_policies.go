package views

import (
	"strconv"
	"time"

	"github.com/tally-billing/tally/billing"
)

// AdminPoliciesPage is /admin/policies: the policy in force, the form that
// edits it (admins and owners), an example of what it means for a
// purchase made now, and the versions before it.
type AdminPoliciesPage struct {
	Current  billing.PolicyVersion
	Currency string // the price book's (custom top-up bounds are in it)
	// PriceBookRange is the custom top-up range the price book in effect
	// sets, if it sets one: it wins over the policy's bounds, and the page
	// says so beside them. PriceBookVersion is that price book's version.
	PriceBookRange   *billing.CustomTopUp
	PriceBookVersion int64
	Now              time.Time
	// Values are the form's fields as typed (or the policy in force);
	// Errors are beside their fields.
	Values  map[string]string
	Errors  map[string]string
	History []AdminPolicyVersion
	// Names are the admins' e-mails by id, for "saved by".
	Names map[string]string
}

// AdminPolicyVersion is one line of the history: a version and what it
// changed from the one before it.
type AdminPolicyVersion struct {
	billing.PolicyVersion
	Changes []billing.PolicyChange
}

// AdminPolicyConfirm asks before a policy change that touches money.
type AdminPolicyConfirm struct {
	Changes []billing.PolicyChange
	Fields  map[string]string // the form, sent again with confirm=1
	Reason  string
	Example PolicyExample
}

// PolicyExample is what a policy means for credits granted at At.
type PolicyExample struct {
	At              time.Time
	RefundableUntil *time.Time // nil: no limit
	PurchaseExpires *time.Time // nil: never
	PromoExpires    *time.Time // nil: never
}

// NewPolicyExample is the example of p for a purchase and a promo grant at now.
func NewPolicyExample(p billing.Policy, now time.Time) PolicyExample {
	at := func(d time.Duration) *time.Time {
		if d <= 0 {
			return nil
		}
		t := now.Add(d)
		return &t
	}
	return PolicyExample{At: now, RefundableUntil: at(p.RefundWindow), PurchaseExpires: at(p.PurchaseExpiry), PromoExpires: p.PromoExpiresAt(now)}
}

// ActorName is how the history names who saved a version.
func (d AdminPoliciesPage) ActorName(a billing.Actor) string {
	if a.Kind == billing.ActorAdmin {
		if n := d.Names[a.ID]; n != "" {
			return n
		}
	}
	if a.Kind == billing.ActorSystem && a.ID == "flags" {
		return "the server's flags"
	}
	return a.String()
}

// settingsPercent words the default low-balance line ("10%"); 0 is the
// built-in default's 10%.
func settingsPercent(p int) string {
	if p <= 0 {
		p = billing.DefaultPolicy.LowBalancePercent
	}
	return strconv.Itoa(p) + "%"
}
