package billing

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// changeModel applies Changes to an in-memory wallet the way db's applier
// does, so the invariants of every money rule can be fuzzed without a
// database: the plans are driven in random order, and after every step the
// books must balance.
type changeModel struct {
	t      *testing.T
	s      WalletState
	now    time.Time
	holds  map[string]Hold
	nextID int64

	entries, heldDeltas Credits           // sums of every applied entry
	purchased           map[int64]Credits // purchase lots: amount
	refunded            map[int64]Credits // purchase lots: credits refunded
	topUps              map[int64]*TopUp  // purchase lots: their top-up
	lastThreshold       string            // the last threshold event
	log                 []string

	sub    *Subscription         // the customer's subscription (plans.go)
	rules  map[int64]LotRollover // plan lots: their open rollover rule
	rolled map[int64]bool        // plan lots whose credits rolled over
}

func (m *changeModel) logf(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf(format, args...))
}

func (m *changeModel) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("%s\nsteps:\n  %s\nstate %+v\nholds %+v", fmt.Sprintf(format, args...), strings.Join(m.log, "\n  "), m.s, m.holds)
}

// clone is a deep copy of the state, to prove a refused plan changed nothing.
func (m *changeModel) clone() WalletState {
	c := m.s
	c.Lots = slices.Clone(m.s.Lots)
	return c
}

// liveLots are the lots a debit may burn (db passes the live ones, and
// those kept for open holds).
func (m *changeModel) snapshot() DebitSnapshot {
	st := m.s
	st.Lots = nil
	for _, l := range m.s.Lots {
		if l.Live(m.now) || (l.KeptForHolds && l.Remaining > 0 && !l.Frozen) {
			st.Lots = append(st.Lots, l)
		}
	}
	return DebitSnapshot{State: st, Now: m.now}
}

// apply writes ch as db's applier does.
func (m *changeModel) apply(ch Change) {
	if ch.NewLot != nil {
		m.nextID++
		l := *ch.NewLot
		l.ID = m.nextID
		if l.Remaining > 0 {
			m.s.Lots = append(m.s.Lots, l)
		}
		if ch.Rollover != nil {
			m.rules[l.ID] = *ch.Rollover
		}
		if l.Source == SourcePurchase {
			m.purchased[l.ID] = l.Amount
			m.topUps[l.ID] = &TopUp{ID: fmt.Sprint("tu_", l.ID), Customer: m.s.Customer, Credits: l.Amount,
				Price: Money{Amount: int64(l.Amount / Milli), Currency: "usd"}, Status: TopUpSucceeded}
		}
	}
	if h := ch.OpenHold; h != nil {
		m.holds[h.ID] = *h
	}
	for _, e := range ch.Entries {
		m.entries += e.Amount
		m.heldDeltas += e.HeldDelta
		burned := Credits(0)
		for _, b := range e.Burns {
			i := slices.IndexFunc(m.s.Lots, func(l Lot) bool { return l.ID == b.LotID })
			if i < 0 || m.s.Lots[i].Remaining < b.Credits || b.Credits <= 0 {
				m.fatalf("burn %+v of a lot that cannot give it", b)
			}
			m.s.Lots[i].Remaining -= b.Credits
			burned += b.Credits
			if e.Type == EntryRefund {
				m.refunded[b.LotID] += b.Credits
			}
		}
		if e.Amount < 0 && e.Type != EntryAdjustment && burned > -e.Amount {
			m.fatalf("entry %+v burns %v, more than it takes", e, burned)
		}
	}
	for _, id := range ch.Freeze {
		for i := range m.s.Lots {
			if m.s.Lots[i].ID == id {
				m.s.Lots[i].Frozen = true
			}
		}
	}
	for _, id := range ch.EmptyLots {
		for i := range m.s.Lots {
			if m.s.Lots[i].ID == id {
				m.s.Lots[i].Remaining = 0
			}
		}
	}
	for _, c := range ch.CloseLots {
		if _, ok := m.rules[c.LotID]; !ok {
			m.fatalf("closing lot %d's period twice", c.LotID)
		}
		delete(m.rules, c.LotID)
		for i := range m.s.Lots {
			if m.s.Lots[i].ID == c.LotID && c.ExpiresAt != nil && m.s.Lots[i].Remaining > 0 {
				m.s.Lots[i].ExpiresAt, m.rolled[c.LotID] = c.ExpiresAt, true
			}
		}
	}
	if ch.Subscription != nil {
		sub := *ch.Subscription
		m.sub = &sub
	}
	m.s.Lots = slices.DeleteFunc(m.s.Lots, func(l Lot) bool { return l.Remaining == 0 })
	if c := ch.CloseHold; c != nil {
		if _, ok := m.holds[c.ID]; !ok {
			m.fatalf("closing hold %s, which is not open", c.ID)
		}
		delete(m.holds, c.ID)
	}
	for _, ev := range ch.Events {
		switch ev.Type {
		case EventBalanceLow:
			if m.lastThreshold == EventBalanceLow || m.lastThreshold == EventBalanceDepleted {
				m.fatalf("balance.low again after %s with no recovery between", m.lastThreshold)
			}
			m.lastThreshold = ev.Type
		case EventBalanceDepleted:
			m.lastThreshold = ev.Type
		case EventBalanceRecovered:
			if m.lastThreshold != EventBalanceLow && m.lastThreshold != EventBalanceDepleted {
				m.fatalf("balance.recovered after %q: nothing was announced low", m.lastThreshold)
			}
			m.lastThreshold = ev.Type
		}
	}
	m.s.Balance, m.s.Held, m.s.Debt, m.s.LowAnnounced = ch.Balance, ch.Held, ch.Debt, ch.LowAnnounced
}

