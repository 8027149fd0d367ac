package billing

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Policy is the operator's standing rules, stored in the database and
// edited in the admin console (the server's flags are only the first
// version's defaults). Plans never read it themselves: the payments
// service and the store pass the policy in force to them as an input, so a
// change applies at once to what happens next and never to what exists (a
// lot keeps the expiry and refund window it was granted with).
type Policy struct {
	// RefundWindow: purchased credits can be refunded for this long; 0: no limit.
	RefundWindow time.Duration `json:"refund_window"`
	// PurchaseExpiry: purchased credits expire this long after purchase; 0 never.
	PurchaseExpiry time.Duration `json:"purchase_expiry"`
	// PromoExpiry: an admin's promo grant without an expiry of its own
	// expires this long after it is granted; 0 never.
	PromoExpiry time.Duration `json:"promo_expiry"`
	// CustomMin and CustomMax bound a custom top-up (minor units of the
	// price book's currency).
	CustomMin int64 `json:"custom_min"`
	CustomMax int64 `json:"custom_max"`
	// LowBalancePercent is the default low-balance line, as a percentage of
	// the customer's last top-up (customers may set their own line).
	LowBalancePercent int `json:"low_balance_percent"`
	// HoldTTL is a hold's lifetime when the request names none; HoldMaxTTL
	// the longest a request may ask for (at most MaxHoldTTL).
	HoldTTL    time.Duration `json:"hold_ttl"`
	HoldMaxTTL time.Duration `json:"hold_max_ttl"`
	// RefillMaxPerMonth caps a customer's auto-refills a month when they
	// set no cap of their own; 0: no cap.
	RefillMaxPerMonth int `json:"refill_max_per_month"`
	// RefillMaxAmountPerMonth caps what a customer's auto-refills may
	// charge a month (minor units of the price book's currency) when they
	// set no amount cap of their own; 0: no cap.
	RefillMaxAmountPerMonth int64 `json:"refill_max_amount_per_month,omitempty"`
	// DefaultOverdraft is a new customer's overdraft limit (how far usage
	// may take the balance below zero); an admin changes it per customer.
	DefaultOverdraft Credits `json:"default_overdraft"`
}

// PolicyVersion is one stored version of the policy: who made it and when.
type PolicyVersion struct {
	Version   int64
	Policy    Policy
	Actor     Actor
	Reason    string
	CreatedAt time.Time
}

// DefaultPolicy is a fresh installation's policy before its flags.
var DefaultPolicy = Policy{RefundWindow: DefaultPaymentPolicy.RefundWindow, CustomMin: DefaultPaymentPolicy.CustomMin,
	CustomMax: DefaultPaymentPolicy.CustomMax, LowBalancePercent: 10, HoldTTL: DefaultHoldTTL, HoldMaxTTL: MaxHoldTTL}

// PolicyFields are the policy's fields (their JSON names), in the page's order.
var PolicyFields = []string{"refund_window", "purchase_expiry", "promo_expiry", "custom_min", "custom_max", "low_balance_percent",
	"hold_ttl", "hold_max_ttl", "refill_max_per_month", "refill_max_amount_per_month", "default_overdraft"}

// AuditPolicyUpdated is the audit action of a new policy version.
const AuditPolicyUpdated = "policy.updated"

// Policy limits.
const (
	MaxPolicyDays = 3650 // expiries and the refund window: at most ten years
	day           = 24 * time.Hour
)

// Payment is the part of the policy the payments service prices and grants with.
func (p Policy) Payment() PaymentPolicy {
	return PaymentPolicy{RefundWindow: p.RefundWindow, PurchaseExpiry: p.PurchaseExpiry, CustomMin: p.CustomMin, CustomMax: p.CustomMax,
		RefillMaxPerMonth: p.RefillMaxPerMonth, RefillMaxAmountPerMonth: p.RefillMaxAmountPerMonth}
}

