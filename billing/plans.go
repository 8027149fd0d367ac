package billing

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Subscription plans: a price per interval that includes credits each
// period. A plan lives in the price book, so it is versioned with it; a
// subscriber keeps the version they subscribed to (Subscription.PriceVersion)
// until they change plan.
//
// A period's credits are a lot with source subscription that expires at the
// period's end. At the end, what the rollover policy keeps of it stays (the
// lot's expiry moves on by the plan's rollover lifetime) and the rest
// expires (PlanPeriodClose); the next period's credits are a new lot
// (PlanRenewal), granted exactly once per period and per invoice.

// Plan intervals.
const (
	IntervalMonth = "month"
	IntervalYear  = "year"
)

// Rollover policies: what a period's unused credits do at its end.
const (
	RolloverNone  = "none"  // they expire
	RolloverUpTo  = "up_to" // up to Rollover.Max credits carry over (rolled-over credits in all)
	RolloverAll   = "all"   // everything carries over
	maxPlanPeriod = 120     // rollover lifetime, in periods, at most (10 years of months)
)

// Rollover is a plan's rollover policy. Max counts every rolled-over credit
// still alive, not only the last period's: "up to 1,000" means a subscriber
// never holds more than 1,000 rolled-over credits. Periods is how many
// periods rolled-over credits live after the period they came from (1: to
// the end of the next period).
type Rollover struct {
	Policy  string  `json:"policy"`
	Max     Credits `json:"max,omitempty"`
	Periods int     `json:"periods,omitempty"`
}

// Plan is a subscription plan in a price book.
type Plan struct {
	Key      string   `json:"key"`
	Name     string   `json:"name"`
	Interval string   `json:"interval"`
	Price    Money    `json:"price"`
	Credits  Credits  `json:"credits"` // included each period
	Rollover Rollover `json:"rollover"`
	// Packs says whether subscribers may buy credit packs on top.
	Packs bool `json:"packs"`
	// Priority is the burn priority of the plan's credits (lower burns
	// first); nil is the subscription default, before purchased credits.
	Priority *int `json:"priority,omitempty"`
}

// EffectivePriority is the burn priority of the plan's lots.
func (p Plan) EffectivePriority() int {
	if p.Priority != nil {
		return *p.Priority
	}
	return DefaultPriority[SourceSubscription]
}

// PeriodEnd is the end of the period that starts at start: one interval
// later (calendar months and years, as Stripe bills: 31 Jan + 1 month is
// 3 Mar in Go, so the day is clamped to the month's last).
func (p Plan) PeriodEnd(start time.Time) time.Time {
	return AddIntervals(start, p.Interval, 1)
}

// AddIntervals adds n months or years to t, clamping the day to the last
// day of the target month (31 Jan + 1 month is 28 or 29 Feb).
func AddIntervals(t time.Time, interval string, n int) time.Time {
	months := n
	if interval == IntervalYear {
		months = 12 * n
	}
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(months), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(d, last), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
}

// Plan returns the plan with the given key.
func (pb *PriceBook) Plan(key string) (Plan, bool) {
	if pb == nil {
		return Plan{}, false
	}
	for _, p := range pb.Plans {
		if p.Key == key {
			return p, true
		}
	}
	return Plan{}, false
}

