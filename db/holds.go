package db

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tally-billing/tally/billing"
)

// CreateHold reserves credits for a streaming call. The balance does not
// change; the held amount grows and available shrinks. Errors:
// customer_not_found, validation_failed, insufficient_credits,
// spend_limit_exceeded, idempotency_conflict, storage_unavailable.
func (d *DB) CreateHold(ctx context.Context, req billing.HoldRequest) (billing.Hold, error) {
	if err := d.policyNow().HoldExpiry(&req); err != nil { // the policy's lifetimes (policy.go)
		return billing.Hold{}, err
	}
	if err := req.Validate(); err != nil {
		return billing.Hold{}, err
	}
	cid, err := d.ResolveCustomer(ctx, req.Customer)
	if err != nil {
		return billing.Hold{}, err
	}
	var out billing.Hold
	err = d.writeFor(ctx, time.Time{}, cid, func(t *Tx) (err error) {
		out, err = t.createHold(cid, &req)
		return err
	})
	return out, err
}

func (t *Tx) createHold(customerID string, req *billing.HoldRequest) (billing.Hold, error) {
	hash := req.Hash(customerID)
	// On the fast path the key is not looked up: a new key is the common
	// case, and a key already in the ledger makes the deferred entry's
	// insert fail, which reruns the batch carefully (pending.go), where the
	// lookup below replays it.
	looked := !t.deferring() || t.keyPending(req.IdempotencyKey)
	if looked {
		if h, found, err := t.priorHold(req.IdempotencyKey, hash); err != nil || found {
			return h, err
		}
	}
	w, err := t.loadWallet(customerID)
	if err != nil {
		return billing.Hold{}, err
	}
	key := req.APIKey
	snap, err := t.debitSnapshot(w, key)
	if err != nil {
		return billing.Hold{}, err
	}
	if !looked && !t.deferring() {
		// The snapshot needed SQL (a cap's spend): the entry will be written
		// now, so the key must be looked up first after all.
		if h, found, err := t.priorHold(req.IdempotencyKey, hash); err != nil || found {
			return h, err
		}
	}
	ch, err := billing.PlanHoldChange(&snap, billing.HoldRequestPlan{ID: newSortedID("hld", t.Now, 9), Amount: req.Credits,
		TTL: time.Duration(req.TTLSeconds) * time.Second, APIKey: key, Key: req.IdempotencyKey, Hash: hash})
	if err != nil {
		return billing.Hold{}, err
	}
	if _, err := t.apply(w, &ch); err != nil {
		return billing.Hold{}, err
	}
	return *ch.OpenHold, nil
}

// priorHold replays the hold an idempotency key already opened.
func (t *Tx) priorHold(key string, hash []byte) (billing.Hold, bool, error) {
	id, found, err := t.priorRequest(key, billing.EntryHold, hash)
	if err != nil || !found {
		return billing.Hold{}, false, err
	}
	var holdID string
	if err := t.queryRow(`SELECT hold_id FROM entries WHERE id = ?`, id).Scan(&holdID); err != nil {
		return billing.Hold{}, false, err
	}
	h, err := t.hold(holdID)
	h.Replayed = true
	return h, true, err
}

// openHoldInMemory finds an open hold in the writer's working copies, for
// the fast path: the customer from the writer's hold index, the hold from
// the customer's wallet. ok is false when the writer does not know the hold
// as open (never seen, closed, or an older process's): the caller then reads
// SQL, which tells every other case apart.
func (t *Tx) openHoldInMemory(id string) (*wallet, billing.Hold, bool, error) {
	if !t.deferring() {
		return nil, billing.Hold{}, false, nil
	}
	cid, ok := t.w.holdOwner[id]
	if !ok {
		return nil, billing.Hold{}, false, nil
	}
	w, err := t.loadWallet(cid)
	if err != nil {
		return nil, billing.Hold{}, false, err
	}
	h, ok := w.openHold(id)
	return w, h, ok, nil
}

const holdCols = `id, customer_id, amount, status, expires_at, created_at, closed_at, close_entry_id`

func scanHold(r rowScanner) (billing.Hold, error) {
	var h billing.Hold
	var exp, created int64
	var closed, closeEntry sql.NullInt64
	err := r.Scan(&h.ID, &h.Customer, &h.Credits, &h.Status, &exp, &created, &closed, &closeEntry)
	if errors.Is(err, sql.ErrNoRows) {
		return h, billing.Errorf(billing.CodeHoldNotFound, "No such hold.")
	}
	h.Object, h.ExpiresAt, h.CreatedAt, h.ClosedAt = "hold", fromMicros(exp), fromMicros(created), timePtr(closed)
	return h, err
}

func (t *Tx) hold(id string) (billing.Hold, error) { return findHold(t.queryRow, id) }

// findHold reads a hold, with its capture when it was captured.
func findHold(queryRow func(string, ...any) *sql.Row, id string) (billing.Hold, error) {
	h, err := scanHold(queryRow(`SELECT `+holdCols+` FROM holds WHERE id = ?`, id))
	if err != nil {
		return h, err
	}
	return h, attachCapture(queryRow, &h)
}