// LowBalanceLine is the default low-balance threshold for a customer whose
// last purchase was lastTopUp credits.
func (p Policy) LowBalanceLine(lastTopUp Credits) Credits {
	pct := p.LowBalancePercent
	if pct <= 0 {
		pct = DefaultPolicy.LowBalancePercent
	}
	return lastTopUp * Credits(pct) / 100 // at most MaxCredits * 100: no overflow
}

// HoldExpiry fills a hold request's default lifetime and checks it against
// the policy's longest; validation_failed names ttl_seconds.
func (p Policy) HoldExpiry(r *HoldRequest) error {
	if r.TTLSeconds == 0 && p.HoldTTL > 0 {
		r.TTLSeconds = int64(p.HoldTTL / time.Second)
	}
	if most := p.HoldMaxTTL; most > 0 && most < MaxHoldTTL && r.TTLSeconds > int64(most/time.Second) {
		return Errorf(CodeValidation, "ttl_seconds must be between 1 and %d", int64(most/time.Second)).With("param", "ttl_seconds")
	}
	return nil
}

// Validate checks a policy; each error's param names the field at fault,
// and every fault is reported (field -> message).
func (p Policy) Validate() map[string]string {
	errs := map[string]string{}
	days := func(field string, d time.Duration, zeroOK bool) {
		switch {
		case d < 0:
			errs[field] = "Can't be negative."
		case d == 0 && !zeroOK:
			errs[field] = "Must be at least one day."
		case d%day != 0:
			errs[field] = "Use whole days."
		case d > MaxPolicyDays*day:
			errs[field] = "At most 3,650 days (ten years)."
		}
	}
	days("refund_window", p.RefundWindow, true)
	days("purchase_expiry", p.PurchaseExpiry, true)
	days("promo_expiry", p.PromoExpiry, true)
	if p.PurchaseExpiry > 0 && p.RefundWindow > p.PurchaseExpiry {
		errs["refund_window"] = "The refund window can't outlast the credits: make it no longer than their expiry."
	}
	switch {
	case p.CustomMin < 1:
		errs["custom_min"] = "The smallest custom top-up must be more than zero."
	case p.CustomMin > MaxTopUp:
		errs["custom_min"] = "That amount is too large."
	}
	switch {
	case p.CustomMax < p.CustomMin:
		errs["custom_max"] = "The largest custom top-up can't be below the smallest."
	case p.CustomMax > MaxTopUp:
		errs["custom_max"] = "That amount is too large."
	}
	if p.LowBalancePercent < 1 || p.LowBalancePercent > 100 {
		errs["low_balance_percent"] = "Between 1 and 100 percent of the last top-up."
	}
	secs := func(field string, d time.Duration) {
		switch {
		case d < time.Second:
			errs[field] = "At least one second."
		case d > MaxHoldTTL:
			errs[field] = "At most 86,400 seconds (a day)."
		case d%time.Second != 0:
			errs[field] = "Use whole seconds."
		}
	}
	secs("hold_ttl", p.HoldTTL)
	secs("hold_max_ttl", p.HoldMaxTTL)
	if _, bad := errs["hold_ttl"]; !bad && p.HoldTTL > p.HoldMaxTTL {
		errs["hold_ttl"] = "The default can't be longer than the longest allowed."
	}
	if p.RefillMaxPerMonth < 0 || p.RefillMaxPerMonth > 1000 {
		errs["refill_max_per_month"] = "Between 0 (no cap) and 1,000 refills a month."
	}
	if p.RefillMaxAmountPerMonth < 0 || p.RefillMaxAmountPerMonth > MaxTopUp {
		errs["refill_max_amount_per_month"] = "Between 0 (no cap) and the largest top-up."
	}
	if p.DefaultOverdraft < 0 || p.DefaultOverdraft > MaxCredits {
		errs["default_overdraft"] = "Between 0 (none) and the largest amount of credits."
	}
	return errs
}

// MaxTopUp bounds a custom top-up bound (minor units).
const MaxTopUp = 1_000_000_00

// PolicyChange is one field that differs between two policies.
type PolicyChange struct {
	Field  string // the JSON name
	Label  string
	Before string
	After  string
	Money  bool // it changes what customers pay, get or can get back
}

