package billing

import "time"

// Spend caps bound what may be spent in a UTC day and month. Three sets can
// apply to one charge, and every one of them does (the tightest wins):
//   - the operator's caps on a customer (Limits, set with the API and, later,
//     the admin console); a customer cannot raise or remove them;
//   - the caps a customer sets for themselves in the portal (CustomerCaps);
//   - the caps on the API key that meters the charge.
//
// What counts against a cap is the spend committed today (or this month),
// plus what the same batch has spent and not yet written, plus the open
// holds: a hold is spend its party has committed to, and a capture is
// bounded, so a cap cannot be passed by holding first.

// Cap scopes name whose cap refused a charge: the "scope" detail of a
// spend_limit_exceeded error.
const (
	CapScopeCustomer     = "customer"      // the operator's caps on the customer
	CapScopeCustomerSelf = "customer_self" // the caps the customer set in the portal
	CapScopeAPIKey       = "API key"       // the metering key's caps
)

// SpendCaps are one party's daily and monthly caps. A nil cap is no cap.
type SpendCaps struct {
	DailyCap   *Credits `json:"daily_cap"`
	MonthlyCap *Credits `json:"monthly_cap"`
}

// Set reports whether any cap is set.
func (c SpendCaps) Set() bool { return c.DailyCap != nil || c.MonthlyCap != nil }

// Validate checks caps: each zero or more, the daily cap no larger than the
// monthly one. The error's param names the field at fault.
func (c SpendCaps) Validate() error {
	for _, f := range []struct {
		name string
		v    *Credits
	}{{"daily_cap", c.DailyCap}, {"monthly_cap", c.MonthlyCap}} {
		if f.v != nil && (*f.v < 0 || *f.v > MaxCredits) {
			return Errorf(CodeValidation, "%s must be zero or more (null removes the cap)", f.name).With("param", f.name)
		}
	}
	if c.DailyCap != nil && c.MonthlyCap != nil && *c.DailyCap > *c.MonthlyCap {
		return Errorf(CodeValidation, "daily_cap may not be larger than monthly_cap").With("param", "daily_cap")
	}
	return nil
}

// Tighter returns, for each period, the lower of two caps (nil: no cap).
func (c SpendCaps) Tighter(o SpendCaps) SpendCaps {
	low := func(a, b *Credits) *Credits {
		if a == nil || (b != nil && *b < *a) {
			return b
		}
		return a
	}
	return SpendCaps{DailyCap: low(c.DailyCap, o.DailyCap), MonthlyCap: low(c.MonthlyCap, o.MonthlyCap)}
}

// CheckUnder refuses caps a customer sets above the operator's: the
// operator's cap applies whatever the customer sets, so a higher one would
// only mislead. The error's param names the field.
func (c SpendCaps) CheckUnder(op SpendCaps) error {
	for _, f := range []struct {
		name, period string
		own, op      *Credits
	}{{"daily_cap", "day", c.DailyCap, op.DailyCap}, {"monthly_cap", "month", c.MonthlyCap, op.MonthlyCap}} {
		if f.op != nil && f.own != nil && *f.own > *f.op {
			return Errorf(CodeValidation, "%s can be at most %s credits a %s: the provider caps it there, and you can only set a lower cap", capName[f.name], *f.op, f.period).
				With("param", f.name).With("limit", *f.op)
		}
	}
	return nil
}

var capName = map[string]string{"daily_cap": "The daily cap", "monthly_cap": "The monthly cap"}

// Caps returns the operator's spend caps of a Limits.
func (l Limits) Caps() SpendCaps { return SpendCaps{DailyCap: l.DailyCap, MonthlyCap: l.MonthlyCap} }

// CapUse is one set of caps and what already counts against it.
type CapUse struct {
	Scope string
	Caps  SpendCaps
	Spent Spend // committed and pending spend, plus open holds
}

// CheckSpendCaps refuses a charge that would take any party past a cap.
func CheckSpendCaps(uses []CapUse, charge Credits) error {
	for _, u := range uses {
		if err := CheckCaps(u.Scope, Limits{DailyCap: u.Caps.DailyCap, MonthlyCap: u.Caps.MonthlyCap}, u.Spent, charge); err != nil {
			return err
		}
	}
	return nil
}

// DebitSnapshot is what the debit, hold and capture rules read: the wallet
// and its live lots (the store expires due lots and holds first, so neither
// counts credits they can no longer give), and every spend cap in force with
// what counts against it.
type DebitSnapshot struct {
	State WalletState
	Caps  []CapUse
	Now   time.Time
}

