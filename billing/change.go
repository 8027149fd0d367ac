package billing

import (
	"strconv"
	"time"
)

// Plan, then apply. Every rule that moves credits is a pure function here:
// it reads a snapshot of the customer's wallet (WalletState) and a request,
// and returns a Change, or an error and no Change. The store applies a
// Change whole, in one transaction with its events; no other code writes a
// balance, a lot, a hold or a debt. A refused plan changes nothing because
// it returns nothing to apply.

// WalletState is what the money rules read of one customer: the wallet, the
// lots that still hold credits, and the lines that events and auto-refill
// watch. The store expires due holds and lots before it plans anything
// else, so a plan never counts credits they can no longer give.
type WalletState struct {
	Customer string
	Wallet
	Lots         []Lot    // remaining > 0, any order
	RefillAt     *Credits // auto-refill threshold; nil when off or paused
	LowThreshold Credits  // balance.low fires at or below it
	LowAnnounced bool     // the last threshold event said "low" (balance.low or balance.depleted)
	Frozen       bool     // an admin froze the account: no debit, no new hold
}

// Lot returns the lot with id, if it still holds credits.
func (s *WalletState) Lot(id int64) (Lot, bool) {
	for _, l := range s.Lots {
		if l.ID == id {
			return l, true
		}
	}
	return Lot{}, false
}

// Change is everything that follows from one decision. The store writes the
// entries (with their burns), the new lot, the hold opened or closed, the
// frozen lots, the wallet's new figures, the usage rollup, the auto-refill
// job and the events, all in one transaction, with the actor on each.
type Change struct {
	Customer string
	Actor    Actor

	Entries   []EntryDraft
	NewLot    *Lot    // a lot to create (a grant); its id is the store's
	Freeze    []int64 // lots to freeze (a disputed payment): their credits leave the balance
	EmptyLots []int64 // frozen lots whose time has come: emptied, no entry (their credits left when frozen)

	// The wallet after the change.
	Balance, Held, Debt Credits

	OpenHold  *Hold      // a hold to open (its id and times are the plan's)
	CloseHold *HoldClose // an active hold to close

	Usage        *UsageDraft // what the change adds to the usage rollups and spend
	QueueRefill  bool        // start an auto-refill: the change took available below the line
	LowAnnounced bool        // the wallet's new threshold state
	Events       []NewEvent

	// Subscriptions (plans.go).
	Subscription *Subscription       // the subscription's new state: created or updated
	Period       *SubscriptionPeriod // a period (or upgrade) whose credits this change grants: unique per period and invoice
	Rollover     *LotRollover        // the new lot's rule for its period's end
	CloseLots    []LotClose          // subscription lots at their period's end
}

// EntryDraft is an entry to append. Its burns name the lots it takes
// credits from; OnNewLot ties it to the change's new lot.
type EntryDraft struct {
	Type         string
	Amount       Credits
	HeldDelta    Credits
	BalanceAfter Credits
	Feature      string
	Quantity     *Quantity
	Breakdown    []DimensionCharge // a debit priced per dimension
	PriceVersion int64
	LotID        int64
	OnNewLot     bool
	HoldID       string
	Source       string
	Reason       string
	Metadata     map[string]string
	APIKeyID     string
	Key          string // idempotency key
	Hash         []byte
	Burns        []Burn
}

// HoldClose closes an active hold as released, expired or captured.
type HoldClose struct {
	ID     string
	Status string
}

// UsageDraft is a debit's share of the rollups (customer per feature and
// day, and the API key's spend).
type UsageDraft struct {
	Feature  string
	Quantity Quantity
	Credits  Credits
	APIKeyID string
}

// start is a change to s's wallet that, so far, changes nothing.
func start(s *WalletState, actor Actor) Change {
	return Change{Customer: s.Customer, Actor: actor, Balance: s.Balance, Held: s.Held, Debt: s.Debt, LowAnnounced: s.LowAnnounced}
}

