package billing

import (
	"sort"
	"time"
)

// Entry types: every change to a wallet is one append-only entry of a type.
const (
	EntryGrant       = "grant"        // credits added as a new lot
	EntryDebit       = "debit"        // usage charged (directly or by capturing a hold)
	EntryHold        = "hold"         // credits reserved; balance unchanged, held grows
	EntryHoldRelease = "hold_release" // a reservation ended without a charge
	EntryExpiry      = "expiry"       // what was left of a lot when it expired
	EntryRefund      = "refund"       // purchased credits removed because the payment was refunded
	EntryAdjustment  = "adjustment"   // a manual correction by an admin, either sign
)

// EntryTypes are every entry type, in the order a list of them is written.
var EntryTypes = []string{EntryGrant, EntryDebit, EntryHold, EntryHoldRelease, EntryExpiry, EntryRefund, EntryAdjustment}

// Lot sources say where granted credits came from.
const (
	SourcePurchase     = "purchase"
	SourcePromo        = "promo"
	SourceSubscription = "subscription"
	SourceAdjustment   = "adjustment"
)

// DefaultPriority is the burn priority of a lot from each source when the
// grant does not set one: lower burns first. Free and expiring credits go
// before paid ones, which keeps purchases refundable for as long as possible.
var DefaultPriority = map[string]int{
	SourcePromo:        10,
	SourceSubscription: 20,
	SourceAdjustment:   30,
	SourcePurchase:     50,
}

// ValidSource reports whether s is a lot source.
func ValidSource(s string) bool { _, ok := DefaultPriority[s]; return ok }