// validatePlans checks the price book's plans and fills their defaults.
func (pb *PriceBook) validatePlans() error {
	seen := map[string]bool{}
	for i := range pb.Plans {
		p := &pb.Plans[i]
		if !keyPattern.MatchString(p.Key) {
			return Errorf(CodeValidation, "plan %d: key %q must be 1-64 lower-case letters, digits, '.', '_', ':' or '-'", i+1, p.Key)
		}
		if seen[p.Key] {
			return Errorf(CodeValidation, "plan %q appears twice", p.Key)
		}
		seen[p.Key] = true
		if p.Name == "" {
			p.Name = p.Key
		}
		if p.Interval == "" {
			p.Interval = IntervalMonth
		}
		if p.Interval != IntervalMonth && p.Interval != IntervalYear {
			return Errorf(CodeValidation, "plan %q: interval must be month or year", p.Key)
		}
		p.Price.Currency = strings.ToLower(strings.TrimSpace(p.Price.Currency))
		if p.Price.Currency == "" {
			p.Price.Currency = pb.Currency
		}
		if p.Price.Currency != pb.Currency {
			return Errorf(CodeValidation, "plan %q: priced in %s, but the price book is in %s", p.Key, p.Price.Currency, pb.Currency)
		}
		if p.Price.Amount <= 0 || p.Price.Amount > maxPackPrice {
			return Errorf(CodeValidation, "plan %q: price must be more than zero and at most 10,000,000,000 in minor units (1000 is $10.00)", p.Key)
		}
		if p.Credits <= 0 || p.Credits > MaxCredits {
			return Errorf(CodeValidation, "plan %q: credits must be more than zero and at most %s", p.Key, maxCreditsText)
		}
		r := &p.Rollover
		if r.Policy == "" {
			r.Policy = RolloverNone
		}
		switch r.Policy {
		case RolloverNone:
			if r.Max != 0 || r.Periods != 0 {
				return Errorf(CodeValidation, "plan %q: a rollover policy of none takes no max or periods", p.Key)
			}
		case RolloverUpTo, RolloverAll:
			if r.Policy == RolloverUpTo && (r.Max <= 0 || r.Max > MaxCredits) {
				return Errorf(CodeValidation, "plan %q: rollover up_to needs a max of more than zero credits", p.Key)
			}
			if r.Policy == RolloverAll && r.Max != 0 {
				return Errorf(CodeValidation, "plan %q: rollover all takes no max (use up_to)", p.Key)
			}
			if r.Periods == 0 {
				r.Periods = 1
			}
			if r.Periods < 1 || r.Periods > maxPlanPeriod {
				return Errorf(CodeValidation, "plan %q: rolled-over credits live 1 to %d periods", p.Key, maxPlanPeriod)
			}
		default:
			return Errorf(CodeValidation, "plan %q: rollover policy must be none, up_to or all", p.Key)
		}
		if p.Priority != nil && (*p.Priority < 0 || *p.Priority > 1000) {
			return Errorf(CodeValidation, "plan %q: priority must be between 0 and 1000 (lower burns first)", p.Key)
		}
	}
	return nil
}

// RolloverCarry is how much of a period's unused credits carries over:
// none, all of them, or as many as keep the rolled-over credits still alive
// (alreadyRolled) within the cap. Never negative, never more than unused.
func RolloverCarry(r Rollover, unused, alreadyRolled Credits) Credits {
	if unused <= 0 {
		return 0
	}
	switch r.Policy {
	case RolloverAll:
		return unused
	case RolloverUpTo:
		return min(unused, max(0, r.Max-max(0, alreadyRolled)))
	}
	return 0
}

// Prorate is amount * left / total, rounded to the nearest unit, a half up,
// as Stripe rounds a proration (in 128 bits: amount may be any credits or
// minor units, left and total any durations). left is clamped to
// [0, total]. Nearest, not down: an upgrade seconds into a period charged
// $29.99 for a $30.00 difference.
func Prorate(amount int64, left, total time.Duration) int64 {
	if amount <= 0 || total <= 0 || left <= 0 {
		return 0
	}
	if left >= total {
		return amount
	}
	hi, lo := bits.Mul64(uint64(amount), uint64(left))
	lo, carry := bits.Add64(lo, uint64(total)/2, 0)
	// The quotient is at most amount + 1/2, so it fits: hi < total.
	q, _ := bits.Div64(hi+carry, lo, uint64(total))
	return int64(q)
}

// Subscription statuses.
const (
	SubActive   = "active"
	SubPastDue  = "past_due" // the last invoice failed; credits stop renewing until it is paid
	SubCanceled = "canceled"
)

// Subscription is a customer's plan. PriceVersion is the price book version
// whose plan (PlanKey) they pay for. NextPlan is a downgrade waiting for the
// period's end; CancelAtPeriodEnd a cancellation waiting for it.
type Subscription struct {
	ID                 string     `json:"id"`
	Object             string     `json:"object"`
	Customer           string     `json:"customer"`
	Plan               string     `json:"plan"`
	PriceVersion       int64      `json:"price_version"`
	Status             string     `json:"status"`
	CurrentPeriodStart time.Time  `json:"current_period_start"`
	CurrentPeriodEnd   time.Time  `json:"current_period_end"`
	CancelAtPeriodEnd  bool       `json:"cancel_at_period_end"`
	NextPlan           string     `json:"next_plan,omitempty"`
	NextPriceVersion   int64      `json:"next_price_version,omitempty"`
	Provider           string     `json:"provider"`
	ProviderID         string     `json:"-"`
	CreatedAt          time.Time  `json:"created_at"`
	CanceledAt         *time.Time `json:"canceled_at"`
}