// finish adds what follows from the wallet's move: the threshold events
// (once per crossing) and, for usage (mayRefill), the auto-refill trigger
// when available fell from at or above its line to below it. A refund or a
// frozen dispute never starts a refill: charging the card again then would
// be wrong.
func finish(s *WalletState, ch *Change, mayRefill bool) {
	before, after := s.Available(), ch.Balance-ch.Held
	for _, ev := range BalanceEvents(s.Customer, before, after, s.LowThreshold, s.LowAnnounced) {
		ch.LowAnnounced = ev.Type != EventBalanceRecovered
		ch.Events = append(ch.Events, ev)
	}
	if mayRefill && s.RefillAt != nil && before >= *s.RefillAt && after < *s.RefillAt {
		ch.QueueRefill = true
	}
}

// Usage is one metered action, priced: what PlanUsage and PlanCapture charge.
type Usage struct {
	Feature      string
	Quantity     Quantity          // 0 when priced per dimension
	Breakdown    []DimensionCharge // per dimension (PriceUsage)
	Charge       Credits
	PriceVersion int64
	Metadata     map[string]string
	APIKey       *APIKey
	Key          string // idempotency key
	Hash         []byte
}

// debitChange is a debit of u, decided by plan: the entry with its burns,
// the rollups, the spend_limit.reached events of what counts against the
// caps (capped), and what follows.
func debitChange(s *WalletState, u Usage, plan DebitPlan, caps []CapUse, capped Credits, hold *Hold) Change {
	ch := start(s, KeyActor(u.APIKey))
	q := u.Quantity
	e := EntryDraft{Type: EntryDebit, Amount: -u.Charge, BalanceAfter: plan.BalanceAfter, Feature: u.Feature, Quantity: &q,
		PriceVersion: u.PriceVersion, Metadata: u.Metadata, Key: u.Key, Hash: u.Hash, Burns: plan.Burns}
	if len(u.Breakdown) > 0 {
		// Priced per dimension: the breakdown is the entry's quantity.
		e.Quantity, e.Breakdown = nil, u.Breakdown
	}
	if u.APIKey != nil {
		e.APIKeyID = u.APIKey.ID
	}
	if hold != nil {
		e.HoldID, e.HeldDelta = hold.ID, -hold.Credits
		ch.Held -= hold.Credits
		ch.CloseHold = &HoldClose{ID: hold.ID, Status: HoldCaptured}
	}
	ch.Entries = []EntryDraft{e}
	ch.Balance, ch.Debt = plan.BalanceAfter, s.Debt+plan.DebtIncrease
	ch.Usage = &UsageDraft{Feature: u.Feature, Quantity: u.Quantity, Credits: u.Charge, APIKeyID: e.APIKeyID}
	if capped > 0 {
		ch.Events = append(ch.Events, CapsReached(s.Customer, caps, capped)...)
	}
	finish(s, &ch, true)
	return ch
}

// PlanDebitChange decides a usage debit (PlanUsage) and returns its Change.
func PlanDebitChange(s *DebitSnapshot, u Usage) (Change, error) {
	plan, err := PlanUsage(*s, u.Charge)
	if err != nil {
		return Change{}, err
	}
	return debitChange(&s.State, u, plan, s.Caps, u.Charge, nil), nil
}

// PlanCaptureChange decides the capture of an active hold for u
// (PlanCapture's bounds) and returns its Change: the debit, and the hold
// closed as captured.
func PlanCaptureChange(s *DebitSnapshot, h Hold, u Usage) (Change, error) {
	plan, err := PlanCapture(*s, h.Credits, u.Charge)
	if err != nil {
		return Change{}, err
	}
	return debitChange(&s.State, u, plan, s.Caps, u.Charge-h.Credits, &h), nil
}

// HoldRequestPlan is a hold the store asks PlanHoldChange to open: its id
// is chosen before planning, so the plan names it.
type HoldRequestPlan struct {
	ID     string
	Amount Credits
	TTL    time.Duration
	APIKey *APIKey
	Key    string
	Hash   []byte
}

