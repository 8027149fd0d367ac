package db

import (
	"context"
	"database/sql"
	"sort"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The finance view's reads. Days are UTC. They scan the period's entries
// and top-ups (entries have no index on time: a report an owner opens, not
// a request path); usage comes from the daily rollups.

// dayOf is the UTC day ('YYYY-MM-DD') of a column of unix microseconds.
func (d *DB) dayOf(col string) string {
	return d.sql(`strftime('%Y-%m-%d', `+col+` / 1000000, 'unixepoch')`,
		`to_char(to_timestamp(`+col+` / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')`)
}

// FinanceDays returns each UTC day in [from, to] ('YYYY-MM-DD') with any
// activity, oldest first.
func (d *DB) FinanceDays(ctx context.Context, from, to string) ([]billing.FinanceDay, error) {
	start, err := time.Parse(time.DateOnly, from)
	if err != nil {
		return nil, billing.Errorf(billing.CodeValidation, "from must be a date like 2026-03-01").With("param", "from")
	}
	end, err := time.Parse(time.DateOnly, to)
	if err != nil {
		return nil, billing.Errorf(billing.CodeValidation, "to must be a date like 2026-03-31").With("param", "to")
	}
	lo, hi := micros(start), micros(end.AddDate(0, 0, 1))
	days := map[string]*billing.FinanceDay{}
	day := func(k string) *billing.FinanceDay {
		if days[k] == nil {
			days[k] = &billing.FinanceDay{Day: k, Revenue: map[string]int64{}, Refunded: map[string]int64{}, Granted: map[string]billing.Credits{}}
		}
		return days[k]
	}
	each := func(q string, args []any, fn func(*sql.Rows) error) error {
		rows, err := d.read.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := fn(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	// Ledger credits: grants and positive adjustments by source; expiries;
	// refunds and deductions.
	err = each(`SELECT `+d.dayOf("created_at")+`, type, COALESCE(source, type), amount > 0, SUM(amount) FROM entries
		WHERE created_at >= ? AND created_at < ? AND type IN ('grant', 'adjustment', 'expiry', 'refund')
		GROUP BY 1, 2, 3, 4`, []any{lo, hi}, func(r *sql.Rows) error {
		var k, typ, source string
		var positive bool
		var sum int64
		if err := r.Scan(&k, &typ, &source, &positive, &sum); err != nil {
			return err
		}
		fd := day(k)
		switch {
		case positive && (typ == billing.EntryGrant || typ == billing.EntryAdjustment):
			fd.Granted[source] += billing.Credits(sum)
		case typ == billing.EntryExpiry:
			fd.Expired += billing.Credits(-sum)
		case !positive:
			fd.Removed += billing.Credits(-sum)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(`SELECT day, SUM(credits) FROM usage_daily WHERE day >= ? AND day <= ? GROUP BY day`, []any{from, to}, func(r *sql.Rows) error {
		var k string
		var sum int64
		if err := r.Scan(&k, &sum); err != nil {
			return err
		}
		day(k).Burned += billing.Credits(sum)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Revenue on the day the payment's credits were granted; refunds on the
	// day of the refund entry.
	err = each(`SELECT `+d.dayOf("e.created_at")+`, t.currency, SUM(t.amount) FROM top_ups t JOIN entries e ON e.id = t.grant_entry_id
		WHERE e.created_at >= ? AND e.created_at < ? GROUP BY 1, 2`, []any{lo, hi}, func(r *sql.Rows) error {
		var k, cur string
		var sum int64
		if err := r.Scan(&k, &cur, &sum); err != nil {
			return err
		}
		day(k).Revenue[cur] += sum
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(`SELECT `+d.dayOf("e.created_at")+`, t.currency, SUM(t.refunded_amount) FROM top_ups t JOIN entries e ON e.id = t.refund_entry_id
		WHERE e.created_at >= ? AND e.created_at < ? GROUP BY 1, 2`, []any{lo, hi}, func(r *sql.Rows) error {
		var k, cur string
		var sum int64
		if err := r.Scan(&k, &cur, &sum); err != nil {
			return err
		}
		day(k).Refunded[cur] += sum
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(`SELECT `+d.dayOf("created_at")+`, count(*) FROM customer_flags WHERE created_at >= ? AND created_at < ? GROUP BY 1`, []any{lo, hi}, func(r *sql.Rows) error {
		var k string
		var n int
		if err := r.Scan(&k, &n); err != nil {
			return err
		}
		day(k).Disputes += n
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]billing.FinanceDay, 0, len(days))
	for _, v := range days {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Day < out[j].Day })
	return out, nil
}

// FinanceNow is the position now: live credits by source, and the
// purchased ones valued at their purchase price (billing.RefundFor, what
// refunding them would return), inside or past their refund window.
func (d *DB) FinanceNow(ctx context.Context) (billing.FinanceNow, error) {
	now := d.now()
	out := billing.FinanceNow{AsOf: now, Outstanding: map[string]billing.Credits{}}
	rows, err := d.read.QueryContext(ctx, `SELECT l.source, l.remaining, l.refundable_until, t.credits, t.amount, t.currency, t.refunded_amount
		FROM lots l LEFT JOIN top_ups t ON t.lot_id = l.id
		WHERE l.remaining > 0 AND l.frozen = 0 AND (l.expires_at IS NULL OR l.expires_at > ?)`, micros(now))
	if err != nil {
		return out, err
	}
	defer rows.Close()
	byCur := map[string]*billing.Liability{}
	for rows.Next() {
		var source string
		var remaining int64
		var until, credits, amount, refunded sql.NullInt64
		var cur sql.NullString
		if err := rows.Scan(&source, &remaining, &until, &credits, &amount, &cur, &refunded); err != nil {
			return out, err
		}
		out.Outstanding[source] += billing.Credits(remaining)
		if source != billing.SourcePurchase {
			continue
		}
		if !credits.Valid {
			out.Unpriced += billing.Credits(remaining)
			continue
		}
		tu := billing.TopUp{Credits: billing.Credits(credits.Int64), Price: billing.Money{Amount: amount.Int64, Currency: cur.String}, RefundedAmount: refunded.Int64}
		v := billing.RefundFor(tu, billing.Credits(remaining))
		l := byCur[cur.String]
		if l == nil {
			l = &billing.Liability{Currency: cur.String}
			byCur[cur.String] = l
		}
		if until.Valid && fromMicros(until.Int64).After(now) {
			l.Refundable += v
		} else {
			l.PastWindow += v
		}
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	for _, l := range byCur {
		out.Liability = append(out.Liability, *l)
	}
	sort.Slice(out.Liability, func(i, j int) bool { return out.Liability[i].Currency < out.Liability[j].Currency })
	return out, nil
}