// SubscriptionPeriod is a period whose credits were granted: one per
// (subscription, start) and one per invoice. The store's unique keys on both
// make a renewal happen exactly once, whichever event brings it first.
type SubscriptionPeriod struct {
	Subscription string
	Start, End   time.Time
	Invoice      string // the provider's invoice id (sandbox: "sbx_inv_...")
	Plan         string
	PriceVersion int64
	Credits      Credits
	Amount       Money // what the invoice charged
	Kind         string
}

// Period kinds: what a SubscriptionPeriod row records.
const (
	PeriodRenewal = "renewal" // a period's credits (the first one too)
	PeriodUpgrade = "upgrade" // an upgrade's prorated difference
)

// LotRollover is a subscription lot's rule for its period's end: the plan's
// policy, and when credits that carry over expire.
type LotRollover struct {
	Subscription string
	Rollover     Rollover
	KeepUntil    time.Time
}

// LotClose is a subscription lot at its period's end: the lot's expiry moves
// to ExpiresAt (its carried credits live on) or, with nothing carried, the
// lot is done. Its rule is marked closed either way.
type LotClose struct {
	LotID     int64
	ExpiresAt *time.Time
}

// Subscription events.
const (
	EventSubscriptionCreated  = "subscription.created"
	EventSubscriptionRenewed  = "subscription.renewed"
	EventSubscriptionUpdated  = "subscription.updated" // plan changed, downgrade or cancellation scheduled, resumed
	EventSubscriptionCanceled = "subscription.canceled"
	EventInvoicePaymentFailed = "invoice.payment_failed"
	EventCreditsRolledOver    = "credits.rolled_over"
)

func init() {
	EventTypes = append(EventTypes, EventSubscriptionCreated, EventSubscriptionRenewed, EventSubscriptionUpdated,
		EventSubscriptionCanceled, EventInvoicePaymentFailed, EventCreditsRolledOver)
}

