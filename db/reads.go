package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Balance reports a customer's balance, holds and lots. When a lot or hold
// has passed its expiry but the sweeper has not written it yet, the expiry
// is written first, so the figures are never stale.
func (d *DB) Balance(ctx context.Context, ref string) (billing.Balance, error) {
	id, err := d.ResolveCustomer(ctx, ref)
	if err != nil {
		return billing.Balance{}, err
	}
	for attempt := 0; ; attempt++ {
		b, stale, err := d.readBalance(ctx, id)
		if err != nil || !stale || attempt > 0 {
			return b, err
		}
		if err := d.SweepCustomer(ctx, id); err != nil {
			return b, err
		}
	}
}

func (d *DB) readBalance(ctx context.Context, id string) (billing.Balance, bool, error) {
	now := d.now()
	tx, err := d.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return billing.Balance{}, false, err
	}
	defer tx.Rollback()
	b := billing.Balance{Object: "balance", Customer: id, AsOf: now.UTC().Truncate(time.Microsecond), Lots: []billing.LotView{}, ExpiringSoon: []billing.LotView{}}
	if err := tx.QueryRowContext(ctx, `SELECT balance, held, overdraft_limit FROM wallets WHERE customer_id = ?`, id).
		Scan(&b.Balance, &b.Held, &b.OverdraftLimit); err != nil {
		return b, false, err
	}
	b.Available = b.Balance - b.Held
	stale := false
	if b.Held > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM holds WHERE customer_id = ? AND status = 'active' AND expires_at <= ?`,
			id, micros(now)).Scan(&n); err != nil {
			return b, false, err
		}
		stale = n > 0
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+lotCols+` FROM lots WHERE customer_id = ? AND remaining > 0`, id)
	if err != nil {
		return b, false, err
	}
	defer rows.Close()
	var lots []billing.Lot
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			return b, false, err
		}
		lots = append(lots, l)
	}
	if err := rows.Err(); err != nil {
		return b, false, err
	}
	billing.SortLots(lots)
	for _, l := range lots {
		if l.ExpiresAt != nil && !l.ExpiresAt.After(now) {
			stale = true
		}
		if l.Frozen {
			continue
		}
		v := billing.LotView{ID: LotID(l.ID), Lot: l}
		b.Lots = append(b.Lots, v)
		if l.ExpiresAt != nil && l.ExpiresAt.Sub(now) <= billing.ExpiringWindow {
			b.ExpiringSoon = append(b.ExpiringSoon, v)
			b.ExpiringCredits += l.Remaining
		}
	}
	return b, stale, nil
}

// SweepCustomer writes the expiry of the customer's due lots and holds.
func (d *DB) SweepCustomer(ctx context.Context, customerID string) error {
	return d.Write(ctx, func(t *Tx) error { return t.sweep(customerID) })
}

func (t *Tx) sweep(customerID string) error {
	w, err := t.loadWallet(customerID)
	if err != nil {
		return err
	}
	if err := t.expireHoldsOf(w); err != nil {
		return err
	}
	_, err = t.liveLots(w)
	return err
}

// ExpireDue writes the expiry of every lot and hold whose time has passed
// and returns how many customers it swept. The server runs it periodically;
// debits also expire a customer's due lots and holds before they charge.
func (d *DB) ExpireDue(ctx context.Context) (int, error) {
	now := micros(d.now())
	// A customer with open holds is left to their holds' end (the second
	// part) or their next operation: the part of a lot their holds reserve
	// outlives its expiry, and sweeping them each tick would write nothing.
	rows, err := d.read.QueryContext(ctx, `SELECT customer_id FROM lots l WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?
			AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.customer_id = l.customer_id AND h.status = 'active' AND h.expires_at > ?)
		UNION SELECT customer_id FROM holds WHERE status = 'active' AND expires_at <= ? LIMIT 1000`, now, now, now)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	fns := make([]func(*Tx) error, len(ids))
	for i, id := range ids {
		fns[i] = func(t *Tx) error { return t.sweep(id) }
	}
	for _, err := range d.WriteMany(ctx, fns) {
		if err != nil {
			return 0, err
		}
	}
	return len(ids), d.Write(ctx, func(t *Tx) error { return t.noticeExpiringLots() })
}

// noticeExpiringLots emits grant.expiring, once per lot, for the lots with
// credits left that expire within billing.GrantExpiringNotice.
func (t *Tx) noticeExpiringLots() error {
	rows, err := t.query(`SELECT `+lotCols+` FROM lots WHERE remaining > 0 AND frozen = 0 AND expiring_noticed_at IS NULL
		AND expires_at IS NOT NULL AND expires_at > ? AND expires_at <= ? ORDER BY expires_at LIMIT 1000`+
		t.w.d.sql("", " FOR UPDATE SKIP LOCKED"), // another instance noticing them now has them
		micros(t.Now), micros(t.Now.Add(billing.GrantExpiringNotice)))
	if err != nil {
		return err
	}
	var due []billing.Lot
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			rows.Close()
			return err
		}
		due = append(due, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range due {
		// The writer's working copy is newer than the row for what is left.
		if w, err := t.loadWallet(l.CustomerID); err == nil {
			if cur, ok := w.lot(l.ID); ok {
				l.Remaining = cur.Remaining
			}
		}
		if err := t.emit(billing.SystemActor("expiry"), billing.NewEvent{Type: billing.EventGrantExpiring, Customer: l.CustomerID,
			Data: map[string]any{"lot": LotID(l.ID), "source": l.Source, "credits": l.Remaining, "expires_at": l.ExpiresAt}}); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE lots SET expiring_noticed_at = ? WHERE id = ?`, micros(t.Now), l.ID); err != nil {
			return err
		}
	}
	return nil
}

