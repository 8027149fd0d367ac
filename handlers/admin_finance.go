package handlers

import (
	"encoding/csv"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// financeSources are the lot sources, in the order the finance view lists them.
var financeSources = []string{billing.SourcePurchase, billing.SourcePromo, billing.SourceSubscription, billing.SourceAdjustment}

// financePeriods reads ?by=day (the last 30 days) or ?by=month (the last
// 12 months) into the days to read, as of now (UTC).
func (s *Server) financePeriods(c echo.Context) (by, from, to string, err error) {
	now := s.store.Now().UTC()
	by = c.QueryParam("by")
	switch by {
	case "", "day":
		return "day", now.AddDate(0, 0, -29).Format(time.DateOnly), now.Format(time.DateOnly), nil
	case "month":
		first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -11, 0)
		return "month", first.Format(time.DateOnly), now.Format(time.DateOnly), nil
	}
	return "", "", "", billing.Errorf(billing.CodeValidation, "by must be day or month").With("param", "by")
}

func (s *Server) financeRows(c echo.Context) (string, []billing.FinanceDay, error) {
	by, from, to, err := s.financePeriods(c)
	if err != nil {
		return "", nil, err
	}
	days, err := s.store.FinanceDays(c.Request().Context(), from, to)
	if err != nil {
		return "", nil, err
	}
	if by == "month" {
		days = billing.SumFinanceMonths(days)
	}
	return by, days, nil
}

// GET /admin/finance (owners): the position now and each day or month.
func (s *Server) adminFinance(c echo.Context) error {
	by, rows, err := s.financeRows(c)
	if err != nil {
		return err
	}
	now, err := s.store.FinanceNow(c.Request().Context())
	if err != nil {
		return err
	}
	mrr, err := s.financeMRR(c, by, &rows)
	if err != nil {
		return err
	}
	d := views.AdminFinancePage{By: by, Now: now, Rows: rows, Sources: financeSources, Currencies: financeCurrencies(now, rows, mrr), MRR: mrr}
	if d.TopUpsThisMonth, err = s.topUpsThisMonth(c); err != nil {
		return err
	}
	if d.MRRHistory, err = s.mrrHistory(c.Request().Context()); err != nil { // admin_finance_mrr.go
		return err
	}
	return render(c, http.StatusOK, views.AdminFinanceView(s.adminShell(c, "Finance", "finance"), d))
}

// financeCurrencies are the currencies any figure is in, sorted.
func financeCurrencies(now billing.FinanceNow, rows []billing.FinanceDay, mrr views.FinanceMRR) []string {
	set := map[string]bool{}
	for k := range mrr.Amounts {
		set[k] = true
	}
	for _, l := range now.Liability {
		set[l.Currency] = true
	}
	for _, r := range rows {
		for k := range r.Revenue {
			set[k] = true
		}
		for k := range r.Refunded {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// GET /admin/finance.csv: the same periods, one row each, streamed.
func (s *Server) adminFinanceCSV(c echo.Context) error {
	by, rows, err := s.financeRows(c)
	if err != nil {
		return err
	}
	now, err := s.store.FinanceNow(c.Request().Context())
	if err != nil {
		return err
	}
	mrr, err := s.financeMRR(c, by, &rows)
	if err != nil {
		return err
	}
	curs := financeCurrencies(now, rows, mrr)
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	w.Header().Set(echo.HeaderContentDisposition, `attachment; filename="tally-finance-by-`+by+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	head := []string{by}
	for _, cur := range curs {
		head = append(head, "revenue_"+cur, "refunded_"+cur, "mrr_"+cur)
	}
	for _, src := range financeSources {
		head = append(head, "granted_"+src)
	}
	cw.Write(append(head, "burned", "expired", "removed", "disputes"))
	for _, r := range rows {
		line := []string{r.Day}
		for _, cur := range curs {
			m := "" // MRR is known as of now only: the current period's row
			if r.Day == mrr.Period {
				m = minorString(mrr.Amounts[cur], cur)
			}
			line = append(line, minorString(r.Revenue[cur], cur), minorString(r.Refunded[cur], cur), m)
		}
		for _, src := range financeSources {
			line = append(line, r.Granted[src].String())
		}
		cw.Write(append(line, r.Burned.String(), r.Expired.String(), r.Removed.String(), strconv.Itoa(r.Disputes)))
	}
	cw.Flush()
	return cw.Error()
}

// minorString writes minor units as a plain decimal in the currency's
// units ("1050" usd is "10.50").
func minorString(v int64, cur string) string {
	n := billing.MinorUnits(cur)
	if n == 0 {
		return strconv.FormatInt(v, 10)
	}
	neg := v < 0
	if neg {
		v = -v
	}
	s := strconv.FormatInt(v, 10)
	for len(s) <= n {
		s = "0" + s
	}
	s = s[:len(s)-n] + "." + s[len(s)-n:]
	if neg {
		s = "-" + s
	}
	return strings.TrimSpace(s)
}

// financeMRR is the monthly recurring revenue now (SubscribersPerPlan:
// live subscriptions at the price of their version), and the period it
// belongs to in rows: today, or this month. The store keeps no history of
// MRR, so earlier periods have none. The current period gets a row when it
// has no activity but there is MRR.
func (s *Server) financeMRR(c echo.Context, by string, rows *[]billing.FinanceDay) (views.FinanceMRR, error) {
	now := s.store.Now().UTC()
	m := views.FinanceMRR{Period: now.Format(time.DateOnly), Amounts: map[string]int64{}}
	if by == "month" {
		m.Period = m.Period[:7]
	}
	ps, ok := s.adminPlans()
	if !ok {
		return m, nil
	}
	per, err := ps.SubscribersPerPlan(c.Request().Context())
	if err != nil {
		return m, err
	}
	for _, g := range per {
		m.Amounts[g.MRR.Currency] += g.MRR.Amount
		m.Subscribers += g.Subscribers
	}
	if m.Subscribers > 0 && (len(*rows) == 0 || (*rows)[len(*rows)-1].Day != m.Period) {
		*rows = append(*rows, billing.FinanceDay{Day: m.Period, Revenue: map[string]int64{}, Refunded: map[string]int64{}, Granted: map[string]billing.Credits{}})
	}
	return m, nil
}

// topUpsThisMonth is the top-up revenue of the current calendar month
// (UTC) so far, per currency: what the finance view sets beside MRR.
func (s *Server) topUpsThisMonth(c echo.Context) (map[string]int64, error) {
	now := s.store.Now().UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	days, err := s.store.FinanceDays(c.Request().Context(), first.Format(time.DateOnly), now.Format(time.DateOnly))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, d := range days {
		for cur, v := range d.Revenue {
			out[cur] += v
		}
	}
	return out, nil
}