// PlanHoldChange decides a new hold (PlanHold's rules) and returns its
// Change: the hold, its entry (held grows, the balance does not move) and
// what follows.
func PlanHoldChange(s *DebitSnapshot, r HoldRequestPlan) (Change, error) {
	if err := PlanHold(*s, r.Amount); err != nil {
		return Change{}, err
	}
	st := &s.State
	ch := start(st, KeyActor(r.APIKey))
	now := s.Now.UTC().Truncate(time.Microsecond)
	ch.OpenHold = &Hold{ID: r.ID, Object: "hold", Customer: st.Customer, Credits: r.Amount, Status: HoldActive,
		ExpiresAt: now.Add(r.TTL), CreatedAt: now}
	e := EntryDraft{Type: EntryHold, HeldDelta: r.Amount, BalanceAfter: st.Balance, HoldID: r.ID, Key: r.Key, Hash: r.Hash}
	if r.APIKey != nil {
		e.APIKeyID = r.APIKey.ID
	}
	ch.Entries = []EntryDraft{e}
	ch.Held += r.Amount
	finish(st, &ch, true)
	return ch, nil
}

// PlanHoldClose ends an active hold without a charge: released by its
// product, or expired (status). Its credits are available again.
func PlanHoldClose(s *WalletState, h Hold, status string, actor Actor) Change {
	ch := start(s, actor)
	reason := "released"
	if status == HoldExpired {
		reason = "hold expired"
	}
	ch.Entries = []EntryDraft{{Type: EntryHoldRelease, HeldDelta: -h.Credits, BalanceAfter: s.Balance, HoldID: h.ID, Reason: reason}}
	ch.Held -= h.Credits
	ch.CloseHold = &HoldClose{ID: h.ID, Status: status}
	if status == HoldExpired {
		ch.Events = append(ch.Events, NewEvent{Type: EventHoldExpired, Customer: s.Customer, Entry: 1,
			Data: map[string]any{"hold": h.ID, "credits": h.Credits, "expired_at": h.ExpiresAt}})
	}
	finish(s, &ch, false)
	return ch
}

// PlanLotExpiry writes off what is left of a lot whose time has come. A
// frozen lot's credits already left the balance when it was frozen: its
// expiry only empties it (no entry).
func PlanLotExpiry(s *WalletState, l Lot) Change {
	ch := start(s, SystemActor("expiry"))
	if l.Frozen {
		ch.EmptyLots = []int64{l.ID}
		return ch
	}
	// Credits that open holds reserved stay in the lot until the holds
	// close: the lot gives up only what the holds do not need (the
	// available credits), and the next sweep or operation writes off the
	// rest. Expiring them all took credits a hold had reserved, so its
	// capture ran the customer into debt past their overdraft limit.
	gone := min(l.Remaining, max(0, s.Available()))
	if gone == 0 {
		return ch
	}
	ch.Balance -= gone
	ch.Entries = []EntryDraft{{Type: EntryExpiry, Amount: -gone, BalanceAfter: ch.Balance, LotID: l.ID, Reason: "lot expired",
		Burns: []Burn{{LotID: l.ID, Credits: gone}}}}
	data := map[string]any{"lot": LotRef(l.ID), "source": l.Source, "credits": gone, "expired_at": l.ExpiresAt}
	if kept := l.Remaining - gone; kept > 0 {
		data["kept_for_holds"] = kept
	}
	ch.Events = append(ch.Events, NewEvent{Type: EventGrantExpired, Customer: s.Customer, Entry: 1, Data: data})
	finish(s, &ch, true)
	return ch
}

// LotRef is a lot's row id; it marshals as the lot's public id ("lot_17"),
// so event payloads name lots as the API does.
type LotRef int64

// MarshalJSON writes the public id.
func (r LotRef) MarshalJSON() ([]byte, error) {
	return []byte(`"lot_` + strconv.FormatInt(int64(r), 10) + `"`), nil
}

// GrantPlanRequest is a grant to plan: the request, validated, the entry
// type it writes (grant, or adjustment for a positive correction) and now.
type GrantPlanRequest struct {
	Req  *GrantRequest
	Type string
	Hash []byte
	Now  time.Time
}