// FindEntries lists a customer's entries, newest first, with the lots each
// took credits from. It returns the page and the cursor of the next one
// ("" at the end).
func (d *DB) FindEntries(ctx context.Context, f billing.EntryFilter) ([]billing.Entry, string, error) {
	limit := clampLimit(f.Limit)
	var where []string
	args := []any{}
	where = append(where, "e.customer_id = ?")
	args = append(args, f.Customer)
	if f.Type != "" {
		where, args = append(where, "e.type = ?"), append(args, f.Type)
	}
	if f.Feature != "" {
		where, args = append(where, "e.feature = ?"), append(args, f.Feature)
	}
	if f.From != nil {
		where, args = append(where, "e.created_at >= ?"), append(args, micros(*f.From))
	}
	if f.To != nil {
		where, args = append(where, "e.created_at < ?"), append(args, micros(*f.To))
	}
	if f.TagKey != "" {
		where, args = append(where, d.sql(`json_extract(e.metadata, '$."' || ? || '"') = ?`, `(e.metadata::jsonb ->> ?) = ?`)), append(args, f.TagKey, f.TagValue)
	}
	if f.Cursor != "" {
		c, err := parseRowID("ent", f.Cursor)
		if err != nil {
			return nil, "", billing.Errorf(billing.CodeInvalidRequest, "cursor %q is not a cursor from a previous page", f.Cursor).With("param", "cursor")
		}
		where, args = append(where, "e.id < ?"), append(args, c)
	}
	args = append(args, limit+1)
	rows, err := d.read.QueryContext(ctx, `SELECT `+entryCols+` FROM entries e WHERE `+strings.Join(where, " AND ")+` ORDER BY e.id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []billing.Entry
	var ids []int64
	for rows.Next() {
		e, id, err := scanEntry(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out, ids = out[:limit], ids[:limit]
		next = out[limit-1].ID
	}
	query := func(q string, args ...any) (*sql.Rows, error) { return d.read.QueryContext(ctx, q, args...) }
	if err := attachBurns(query, out, ids); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

const entryCols = `e.id, e.customer_id, e.type, e.amount, e.held_delta, e.balance_after, e.feature,
	e.quantity, e.price_version, e.lot_id, e.hold_id, e.source, e.reason, e.metadata, e.created_at, e.quantities`

func scanEntry(r rowScanner) (billing.Entry, int64, error) {
	var e billing.Entry
	var id, created int64
	var feature, hold, source, meta, dims sql.NullString
	var qty, pv, lot sql.NullInt64
	if err := r.Scan(&id, &e.Customer, &e.Type, &e.Amount, &e.HeldDelta, &e.BalanceAfter, &feature, &qty, &pv, &lot,
		&hold, &source, &e.Reason, &meta, &created, &dims); err != nil {
		return e, 0, err
	}
	var err error
	if e.Breakdown, err = scanBreakdown(dims); err != nil {
		return e, 0, err
	}
	e.ID, e.Object, e.Feature, e.Hold, e.Source, e.CreatedAt = EntryID(id), "entry", feature.String, hold.String, source.String, fromMicros(created)
	e.PriceVersion = pv.Int64
	if qty.Valid {
		q := billing.Quantity(qty.Int64)
		e.Quantity = &q
	}
	if lot.Valid && e.Type != billing.EntryDebit { // a debit's lot is one of its burns (attachBurns)
		e.Lot = LotID(lot.Int64)
	}
	if meta.Valid {
		if err := json.Unmarshal([]byte(meta.String), &e.Metadata); err != nil {
			return e, 0, err
		}
	}
	return e, id, nil
}

// attachBurns fills each entry's burns: the lots it took credits from.
func attachBurns(query func(string, ...any) (*sql.Rows, error), entries []billing.Entry, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(ids))
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		idx[id], ph[i], args[i] = i, "?", id
	}
	// A debit that took everything from one lot names it itself (lot_id);
	// any other entry lists its lots in entry_lots, in burn order (rowid).
	in := strings.Join(ph, ",")
	rows, err := query(`SELECT el.entry_id, el.lot_id, el.amount, l.source, l.reason, l.expires_at, el.rowid AS burn
		FROM entry_lots el JOIN lots l ON l.id = el.lot_id WHERE el.entry_id IN (`+in+`)
		UNION ALL
		SELECT e.id, e.lot_id, -e.amount, l.source, l.reason, l.expires_at, 0
		FROM entries e JOIN lots l ON l.id = e.lot_id WHERE e.type = 'debit' AND e.id IN (`+in+`)
		ORDER BY 1, 7`, append(args, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var entryID, lotID int64
		var b billing.BurnView
		var exp sql.NullInt64
		var order int64
		if err := rows.Scan(&entryID, &lotID, &b.Credits, &b.Source, &b.Reason, &exp, &order); err != nil {
			return err
		}
		b.Lot, b.ExpiresAt = LotID(lotID), timePtr(exp)
		e := &entries[idx[entryID]]
		e.Burns = append(e.Burns, b)
	}
	return rows.Err()
}

// Quote prices an action for a customer now and says whether they can
// afford it, writing nothing. Errors: customer_not_found, unknown_feature,
// invalid_quantity.
func (d *DB) Quote(ctx context.Context, ref, feature string, q *billing.Quantity, qs billing.Quantities, key *billing.APIKey) (billing.Quote, error) {
	id, err := d.ResolveCustomer(ctx, ref)
	if err != nil {
		return billing.Quote{}, err
	}
	pb, err := d.CurrentPriceBook(ctx)
	if err != nil {
		return billing.Quote{}, err
	}
	f, ok := pb.Feature(feature)
	if !ok {
		if pb == nil {
			return billing.Quote{}, billing.Errorf(billing.CodeUnknownFeature, "Feature %q is not in the current price book.", feature).With("param", "feature")
		}
		// As a debit of it says (it had no price_version).
		return billing.Quote{}, billing.Errorf(billing.CodeUnknownFeature, "Feature %q is not in price book version %d.", feature, pb.Version).
			With("param", "feature").With("price_version", pb.Version)
	}
	charge, lines, err := billing.PriceUsage(f, q, qs)
	if err != nil {
		return billing.Quote{}, err
	}
	b, err := d.Balance(ctx, id) // sweeps due holds and lots first, as a debit does
	if err != nil {
		return billing.Quote{}, err
	}
	c, err := d.FindCustomer(ctx, id)
	if err != nil {
		return billing.Quote{}, err
	}
	read := func(q string, args ...any) *sql.Row { return d.read.QueryRowContext(ctx, q, args...) }
	uses, err := capUses(read, d.now(), id, c.Limits.Caps(), c.CustomerCaps, b.Held, key, nil)
	if err != nil {
		return billing.Quote{}, err
	}
	out := billing.Quote{Object: "quote", Customer: id, Feature: f.Key, Quantity: quantityOf(q), Breakdown: lines, Credits: charge, PriceVersion: pb.Version,
		Available: b.Available, Affordable: true}
	// The debit's own plan, run dry: what it refuses, the quote calls unaffordable.
	snap := billing.DebitSnapshot{State: billing.WalletState{Customer: id, Wallet: billing.Wallet{Balance: b.Balance, Held: b.Held, OverdraftLimit: b.OverdraftLimit}},
		Caps: uses, Now: d.now()}
	if err := read(`SELECT frozen_at IS NOT NULL FROM wallets WHERE customer_id = ?`, id).Scan(&snap.State.Frozen); err != nil {
		return billing.Quote{}, err
	}
	if _, err := billing.PlanUsage(snap, charge); err != nil {
		switch code := billing.ErrorCode(err); code {
		case billing.CodeInsufficientCredits, billing.CodeSpendLimitExceeded, billing.CodeAccountFrozen:
			out.Affordable, out.Reason = false, code
		default:
			return billing.Quote{}, err
		}
	}
	return out, nil
}

// FindUsageDays returns daily usage rollups for a customer between two UTC
// days inclusive ('YYYY-MM-DD').
func (d *DB) FindUsageDays(ctx context.Context, customerID, from, to string) ([]billing.UsageDay, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT day, feature, credits, quantity, events FROM usage_daily
		WHERE customer_id = ? AND day >= ? AND day <= ? ORDER BY day, feature`, customerID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.UsageDay
	for rows.Next() {
		var u billing.UsageDay
		if err := rows.Scan(&u.Day, &u.Feature, &u.Credits, &u.Quantity, &u.Events); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
