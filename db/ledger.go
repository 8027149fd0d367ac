package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tally-billing/tally/billing"
)

// liveLots returns the customer's lots that can be burned now, expiring
// first any whose time has come (so a debit never burns an expired lot, and
// the expiry is an entry of its own). The slice is valid until the next call.
func (t *Tx) liveLots(w *wallet) ([]billing.Lot, error) {
	var expired []billing.Lot
	live := t.lotBuf[:0] // reused: the caller uses it before the next call
	defer func() { t.lotBuf = live[:0] }()
	for _, l := range w.lots {
		switch {
		case l.ExpiresAt != nil && !l.ExpiresAt.After(t.Now):
			expired = append(expired, l)
		case !l.Frozen && l.Remaining > 0:
			live = append(live, l)
		}
	}
	for _, l := range expired {
		if err := t.expireLot(w, l); err != nil {
			return nil, err
		}
		// A plan's lot whose credits rolled over lives on, and so do the
		// credits of a lot that open holds reserved (PlanLotExpiry).
		if cur, ok := w.lot(l.ID); ok && cur.Remaining > 0 && !cur.Frozen {
			cur.KeptForHolds = !cur.Live(t.Now)
			live = append(live, cur)
		}
	}
	return live, nil
}

// expireLot writes the expiry of what is left of a lot
// (billing.PlanLotExpiry), or, for a plan's lot with a rollover rule, the
// end of its period (billing.PlanPeriodClose).
func (t *Tx) expireLot(w *wallet, l billing.Lot) error {
	if closed, err := t.closePeriodLot(w, l, t.Now); err != nil || closed {
		return err
	}
	ch := billing.PlanLotExpiry(ptr(t.state(w, w.lots)), l)
	_, err := t.apply(w, &ch)
	return err
}

func ptr[T any](v T) *T { return &v }

// entryRow is one ledger entry to append.
type entryRow struct {
	customerID   string
	typ          string
	amount       billing.Credits
	heldDelta    billing.Credits
	balanceAfter billing.Credits
	feature      string
	quantity     *billing.Quantity
	breakdown    []billing.DimensionCharge
	priceVersion int64
	lotID        int64
	holdID       string
	source       string
	reason       string
	metadata     map[string]string
	apiKeyID     string
	actor        string // billing.Actor.String(); empty on a debit by an API key (implied by apiKeyID)
	key          string
	hash         []byte
}

// entryActor is the actor column of an entry: NULL when the API key column
// already says who (see migration 00005_events.sql).
func entryActor(e *entryRow) any {
	if e.actor == "" || (e.apiKeyID != "" && e.actor == "api_key:"+e.apiKeyID) {
		return nil
	}
	return e.actor
}