// PlanGrantChange decides a grant: a new lot (part of which may repay debt
// at once, PlanGrant), its entry, grant.created (or adjustment.created) and
// what follows.
func PlanGrantChange(s *WalletState, g GrantPlanRequest) (Change, error) {
	plan, err := PlanGrant(s.Wallet, g.Req.Credits)
	if err != nil {
		return Change{}, err
	}
	now := g.Now.UTC().Truncate(time.Microsecond)
	req := g.Req
	ch := start(s, req.Actor)
	ch.NewLot = &Lot{CustomerID: s.Customer, Source: req.Source, Priority: req.EffectivePriority(), Amount: req.Credits,
		Remaining: plan.LotRemaining, ExpiresAt: utcMicros(req.ExpiresAt), RefundableUntil: utcMicros(req.RefundableUntil),
		Reason: req.Reason, CreatedAt: now}
	ch.Entries = []EntryDraft{{Type: g.Type, Amount: req.Credits, BalanceAfter: plan.BalanceAfter, OnNewLot: true, Source: req.Source,
		Reason: req.Reason, Key: req.IdempotencyKey, Hash: g.Hash}}
	ch.Balance, ch.Debt = plan.BalanceAfter, s.Debt-plan.DebtRepaid
	typ := EventGrantCreated
	if g.Type == EntryAdjustment {
		typ = EventAdjustmentCreated
	}
	ch.Events = append(ch.Events, NewEvent{Type: typ, Customer: s.Customer, Entry: 1, Data: map[string]any{
		"credits": req.Credits, "source": req.Source, "reason": req.Reason, "expires_at": ch.NewLot.ExpiresAt, "balance_after": plan.BalanceAfter}})
	finish(s, &ch, false)
	return ch, nil
}

