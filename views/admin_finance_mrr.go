package views

import (
	"sort"
	"time"

	"github.com/tally-billing/tally/billing"
)

// mrrCurrencies are the currencies of the MRR history, sorted; with none,
// the finance view's first currency (or usd), to show the zeros in.
func mrrCurrencies(d AdminFinancePage) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range d.MRRHistory {
		for cur := range p.Amounts {
			if !seen[cur] {
				seen[cur] = true
				out = append(out, cur)
			}
		}
	}
	sort.Strings(out)
	if len(out) == 0 && len(d.Currencies) > 0 {
		out = []string{d.Currencies[0]}
	} else if len(out) == 0 {
		out = []string{"usd"}
	}
	return out
}

// mrrPercent is p's MRR in cur as a whole percentage of the history's
// largest, for its bar.
func mrrPercent(h []billing.MRRPoint, cur string, p billing.MRRPoint) int {
	top := int64(0)
	for _, q := range h {
		top = max(top, q.Amounts[cur])
	}
	if top <= 0 || p.Amounts[cur] <= 0 {
		return 0
	}
	return int(p.Amounts[cur] * 100 / top)
}

// financePeriodLabel writes a finance row's period, an ISO day or month
// ("2026-12-03", "2026-12"), as the rest of the page writes dates: "3 Dec
// 2026", "Dec 2026". The CSV keeps the ISO form.
func financePeriodLabel(period string) string {
	if t, err := time.Parse(time.DateOnly, period); err == nil {
		return t.Format("2 Jan 2006")
	}
	if t, err := time.Parse("2006-01", period); err == nil {
		return t.Format("Jan 2006")
	}
	return period
}
