package db

import (
	"database/sql"
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
// batch. A customer without a wallet is skipped: its operation reports it.
func (t *Tx) prefetch(ids []string) error {
	if len(ids) == 0 {
		return nil
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
		WHERE w.customer_id = ANY(?) ORDER BY w.customer_id FOR UPDATE OF w`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		w := &wallet{}
		var daily, monthly, ownDaily, ownMonthly, refill, low, last sql.NullInt64
		if err := rows.Scan(&w.customerID, &w.Balance, &w.Held, &w.Debt, &w.OverdraftLimit, &daily, &monthly, &ownDaily, &ownMonthly,
			&w.lowAnnounced, &w.frozen, &refill, &low, &last); err != nil {
			rows.Close()
			return err
		}
		w.caps = billing.SpendCaps{DailyCap: creditsPtr(daily), MonthlyCap: creditsPtr(monthly)}
		w.customerCaps = billing.SpendCaps{DailyCap: creditsPtr(ownDaily), MonthlyCap: creditsPtr(ownMonthly)}
		w.refillAt, w.lowSet, w.lastTopUp = creditsPtr(refill), creditsPtr(low), billing.Credits(last.Int64)
		loaded[w.customerID] = w
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(loaded) == 0 {
		return nil
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
		return err
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
		return err
	}
	for id, w := range loaded {
		t.batch.wallets[id] = w // clean, and locked by the batch's transaction
	}
	return nil
}

// batchCustomers is the sorted, distinct customers a batch's operations
// named when they were queued.
func batchCustomers(batch []*op) []string {
	var ids []string
	for _, o := range batch {
		if o.customer != "" {
			ids = append(ids, o.customer)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