// PlanUsage decides a usage debit: the spend caps, then the available
// credits plus the overdraft limit. A quote is this plan run dry, so a quote
// that says "affordable" is a debit that would be accepted.
func PlanUsage(s DebitSnapshot, charge Credits) (DebitPlan, error) {
	if s.State.Frozen {
		return DebitPlan{}, ErrAccountFrozen()
	}
	if err := CheckSpendCaps(s.Caps, charge); err != nil {
		return DebitPlan{}, err
	}
	return PlanDebit(s.State.Wallet, s.State.Lots, charge, 0, false, s.Now)
}

// PlanHold decides a new hold of amount credits with the same rules as a
// debit of that amount: the caps, then the available credits plus the
// overdraft limit.
func PlanHold(s DebitSnapshot, amount Credits) error {
	if amount <= 0 || amount > MaxCredits {
		return Errorf(CodeValidation, "credits must be more than zero and at most %s", MaxCredits).With("param", "credits")
	}
	if s.State.Frozen {
		return ErrAccountFrozen()
	}
	if err := CheckSpendCaps(s.Caps, amount); err != nil {
		return err
	}
	if amount > s.State.Available()+s.State.OverdraftLimit {
		return InsufficientCredits(s.State.Wallet, amount)
	}
	return nil
}

// PlanCapture decides the capture of a hold of held credits for an actual
// charge. The hold already counts against the caps, so only what the charge
// passes it by is checked against them. The overage bound: the charge may
// pass the hold by at most what is available besides it plus the overdraft
// limit, the same room a debit has. Beyond that the capture is refused
// (insufficient_credits) and the hold stays open, so the product can capture
// what the customer can pay for, or release it.
func PlanCapture(s DebitSnapshot, held, charge Credits) (DebitPlan, error) {
	if over := charge - held; over > 0 {
		if err := CheckSpendCaps(s.Caps, over); err != nil {
			return DebitPlan{}, err
		}
	}
	// The hold's own credits are always capturable, even when expiries have
	// since taken the available credits below zero.
	most := held + max(0, s.State.Available()+s.State.OverdraftLimit)
	if charge > most {
		return DebitPlan{}, Errorf(CodeInsufficientCredits,
			"This capture of %s credits passes its hold of %s by more than the customer has available (%s) plus their overdraft limit (%s). Capture at most %s, or release the hold.",
			charge, held, s.State.Available(), s.State.OverdraftLimit, most).
			With("balance", s.State.Balance).With("available", s.State.Available()).With("held", held).With("required", charge).
			With("max_capture", most)
	}
	return PlanDebit(s.State.Wallet, s.State.Lots, charge, held, true, s.Now)
}

// MaxBalance bounds a wallet's balance (a thousand times MaxCredits, well
// below int64's limit), so no sum of grants can wrap around.
const MaxBalance = 1000 * MaxCredits

// checkBalanceRoom refuses a grant that would take a balance past MaxBalance.
func checkBalanceRoom(w Wallet, amount Credits) error {
	if w.Balance > MaxBalance-amount {
		return Errorf(CodeOutOfRange, "This grant of %s credits would take the balance past the most a wallet may hold (%s credits).", amount, MaxBalance).
			With("param", "credits").With("balance", w.Balance)
	}
	return nil
}

// CapWindowEnds is when the spend caps' windows start again after now: the
// next midnight UTC for the daily cap, the 1st of next month (UTC) for the
// monthly one (the store counts spend per UTC day and calendar month).
func CapWindowEnds(now time.Time) (day, month time.Time) {
	now = now.UTC()
	return time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC),
		time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// CapReached is a cap that what already counts against it reaches: every
// charge is refused (CheckCaps) until its window starts again (CapsAlreadyReached).
type CapReached struct {
	Param  string  // daily_cap or monthly_cap
	Cap    Credits // the cap
	Spent  Credits // what counts against it (spend and open holds)
	Resets time.Time
}

// CapsAlreadyReached are the caps of c that spent already reaches at now: a cap
// saved below (or at) what was spent in its window refuses every charge
// until the window resets.
func CapsAlreadyReached(c SpendCaps, spent Spend, now time.Time) []CapReached {
	day, month := CapWindowEnds(now)
	var out []CapReached
	if c.DailyCap != nil && spent.Day >= *c.DailyCap {
		out = append(out, CapReached{Param: "daily_cap", Cap: *c.DailyCap, Spent: spent.Day, Resets: day})
	}
	if c.MonthlyCap != nil && spent.Month >= *c.MonthlyCap {
		out = append(out, CapReached{Param: "monthly_cap", Cap: *c.MonthlyCap, Spent: spent.Month, Resets: month})
	}
	return out
}