// DiffPolicy lists the fields that differ, in the page's order.
func DiffPolicy(before, after Policy, money func(int64) string) []PolicyChange {
	dur := func(d time.Duration) string {
		if d == 0 {
			return "never"
		}
		return pluralDays(int64(d / day))
	}
	secs := func(d time.Duration) string { return formatInt(int64(d/time.Second)) + " s" }
	refills := func(n int) string {
		if n == 0 {
			return "no cap"
		}
		return formatInt(int64(n)) + " a month"
	}
	var out []PolicyChange
	add := func(field, label, b, a string, isMoney bool) {
		if b != a {
			out = append(out, PolicyChange{Field: field, Label: label, Before: b, After: a, Money: isMoney})
		}
	}
	rw := func(d time.Duration) string {
		if d == 0 {
			return "no limit"
		}
		return pluralDays(int64(d / day))
	}
	add("refund_window", "Refund window", rw(before.RefundWindow), rw(after.RefundWindow), true)
	add("purchase_expiry", "Purchased credits expire after", dur(before.PurchaseExpiry), dur(after.PurchaseExpiry), true)
	add("promo_expiry", "Promo credits expire after", dur(before.PromoExpiry), dur(after.PromoExpiry), true)
	add("custom_min", "Smallest custom top-up", money(before.CustomMin), money(after.CustomMin), true)
	add("custom_max", "Largest custom top-up", money(before.CustomMax), money(after.CustomMax), true)
	add("low_balance_percent", "Default low-balance line", formatInt(int64(before.LowBalancePercent))+"% of the last top-up",
		formatInt(int64(after.LowBalancePercent))+"% of the last top-up", false)
	add("hold_ttl", "Default hold lifetime", secs(before.HoldTTL), secs(after.HoldTTL), false)
	add("hold_max_ttl", "Longest hold lifetime", secs(before.HoldMaxTTL), secs(after.HoldMaxTTL), false)
	add("refill_max_per_month", "Auto-refill cap (when the customer sets none)", refills(before.RefillMaxPerMonth), refills(after.RefillMaxPerMonth), true)
	capMoney := func(a int64) string {
		if a == 0 {
			return "no cap"
		}
		return money(a) + " a month"
	}
	add("refill_max_amount_per_month", "Auto-refill amount cap (when the customer sets none)", capMoney(before.RefillMaxAmountPerMonth),
		capMoney(after.RefillMaxAmountPerMonth), true)
	add("default_overdraft", "Overdraft of new customers", before.DefaultOverdraft.String()+" credits", after.DefaultOverdraft.String()+" credits", true)
	return out
}

func pluralDays(n int64) string {
	if n == 1 {
		return "1 day"
	}
	return formatInt(n) + " days"
}

// formatInt groups thousands with commas: 3650 -> "3,650".
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

// Policies is where the policy lives. UpdatePolicy writes a new version
// (and its audit record, in the same transaction) when based is still the
// current version: conflict when another admin saved in between,
// validation_failed for a policy Validate refuses.
type Policies interface {
	CurrentPolicy(ctx context.Context) (PolicyVersion, error)
	PolicyHistory(ctx context.Context, limit int) ([]PolicyVersion, error)
	UpdatePolicy(ctx context.Context, based int64, p Policy, actor Actor, reason string) (PolicyVersion, error)
}

// EndOfDayUTC is the last instant the store keeps (to the microsecond) of
// the UTC day t falls on. A date an admin picks for a grant's expiry means
// "until the end of that day, UTC": picking 15 Jan stores 15 Jan
// 23:59:59.999999 UTC, so every page that shows the lot's expiry as a date
// shows 15 Jan, not the next day's midnight.
func EndOfDayUTC(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond)
}

// PromoExpiresAt is when a promo grant made at now without a date of its
// own expires under the policy: the end (UTC) of the day PromoExpiry after
// now falls on, as if that date had been picked; nil: never.
func (p Policy) PromoExpiresAt(now time.Time) *time.Time {
	if p.PromoExpiry <= 0 {
		return nil
	}
	t := EndOfDayUTC(now.Add(p.PromoExpiry))
	return &t
}