// refused checks a refused plan changed nothing.
func (m *changeModel) refused(before WalletState, what string, err error) {
	if ErrorCode(err) == CodeInternal {
		m.fatalf("%s: an internal error from a plan: %v", what, err)
	}
	if !reflect.DeepEqual(before, m.s) {
		m.fatalf("%s was refused (%v) but the state changed", what, err)
	}
	m.logf("%s refused: %s", what, ErrorCode(err))
}

func (m *changeModel) check() {
	var lots Credits
	for _, l := range m.s.Lots {
		if l.Remaining < 0 || l.Remaining > l.Amount {
			m.fatalf("lot %d remaining %v out of [0, %v]", l.ID, l.Remaining, l.Amount)
		}
		if !l.Frozen {
			lots += l.Remaining
		}
	}
	var held Credits
	for _, h := range m.holds {
		held += h.Credits
	}
	switch {
	case m.s.Balance != m.entries:
		m.fatalf("balance %v != sum of entries %v", m.s.Balance, m.entries)
	case m.s.Balance != lots-m.s.Debt:
		m.fatalf("balance %v != live lots %v - debt %v", m.s.Balance, lots, m.s.Debt)
	case m.s.Held != m.heldDeltas || m.s.Held != held:
		m.fatalf("held %v, entries say %v, open holds %v", m.s.Held, m.heldDeltas, held)
	case m.s.Debt < 0 || (m.s.Debt > 0 && m.s.Balance >= 0):
		m.fatalf("debt %v with balance %v", m.s.Debt, m.s.Balance)
	case m.s.Balance > MaxBalance:
		m.fatalf("balance %v past MaxBalance", m.s.Balance)
	}
	if rolled := m.rolledLive(0); rolled > fuzzPlans[0].Rollover.Max {
		m.fatalf("rolled-over credits %v past the plans' cap %v", rolled, fuzzPlans[0].Rollover.Max)
	}
	for id, r := range m.refunded {
		if r > m.purchased[id] {
			m.fatalf("lot %d refunded %v of %v purchased", id, r, m.purchased[id])
		}
	}
}