// Customer is a wallet holder, named by Tally's id (cus_...) or the product's
// external id.
type Customer struct {
	ID         string    `json:"id"`
	ExternalID string    `json:"external_id"`
	Email      string    `json:"email"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
	Limits     Limits    `json:"limits"`
	// CustomerCaps are the caps the customer set for themselves in the
	// portal; they apply beside the operator's, never instead of them.
	CustomerCaps SpendCaps `json:"customer_caps"`
}

// Limits are what the operator sets for a customer (or an API key): the
// spend caps (see SpendCaps; a nil cap means no cap) and the overdraft limit.
type Limits struct {
	DailyCap       *Credits `json:"daily_cap"`
	MonthlyCap     *Credits `json:"monthly_cap"`
	OverdraftLimit Credits  `json:"overdraft_limit"`
}

// Wallet is the cached state of a customer's credits. Balance may be negative
// (down to -OverdraftLimit, or further when a capture records more usage than
// was available); Debt is the part of a negative position not covered by lots.
// Invariant: Balance == sum(entry amounts) == sum(live lot remaining) - Debt.
type Wallet struct {
	Balance        Credits
	Held           Credits
	Debt           Credits
	OverdraftLimit Credits
}

// Available is what a new debit or hold may use: the balance minus holds.
func (w Wallet) Available() Credits { return w.Balance - w.Held }

// Lot is a grant of credits that debits burn down.
type Lot struct {
	ID              int64      `json:"-"`
	CustomerID      string     `json:"-"`
	Source          string     `json:"source"`
	Priority        int        `json:"priority"`
	Amount          Credits    `json:"amount"`
	Remaining       Credits    `json:"remaining"`
	ExpiresAt       *time.Time `json:"expires_at"`
	RefundableUntil *time.Time `json:"refundable_until"`
	Reason          string     `json:"reason"`
	Frozen          bool       `json:"frozen"`
	CreatedAt       time.Time  `json:"created_at"`
	// KeptForHolds marks a lot past its expiry whose credits open holds
	// reserved (PlanLotExpiry wrote off only the rest): it may still be
	// burned, by the capture those credits were kept for.
	KeptForHolds bool `json:"-"`
}

// Live reports whether the lot can still be burned at now.
func (l Lot) Live(now time.Time) bool {
	return l.Remaining > 0 && !l.Frozen && (l.ExpiresAt == nil || l.ExpiresAt.After(now))
}

// Burn is the part of one debit taken from one lot.
type Burn struct {
	LotID   int64   `json:"-"`
	Credits Credits `json:"credits"`
}

// SortLots orders lots the way debits burn them: by priority (lower first),
// then soonest expiry (lots that never expire last), then oldest, then id.
func SortLots(lots []Lot) {
	sort.SliceStable(lots, func(i, j int) bool { return burnsBefore(lots[i], lots[j]) })
}

func burnsBefore(a, b Lot) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	switch {
	case a.ExpiresAt != nil && b.ExpiresAt == nil:
		return true
	case a.ExpiresAt == nil && b.ExpiresAt != nil:
		return false
	case a.ExpiresAt != nil && !a.ExpiresAt.Equal(*b.ExpiresAt):
		return a.ExpiresAt.Before(*b.ExpiresAt)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// BurnLots takes amount from the live lots in burn order. It returns what it
// took from each lot and the shortfall the lots could not cover. lots is
// sorted in place; it is not modified otherwise.
func BurnLots(lots []Lot, amount Credits, now time.Time) (burns []Burn, shortfall Credits) {
	if amount <= 0 {
		return nil, 0
	}
	SortLots(lots)
	left := amount
	// First what lots past their expiry kept for open holds (they would be
	// written off once the holds close), then the live lots in burn order.
	for _, kept := range []bool{true, false} {
		for _, l := range lots {
			if left == 0 {
				break
			}
			if kept != (l.KeptForHolds && !l.Live(now)) || l.Remaining <= 0 || l.Frozen {
				continue
			}
			if !kept && !l.Live(now) {
				continue
			}
			take := min(l.Remaining, left)
			burns = append(burns, Burn{LotID: l.ID, Credits: take})
			left -= take
		}
	}
	return burns, left
}

// Spend is what a customer (or an API key) has spent in the current UTC day
// and month.
type Spend struct {
	Day   Credits
	Month Credits
}

// CheckCaps refuses a charge that would take spend past a daily or monthly
// cap. who names the capped party in the message ("customer", "API key").
func CheckCaps(who string, lim Limits, spent Spend, charge Credits) error {
	if lim.DailyCap != nil && spent.Day+charge > *lim.DailyCap {
		return capError(who, "daily", *lim.DailyCap, spent.Day, charge)
	}
	if lim.MonthlyCap != nil && spent.Month+charge > *lim.MonthlyCap {
		return capError(who, "monthly", *lim.MonthlyCap, spent.Month, charge)
	}
	return nil
}

func capError(who, period string, limit, spent, charge Credits) error {
	return Errorf(CodeSpendLimitExceeded,
		"This %s's %s spend limit of %s credits would be exceeded (%s spent, %s required).",
		who, period, limit, spent, charge).
		With("limit_type", period).With("limit", limit).With("spent", spent).With("required", charge).With("scope", who)
}

// DebitPlan is the decision for one debit: which lots to burn and how the
// wallet changes.
type DebitPlan struct {
	Burns        []Burn
	DebtIncrease Credits
	BalanceAfter Credits
}

// PlanDebit decides a debit of charge against w and its lots. Unless force is
// set (a hold capture, which always records the actual usage), the charge
// must fit in the available credits plus the overdraft limit; otherwise it is
// refused with insufficient_credits and nothing is written. extra is what the
// debit may use on top of the available credits (a captured hold's amount).
// The caller expires due lots first: w must not count credits that lots can
// no longer give.
func PlanDebit(w Wallet, lots []Lot, charge, extra Credits, force bool, now time.Time) (DebitPlan, error) {
	if charge < 0 {
		return DebitPlan{}, Errorf(CodeInternal, "negative charge")
	}
	if !force && charge > w.Available()+extra+w.OverdraftLimit {
		return DebitPlan{}, InsufficientCredits(w, charge)
	}
	burns, shortfall := BurnLots(lots, charge, now)
	return DebitPlan{Burns: burns, DebtIncrease: shortfall, BalanceAfter: w.Balance - charge}, nil
}

// InsufficientCredits is the 402 error for a charge the wallet cannot cover.
func InsufficientCredits(w Wallet, required Credits) error {
	return Errorf(CodeInsufficientCredits,
		"Not enough credits: %s required, %s available. Top up to continue: POST /api/v1/portal-sessions with \"flow\": \"top_up\" (a portal key), with \"required\" set to this one, gives a link to a top-up page that pays in one press and returns to your return_url.", required, w.Available()).
		With("balance", w.Balance).With("available", w.Available()).With("held", w.Held).With("required", required)
}

// GrantPlan is the decision for one grant: a new lot, part of which may go
// straight to repaying debt.
type GrantPlan struct {
	LotRemaining Credits
	DebtRepaid   Credits
	BalanceAfter Credits
}

// PlanGrant decides a grant of amount: any debt is repaid from it first.
func PlanGrant(w Wallet, amount Credits) (GrantPlan, error) {
	if amount <= 0 || amount > MaxCredits {
		return GrantPlan{}, Errorf(CodeValidation, "credits must be more than zero and at most %s", MaxCredits)
	}
	if err := checkBalanceRoom(w, amount); err != nil {
		return GrantPlan{}, err
	}
	repay := min(w.Debt, amount)
	return GrantPlan{LotRemaining: amount - repay, DebtRepaid: repay, BalanceAfter: w.Balance + amount}, nil
}

// Validate checks the operator's limits: the caps as SpendCaps.Validate
// does, and an overdraft limit of zero or more.
func (l Limits) Validate() error {
	if err := l.Caps().Validate(); err != nil {
		return err
	}
	if l.OverdraftLimit < 0 || l.OverdraftLimit > MaxCredits {
		return Errorf(CodeValidation, "overdraft_limit must be zero or more").With("param", "overdraft_limit")
	}
	return nil
}
