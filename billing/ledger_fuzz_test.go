package billing

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzLedger is an in-memory wallet driven only by billing's pure rules
// (PlanGrant, PlanDebit, BurnLots), the way db's writer drives them: due lots
// expire before every grant and debit, a plan is applied whole or not at all.
type fuzzLedger struct {
	t      *testing.T
	now    time.Time
	w      Wallet
	lots   []Lot
	nextID int64

	granted, debited, expired Credits // sums of every applied entry
	forced                    bool    // a force debit was applied
	log                       []string
}

var fuzzSources = []string{SourcePromo, SourceSubscription, SourceAdjustment, SourcePurchase}

// fuzzOps reads operations from fuzz bytes; past the end every read is 0.
type fuzzOps struct{ b []byte }

func (r *fuzzOps) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// amount reads a 16-bit amount, in whole credits when flag is set.
func (r *fuzzOps) amount(whole bool) Credits {
	c := Credits(r.byte())<<8 | Credits(r.byte())
	if whole {
		c *= Milli
	}
	return c
}

// FuzzLedgerInvariants applies a random sequence of grants, debits, forced
// debits, clock moves and expiries, and after every step checks that credits
// are conserved, lots stay within their bounds, refused operations change
// nothing and only a forced debit passes the overdraft.
func FuzzLedgerInvariants(f *testing.F) {
	f.Add(uint16(0), []byte{})
	// grant 100 credits that never expire, debit 30, debit 80 (refused), force 80.
	f.Add(uint16(0), []byte{0, 0x80, 0, 100, 1, 0x80, 0, 30, 1, 0x80, 0, 80, 2, 0x80, 0, 80})
	// overdraft 5 credits: grant 10 expiring, debit 14, advance past expiry, expire, grant 20 (repays debt).
	f.Add(uint16(5000), []byte{0, 0x81, 0, 10, 6, 1, 0x80, 0, 14, 3, 10, 4, 0, 0x80, 0, 20})
	// lots of every source and expiry, debits across them, one lot expiring
	// at the very instant of a debit, then expiry, a forced debit and a grant
	// that repays the debt.
	f.Add(uint16(1000), []byte{
		0, 0x81, 0, 5, 2, // grant 5, subscription, expires in 20m
		0, 0x82, 0, 7, 3, // grant 7, adjustment, expires in 30m
		0, 0x83, 0, 9, 1, // grant 9, purchase, expires in 10m
		0, 0x84, 0, 11, 1, // grant 11, promo at priority 1, never expires
		0, 0x8B, 0, 13, // grant 13, purchase, never expires
		1, 0x80, 0, 6, // debit 6
		1, 0, 0x01, 0xF4, // debit 0.5
		3, 1, // advance 10m: the purchase lot expires now
		1, 0x80, 0, 30, // debit 30
		3, 255, // advance 42.5h
		4,              // expire
		2, 0x80, 0, 50, // force debit 50
		0, 0x80, 0, 60, // grant 60
	})
	// zero grant (refused), zero debit, then a lot expiring the instant it is granted.
	f.Add(uint16(0), []byte{0, 0, 0, 0, 1, 0, 0, 0, 0, 0x80, 0, 1, 0, 0x81, 0, 1, 0, 1, 0x80, 0, 1})
	// equal priorities, expiries and creation times (id breaks the tie).
	f.Add(uint16(0), []byte{0, 0x85, 0, 3, 9, 40, 0, 0x85, 0, 3, 9, 40, 0, 0x05, 0, 3, 9, 0, 1, 0x80, 0, 4, 1, 0, 0x0B, 0xB8})

	f.Fuzz(func(t *testing.T, overdraft uint16, ops []byte) {
		runLedgerOps(t, Credits(overdraft), ops)
	})
}

// runLedgerOps applies ops to a fresh wallet with the given overdraft limit,
// checking the invariants after every step.
func runLedgerOps(t *testing.T, overdraft Credits, ops []byte) *fuzzLedger {
	m := &fuzzLedger{t: t, now: t0, w: Wallet{OverdraftLimit: overdraft}}
	r := &fuzzOps{b: ops}
	for step := 0; len(r.b) > 0 && step < 500; step++ {
		switch op := r.byte(); op % 5 {
		case 0:
			m.grant(r)
		case 1:
			m.debit(r, false)
		case 2:
			m.debit(r, true)
		case 3:
			d := time.Duration(r.byte()) * 10 * time.Minute
			m.now = m.now.Add(d)
			m.logf("advance %s to %s", d, m.now.Format(time.RFC3339))
		case 4:
			m.expireDue()
		}
		m.check()
	}
	return m
}

func (m *fuzzLedger) logf(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf(format, args...))
}

func (m *fuzzLedger) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("%s\nsteps:\n  %s\nwallet %+v\nlots %+v", fmt.Sprintf(format, args...), strings.Join(m.log, "\n  "), m.w, m.lots)
}

func fmtExpiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}

// expireDue writes the expiry of what is left of every lot whose time has
// come, as db's liveLots does before any debit.
func (m *fuzzLedger) expireDue() {
	for i := range m.lots {
		l := &m.lots[i]
		if l.Remaining > 0 && l.ExpiresAt != nil && !l.ExpiresAt.After(m.now) {
			m.w.Balance -= l.Remaining
			m.expired += l.Remaining
			m.logf("expire lot %v: %v", l.ID, l.Remaining)
			l.Remaining = 0
		}
	}
}

func (m *fuzzLedger) grant(r *fuzzOps) {
	flags := r.byte()
	amount := r.amount(flags&0x80 != 0)
	lot := Lot{Source: fuzzSources[flags&3], CreatedAt: m.now}
	lot.Priority = DefaultPriority[lot.Source]
	if flags&0x04 != 0 {
		lot.Priority = int(r.byte() % 60)
	}
	if flags&0x03 != 0 && flags&0x08 == 0 {
		// Expiring lots; 0 means one expiring at this very instant.
		exp := m.now.Add(time.Duration(r.byte()) * 10 * time.Minute)
		lot.ExpiresAt = &exp
	}
	m.expireDue()
	before := m.snapshot()
	plan, err := PlanGrant(m.w, amount)
	if err != nil {
		if ErrorCode(err) != CodeValidation || (amount > 0 && amount <= MaxCredits) {
			m.fatalf("PlanGrant(%v): %v", amount, err)
		}
		m.logf("grant %v refused", amount)
		m.unchanged(before, "refused grant")
		return
	}
	m.unchanged(before, "planning a grant")
	if plan.DebtRepaid != min(m.w.Debt, amount) || plan.LotRemaining != amount-plan.DebtRepaid || plan.BalanceAfter != m.w.Balance+amount {
		m.fatalf("PlanGrant(%v) with debt %v = %+v", amount, m.w.Debt, plan)
	}
	m.nextID++
	lot.ID, lot.Amount, lot.Remaining = m.nextID, amount, plan.LotRemaining
	m.lots = append(m.lots, lot)
	m.w.Debt -= plan.DebtRepaid
	m.w.Balance = plan.BalanceAfter
	m.granted += amount
	m.logf("grant %v as lot %v (%s, priority %v, expires %v): repaid %v", amount, lot.ID, lot.Source, lot.Priority, fmtExpiry(lot.ExpiresAt), plan.DebtRepaid)
}

func (m *fuzzLedger) debit(r *fuzzOps, force bool) {
	charge := r.amount(r.byte()&0x80 != 0)
	m.expireDue()
	before := m.snapshot()

	// The order the debit must burn in: live lots, sorted.
	var live []Lot
	for _, l := range m.lots {
		if l.Live(m.now) {
			live = append(live, l)
		}
	}
	SortLots(live)
	for i := 1; i < len(live); i++ {
		if refBurnsBefore(live[i], live[i-1]) {
			m.fatalf("SortLots put lot %v before lot %v", live[i-1].ID, live[i].ID)
		}
	}

	plan, err := PlanDebit(m.w, m.lots, charge, 0, force, m.now)
	m.unchanged(before, "planning a debit") // PlanDebit may reorder the lots, never change them
	allowed := m.w.Available() + m.w.OverdraftLimit
	if err != nil {
		if force {
			m.fatalf("forced PlanDebit(%v): %v", charge, err)
		}
		if ErrorCode(err) != CodeInsufficientCredits || charge <= allowed {
			m.fatalf("PlanDebit(%v) with %v allowed: %v", charge, allowed, err)
		}
		d := err.(*Error).Details
		if d["balance"] != m.w.Balance || d["available"] != m.w.Available() || d["required"] != charge {
			m.fatalf("insufficient_credits details %v for wallet %+v, charge %v", d, m.w, charge)
		}
		m.logf("debit %v refused", charge)
		return
	}
	if !force && charge > allowed {
		m.fatalf("PlanDebit(%v) allowed with only %v available and overdraft", charge, allowed)
	}
	if plan.BalanceAfter != m.w.Balance-charge || plan.DebtIncrease < 0 {
		m.fatalf("PlanDebit(%v) = %+v from balance %v", charge, plan, m.w.Balance)
	}
	// Burns take a prefix of the burn order, draining all but the last lot.
	burned := plan.DebtIncrease
	for i, b := range plan.Burns {
		if i >= len(live) || b.LotID != live[i].ID {
			m.fatalf("burn %v %+v out of order; order %v", i, b, lotIDs(live))
		}
		if b.Credits <= 0 || b.Credits > live[i].Remaining {
			m.fatalf("burn %+v of lot with %v remaining", b, live[i].Remaining)
		}
		if i < len(plan.Burns)-1 && b.Credits != live[i].Remaining {
			m.fatalf("burn %+v left lot %v partly full before burning the next", b, b.LotID)
		}
		burned += b.Credits
	}
	if burned != charge {
		m.fatalf("burns plus debt increase = %v, want %v: %+v", burned, charge, plan)
	}
	if plan.DebtIncrease > 0 && len(plan.Burns) != len(live) {
		m.fatalf("debt grew by %v while lots were left unburned: %+v", plan.DebtIncrease, plan)
	}
	for _, b := range plan.Burns {
		i := slices.IndexFunc(m.lots, func(l Lot) bool { return l.ID == b.LotID })
		m.lots[i].Remaining -= b.Credits
	}
	m.w.Debt += plan.DebtIncrease
	m.w.Balance = plan.BalanceAfter
	m.debited += charge
	if force {
		m.forced = true
	}
	m.logf("debit %v (force %v): burns %v, debt +%v", charge, force, plan.Burns, plan.DebtIncrease)
}