func utcMicros(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// PlanRemoval decides a negative adjustment: credits taken out by hand, in
// burn order. It may not take more than is available (it never creates
// debt) and ignores the overdraft.
func PlanRemoval(s *WalletState, req *AdjustmentRequest, hash []byte, now time.Time) (Change, error) {
	if w := (Wallet{Balance: s.Balance, Held: s.Held}); -req.Credits > w.Available() {
		// Not the usage's 402 text: no top-up helps an operator's deduction.
		return Change{}, Errorf(CodeInsufficientCredits, "This adjustment takes out %s credits, but the customer has %s available (credits held by open holds cannot be taken out). Take out at most that.",
			-req.Credits, max(w.Available(), 0)).
			With("balance", w.Balance).With("available", w.Available()).With("held", w.Held).With("required", -req.Credits).With("param", "credits")
	}
	plan, err := PlanDebit(Wallet{Balance: s.Balance, Held: s.Held}, s.Lots, -req.Credits, 0, false, now)
	if err != nil {
		return Change{}, err
	}
	ch := start(s, req.Actor)
	ch.Entries = []EntryDraft{{Type: EntryAdjustment, Amount: req.Credits, BalanceAfter: plan.BalanceAfter, Reason: req.Reason,
		Key: req.IdempotencyKey, Hash: hash, Burns: plan.Burns}}
	ch.Balance = plan.BalanceAfter
	ch.Events = append(ch.Events, NewEvent{Type: EventAdjustmentCreated, Customer: s.Customer, Entry: 1, Data: map[string]any{
		"credits": req.Credits, "reason": req.Reason, "balance_after": plan.BalanceAfter}})
	finish(s, &ch, false)
	return ch, nil
}

// PlanDisputeFreeze freezes what is left of a disputed purchase's lot: the
// credits leave the balance (an adjustment entry says why) until the
// dispute is resolved, and dispute.opened is emitted. A lot already empty
// or frozen freezes nothing; the event still tells.
func PlanDisputeFreeze(s *WalletState, tu TopUp, lotID int64, disputeID string) Change {
	ch := start(s, SystemActor("payment_provider"))
	frozen := Credits(0)
	if l, ok := s.Lot(lotID); ok && !l.Frozen && l.Remaining > 0 {
		frozen = l.Remaining
		ch.Balance -= l.Remaining
		ch.Entries = []EntryDraft{{Type: EntryAdjustment, Amount: -l.Remaining, BalanceAfter: ch.Balance, LotID: lotID,
			Reason: "Credits frozen: the payment for " + tu.Description + " is disputed"}}
		ch.Freeze = []int64{lotID}
	}
	ch.Events = append(ch.Events, TopUpEvent(EventDisputeOpened, &tu, map[string]any{"dispute": disputeID, "credits_frozen": frozen}))
	finish(s, &ch, false)
	return ch
}

// RefundPlanRequest is a refund to plan: the paid top-up and its lot; paid
// is an amount refunded at the provider already (a refund made in Stripe's
// dashboard), 0 for a refund Tally makes.
type RefundPlanRequest struct {
	TopUp  TopUp
	LotID  int64
	Paid   int64
	Reason string
	Actor  Actor // who refunds (an admin); zero: Tally's refund job
}

// PlanRefund decides the refund of a purchase's unused credits. They leave
// the ledger with a refund entry; the amount to return is their share of
// the price (RefundFor), or, for a refund already made at the provider,
// the credits that amount pays for, up to what is unused. Refunds never
// exceed the purchased, unused credits. A refund Tally makes while open
// holds reserve part of the purchase is refused (conflict, reason "held"):
// refunding only the rest would mark the top-up refunded for good and
// strand the remainder. Errors: nothing_to_refund, conflict.
func PlanRefund(s *WalletState, r RefundPlanRequest) (Change, int64, error) {
	tu := r.TopUp
	external := r.Paid > 0
	unused := Credits(0)
	if l, ok := s.Lot(r.LotID); ok && !l.Frozen {
		unused = min(l.Remaining, max(0, s.Available()))
		if !external && unused < l.Remaining && s.Held > 0 {
			return Change{}, 0, Errorf(CodeConflict,
				"%s credits of top-up %s are reserved by requests in progress (open holds). Refund it once they finish; holds are captured, released or expire.",
				l.Remaining-unused, tu.ID).With("held", s.Held).With("refundable_now", unused).With("reason", "held")
		}
	}
	if external {
		// credits = paid * credits / price, capped at what is unused.
		unused = min(unused, Credits(r.Paid*int64(tu.Credits)/tu.Price.Amount))
	}
	amount := r.Paid
	if !external {
		amount = RefundFor(tu, unused)
		if unused <= 0 || amount <= 0 {
			return Change{}, 0, Errorf(CodeNothingToRefund, "Every credit of top-up %s was used; nothing is left to refund.", tu.ID)
		}
	}
	actor := SystemActor("refund")
	if r.Actor.Kind != "" {
		actor = r.Actor
	}
	if external {
		actor = SystemActor("payment_provider")
	}
	ch := start(s, actor)
	if unused > 0 {
		ch.Balance -= unused
		ch.Entries = []EntryDraft{{Type: EntryRefund, Amount: -unused, BalanceAfter: ch.Balance, LotID: r.LotID, Reason: r.Reason,
			Key: "refund:" + tu.ID + ":" + strconv.FormatInt(tu.RefundedAmount+amount, 10), Burns: []Burn{{LotID: r.LotID, Credits: unused}}}}
	}
	ev := TopUpEvent(EventRefundSucceeded, &tu, map[string]any{"credits_removed": unused, "refunded_amount": amount})
	if unused > 0 {
		ev.Entry = 1
	}
	ch.Events = append(ch.Events, ev)
	finish(s, &ch, false)
	return ch, amount, nil
}

// TopUpEvent is a top-up's event with its structured payload.
func TopUpEvent(typ string, tu *TopUp, extra map[string]any) NewEvent {
	data := map[string]any{"top_up": tu.ID, "credits": tu.Credits, "amount": tu.Price.Amount, "currency": tu.Price.Currency,
		"origin": tu.Origin, "description": tu.Description}
	for k, v := range extra {
		data[k] = v
	}
	return NewEvent{Type: typ, Customer: tu.Customer, Data: data}
}