// actorSQL reads an entry's actor back, whichever way it was stored.
const actorSQL = `COALESCE(actor, 'api_key:' || api_key_id, '')`

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// insertEntry appends an entry and returns its row id. It is the first write
// of every operation that takes an idempotency key, so a duplicate key fails
// here before anything else is written.
func (t *Tx) insertEntry(e entryRow) (int64, error) {
	if t.deferring() {
		if !t.keyPending(e.key) {
			return t.deferEntry(e)
		}
		// The key is pending in this batch: write the pending rows so the
		// insert below meets the UNIQUE index, and replays.
		if err := t.direct(); err != nil {
			return 0, err
		}
	}
	meta, err := metadataJSON(e.metadata)
	if err != nil {
		return 0, err
	}
	var qty any
	if e.quantity != nil {
		qty = int64(*e.quantity)
	}
	dims, err := breakdownJSON(e.breakdown)
	if err != nil {
		return 0, err
	}
	// ON CONFLICT DO NOTHING rather than a failed INSERT: PostgreSQL
	// aborts a transaction at its first error, and the caller goes on to
	// look the key up.
	var id int64
	err = t.queryRow(`INSERT INTO entries (customer_id, type, amount, held_delta, balance_after, feature, quantity,
		price_version, lot_id, hold_id, source, reason, metadata, api_key_id, idempotency_key, request_hash, created_at, actor, quantities)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
		e.customerID, e.typ, int64(e.amount), int64(e.heldDelta), int64(e.balanceAfter), nullStr(e.feature), qty,
		nullInt(e.priceVersion), nullInt(e.lotID), nullStr(e.holdID), nullStr(e.source), e.reason, meta,
		nullStr(e.apiKeyID), nullStr(e.key), e.hash, micros(t.Now), entryActor(&e), dims).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) && e.key != "" {
		// The key is taken: by an earlier request (debits look the key up
		// only now), or by another process since our lookup.
		return 0, errKeyTaken
	}
	return id, err
}

// metadataJSON is an entry's metadata column: a JSON object, or NULL.
func metadataJSON(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// breakdownJSON is an entry's quantities column: the per-dimension
// breakdown as JSON, or NULL.
func breakdownJSON(b []billing.DimensionCharge) (any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	out, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return string(out), nil
}

// scanBreakdown reads an entry's quantities column back.
func scanBreakdown(v sql.NullString) ([]billing.DimensionCharge, error) {
	if !v.Valid {
		return nil, nil
	}
	var b []billing.DimensionCharge
	return b, json.Unmarshal([]byte(v.String), &b)
}

// burn records which lots an entry took credits from (entry_lots) and takes
// them (take).
func (t *Tx) burn(w *wallet, entryID int64, burns []billing.Burn) error {
	for _, b := range burns {
		if t.deferring() {
			t.opPend.lots = append(t.opPend.lots, pendingLot{entryID, b.LotID, int64(b.Credits)})
		} else if _, err := t.exec(`INSERT INTO entry_lots (entry_id, lot_id, amount) VALUES (?, ?, ?)`, entryID, b.LotID, int64(b.Credits)); err != nil {
			return err
		}
	}
	return t.take(w, burns)
}

// take takes burned credits from the lots, in the working copy (the lot rows
// are written at the end of the batch).
func (t *Tx) take(w *wallet, burns []billing.Burn) error {
	for _, b := range burns {
		l, ok := w.lot(b.LotID)
		if !ok || l.Remaining < b.Credits {
			return fmt.Errorf("db: burn of %v from lot %d, which has %v", b.Credits, b.LotID, l.Remaining)
		}
		w.setLot(b.LotID, l.Remaining-b.Credits)
	}
	return nil
}

// priorEntry is what an idempotency key already stands for.
type priorEntry struct {
	id   int64
	typ  string
	hash []byte
}

// findKey looks an idempotency key up. Inside the writer there is no race
// between this lookup and the insert that follows it; the UNIQUE index is the
// backstop against other processes.
func (t *Tx) findKey(key string) (*priorEntry, error) {
	if key == "" {
		return nil, nil
	}
	var p priorEntry
	err := t.queryRow(`SELECT id, type, request_hash FROM entries WHERE idempotency_key = ?`, key).Scan(&p.id, &p.typ, &p.hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// errKeyTaken reports an idempotency key already in the ledger; callers
// look it up to replay or refuse.
var errKeyTaken = billing.Errorf(billing.CodeConflict, "A request with this idempotency key was already made; retry it to get its result.")

func idempotencyConflict(key string) error {
	return billing.Errorf(billing.CodeIdempotencyConflict,
		"Idempotency key %q was already used with a different request.", key).With("idempotency_key", key)
}

// priorRequest looks an idempotency key up for a request of entry type typ
// with this hash. found is false when the key is new (or empty). A key
// used by another kind of request, or by the same kind with another body, is
// an idempotency_conflict; otherwise entryID is the entry to replay.
func (t *Tx) priorRequest(key, typ string, hash []byte) (entryID int64, found bool, err error) {
	p, err := t.findKey(key)
	if err != nil || p == nil {
		return 0, false, err
	}
	if p.typ != typ || !bytes.Equal(p.hash, hash) {
		return 0, false, idempotencyConflict(key)
	}
	return p.id, true, nil
}

// rowQuerier runs a one-row query on the writer's transaction or a reader.
type rowQuerier func(query string, args ...any) *sql.Row

// spendOf is what a customer (table usage_daily) or an API key (table
// api_key_spend) has used today and this month (UTC), from the daily
// rollups, so it never scans entries.
func spendOf(q rowQuerier, table, col, id string, now time.Time) (billing.Spend, error) {
	var s billing.Spend
	day := now.UTC().Format(time.DateOnly)
	err := q(`SELECT COALESCE(SUM(CASE WHEN day = ? THEN credits END), 0), COALESCE(SUM(credits), 0)
		FROM `+table+` WHERE `+col+` = ? AND day >= ? AND day <= ?`, day, id, day[:8]+"01", day).Scan(&s.Day, &s.Month)
	return s, err
}

// capUses gathers every spend cap in force on a charge to a customer by an
// API key (nil: none), with what counts against each: the spend committed
// today and this month (from the rollups), what pending adds (this batch's
// unwritten spend; nil outside the writer) and the open holds. It is the one
// place the debit, the hold, the capture and the quote read caps from, so
// they cannot disagree about what a cap allows.
func capUses(q rowQuerier, now time.Time, customerID string, caps, own billing.SpendCaps, held billing.Credits,
	key *billing.APIKey, pending func(customer, key string) billing.Spend) ([]billing.CapUse, error) {
	var uses []billing.CapUse
	if caps.Set() || own.Set() {
		s, err := spendOf(q, "usage_daily", "customer_id", customerID, now)
		if err != nil {
			return nil, err
		}
		if pending != nil {
			p := pending(customerID, "")
			s.Day, s.Month = s.Day+p.Day, s.Month+p.Month
		}
		s.Day, s.Month = s.Day+held, s.Month+held
		if caps.Set() {
			uses = append(uses, billing.CapUse{Scope: billing.CapScopeCustomer, Caps: caps, Spent: s})
		}
		if own.Set() {
			uses = append(uses, billing.CapUse{Scope: billing.CapScopeCustomerSelf, Caps: own, Spent: s})
		}
	}
	if key != nil && key.Limits.Caps().Set() {
		s, err := spendOf(q, "api_key_spend", "api_key_id", key.ID, now)
		if err != nil {
			return nil, err
		}
		var keyHeld billing.Credits
		if err := q(`SELECT COALESCE(SUM(amount), 0) FROM holds WHERE api_key_id = ? AND status = 'active'`, key.ID).Scan(&keyHeld); err != nil {
			return nil, err
		}
		if pending != nil {
			p := pending("", key.ID)
			s.Day, s.Month = s.Day+p.Day, s.Month+p.Month
		}
		s.Day, s.Month = s.Day+keyHeld, s.Month+keyHeld
		uses = append(uses, billing.CapUse{Scope: billing.CapScopeAPIKey, Caps: key.Limits.Caps(), Spent: s})
	}
	return uses, nil
}

// debitSnapshot is what the debit, hold and capture plans read, inside the
// writer: the working copy of the wallet after due holds and lots have
// expired, its live lots and the caps with this batch's spend counted.
func (t *Tx) debitSnapshot(w *wallet, key *billing.APIKey) (billing.DebitSnapshot, error) {
	if err := t.expireHoldsOf(w); err != nil {
		return billing.DebitSnapshot{}, err
	}
	lots, err := t.liveLots(w)
	if err != nil {
		return billing.DebitSnapshot{}, err
	}
	if t.w.d.dialect == Postgres && key != nil && key.Limits.Caps().Set() {
		// A key's caps span customers, whose wallets other instances lock
		// apart: the key's row is locked too, so its spend is read and
		// written by one batch at a time.
		var one int
		if err := t.queryRow(`SELECT 1 FROM api_keys WHERE id = ? FOR UPDATE`, key.ID).Scan(&one); err != nil {
			return billing.DebitSnapshot{}, err
		}
	}
	uses, err := capUses(t.queryRow, t.Now, w.customerID, w.caps, w.customerCaps, w.Held, key, t.pendingSpend)
	if err != nil {
		return billing.DebitSnapshot{}, err
	}
	return billing.DebitSnapshot{State: t.state(w, lots), Caps: uses, Now: t.Now}, nil
}

// recordUsage adds a debit to the daily rollups (customer per feature, and
// API key); they are written with the batch, in the debit's transaction.
func (t *Tx) recordUsage(customerID, feature string, q billing.Quantity, charge billing.Credits, keyID string) error {
	day := t.day()
	k := rollupKey{customerID, day, feature}
	r := t.op.rollups[k]
	t.op.rollups[k] = rollupDelta{r.credits + charge, r.quantity + q, r.events + 1}
	if keyID != "" {
		t.op.keySpend[keySpendKey{keyID, day}] += charge
	}
	return nil
}

// Debit meters one action: prices it with the current price book, checks
// spend caps and the available balance, burns lots and appends the entry,
// all in one transaction. Errors: customer_not_found, unknown_feature,
// invalid_quantity, insufficient_credits, spend_limit_exceeded,
// idempotency_conflict, storage_unavailable.
func (d *DB) Debit(ctx context.Context, req billing.UsageRequest) (billing.Debit, error) {
	if err := req.Validate(); err != nil {
		return billing.Debit{}, err
	}
	id, err := d.ResolveCustomer(ctx, req.Customer)
	if err != nil {
		return billing.Debit{}, err
	}
	var out billing.Debit
	hash := req.Hash(id)
	err = d.writeFor(ctx, time.Time{}, id, func(t *Tx) (err error) {
		out, err = t.debitHashed(id, &req, hash)
		return err
	})
	return out, err
}

// DebitMany meters many actions, each atomic on its own, sharing group
// commits. Results and errors are in request order.
func (d *DB) DebitMany(ctx context.Context, reqs []billing.UsageRequest) ([]billing.Debit, []error) {
	out := make([]billing.Debit, len(reqs))
	errs := make([]error, len(reqs))
	var fns []func(*Tx) error
	var idx []int
	var customers []string
	for i := range reqs {
		req := &reqs[i]
		if err := req.Validate(); err != nil {
			errs[i] = err
			continue
		}
		id, err := d.ResolveCustomer(ctx, req.Customer)
		if err != nil {
			errs[i] = err
			continue
		}
		i := i
		hash := req.Hash(id)
		fns = append(fns, func(t *Tx) (err error) {
			out[i], err = t.debitHashed(id, req, hash)
			return err
		})
		idx = append(idx, i)
		customers = append(customers, id)
	}
	for j, err := range d.writeManyFor(ctx, customers, fns) {
		errs[idx[j]] = err
	}
	return out, errs
}

// debit meters one action. The idempotency key is looked up only when it
// matters: when the debit is refused (a retry of an accepted debit must replay,
// not be refused now) or when the entry insert finds the key taken. An
// accepted first attempt, the common case, costs no lookup.
func (t *Tx) debit(customerID string, req *billing.UsageRequest) (billing.Debit, error) {
	return t.debitHashed(customerID, req, req.Hash(customerID))
}

// debitHashed is debit with the request's hash computed by the caller,
// outside the writer.
func (t *Tx) debitHashed(customerID string, req *billing.UsageRequest, hash []byte) (billing.Debit, error) {
	out, err := t.debitOnce(customerID, req, hash)
	if err == nil || req.IdempotencyKey == "" {
		return out, err
	}
	id, found, ferr := t.priorRequest(req.IdempotencyKey, billing.EntryDebit, hash)
	if ferr != nil {
		return billing.Debit{}, ferr
	}
	if !found {
		return out, err
	}
	out, err = t.debitByID(id)
	out.Replayed = true
	return out, err
}

func (t *Tx) debitOnce(customerID string, req *billing.UsageRequest, hash []byte) (billing.Debit, error) {
	f, pb, err := t.feature(req.Feature)
	if err != nil {
		return billing.Debit{}, err
	}
	charge, lines, err := billing.PriceUsage(f, req.Quantity, req.Quantities)
	if err != nil {
		return billing.Debit{}, err
	}
	w, err := t.loadWallet(customerID)
	if err != nil {
		return billing.Debit{}, err
	}
	snap, err := t.debitSnapshot(w, req.APIKey)
	if err != nil {
		return billing.Debit{}, err
	}
	u := billing.Usage{Feature: f.Key, Quantity: quantityOf(req.Quantity), Breakdown: lines, Charge: charge, PriceVersion: pb.Version,
		Metadata: req.Metadata, APIKey: req.APIKey, Key: req.IdempotencyKey, Hash: hash}
	ch, err := billing.PlanDebitChange(&snap, u)
	if err != nil {
		return billing.Debit{}, err
	}
	ap, err := t.apply(w, &ch)
	if err != nil {
		return billing.Debit{}, err
	}
	return billing.Debit{ID: EntryID(ap.entryIDs[0]), Object: "debit", Customer: customerID, Feature: f.Key, Quantity: u.Quantity,
		Breakdown: lines, CreditsCharged: charge, BalanceAfter: ch.Balance, PriceVersion: pb.Version,
		Metadata: req.Metadata, CreatedAt: t.Now.UTC().Truncate(time.Microsecond)}, nil
}

// debitByID rebuilds a debit's result from its entry (for replays).
func (t *Tx) debitByID(id int64) (billing.Debit, error) {
	return scanDebit(t.queryRow(`SELECT `+debitCols+` FROM entries WHERE id = ?`, id))
}

const debitCols = `id, customer_id, feature, quantity, amount, balance_after, price_version, hold_id, metadata, created_at, quantities`

// quantityOf is a request's single quantity, 0 when it is priced per dimension.
func quantityOf(q *billing.Quantity) billing.Quantity {
	if q == nil {
		return 0
	}
	return *q
}

func scanDebit(r rowScanner) (billing.Debit, error) {
	var d billing.Debit
	var id, created int64
	var holdID, meta, dims sql.NullString
	var qty sql.NullInt64
	if err := r.Scan(&id, &d.Customer, &d.Feature, &qty, &d.CreditsCharged, &d.BalanceAfter, &d.PriceVersion, &holdID, &meta, &created, &dims); err != nil {
		return d, err
	}
	d.Quantity = billing.Quantity(qty.Int64)
	var err error
	if d.Breakdown, err = scanBreakdown(dims); err != nil {
		return d, err
	}
	d.ID, d.Object, d.HoldID, d.CreatedAt = EntryID(id), "debit", holdID.String, fromMicros(created)
	d.CreditsCharged = -d.CreditsCharged
	if meta.Valid {
		if err := json.Unmarshal([]byte(meta.String), &d.Metadata); err != nil {
			return d, err
		}
	}
	return d, nil
}

// Grant adds credits to a customer as a new lot. Errors: customer_not_found,
// validation_failed, idempotency_conflict, storage_unavailable.
func (d *DB) Grant(ctx context.Context, req billing.GrantRequest) (billing.Grant, error) {
	if err := req.Validate(); err != nil {
		return billing.Grant{}, err
	}
	id, err := d.ResolveCustomer(ctx, req.Customer)
	if err != nil {
		return billing.Grant{}, err
	}
	var out billing.Grant
	err = d.writeFor(ctx, time.Time{}, id, func(t *Tx) (err error) {
		out, err = t.grant(id, &req)
		return err
	})
	return out, err
}

func (t *Tx) grant(customerID string, req *billing.GrantRequest) (billing.Grant, error) {
	return t.grantAs(billing.EntryGrant, customerID, req, req.Hash(customerID))
}

// grantAs adds a lot with an entry of type typ (grant, or a positive adjustment).
func (t *Tx) grantAs(typ, customerID string, req *billing.GrantRequest, hash []byte) (billing.Grant, error) {
	if id, found, err := t.priorRequest(req.IdempotencyKey, typ, hash); err != nil {
		return billing.Grant{}, err
	} else if found {
		out, err := t.grantByEntry(id)
		out.Replayed = true
		return out, err
	}
	if err := req.CheckExpiry(t.Now); err != nil {
		return billing.Grant{}, err
	}
	w, err := t.loadWallet(customerID)
	if err != nil {
		return billing.Grant{}, err
	}
	ch, err := billing.PlanGrantChange(ptr(t.state(w, w.lots)), billing.GrantPlanRequest{Req: req, Type: typ, Hash: hash, Now: t.Now})
	if err != nil {
		return billing.Grant{}, err
	}
	ap, err := t.apply(w, &ch)
	if err != nil {
		return billing.Grant{}, err
	}
	lot := *ch.NewLot
	return billing.Grant{ID: EntryID(ap.entryIDs[0]), Object: "grant", Customer: customerID, Credits: req.Credits,
		BalanceAfter: ch.Balance, Lot: billing.LotView{ID: LotID(lot.ID), Lot: lot}, CreatedAt: lot.CreatedAt}, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func (t *Tx) grantByEntry(entryID int64) (billing.Grant, error) {
	var g billing.Grant
	var lotID, created int64
	if err := t.queryRow(`SELECT customer_id, amount, balance_after, lot_id, created_at FROM entries WHERE id = ?`, entryID).
		Scan(&g.Customer, &g.Credits, &g.BalanceAfter, &lotID, &created); err != nil {
		return g, err
	}
	g.ID, g.Object, g.CreatedAt = EntryID(entryID), "grant", fromMicros(created)
	l, err := scanLot(t.queryRow(`SELECT `+lotCols+` FROM lots WHERE id = ?`, lotID))
	// The replay answers what the grant answered: the lot as it was created,
	// holding its credits minus any debt they repaid (a debt exists only when
	// the balance before the grant was negative).
	repaid := min(g.Credits, max(0, g.Credits-g.BalanceAfter))
	l.Remaining = g.Credits - repaid
	g.Lot = billing.LotView{ID: LotID(l.ID), Lot: l}
	return g, err
}

const lotCols = `id, customer_id, source, priority, amount, remaining, expires_at, refundable_until, reason, frozen, created_at`

func scanLot(r rowScanner) (billing.Lot, error) {
	var l billing.Lot
	var exp, ref sql.NullInt64
	var created int64
	err := r.Scan(&l.ID, &l.CustomerID, &l.Source, &l.Priority, &l.Amount, &l.Remaining, &exp, &ref, &l.Reason, &l.Frozen, &created)
	l.ExpiresAt, l.RefundableUntil, l.CreatedAt = timePtr(exp), timePtr(ref), fromMicros(created)
	return l, err
}

// BackfillItem is one grant, debit or paid top-up to write at a past time.
type BackfillItem struct {
	At    time.Time
	Grant *billing.GrantRequest
	Usage *billing.UsageRequest
	// TopUp is a purchase paid at At in the sandbox: its top-up row and its
	// successful payment, which grants the credits under Policy, as a
	// customer's click and the sandbox's answer would have.
	TopUp  *billing.TopUp
	Policy billing.PaymentPolicy
}

// Backfill writes grants and debits at the times they carry, in order,
// sharing group commits. It exists for demo data and tests of history (a
// product never writes the past); each item is atomic on its own and its
// error is returned in order.
func (d *DB) Backfill(ctx context.Context, items []BackfillItem) []error {
	errs := make([]error, len(items))
	queued := make([]*op, len(items))
	for i, it := range items {
		var fn func(*Tx) error
		switch {
		case it.Grant != nil:
			req := it.Grant
			if err := req.Validate(); err != nil {
				errs[i] = err
				continue
			}
			id, err := d.ResolveCustomer(ctx, req.Customer)
			if err != nil {
				errs[i] = err
				continue
			}
			fn = func(t *Tx) error { _, err := t.grant(id, req); return err }
		case it.Usage != nil:
			req := it.Usage
			if err := req.Validate(); err != nil {
				errs[i] = err
				continue
			}
			id, err := d.ResolveCustomer(ctx, req.Customer)
			if err != nil {
				errs[i] = err
				continue
			}
			fn = func(t *Tx) error { _, err := t.debit(id, req); return err }
		case it.TopUp != nil:
			id, err := d.ResolveCustomer(ctx, it.TopUp.Customer)
			if err != nil {
				errs[i] = err
				continue
			}
			in, pol := *it.TopUp, it.Policy
			in.Customer, in.Provider = id, "sandbox"
			fn = func(t *Tx) error {
				tu := in
				if err := t.insertTopUp(&tu, newID("backfill", 10), ""); err != nil {
					return err
				}
				_, err := t.recordPayment(tu.ID, billing.Payment{ProviderID: newID("pi_sandbox", 10), Status: billing.PaymentSucceeded}, pol)
				return err
			}
		default:
			continue
		}
		queued[i] = d.w.submit(ctx, it.At, "", fn)
		if queued[i] == nil {
			errs[i] = errClosed
		}
	}
	for i, o := range queued {
		if o != nil {
			errs[i] = <-o.done
		}
	}
	return errs
}

// Adjust corrects a customer's balance by hand and returns the entry it
// wrote (replayed = true for a retry of the same request).
func (d *DB) Adjust(ctx context.Context, req billing.AdjustmentRequest) (billing.Entry, bool, error) {
	if err := req.Validate(); err != nil {
		return billing.Entry{}, false, err
	}
	id, err := d.ResolveCustomer(ctx, req.Customer)
	if err != nil {
		return billing.Entry{}, false, err
	}
	var out billing.Entry
	var replayed bool
	err = d.Write(ctx, func(t *Tx) (err error) {
		out, replayed, err = t.adjust(id, &req)
		return err
	})
	return out, replayed, err
}

func (t *Tx) adjust(customerID string, req *billing.AdjustmentRequest) (billing.Entry, bool, error) {
	hash := req.Hash(customerID)
	var entryID int64
	replayed := false
	if id, found, err := t.priorRequest(req.IdempotencyKey, billing.EntryAdjustment, hash); err != nil {
		return billing.Entry{}, false, err
	} else if found {
		entryID, replayed = id, true
	} else if req.Credits > 0 {
		g, err := t.grantAs(billing.EntryAdjustment, customerID, &billing.GrantRequest{Customer: customerID, Credits: req.Credits,
			Source: billing.SourceAdjustment, Reason: req.Reason, IdempotencyKey: req.IdempotencyKey, Actor: req.Actor}, hash)
		if err != nil {
			return billing.Entry{}, false, err
		}
		if entryID, err = parseRowID("ent", g.ID); err != nil {
			return billing.Entry{}, false, err
		}
	} else {
		w, err := t.loadWallet(customerID)
		if err != nil {
			return billing.Entry{}, false, err
		}
		lots, err := t.liveLots(w)
		if err != nil {
			return billing.Entry{}, false, err
		}
		ch, err := billing.PlanRemoval(ptr(t.state(w, lots)), req, hash, t.Now)
		if err != nil {
			return billing.Entry{}, false, err
		}
		ap, err := t.apply(w, &ch)
		if err != nil {
			return billing.Entry{}, false, err
		}
		entryID = ap.entryIDs[0]
	}
	e, _, err := scanEntry(t.queryRow(`SELECT `+entryCols+` FROM entries e WHERE e.id = ?`, entryID))
	if err != nil {
		return e, false, err
	}
	entries := []billing.Entry{e}
	err = attachBurns(t.query, entries, []int64{entryID})
	return entries[0], replayed, err
}