type ledgerSnapshot struct {
	w    Wallet
	lots []Lot
}

func (m *fuzzLedger) snapshot() ledgerSnapshot {
	lots := slices.Clone(m.lots)
	slices.SortFunc(lots, func(a, b Lot) int { return int(a.ID - b.ID) })
	return ledgerSnapshot{w: m.w, lots: lots}
}

func (m *fuzzLedger) unchanged(before ledgerSnapshot, what string) {
	m.t.Helper()
	after := m.snapshot()
	if after.w != before.w || !slices.EqualFunc(before.lots, after.lots, sameLot) {
		m.fatalf("%s changed the wallet:\nbefore %+v %+v\nafter  %+v %+v", what, before.w, before.lots, after.w, after.lots)
	}
}

// check asserts the invariants that hold after every step.
func (m *fuzzLedger) check() {
	m.t.Helper()
	if m.w.Balance != m.granted-m.debited-m.expired {
		m.fatalf("balance %v != granted %v - debited %v - expired %v", m.w.Balance, m.granted, m.debited, m.expired)
	}
	var all Credits
	for _, l := range m.lots {
		if l.Remaining < 0 || l.Remaining > l.Amount {
			m.fatalf("lot %v has %v remaining of %v", l.ID, l.Remaining, l.Amount)
		}
		all += l.Remaining
	}
	if m.w.Balance != all-m.w.Debt {
		m.fatalf("balance %v != lots %v - debt %v", m.w.Balance, all, m.w.Debt)
	}
	if m.w.Debt < 0 {
		m.fatalf("negative debt %v", m.w.Debt)
	}
	if !m.forced && m.w.Balance < -m.w.OverdraftLimit {
		m.fatalf("balance %v below the overdraft limit %v without a forced debit", m.w.Balance, m.w.OverdraftLimit)
	}

	// Once due lots expire, the balance is exactly the live lots less debt,
	// and a wallet in debt has no live credits left to burn.
	c := &fuzzLedger{t: m.t, now: m.now, w: m.w, lots: slices.Clone(m.lots), granted: m.granted, debited: m.debited, expired: m.expired}
	c.expireDue()
	var live Credits
	for _, l := range c.lots {
		if l.Remaining > 0 && !l.Live(c.now) {
			m.fatalf("lot %v keeps %v after expiring due lots", l.ID, l.Remaining)
		}
		if l.Live(c.now) {
			live += l.Remaining
		}
	}
	if c.w.Balance != live-c.w.Debt {
		m.fatalf("after expiry, balance %v != live lots %v - debt %v", c.w.Balance, live, c.w.Debt)
	}
	if c.w.Balance != c.granted-c.debited-c.expired {
		m.fatalf("after expiry, balance %v is not conserved", c.w.Balance)
	}
	if c.w.Debt > 0 && live > 0 {
		m.fatalf("debt %v alongside %v live credits", c.w.Debt, live)
	}
	if !m.forced && c.w.Balance < -c.w.OverdraftLimit {
		m.fatalf("after expiry, balance %v below the overdraft limit %v", c.w.Balance, c.w.OverdraftLimit)
	}
}

// refBurnsBefore is the burn order written out independently of SortLots:
// priority, then expiry (never last), then age, then id.
func refBurnsBefore(a, b Lot) bool {
	key := func(l Lot) (int, bool, int64, int64, int64) {
		var exp int64
		if l.ExpiresAt != nil {
			exp = l.ExpiresAt.UnixNano()
		}
		return l.Priority, l.ExpiresAt == nil, exp, l.CreatedAt.UnixNano(), l.ID
	}
	ap, an, ae, ac, ai := key(a)
	bp, bn, be, bc, bi := key(b)
	switch {
	case ap != bp:
		return ap < bp
	case an != bn:
		return !an
	case ae != be:
		return ae < be
	case ac != bc:
		return ac < bc
	}
	return ai < bi
}