// attachCapture fills a captured hold's charge and debit.
func attachCapture(queryRow func(string, ...any) *sql.Row, h *billing.Hold) error {
	if h.Status != billing.HoldCaptured {
		return nil
	}
	d, err := scanDebit(queryRow(`SELECT `+debitCols+` FROM entries WHERE hold_id = ? AND type = 'debit'`, h.ID))
	if err != nil {
		return err
	}
	h.CreditsCharged, h.Debit = &d.CreditsCharged, &d
	return nil
}

// FindHold returns a hold. A hold past its expiry reads as expired even
// before the sweeper has written its release.
func (d *DB) FindHold(ctx context.Context, id string) (billing.Hold, error) {
	h, err := findHold(func(q string, args ...any) *sql.Row { return d.read.QueryRowContext(ctx, q, args...) }, id)
	if err == nil && h.Status == billing.HoldActive && !h.ExpiresAt.After(d.now()) {
		h.Status = billing.HoldExpired
	}
	return h, err
}

func holdNotActive(h billing.Hold) error {
	return billing.Errorf(billing.CodeHoldNotActive, "Hold %s is %s; it can no longer be captured or released.", h.ID, h.Status).
		With("status", h.Status)
}

// CaptureHold records the held call's actual usage and releases the rest of
// the hold. The usage may pass the hold by at most what the customer has
// available besides it plus the overdraft limit, and what it passes the hold
// by must fit the spend caps (billing.PlanCapture); otherwise nothing is
// written and the hold stays open. Capturing again with the same request
// replays the result. Errors: hold_not_found, hold_not_active,
// unknown_feature, invalid_quantity, insufficient_credits,
// spend_limit_exceeded, idempotency_conflict, storage_unavailable.
func (d *DB) CaptureHold(ctx context.Context, holdID string, req billing.CaptureRequest, key *billing.APIKey) (billing.Hold, error) {
	if err := req.Validate(); err != nil {
		return billing.Hold{}, err
	}
	var out billing.Hold
	err := d.writeFor(ctx, time.Time{}, d.holdCustomer(ctx, holdID), func(t *Tx) (err error) {
		out, err = t.captureHold(holdID, &req, key)
		return err
	})
	return out, err
}

func (t *Tx) captureHold(holdID string, req *billing.CaptureRequest, key *billing.APIKey) (billing.Hold, error) {
	hash := req.Hash(holdID)
	// The fast path: the writer knows the hold as open and unexpired, so
	// this is neither a retry of its capture nor too late; a key used before
	// makes the deferred debit's insert fail and the batch rerun carefully,
	// down the path below.
	if !t.keyPending(req.IdempotencyKey) {
		w, h, ok, err := t.openHoldInMemory(holdID)
		if err != nil {
			return billing.Hold{}, err
		}
		if ok && h.ExpiresAt.After(t.Now) {
			return t.captureOpen(w, h, req, key, hash, false)
		}
	}
	// A matching prior capture replays below (the hold is captured); only a
	// conflicting key stops here.
	if _, _, err := t.priorRequest(req.IdempotencyKey, billing.EntryDebit, hash); err != nil {
		return billing.Hold{}, err
	}
	h, err := scanHold(t.queryRow(`SELECT `+holdCols+` FROM holds WHERE id = ?`, holdID))
	if err != nil {
		return h, err
	}
	if h.Status == billing.HoldCaptured {
		// A retry of the same capture replays; anything else is too late.
		var prior []byte
		if err := t.queryRow(`SELECT request_hash FROM entries WHERE hold_id = ? AND type = 'debit'`, holdID).Scan(&prior); err != nil {
			return h, err
		}
		if string(prior) == string(hash) {
			err := attachCapture(t.queryRow, &h)
			h.Replayed = true
			return h, err
		}
		return h, holdNotActive(h)
	}
	if h.Status == billing.HoldActive && !h.ExpiresAt.After(t.Now) {
		// Expired but not yet swept: too late to capture (the sweeper releases it).
		return h, billing.Errorf(billing.CodeHoldNotActive, "Hold %s expired at %s before it was captured; record the usage with POST /api/v1/usage.",
			h.ID, h.ExpiresAt.Format(time.RFC3339)).With("status", billing.HoldExpired)
	}
	w, err := t.loadWallet(h.Customer)
	if err != nil {
		return h, err
	}
	if h.Status != billing.HoldActive {
		return h, holdNotActive(h)
	}
	return t.captureOpen(w, h, req, key, hash, true)
}