func subData(s *Subscription, extra map[string]any) map[string]any {
	d := map[string]any{"subscription": s.ID, "plan": s.Plan, "price_version": s.PriceVersion, "status": s.Status,
		"current_period_start": s.CurrentPeriodStart, "current_period_end": s.CurrentPeriodEnd,
		"cancel_at_period_end": s.CancelAtPeriodEnd}
	if s.NextPlan != "" {
		d["next_plan"] = s.NextPlan
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// periodGrant adds to ch the grant of credits from plan p for the period
// [start, end) of sub: a subscription lot expiring at end with the plan's
// rollover rule, its entry (keyed by the period, so a replay is refused by
// the ledger's unique key too) and the period's row.
func periodGrant(s *WalletState, ch *Change, sub *Subscription, p Plan, credits Credits, period SubscriptionPeriod, now time.Time) error {
	plan, err := PlanGrant(s.Wallet, credits)
	if err != nil {
		return err
	}
	now = now.UTC().Truncate(time.Microsecond)
	end := period.End.UTC().Truncate(time.Microsecond)
	reason := p.Name + " plan, " + period.Start.UTC().Format("2 Jan 2006") + " to " + end.Format("2 Jan 2006")
	if period.Kind == PeriodUpgrade {
		reason = "Upgrade to " + p.Name + " (prorated), to " + end.Format("2 Jan 2006")
	}
	ch.NewLot = &Lot{CustomerID: s.Customer, Source: SourceSubscription, Priority: p.EffectivePriority(), Amount: credits,
		Remaining: plan.LotRemaining, ExpiresAt: &end, Reason: reason, CreatedAt: now}
	if p.Rollover.Policy != RolloverNone {
		ch.Rollover = &LotRollover{Subscription: sub.ID, Rollover: p.Rollover,
			KeepUntil: AddIntervals(end, p.Interval, p.Rollover.Periods)}
	}
	ch.Entries = append(ch.Entries, EntryDraft{Type: EntryGrant, Amount: credits, BalanceAfter: plan.BalanceAfter, OnNewLot: true,
		Source: SourceSubscription, Reason: reason, Key: "sub:" + sub.ID + ":" + period.Kind + ":" + period.Invoice})
	ch.Balance, ch.Debt = plan.BalanceAfter, ch.Debt-plan.DebtRepaid
	period.Credits = credits
	ch.Period = &period
	return nil
}

// SubscribeRequest is a new subscription to plan: its id is the store's,
// chosen before planning; Invoice is the first invoice (paid).
type SubscribeRequest struct {
	ID           string
	Plan         Plan
	PriceVersion int64
	Provider     string
	ProviderID   string
	Invoice      string
	Start        time.Time // the first period's start
	End          time.Time // its end (zero: one interval later)
	Now          time.Time
	Actor        Actor
}

// PlanSubscribe starts a subscription: the first period's credits at once,
// subscription.created. A customer with a live subscription is refused
// (conflict): they change plan instead.
func PlanSubscribe(s *WalletState, current *Subscription, r SubscribeRequest) (Change, error) {
	if current != nil && current.Status != SubCanceled {
		return Change{}, Errorf(CodeConflict, "This customer already subscribes to %s; change the plan instead.", current.Plan).
			With("subscription", current.ID)
	}
	from := r.Start.UTC().Truncate(time.Microsecond)
	end := r.End.UTC().Truncate(time.Microsecond)
	if r.End.IsZero() {
		end = r.Plan.PeriodEnd(from)
	}
	sub := &Subscription{ID: r.ID, Object: "subscription", Customer: s.Customer, Plan: r.Plan.Key, PriceVersion: r.PriceVersion,
		Status: SubActive, CurrentPeriodStart: from, CurrentPeriodEnd: end, Provider: r.Provider, ProviderID: r.ProviderID,
		CreatedAt: r.Now.UTC().Truncate(time.Microsecond)}
	ch := start(s, r.Actor)
	ch.Subscription = sub
	if err := periodGrant(s, &ch, sub, r.Plan, r.Plan.Credits, SubscriptionPeriod{Subscription: sub.ID, Start: from, End: end,
		Invoice: r.Invoice, Plan: r.Plan.Key, PriceVersion: r.PriceVersion, Amount: r.Plan.Price, Kind: PeriodRenewal}, r.Now); err != nil {
		return Change{}, err
	}
	ch.Events = append(ch.Events, NewEvent{Type: EventSubscriptionCreated, Customer: s.Customer, Entry: 1,
		Data: subData(sub, map[string]any{"plan_name": r.Plan.Name, "credits": r.Plan.Credits, "amount": r.Plan.Price.Amount, "currency": r.Plan.Price.Currency,
			"invoice": r.Invoice})})
	finish(s, &ch, false)
	return ch, nil
}

// RenewalRequest is a paid invoice for the period [Start, End) of sub, with
// the plan it pays for (a downgrade waiting for this period is the caller's
// to resolve: Plan is what the invoice bills).
type RenewalRequest struct {
	Plan         Plan
	PriceVersion int64
	Invoice      string
	Start, End   time.Time
	Amount       Money
	Now          time.Time
	Actor        Actor
}

// PlanRenewal grants a paid period's credits and moves the subscription's
// current period on (never back: an invoice that arrives after a later one
// grants its credits but leaves the newer period current). A canceled
// subscription renews nothing (conflict). The store refuses a second grant
// for the same period or invoice by its unique keys; the plan does not see
// them.
func PlanRenewal(s *WalletState, sub Subscription, r RenewalRequest) (Change, error) {
	if sub.Status == SubCanceled {
		return Change{}, Errorf(CodeConflict, "Subscription %s is canceled; its credits no longer renew.", sub.ID)
	}
	from := r.Start.UTC().Truncate(time.Microsecond)
	end := r.End.UTC().Truncate(time.Microsecond)
	if !end.After(from) {
		return Change{}, Errorf(CodeValidation, "a period must end after it starts")
	}
	ch := start(s, r.Actor)
	next := sub
	if !from.Before(sub.CurrentPeriodStart) {
		next.CurrentPeriodStart, next.CurrentPeriodEnd = from, end
		next.Plan, next.PriceVersion = r.Plan.Key, r.PriceVersion
		if next.NextPlan == r.Plan.Key {
			next.NextPlan, next.NextPriceVersion = "", 0
		}
	}
	next.Status = SubActive
	ch.Subscription = &next
	if err := periodGrant(s, &ch, &next, r.Plan, r.Plan.Credits, SubscriptionPeriod{Subscription: sub.ID, Start: from, End: end,
		Invoice: r.Invoice, Plan: r.Plan.Key, PriceVersion: r.PriceVersion, Amount: r.Amount, Kind: PeriodRenewal}, r.Now); err != nil {
		return Change{}, err
	}
	ch.Events = append(ch.Events, NewEvent{Type: EventSubscriptionRenewed, Customer: s.Customer, Entry: 1,
		Data: subData(&next, map[string]any{"plan_name": r.Plan.Name, "credits": r.Plan.Credits, "amount": r.Amount.Amount, "currency": r.Amount.Currency,
			"invoice": r.Invoice, "period_start": from, "period_end": end})})
	finish(s, &ch, false)
	return ch, nil
}

// PlanPeriodClose ends a subscription lot's period: RolloverCarry decides
// what carries over (alreadyRolled is what the customer's other rolled-over
// lots still hold); the rest expires with an expiry entry, and the carried
// credits live on to the rule's KeepUntil. A frozen or empty lot only
// closes. credits.rolled_over tells what carried.
func PlanPeriodClose(s *WalletState, l Lot, rule LotRollover, alreadyRolled Credits, now time.Time) Change {
	ch := start(s, SystemActor("subscription"))
	carry := Credits(0)
	if !l.Frozen {
		carry = RolloverCarry(rule.Rollover, l.Remaining, alreadyRolled)
	}
	lc := LotClose{LotID: l.ID}
	if carry > 0 {
		until := rule.KeepUntil.UTC().Truncate(time.Microsecond)
		lc.ExpiresAt = &until
	}
	ch.CloseLots = []LotClose{lc}
	if excess := l.Remaining - carry; excess > 0 && !l.Frozen {
		ch.Balance -= excess
		ch.Entries = []EntryDraft{{Type: EntryExpiry, Amount: -excess, BalanceAfter: ch.Balance, LotID: l.ID,
			Reason: "plan credits expired at the period's end", Burns: []Burn{{LotID: l.ID, Credits: excess}}}}
		ch.Events = append(ch.Events, NewEvent{Type: EventGrantExpired, Customer: s.Customer, Entry: 1,
			Data: map[string]any{"lot": LotRef(l.ID), "source": l.Source, "credits": excess, "expired_at": l.ExpiresAt}})
	}
	if carry > 0 {
		ch.Events = append(ch.Events, NewEvent{Type: EventCreditsRolledOver, Customer: s.Customer,
			Data: map[string]any{"lot": LotRef(l.ID), "subscription": rule.Subscription, "credits": carry,
				"expires_at": lc.ExpiresAt}})
	}
	finish(s, &ch, true)
	return ch
}

// PlanChangeQuote is what a plan change will do, shown before the customer
// confirms it: credits granted now and money charged now (an upgrade,
// prorated for the rest of the period), or the date a downgrade takes effect.
type PlanChangeQuote struct {
	From, To      string
	Upgrade       bool
	CreditsNow    Credits
	AmountNow     Money
	EffectiveAt   time.Time
	NextPeriodPay Money
	NextCredits   Credits
}

// IsUpgrade says whether moving from plan a to plan b happens at once: the
// same interval and currency, and a higher price (or the same price and
// more credits). Anything else waits for the period's end.
func IsUpgrade(a, b Plan) bool {
	if a.Interval != b.Interval || a.Price.Currency != b.Price.Currency {
		return false
	}
	return b.Price.Amount > a.Price.Amount || (b.Price.Amount == a.Price.Amount && b.Credits > a.Credits)
}

// QuotePlanChange prorates a move from plan `from` to plan `to` at now in
// the period of sub. An upgrade charges the price difference for the rest of
// the period, rounded to the nearest minor unit (as Stripe, which charges it
// for a Stripe subscription), and grants at once the credits that charge
// buys at the plans' difference (Δcredits per Δprice), rounded to the
// nearest whole credit: the credits follow the money actually charged, so
// $30.00 of a $30.00 difference is the whole 4,000 credits (rounding the two
// separately gave 3,999 credits for $30.00 a few minutes into a period).
// Without a price difference (the same price, more credits) the credits are
// prorated by time. A downgrade takes effect at the period's end and changes
// nothing now.
func QuotePlanChange(sub Subscription, from, to Plan, now time.Time) PlanChangeQuote {
	q := PlanChangeQuote{From: from.Key, To: to.Key, Upgrade: IsUpgrade(from, to), NextPeriodPay: to.Price, NextCredits: to.Credits,
		AmountNow: Money{Currency: to.Price.Currency}}
	if !q.Upgrade {
		q.EffectiveAt = sub.CurrentPeriodEnd
		return q
	}
	q.EffectiveAt = now.UTC().Truncate(time.Microsecond)
	total := sub.CurrentPeriodEnd.Sub(sub.CurrentPeriodStart)
	left := sub.CurrentPeriodEnd.Sub(now)
	diff := max(0, to.Credits-from.Credits)
	dprice := to.Price.Amount - from.Price.Amount
	q.AmountNow.Amount = Prorate(dprice, left, total)
	if dprice > 0 {
		q.CreditsNow = min(diff, Credits(mulDivRound(q.AmountNow.Amount, int64(diff), dprice*Milli)*Milli))
	} else {
		q.CreditsNow = min(diff, Credits((Prorate(int64(diff), left, total)+Milli/2)/Milli*Milli))
	}
	return q
}

// mulDivRound is a * b / c rounded to the nearest integer, a half up, for a,
// b >= 0 and c > 0, in 128 bits; a result beyond int64 is MaxInt64.
func mulDivRound(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	lo, carry := bits.Add64(lo, uint64(c)/2, 0)
	hi += carry
	if hi >= uint64(c) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(min(q, math.MaxInt64))
}

// ChangePlanRequest is a customer's (or admin's) move to another plan.
type ChangePlanRequest struct {
	From, To     Plan
	PriceVersion int64 // the version of To
	Invoice      string
	Now          time.Time
	Actor        Actor
}

// PlanChangePlan moves sub to another plan. An upgrade happens now: the
// prorated credit difference as a lot expiring with the period (the
// prorated money is the caller's to charge, before applying: q.AmountNow) and
// the subscription on the new plan. A downgrade is scheduled for the
// period's end (NextPlan). Either clears a pending cancellation. The same
// plan is a conflict; a canceled or past-due subscription cannot change.
func PlanChangePlan(s *WalletState, sub Subscription, r ChangePlanRequest) (Change, PlanChangeQuote, error) {
	if sub.Status != SubActive {
		return Change{}, PlanChangeQuote{}, Errorf(CodeConflict, "Subscription %s is %s; it cannot change plan.", sub.ID, sub.Status)
	}
	if r.To.Key == sub.Plan && r.PriceVersion == sub.PriceVersion {
		return Change{}, PlanChangeQuote{}, Errorf(CodeConflict, "This subscription is already on %s.", r.To.Name).With("param", "plan")
	}
	q := QuotePlanChange(sub, r.From, r.To, r.Now)
	ch := start(s, r.Actor)
	next := sub
	next.CancelAtPeriodEnd = false
	if q.Upgrade {
		next.Plan, next.PriceVersion, next.NextPlan, next.NextPriceVersion = r.To.Key, r.PriceVersion, "", 0
		if q.CreditsNow > 0 {
			if err := periodGrant(s, &ch, &next, r.To, q.CreditsNow, SubscriptionPeriod{Subscription: sub.ID,
				Start: r.Now.UTC().Truncate(time.Microsecond), End: sub.CurrentPeriodEnd, Invoice: r.Invoice, Plan: r.To.Key,
				PriceVersion: r.PriceVersion, Amount: q.AmountNow, Kind: PeriodUpgrade}, r.Now); err != nil {
				return Change{}, q, err
			}
		}
	} else {
		next.NextPlan, next.NextPriceVersion = r.To.Key, r.PriceVersion
	}
	ch.Subscription = &next
	ev := NewEvent{Type: EventSubscriptionUpdated, Customer: s.Customer, Data: subData(&next, map[string]any{
		"previous_plan": sub.Plan, "plan_name": r.To.Name, "change": map[bool]string{true: "upgrade", false: "downgrade"}[q.Upgrade],
		"credits_granted": q.CreditsNow, "amount_charged": q.AmountNow.Amount, "currency": q.AmountNow.Currency,
		"effective_at": q.EffectiveAt})}
	if len(ch.Entries) > 0 {
		ev.Entry = 1
	}
	ch.Events = append(ch.Events, ev)
	finish(s, &ch, false)
	return ch, q, nil
}

// PlanCancel schedules the end of sub at its period's end (atPeriodEnd) or
// ends it now. Credits already granted stay until their lots expire; the
// period's credits do not renew. Ending now is what a provider's
// subscription.deleted says.
func PlanCancel(s *WalletState, sub Subscription, atPeriodEnd bool, now time.Time, actor Actor) (Change, error) {
	if sub.Status == SubCanceled {
		return Change{}, Errorf(CodeConflict, "Subscription %s is already canceled.", sub.ID)
	}
	ch := start(s, actor)
	next := sub
	typ := EventSubscriptionUpdated
	if atPeriodEnd {
		if sub.CancelAtPeriodEnd {
			return Change{}, Errorf(CodeConflict, "Subscription %s already ends on %s.", sub.ID, sub.CurrentPeriodEnd.Format("2 Jan 2006"))
		}
		next.CancelAtPeriodEnd = true
		if !sub.Migrating() {
			next.NextPlan, next.NextPriceVersion = "", 0
		}
	} else {
		at := now.UTC().Truncate(time.Microsecond)
		next.Status, next.CanceledAt, next.NextPlan, next.NextPriceVersion = SubCanceled, &at, "", 0
		typ = EventSubscriptionCanceled
	}
	ch.Subscription = &next
	ch.Events = append(ch.Events, NewEvent{Type: typ, Customer: s.Customer, Data: subData(&next, nil)})
	return ch, nil
}

// PlanResume takes back a scheduled cancellation or downgrade before the
// period ends. An admin's migration to the plan's new version is not the
// customer's to take back: it stays.
func PlanResume(s *WalletState, sub Subscription, actor Actor) (Change, error) {
	if sub.Status == SubCanceled || (!sub.CancelAtPeriodEnd && (sub.NextPlan == "" || sub.Migrating())) {
		return Change{}, Errorf(CodeConflict, "Subscription %s has no cancellation or plan change to take back.", sub.ID)
	}
	ch := start(s, actor)
	next := sub
	next.CancelAtPeriodEnd = false
	if !sub.Migrating() {
		next.NextPlan, next.NextPriceVersion = "", 0
	}
	ch.Subscription = &next
	ch.Events = append(ch.Events, NewEvent{Type: EventSubscriptionUpdated, Customer: s.Customer,
		Data: subData(&next, map[string]any{"change": "resume"})})
	return ch, nil
}

// PlanPaymentFailed records a failed invoice: the subscription is past due
// (its credits do not renew until an invoice is paid) and
// invoice.payment_failed starts the dunning notices. final says the
// provider gave up: the subscription is canceled.
func PlanPaymentFailed(s *WalletState, sub Subscription, invoice string, amount Money, attempt int, final bool, now time.Time) Change {
	ch := start(s, SystemActor("payment_provider"))
	next := sub
	next.Status = SubPastDue
	if final {
		at := now.UTC().Truncate(time.Microsecond)
		next.Status, next.CanceledAt = SubCanceled, &at
	}
	ch.Subscription = &next
	ch.Events = append(ch.Events, NewEvent{Type: EventInvoicePaymentFailed, Customer: s.Customer, Data: subData(&next, map[string]any{
		"invoice": invoice, "amount": amount.Amount, "currency": amount.Currency, "attempt": attempt, "final": final})})
	if final {
		ch.Events = append(ch.Events, NewEvent{Type: EventSubscriptionCanceled, Customer: s.Customer, Data: subData(&next,
			map[string]any{"reason": "payment_failed"})})
	}
	return ch
}

// Provider subscription events (Stripe's names), reduced to
// PaymentEvent.Invoice or PaymentEvent.Subscription.
const (
	EventProviderInvoicePaid         = "invoice.paid"
	EventProviderInvoiceFailed       = "invoice.payment_failed"
	EventProviderSubscriptionUpdated = "customer.subscription.updated"
	EventProviderSubscriptionDeleted = "customer.subscription.deleted"
)

// ProviderInvoice is a subscription invoice as the provider reports it.
// Period is the subscription period the invoice pays for (Stripe's line
// period, not the invoice's own period_start, which is the previous one).
type ProviderInvoice struct {
	ID           string
	Subscription string // the provider's subscription id
	Customer     string // the provider's customer id
	Reason       string // subscription_create, subscription_cycle, subscription_update...
	PeriodStart  time.Time
	PeriodEnd    time.Time
	Amount       Money // paid, or due when it failed
	Attempt      int
	Final        bool              // a failure after which the provider retries no more
	PlanRef      string            // the price's lookup key (PlanLookupKey)
	Metadata     map[string]string // the subscription's: tally_customer, tally_plan, tally_price_version
}

// ProviderSubscription is a subscription's state at the provider.
type ProviderSubscription struct {
	ID                string
	Customer          string
	Status            string // Stripe's: active, trialing, past_due, unpaid, canceled, incomplete...
	PeriodStart       time.Time
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool
	PlanRef           string
	Metadata          map[string]string
}

// PlanLookupKey names a plan's price at a provider: the plan's key,
// interval and price, so a plan unchanged across price book versions keeps
// its price, and a new price gets a new one.
func PlanLookupKey(p Plan) string {
	return "tally/" + p.Key + "/" + p.Interval + "/" + strconv.FormatInt(p.Price.Amount, 10) + p.Price.Currency
}

// PlanKeyOf reads the plan key back from a PlanLookupKey ("" if it is not one).
func PlanKeyOf(lookupKey string) string {
	parts := strings.Split(lookupKey, "/")
	if len(parts) != 4 || parts[0] != "tally" {
		return ""
	}
	return parts[1]
}

// SubscriptionStatusOf maps a provider's subscription status to Tally's.
func SubscriptionStatusOf(providerStatus string) string {
	switch providerStatus {
	case "active", "trialing":
		return SubActive
	case "past_due", "unpaid", "incomplete", "paused":
		return SubPastDue
	}
	return SubCanceled
}

// PlanSync keeps sub in step with the provider's state ps: status,
// cancellation at the period's end, the current period (never moved back by
// an older event; a new period brings a waiting plan change into effect)
// and, when the provider's plan differs, the plan at version: at once (an
// upgrade, a change in the provider's dashboard) or, when the provider's
// metadata says so (MetaEffective), from the period's end. It changes no credits: the provider's
// invoices bring them. ok is false when nothing differs.
func PlanSync(s *WalletState, sub Subscription, ps ProviderSubscription, plan Plan, version int64, now time.Time) (Change, bool) {
	next := sub
	next.CancelAtPeriodEnd = ps.CancelAtPeriodEnd
	if st := SubscriptionStatusOf(ps.Status); st != sub.Status {
		next.Status = st
		if st == SubCanceled {
			at := now.UTC().Truncate(time.Microsecond)
			next.CanceledAt = &at
		}
	}
	from, end := ps.PeriodStart.UTC().Truncate(time.Microsecond), ps.PeriodEnd.UTC().Truncate(time.Microsecond)
	if !ps.PeriodStart.IsZero() && !from.Before(sub.CurrentPeriodStart) {
		// A new period: a change waiting for the old one's end (a
		// downgrade, a migration to a new version) takes effect, so the
		// period's invoice, whenever it arrives, grants the new plan.
		if !from.Before(sub.CurrentPeriodEnd) && sub.NextPlan != "" {
			next.Plan, next.PriceVersion, next.NextPlan, next.NextPriceVersion = sub.NextPlan, sub.NextPriceVersion, "", 0
		}
		next.CurrentPeriodStart, next.CurrentPeriodEnd = from, end
	}
	if plan.Key != "" && plan.Key != next.Plan {
		if ps.Metadata[MetaEffective] == EffectivePeriodEnd {
			// Tally's own downgrade: Stripe bills the new price from the
			// next invoice; the plan changes then.
			next.NextPlan, next.NextPriceVersion = plan.Key, version
		} else {
			next.Plan, next.PriceVersion, next.NextPlan, next.NextPriceVersion = plan.Key, version, "", 0
		}
	}
	if next.Status == sub.Status && next.CancelAtPeriodEnd == sub.CancelAtPeriodEnd && next.Plan == sub.Plan && next.PriceVersion == sub.PriceVersion &&
		next.NextPlan == sub.NextPlan && next.NextPriceVersion == sub.NextPriceVersion &&
		next.CurrentPeriodStart.Equal(sub.CurrentPeriodStart) && next.CurrentPeriodEnd.Equal(sub.CurrentPeriodEnd) {
		return Change{}, false
	}
	ch := start(s, SystemActor("payment_provider"))
	ch.Subscription = &next
	typ := EventSubscriptionUpdated
	if next.Status == SubCanceled {
		typ = EventSubscriptionCanceled
	}
	ch.Events = append(ch.Events, NewEvent{Type: typ, Customer: s.Customer, Data: subData(&next, map[string]any{"change": "provider"})})
	return ch, true
}

// PlanRenewals are the renewals of sub to come within horizon of now, as
// lots that arrive (CreatedAt) at each period's start and expire at its
// end, for the depletion forecast (NewPlanForecast). A scheduled downgrade
// applies from the next period (next is its plan; nil: none); a
// cancellation, a past-due or canceled subscription renews nothing. Rollover
// is not counted: the forecast errs on the side of running out sooner.
func PlanRenewals(sub *Subscription, plan Plan, next *Plan, now time.Time, horizon time.Duration) []Lot {
	if sub == nil || sub.Status != SubActive || sub.CancelAtPeriodEnd {
		return nil
	}
	if next != nil {
		plan = *next
	}
	var out []Lot
	start := sub.CurrentPeriodEnd
	for i := 0; start.Before(now.Add(horizon)) && i < 1000; i++ {
		end := AddIntervals(sub.CurrentPeriodEnd, plan.Interval, i+1)
		if start.After(now) {
			e := end
			out = append(out, Lot{ID: -int64(i) - 2, Source: SourceSubscription, Priority: plan.EffectivePriority(), Amount: plan.Credits,
				Remaining: plan.Credits, ExpiresAt: &e, Reason: plan.Name, CreatedAt: start})
		}
		start = end
	}
	return out
}