// FuzzChangeInvariants drives every money rule (grants, debits, holds with
// captures, releases and expiry, lot expiry, removals, dispute freezes,
// refunds) in random order through the in-memory applier; after each step
// the books balance, a refused plan has changed nothing, captures stay
// within their bound, refunds never exceed the purchased, unused credits and
// threshold events fire once per crossing.
func FuzzChangeInvariants(f *testing.F) {
	f.Add(uint16(0), []byte{})
	// grant 100 purchase, hold 30, capture 50, debit 40, release, refund.
	f.Add(uint16(0), []byte{0, 3, 100, 2, 30, 3, 0, 50, 1, 40, 8, 9})
	// overdraft 10: grant 20 expiring, hold 15, advance, expire, capture, grant 50, dispute, refund.
	f.Add(uint16(10), []byte{0, 0x81, 20, 2, 15, 5, 20, 6, 3, 0, 25, 0, 3, 50, 8, 7, 0})
	// many small debits across the low-balance line and back.
	f.Add(uint16(0), []byte{0, 3, 50, 1, 10, 1, 10, 1, 10, 1, 10, 1, 9, 0, 0, 30, 1, 20, 1, 20, 0, 2, 90})
	// subscribe to Starter, debit 10, live past the period (rollover), renew,
	// upgrade to Pro, cancel at the period's end, live past it, subscribe again.
	f.Add(uint16(0), []byte{240, 0, 1, 10, 0, 5, 3, 244, 0, 1, 40, 0, 241, 1, 242, 0, 5, 4, 244, 0, 240, 1, 1, 200, 1})
	f.Fuzz(func(t *testing.T, overdraft uint16, ops []byte) {
		m := &changeModel{t: t, now: t0, holds: map[string]Hold{}, purchased: map[int64]Credits{}, refunded: map[int64]Credits{},
			topUps: map[int64]*TopUp{}, rules: map[int64]LotRollover{}, rolled: map[int64]bool{}}
		m.s = WalletState{Customer: "cus_f", Wallet: Wallet{OverdraftLimit: CreditsOf(int64(overdraft % 100))}, LowThreshold: CreditsOf(10)}
		r := &fuzzOps{b: ops}
		amount := func() Credits { return CreditsOf(int64(r.byte())) + Credits(r.byte()%4)*250 }
		for step := 0; len(r.b) > 0 && step < 300; step++ {
			op := r.byte()
			if op%10 != 5 {
				m.expireDue() // db expires what is due before it plans (except the sweep's own step)
			}
			before := m.clone()
			if op >= 240 {
				m.subscriptionStep(op, r, before)
				m.check()
				continue
			}
			switch op % 10 {
			case 0: // grant
				flags := r.byte()
				req := &GrantRequest{Customer: m.s.Customer, Credits: amount(), Source: fuzzSources[flags%4], Reason: "fuzz"}
				if flags&0x80 != 0 {
					e := m.now.Add(time.Duration(flags&0x7) * 10 * time.Minute)
					req.ExpiresAt = &e
				}
				ch, err := PlanGrantChange(&m.s, GrantPlanRequest{Req: req, Type: EntryGrant, Now: m.now})
				if err != nil {
					m.refused(before, "grant", err)
					continue
				}
				m.logf("grant %v %s", req.Credits, req.Source)
				m.apply(ch)
			case 1: // debit
				snap := m.snapshot()
				c := amount()
				ch, err := PlanDebitChange(&snap, Usage{Feature: "f", Quantity: QuantityOf(1), Charge: c})
				if err != nil {
					m.refused(before, fmt.Sprint("debit ", c), err)
					continue
				}
				if ch.Balance < -m.s.OverdraftLimit {
					m.fatalf("debit %v took the balance to %v past the overdraft", c, ch.Balance)
				}
				m.logf("debit %v", c)
				m.apply(ch)
			case 2: // hold
				snap := m.snapshot()
				m.nextID++
				id := fmt.Sprint("hld_", m.nextID)
				ch, err := PlanHoldChange(&snap, HoldRequestPlan{ID: id, Amount: amount(), TTL: time.Duration(r.byte()%6+1) * 10 * time.Minute})
				if err != nil {
					m.refused(before, "hold", err)
					continue
				}
				m.logf("hold %s %v", id, ch.OpenHold.Credits)
				m.apply(ch)
			case 3: // capture the oldest open hold
				h, ok := m.oldestHold()
				if !ok {
					continue
				}
				snap := m.snapshot()
				c := amount()
				ch, err := PlanCaptureChange(&snap, h, Usage{Feature: "f", Quantity: QuantityOf(1), Charge: c})
				if err != nil {
					m.refused(before, fmt.Sprint("capture ", c, " of ", h.Credits), err)
					continue
				}
				if most := h.Credits + max(0, snap.State.Available()+snap.State.OverdraftLimit); c > most {
					m.fatalf("capture of %v passed its bound %v", c, most)
				}
				m.logf("capture %s %v", h.ID, c)
				m.apply(ch)
			case 4: // release
				h, ok := m.oldestHold()
				if !ok {
					continue
				}
				m.logf("release %s", h.ID)
				m.apply(PlanHoldClose(&m.s, h, HoldReleased, Actor{}))
			case 5: // advance the clock
				m.now = m.now.Add(time.Duration(r.byte()%8) * 10 * time.Minute)
				m.logf("advance to %s", m.now.Format(time.TimeOnly))
			case 6: // the sweep
				m.expireDue()
			case 7: // remove by hand
				c := amount()
				ch, err := PlanRemoval(ptrTo(m.snapshot().State), &AdjustmentRequest{Customer: m.s.Customer, Credits: -c, Reason: "fuzz"}, nil, m.now)
				if err != nil {
					m.refused(before, fmt.Sprint("removal ", c), err)
					continue
				}
				m.logf("remove %v", c)
				m.apply(ch)
			case 8: // refund a purchase
				id, tu, ok := m.purchase(r.byte())
				if !ok {
					continue
				}
				ch, _, err := PlanRefund(&m.s, RefundPlanRequest{TopUp: *tu, LotID: id, Reason: "fuzz"})
				if err != nil {
					m.refused(before, fmt.Sprint("refund of lot ", id), err)
					continue
				}
				m.logf("refund lot %d", id)
				m.apply(ch)
			case 9: // dispute a purchase
				id, tu, ok := m.purchase(r.byte())
				if !ok {
					continue
				}
				m.logf("dispute lot %d", id)
				m.apply(PlanDisputeFreeze(&m.s, *tu, id, "dp_1"))
			}
			m.check()
		}
	})
}