// captureOpen captures the open hold h of w's customer. looked says the
// idempotency key was already looked up.
func (t *Tx) captureOpen(w *wallet, h billing.Hold, req *billing.CaptureRequest, key *billing.APIKey, hash []byte, looked bool) (billing.Hold, error) {
	f, pb, err := t.feature(req.Feature)
	if err != nil {
		return h, err
	}
	charge, lines, err := billing.PriceUsage(f, req.Quantity, req.Quantities)
	if err != nil {
		return h, err
	}
	snap, err := t.debitSnapshot(w, key)
	if err != nil {
		return h, err
	}
	if !looked && !t.deferring() {
		// The snapshot needed SQL: the debit is written now, so a key used
		// before must be told now.
		if _, _, err := t.priorRequest(req.IdempotencyKey, billing.EntryDebit, hash); err != nil {
			return h, err
		}
	}
	u := billing.Usage{Feature: f.Key, Quantity: quantityOf(req.Quantity), Breakdown: lines, Charge: charge, PriceVersion: pb.Version,
		Metadata: req.Metadata, APIKey: key, Key: req.IdempotencyKey, Hash: hash}
	ch, err := billing.PlanCaptureChange(&snap, h, u)
	if err != nil {
		return h, err
	}
	ap, err := t.apply(w, &ch)
	if err != nil {
		return h, err
	}
	now := t.Now.UTC().Truncate(time.Microsecond)
	h.Status, h.ClosedAt = billing.HoldCaptured, &now
	d := billing.Debit{ID: EntryID(ap.entryIDs[0]), Object: "debit", Customer: h.Customer, Feature: f.Key, Quantity: u.Quantity, Breakdown: lines, CreditsCharged: charge,
		BalanceAfter: ch.Balance, PriceVersion: pb.Version, HoldID: h.ID, Metadata: req.Metadata, CreatedAt: now}
	h.CreditsCharged, h.Debit = &charge, &d
	return h, nil
}

// ReleaseHold ends a hold without a charge; key is who asks (nil: the
// system). Releasing a released hold returns it unchanged. Errors:
// hold_not_found, hold_not_active.
func (d *DB) ReleaseHold(ctx context.Context, holdID string, key *billing.APIKey) (billing.Hold, error) {
	actor := billing.KeyActor(key)
	if key == nil {
		actor = billing.SystemActor("release")
	}
	return d.releaseHold(ctx, holdID, "", actor)
}

// releaseHold is ReleaseHold by actor; a customer other than "" must own
// the hold (else hold_not_found, as if it did not exist).
func (d *DB) releaseHold(ctx context.Context, holdID, customer string, actor billing.Actor) (billing.Hold, error) {
	notFound := billing.Errorf(billing.CodeHoldNotFound, "No such hold.")
	var out billing.Hold
	err := d.writeFor(ctx, time.Time{}, d.holdCustomer(ctx, holdID), func(t *Tx) error {
		if w, h, ok, err := t.openHoldInMemory(holdID); err != nil {
			return err
		} else if ok {
			if customer != "" && h.Customer != customer {
				return notFound
			}
			out = h
			status := billing.HoldReleased
			if !h.ExpiresAt.After(t.Now) {
				status = billing.HoldExpired
			}
			return t.closeHoldBy(ctx, w, &out, status, actor)
		}
		h, err := scanHold(t.queryRow(`SELECT `+holdCols+` FROM holds WHERE id = ?`, holdID))
		if err != nil {
			return err
		}
		if customer != "" && h.Customer != customer {
			return notFound
		}
		out = h
		switch h.Status {
		case billing.HoldReleased, billing.HoldExpired:
			// Already not reserving anything: releasing again changes nothing.
			out.Replayed = true
			return nil
		case billing.HoldCaptured:
			return holdNotActive(h)
		}
		w, err := t.loadWallet(h.Customer)
		if err != nil {
			return err
		}
		status := billing.HoldReleased
		if !h.ExpiresAt.After(t.Now) {
			status = billing.HoldExpired
		}
		return t.closeHoldBy(ctx, w, &out, status, actor)
	})
	return out, err
}

// closeHold releases or expires an active hold (billing.PlanHoldClose):
// the held credits become available again.
func (t *Tx) closeHold(w *wallet, h *billing.Hold, status string, actor billing.Actor) error {
	ch := billing.PlanHoldClose(ptr(t.state(w, w.lots)), *h, status, actor)
	if _, err := t.apply(w, &ch); err != nil {
		return err
	}
	now := t.Now.UTC().Truncate(time.Microsecond)
	h.Status, h.ClosedAt = status, &now
	return nil
}

// expireHoldsOf expires the customer's holds whose time has passed, so their
// credits are available to the operation that follows. The wallet's working
// copy holds its open holds: no SQL.
func (t *Tx) expireHoldsOf(w *wallet) error {
	var due []billing.Hold
	for _, h := range w.holds {
		if !h.ExpiresAt.After(t.Now) {
			due = append(due, h)
		}
	}
	for i := range due {
		if err := t.closeHold(w, &due[i], billing.HoldExpired, billing.SystemActor("expiry")); err != nil {
			return err
		}
	}
	return nil
}

// holdCustomer is the customer of a hold, read before its capture or
// release is queued so that a PostgreSQL batch can lock and read the wallet
// with the others (prefetch.go); "" when unknown. SQLite's writer finds the
// hold in its own index instead, so it is not asked there.
func (d *DB) holdCustomer(ctx context.Context, holdID string) string {
	if d.dialect != Postgres {
		return ""
	}
	var c string
	if err := d.read.QueryRowContext(ctx, `SELECT customer_id FROM holds WHERE id = ?`, holdID).Scan(&c); err != nil {
		return "" // the operation reports a missing hold itself
	}
	return c
}
