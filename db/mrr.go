package db

import (
	"context"
	"database/sql"
	"time"

	"github.com/tally-billing/tally/billing"
)

// MRRPeriods returns the subscription periods that end after since, as the
// MRR history counts them (billing.MRRHistory): each at the monthly price
// of its plan at its version, zero when its invoice charged nothing (a
// free period), ended early when its subscription was canceled. For the
// finance view.
func (d *DB) MRRPeriods(ctx context.Context, since time.Time) ([]billing.MRRPeriod, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT p.subscription_id, p.kind, p.period_start, p.period_end, p.plan_key, p.price_version, p.amount,
		s.canceled_at FROM subscription_periods p JOIN subscriptions s ON s.id = p.subscription_id
		WHERE p.period_end > ? ORDER BY p.id`, micros(since))
	if err != nil {
		return nil, err
	}
	type row struct {
		p       billing.MRRPeriod
		kind    string
		key     string
		version int64
		amount  int64
	}
	var rs []row
	for rows.Next() {
		var r row
		var start, end int64
		var canceled sql.NullInt64
		if err := rows.Scan(&r.p.Subscription, &r.kind, &start, &end, &r.key, &r.version, &r.amount, &canceled); err != nil {
			rows.Close()
			return nil, err
		}
		r.p.Start, r.p.End, r.p.CanceledAt = fromMicros(start), fromMicros(end), timePtr(canceled)
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	books := map[int64]*billing.PriceBook{}
	out := make([]billing.MRRPeriod, 0, len(rs))
	for _, r := range rs {
		pb, ok := books[r.version]
		if !ok {
			if pb, err = d.PriceBookVersion(ctx, r.version); err != nil {
				return nil, err
			}
			books[r.version] = pb
		}
		p, _ := pb.Plan(r.key)
		r.p.Monthly = billing.MonthlyPrice(p)
		if r.kind == billing.PeriodRenewal && r.amount == 0 {
			r.p.Monthly.Amount = 0 // a free period
		}
		out = append(out, r.p)
	}
	return out, nil
}
