package billing

import (
	"sort"
	"time"
)

// MRR history: the monthly recurring revenue at each month's end, computed
// from the subscription periods Tally granted (SubscriptionPeriod rows), so
// it needs no snapshot table and can be recomputed for any past month.

// MRRPeriod is one granted period of a subscription and what it brings in
// a month: the price of the plan at its version (a yearly price as a
// twelfth, rounded down), or zero for a period that charged nothing (a
// free period). An upgrade's period starts mid-period and, being the later
// start, counts instead of the period it upgraded. CanceledAt ends it
// early (a subscription the provider ended at once).
type MRRPeriod struct {
	Subscription string
	Start, End   time.Time
	Monthly      Money
	CanceledAt   *time.Time
}

// MRRPoint is the MRR at one instant, per currency, and how many
// subscriptions paid it.
type MRRPoint struct {
	At          time.Time
	Amounts     map[string]int64
	Subscribers int
}

// MonthlyPrice is what plan p brings in a month: its price, or a twelfth
// of a yearly one, rounded down.
func MonthlyPrice(p Plan) Money {
	m := p.Price
	if p.Interval == IntervalYear {
		m.Amount /= 12
	}
	return m
}

// MonthEnds are the last instants (UTC) of the n calendar months up to the
// one now is in, oldest first; the current month's is now itself (its end
// has not come).
func MonthEnds(now time.Time, n int) []time.Time {
	now = now.UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	out := make([]time.Time, 0, n)
	for i := n - 1; i >= 1; i-- {
		out = append(out, first.AddDate(0, -i+1, 0).Add(-time.Microsecond))
	}
	if n > 0 {
		out = append(out, now)
	}
	return out
}

// MRRHistory is the MRR at each instant of at: for every subscription, the
// period in force then (started at or before it, ending after it, not
// canceled by then; of several, the latest to start) counts its Monthly.
// Pure: the same periods give the same history.
func MRRHistory(periods []MRRPeriod, at []time.Time) []MRRPoint {
	bySub := map[string][]MRRPeriod{}
	var subs []string
	for _, p := range periods {
		if _, ok := bySub[p.Subscription]; !ok {
			subs = append(subs, p.Subscription)
		}
		bySub[p.Subscription] = append(bySub[p.Subscription], p)
	}
	sort.Strings(subs)
	out := make([]MRRPoint, len(at))
	for i, t := range at {
		pt := MRRPoint{At: t, Amounts: map[string]int64{}}
		for _, s := range subs {
			var cur *MRRPeriod
			for j := range bySub[s] {
				p := &bySub[s][j]
				if p.Start.After(t) || !p.End.After(t) || (p.CanceledAt != nil && !p.CanceledAt.After(t)) {
					continue
				}
				if cur == nil || p.Start.After(cur.Start) {
					cur = p
				}
			}
			if cur != nil {
				pt.Amounts[cur.Monthly.Currency] += cur.Monthly.Amount
				pt.Subscribers++
			}
		}
		out[i] = pt
	}
	return out
}
