package db

import (
	"database/sql"
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
// let the batch do better: prefetch locks every named wallet with one
// SELECT … FOR UPDATE in customer id order (the same order in every
// instance, so prefetched batches never deadlock one another) and reads
// their settings, lots and open holds with one query each for the whole
// batch. The operations then find their wallets in the batch, as on
// SQLite's warm cache, and run on the deferred-row fast path. An operation
// whose customer was not named reads its wallet as before.

// prefetch loads and locks the wallets of ids (sorted, distinct) into the
// batch. A customer without a wallet is skipped: its operation reports it.
func (t *Tx) prefetch(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	loaded := make(map[string]*wallet, len(ids))
	rows, err := t.query(`SELECT customer_id, balance, held, debt, overdraft_limit, daily_cap, monthly_cap, customer_daily_cap,
		customer_monthly_cap, low_announced, frozen_at IS NOT NULL
		FROM wallets WHERE customer_id = ANY(?) ORDER BY customer_id FOR UPDATE`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		w := &wallet{}
		var daily, monthly, ownDaily, ownMonthly sql.NullInt64
		if err := rows.Scan(&w.customerID, &w.Balance, &w.Held, &w.Debt, &w.OverdraftLimit, &daily, &monthly, &ownDaily, &ownMonthly,
			&w.lowAnnounced, &w.frozen); err != nil {
			rows.Close()
			return err
		}
		w.caps = billing.SpendCaps{DailyCap: creditsPtr(daily), MonthlyCap: creditsPtr(monthly)}
		w.customerCaps = billing.SpendCaps{DailyCap: creditsPtr(ownDaily), MonthlyCap: creditsPtr(ownMonthly)}
		loaded[w.customerID] = w
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(loaded) == 0 {
		return nil
	}
	found := slices.Sorted(func(yield func(string) bool) {
		for id := range loaded {
			if !yield(id) {
				return
			}
		}
	})
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
	var id string
	var n int64
	var nn sql.NullInt64
	if err := each(`SELECT customer_id, threshold FROM refill_settings WHERE customer_id = ANY(?) AND enabled = 1 AND paused_reason = ''`,
		func(r *sql.Rows) error {
			if err := r.Scan(&id, &n); err != nil {
				return err
			}
			th := billing.Credits(n)
			loaded[id].refillAt = &th
			return nil
		}); err != nil {
		return err
	}
	if err := each(`SELECT customer_id, low_balance_threshold FROM customer_settings WHERE customer_id = ANY(?)`, func(r *sql.Rows) error {
		if err := r.Scan(&id, &nn); err != nil {
			return err
		}
		loaded[id].lowSet = creditsPtr(nn)
		return nil
	}); err != nil {
		return err
	}
	if err := each(`SELECT DISTINCT ON (customer_id) customer_id, amount FROM lots
		WHERE customer_id = ANY(?) AND source = 'purchase' ORDER BY customer_id, id DESC`, func(r *sql.Rows) error {
		if err := r.Scan(&id, &n); err != nil {
			return err
		}
		loaded[id].lastTopUp = billing.Credits(n)
		return nil
	}); err != nil {
		return err
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
