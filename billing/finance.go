package billing

import (
	"context"
	"time"
)

// FinanceDay is one UTC day (or month, when summed) of the numbers an owner
// asks for. Money is per currency, in minor units.
type FinanceDay struct {
	Day      string           // YYYY-MM-DD, or YYYY-MM for a month
	Revenue  map[string]int64 // top-ups paid, by currency
	Refunded map[string]int64 // refunds made, by currency
	Granted  map[string]Credits
	Burned   Credits // usage (debits)
	Expired  Credits // breakage: what lots held when they expired
	Removed  Credits // credits taken back by refunds and deductions
	Disputes int     // payments disputed (customers flagged)
}

// Liability is what the outstanding purchased credits are worth at their
// purchase price (what a refund of them would return), per currency.
type Liability struct {
	Currency   string
	Refundable int64 // inside their refund window
	PastWindow int64 // past it: still owed as service, no longer as money
}

// FinanceNow is the position as of now.
type FinanceNow struct {
	AsOf        time.Time
	Outstanding map[string]Credits // live credits by lot source
	Liability   []Liability
	// Unpriced are purchased credits the product recorded through the API
	// (grants with source purchase), whose price Tally does not know.
	Unpriced Credits
}

// Finance is the store of the finance view.
type Finance interface {
	// FinanceDays is each UTC day in [from, to] that has any activity.
	FinanceDays(ctx context.Context, from, to string) ([]FinanceDay, error)
	FinanceNow(ctx context.Context) (FinanceNow, error)
}

// SumFinanceMonths adds days up into calendar months, in order.
func SumFinanceMonths(days []FinanceDay) []FinanceDay {
	var out []FinanceDay
	for _, d := range days {
		m := d.Day[:7]
		if len(out) == 0 || out[len(out)-1].Day != m {
			out = append(out, FinanceDay{Day: m, Revenue: map[string]int64{}, Refunded: map[string]int64{}, Granted: map[string]Credits{}})
		}
		o := &out[len(out)-1]
		for k, v := range d.Revenue {
			o.Revenue[k] += v
		}
		for k, v := range d.Refunded {
			o.Refunded[k] += v
		}
		for k, v := range d.Granted {
			o.Granted[k] += v
		}
		o.Burned += d.Burned
		o.Expired += d.Expired
		o.Removed += d.Removed
		o.Disputes += d.Disputes
	}
	return out
}