// expireDue expires due holds and lots, as db does before any operation.
func (m *changeModel) expireDue() {
	for _, h := range m.dueHolds() {
		m.logf("hold %s expires", h.ID)
		m.apply(PlanHoldClose(&m.s, h, HoldExpired, SystemActor("expiry")))
	}
	for _, l := range slices.Clone(m.s.Lots) {
		if l.ExpiresAt == nil || l.ExpiresAt.After(m.now) {
			continue
		}
		if rule, ok := m.rules[l.ID]; ok {
			m.logf("lot %d's period ends", l.ID)
			cur := m.s.Lots[slices.IndexFunc(m.s.Lots, func(x Lot) bool { return x.ID == l.ID })]
			m.apply(PlanPeriodClose(&m.s, cur, rule, m.rolledLive(l.ID), m.now))
			continue
		}
		m.logf("lot %d expires", l.ID)
		before := m.s.Available()
		m.apply(PlanLotExpiry(&m.s, l))
		// An expiry never takes credits that open holds reserved.
		if after := m.s.Available(); after < before && after < -m.s.OverdraftLimit {
			m.fatalf("lot %d's expiry took available from %v to %v (overdraft limit %v)", l.ID, before, after, m.s.OverdraftLimit)
		}
		// What it kept, it keeps for the holds' captures (db's liveLots).
		if i := slices.IndexFunc(m.s.Lots, func(x Lot) bool { return x.ID == l.ID }); i >= 0 && m.s.Lots[i].Remaining > 0 {
			m.s.Lots[i].KeptForHolds = true
		}
	}
	m.check()
}

func ptrTo[T any](v T) *T { return &v }

func (m *changeModel) oldestHold() (Hold, bool) {
	var out Hold
	found := false
	for _, h := range m.holds {
		if h.ExpiresAt.After(m.now) && (!found || h.ID < out.ID) {
			out, found = h, true
		}
	}
	return out, found
}

