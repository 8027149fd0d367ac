package db

import (
	"database/sql"
	"errors"
	"maps"
	"slices"

	"github.com/tally-billing/tally/billing"
)

// PostgreSQL batches read their wallets up front. Another instance may have
// written any wallet since the last batch, so the writer trusts no copy
// across batches there (runBatch forgets them) and each wallet is read
// again under a row lock. Read one operation at a time, that is six
// queries per customer, each a round trip to the server while the writer
// waits, and the lock order is whatever order the operations come in, so two
// instances can deadlock.
//
// Operations that name their customer when queued (Debit, DebitMany, holds)
// let the batch do better: prefetch locks every named wallet, with its
// settings, in one SELECT … FOR UPDATE in customer id order (the same order
// in every instance, so prefetched batches never deadlock one another) and
// reads their lots and open holds with one query each for the whole batch. The operations then find their wallets in the batch, as on
// SQLite's warm cache, and run on the deferred-row fast path. An operation
// whose customer was not named reads its wallet as before.

// prefetch loads and locks the wallets of ids (sorted, distinct) into the
// batch, and returns the wallets it loaded. A customer without a wallet is
// left out: its operation reports it. With skipLocked it leaves out, too,
// the wallets another transaction (another instance's batch) has locked,
// rather than wait for that transaction to end.
func (t *Tx) prefetch(ids []string, skipLocked bool) (map[string]*wallet, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	lock := "FOR UPDATE OF w"
	if skipLocked {
		lock += " SKIP LOCKED"
	}
	loaded := make(map[string]*wallet, len(ids))
	// The wallet row (locked), its auto-refill line, the customer's
	// low-balance line and last purchase, in one query.
	rows, err := t.query(`SELECT w.customer_id, w.balance, w.held, w.debt, w.overdraft_limit, w.daily_cap, w.monthly_cap,
		w.customer_daily_cap, w.customer_monthly_cap, w.low_announced, w.frozen_at IS NOT NULL, r.threshold, cs.low_balance_threshold,
		(SELECT l.amount FROM lots l WHERE l.customer_id = w.customer_id AND l.source = 'purchase' ORDER BY l.id DESC LIMIT 1)
		FROM wallets w
		LEFT JOIN refill_settings r ON r.customer_id = w.customer_id AND r.enabled = 1 AND r.paused_reason = ''
		LEFT JOIN customer_settings cs ON cs.customer_id = w.customer_id
		WHERE w.customer_id = ANY(?) ORDER BY w.customer_id `+lock, ids)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		w := &wallet{}
		var daily, monthly, ownDaily, ownMonthly, refill, low, last sql.NullInt64
		if err := rows.Scan(&w.customerID, &w.Balance, &w.Held, &w.Debt, &w.OverdraftLimit, &daily, &monthly, &ownDaily, &ownMonthly,
			&w.lowAnnounced, &w.frozen, &refill, &low, &last); err != nil {
			rows.Close()
			return nil, err
		}
		w.caps = billing.SpendCaps{DailyCap: creditsPtr(daily), MonthlyCap: creditsPtr(monthly)}
		w.customerCaps = billing.SpendCaps{DailyCap: creditsPtr(ownDaily), MonthlyCap: creditsPtr(ownMonthly)}
		w.refillAt, w.lowSet, w.lastTopUp = creditsPtr(refill), creditsPtr(low), billing.Credits(last.Int64)
		loaded[w.customerID] = w
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(loaded) == 0 {
		return loaded, nil
	}
	found := slices.Sorted(maps.Keys(loaded))
	// Each query below fills one field of the wallets it finds.
	each := func(q string, scan func(*sql.Rows) error) error {
		rows, err := t.query(q, found)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if err := each(`SELECT `+lotCols+` FROM lots WHERE customer_id = ANY(?) AND remaining > 0`, func(r *sql.Rows) error {
		l, err := scanLot(r)
		if err != nil {
			return err
		}
		w := loaded[l.CustomerID]
		w.lots = append(w.lots, l)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := each(`SELECT `+holdCols+` FROM holds WHERE customer_id = ANY(?) AND status = 'active'`, func(r *sql.Rows) error {
		h, err := scanHold(r)
		if err != nil {
			return err
		}
		w := loaded[h.Customer]
		w.holds = append(w.holds, h)
		t.w.holdOwner[h.ID] = h.Customer // a capture finds it in memory
		return nil
	}); err != nil {
		return nil, err
	}
	for id, w := range loaded {
		t.batch.wallets[id] = w // clean, and locked by the batch's transaction
	}
	return loaded, nil
}

// errCarried marks an operation a batch did not run: its wallet was locked
// by another instance's batch. The writer runs it in its next batch.
var errCarried = errors.New("db: carried to the next batch")

// prefetchBatch locks and reads the wallets a PostgreSQL batch's operations
// named. Two instances' batches often name a customer in common (with
// 1,000 customers and batches of 40, one or two a pair); waiting for the
// other's row lock would make one instance wait for the other's COMMIT.
// So a wallet another batch holds is skipped (SKIP LOCKED), and its
// operations are carried to this writer's next batch (errs[i] = errCarried),
// by when the other batch has most likely committed. A carried operation
// waits for its wallet's lock the next time, so none waits more than one
// batch more. Waiting locks are taken first, in customer id order, and
// skipping ones never wait, so batches still cannot deadlock one another.
// When every named wallet is busy, the batch waits for them rather than
// run empty.
func (t *Tx) prefetchBatch(batch []*op, errs []error) error {
	var wait, try []string
	for _, o := range batch {
		switch {
		case o.customer == "":
		case o.carried:
			wait = append(wait, o.customer)
		default:
			try = append(try, o.customer)
		}
	}
	slices.Sort(wait)
	wait = slices.Compact(wait)
	slices.Sort(try)
	try = slices.DeleteFunc(slices.Compact(try), func(id string) bool { _, ok := slices.BinarySearch(wait, id); return ok })
	waited, err := t.prefetch(wait, false)
	if err != nil {
		return err
	}
	got, err := t.prefetch(try, true)
	if err != nil {
		return err
	}
	if len(got) == len(try) {
		return nil
	}
	// Which of the wallets not loaded exist (held by another batch)? The
	// rest have no wallet, and their operations report it now.
	var missing []string
	for _, id := range try {
		if got[id] == nil {
			missing = append(missing, id)
		}
	}
	rows, err := t.query(`SELECT customer_id FROM wallets WHERE customer_id = ANY(?)`, missing)
	if err != nil {
		return err
	}
	busy := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		busy[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(busy) == 0 {
		return nil
	}
	if len(waited) == 0 && len(got) == 0 {
		// Nothing of the batch could run: wait for the wallets instead.
		_, err := t.prefetch(slices.Sorted(maps.Keys(busy)), false)
		return err
	}
	for i, o := range batch {
		if busy[o.customer] && !o.carried {
			errs[i] = errCarried
		}
	}
	return nil
}
