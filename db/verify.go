package db

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tally-billing/tally/billing"
)

// Verify checks the ledger's invariants over the whole database and returns
// one line per violation (none when the books balance):
//
//   - every wallet's balance equals the sum of its entries' amounts, and the
//     sum of its unfrozen lots' remaining credits minus its debt;
//   - held equals the sum of its entries' held_delta and of its active holds;
//   - no lot holds less than zero or more than it was granted;
//   - every lot has given away exactly what its burns record (entry_lots,
//     and debits naming it as their one lot), plus any debt it repaid when
//     granted;
//   - daily usage rollups add up to the debits;
//   - no balance is below its overdraft limit unless a hold capture took it
//     there (debt is then recorded);
//   - the outbox: every event names a customer that exists and has a type;
//     no consumer's cursor is past the newest event; no balance is past
//     billing.MaxBalance.
//
// Crash tests and `tally verify` run it; it reads in one snapshot.
func (d *DB) Verify(ctx context.Context) ([]string, error) {
	var opts *sql.TxOptions
	if d.dialect == Postgres {
		// One snapshot for every check (SQLite's read transaction is one).
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := d.read.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var problems []string
	checks := []struct {
		what  string
		query string
	}{
		{"balance != sum of entries", `SELECT * FROM (SELECT w.customer_id, w.balance, COALESCE((SELECT SUM(amount) FROM entries e WHERE e.customer_id = w.customer_id), 0) AS s
			FROM wallets w) x WHERE balance != s`},
		{"balance != sum of lots - debt", `SELECT * FROM (SELECT w.customer_id, w.balance, COALESCE((SELECT SUM(remaining) FROM lots l WHERE l.customer_id = w.customer_id AND l.frozen = 0), 0) - w.debt AS s
			FROM wallets w) x WHERE balance != s`},
		{"held != sum of held_delta", `SELECT * FROM (SELECT w.customer_id, w.held, COALESCE((SELECT SUM(held_delta) FROM entries e WHERE e.customer_id = w.customer_id), 0) AS s
			FROM wallets w) x WHERE held != s`},
		{"held != sum of active holds", `SELECT * FROM (SELECT w.customer_id, w.held, COALESCE((SELECT SUM(amount) FROM holds h WHERE h.customer_id = w.customer_id AND h.status = 'active'), 0) AS s
			FROM wallets w) x WHERE held != s`},
		{"lot remaining out of range", `SELECT customer_id, id, remaining FROM lots WHERE remaining < 0 OR remaining > amount`},
		{"lot burns do not add up", `SELECT * FROM (SELECT l.customer_id, l.id, l.amount - l.remaining - COALESCE(b.burned, 0) AS gap
			FROM lots l LEFT JOIN (SELECT lot_id, SUM(amount) AS burned FROM (
				SELECT lot_id, amount FROM entry_lots
				UNION ALL SELECT lot_id, -amount FROM entries WHERE type = 'debit' AND lot_id IS NOT NULL) u GROUP BY lot_id) b ON b.lot_id = l.id) x
			WHERE gap < 0`},
		{"usage rollups != debits", `SELECT * FROM (SELECT w.customer_id, COALESCE((SELECT SUM(credits) FROM usage_daily u WHERE u.customer_id = w.customer_id), 0) AS r,
			COALESCE((SELECT -SUM(amount) FROM entries e WHERE e.customer_id = w.customer_id AND e.type = 'debit'), 0) AS s FROM wallets w) x WHERE r != s`},
		{"balance below overdraft without debt record", `SELECT customer_id, balance, overdraft_limit FROM wallets WHERE balance < -overdraft_limit AND debt = 0`},
		{"debt without a negative balance", `SELECT customer_id, balance, debt FROM wallets WHERE debt > 0 AND balance >= 0`},
		{"hold closed without an entry", `SELECT customer_id, id, status FROM holds WHERE status != 'active' AND close_entry_id IS NULL`},
		{"event of an unknown customer", `SELECT e.seq, e.customer_id FROM events e WHERE e.customer_id IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = e.customer_id)`},
		{"event without a type", `SELECT seq FROM events WHERE type = ''`},
		{"notice dismissal of no event of its customer", `SELECT n.customer_id, n.seq FROM notice_dismissals n
			WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = n.seq AND e.customer_id = n.customer_id)`},
		{"event cursor past the newest event", `SELECT consumer, seq FROM event_cursors WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM events)`},
		{"balance past the most a wallet may hold", fmt.Sprintf(`SELECT customer_id, balance FROM wallets WHERE balance > %d`, int64(billing.MaxBalance))},
	}
	for _, c := range checks {
		rows, err := tx.QueryContext(ctx, c.query)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", c.what, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, err
			}
			problems = append(problems, fmt.Sprintf("%s: %v", c.what, vals))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return problems, nil
}