func (m *changeModel) dueHolds() []Hold {
	var out []Hold
	for _, h := range m.holds {
		if !h.ExpiresAt.After(m.now) {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b Hold) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// purchase picks a purchase lot by n.
func (m *changeModel) purchase(n byte) (int64, *TopUp, bool) {
	ids := make([]int64, 0, len(m.topUps))
	for id := range m.topUps {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return 0, nil, false
	}
	slices.Sort(ids)
	id := ids[int(n)%len(ids)]
	return id, m.topUps[id], true
}

// fuzzPlans share a rollover cap, so the rolled-over credits alive never
// pass it whichever plan granted them.
var fuzzPlans = []Plan{
	{Key: "starter", Name: "Starter", Interval: IntervalMonth, Price: Money{Amount: 1000, Currency: "usd"}, Credits: CreditsOf(50),
		Rollover: Rollover{Policy: RolloverUpTo, Max: CreditsOf(30), Periods: 2}},
	{Key: "pro", Name: "Pro", Interval: IntervalMonth, Price: Money{Amount: 3000, Currency: "usd"}, Credits: CreditsOf(120),
		Rollover: Rollover{Policy: RolloverUpTo, Max: CreditsOf(30), Periods: 1}},
}

// fuzzPeriod is a period's length in the fuzz's compressed time.
const fuzzPeriod = 30 * time.Minute

// rolledLive is what the rolled-over lots still alive hold, but except.
func (m *changeModel) rolledLive(except int64) Credits {
	var sum Credits
	for _, l := range m.s.Lots {
		if m.rolled[l.ID] && l.ID != except && l.Live(m.now) {
			sum += l.Remaining
		}
	}
	return sum
}

// subscriptionStep subscribes, renews a due period, changes plan, cancels
// or resumes (by op), as the store would.
func (m *changeModel) subscriptionStep(op byte, r *fuzzOps, before WalletState) {
	plan := fuzzPlans[int(r.byte())%len(fuzzPlans)]
	switch {
	case m.sub == nil || m.sub.Status == SubCanceled:
		ch, err := PlanSubscribe(&m.s, m.sub, SubscribeRequest{ID: "sub_f", Plan: plan, PriceVersion: 1, Invoice: fmt.Sprint("inv_", m.nextID),
			Start: m.now, End: m.now.Add(fuzzPeriod), Now: m.now})
		if err != nil {
			m.refused(before, "subscribe", err)
			return
		}
		m.logf("subscribe %s", plan.Key)
		m.apply(ch)
	case op%4 == 0:
		if m.now.Before(m.sub.CurrentPeriodEnd) {
			return
		}
		cur := fuzzPlans[slices.IndexFunc(fuzzPlans, func(p Plan) bool { return p.Key == m.sub.Plan })]
		if m.sub.CancelAtPeriodEnd {
			ch, err := PlanCancel(&m.s, *m.sub, false, m.now, SystemActor("subscription"))
			if err != nil {
				m.fatalf("the period's cancellation was refused: %v", err)
			}
			m.logf("subscription ends")
			m.apply(ch)
			return
		}
		start := m.sub.CurrentPeriodEnd
		ch, err := PlanRenewal(&m.s, *m.sub, RenewalRequest{Plan: cur, PriceVersion: 1, Invoice: fmt.Sprint("inv_", start.UnixNano()),
			Start: start, End: start.Add(fuzzPeriod), Amount: cur.Price, Now: m.now})
		if err != nil {
			m.refused(before, "renewal", err)
			return
		}
		if ch.Period.Credits != cur.Credits {
			m.fatalf("renewal granted %v, the plan includes %v", ch.Period.Credits, cur.Credits)
		}
		m.logf("renew %s from %s", cur.Key, start.Format(time.TimeOnly))
		m.apply(ch)
	case op%4 == 1:
		from := fuzzPlans[slices.IndexFunc(fuzzPlans, func(p Plan) bool { return p.Key == m.sub.Plan })]
		ch, q, err := PlanChangePlan(&m.s, *m.sub, ChangePlanRequest{From: from, To: plan, PriceVersion: 1, Invoice: fmt.Sprint("inv_up_", m.nextID), Now: m.now})
		if err != nil {
			m.refused(before, "change to "+plan.Key, err)
			return
		}
		if q.CreditsNow > max(0, plan.Credits-from.Credits) || q.AmountNow.Amount > max(0, plan.Price.Amount-from.Price.Amount) || q.CreditsNow < 0 {
			m.fatalf("plan change %s to %s quoted %+v, more than the difference", from.Key, plan.Key, q)
		}
		m.logf("change to %s: %v credits now", plan.Key, q.CreditsNow)
		m.apply(ch)
	case op%4 == 2:
		ch, err := PlanCancel(&m.s, *m.sub, true, m.now, Actor{})
		if err != nil {
			m.refused(before, "cancel", err)
			return
		}
		m.logf("cancel at period end")
		m.apply(ch)
	default:
		ch, err := PlanResume(&m.s, *m.sub, Actor{})
		if err != nil {
			m.refused(before, "resume", err)
			return
		}
		m.logf("resume")
		m.apply(ch)
	}
}
