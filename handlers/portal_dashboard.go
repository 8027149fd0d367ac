package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// dashboardHistory is how many days of rollups the overview reads: the
// longest chart period, which also covers the 30-day rate.
const dashboardHistory = 90

// GET /portal: the overview. It reads the balance (with its lots) and at
// most dashboardHistory days of usage rollups per feature, never the
// ledger's entries, so it costs the same for ten usage events or ten
// million. With HX-Target: usage-chart (the chart's 30/90 days toggle) it
// answers the chart alone.
func (s *Server) dashboard(c echo.Context) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	period := views.DashboardPeriod(c.QueryParam("days"))
	now := s.store.Now()
	c.Response().Header().Add("Vary", "HX-Request, HX-Target")
	if c.Request().Header.Get("HX-Request") == "true" && c.Request().Header.Get("HX-Target") == "usage-chart" {
		usage, names, err := s.dashboardUsage(ctx, cid, now)
		if err != nil {
			return err
		}
		sh := s.publicShell(c, "")
		return render(c, http.StatusOK, views.DashboardUsageChart(sh, views.NewDashboardChart(usage, names, period, now)))
	}
	// HX-Target: overview-live is the part of the page drawn from the
	// balance (the banner, the balance and its forecast, the top-up
	// suggestion), which the page fetches again whenever the balance
	// changes, so no figure lags behind the header's.
	live := c.Request().Header.Get("HX-Request") == "true" && c.Request().Header.Get("HX-Target") == "overview-live"
	shell := s.shell
	if live {
		shell = s.liveShell
	}
	sh, err := shell(c, "Overview", "overview")
	if err != nil {
		return err
	}
	b, err := s.ledger.Balance(ctx, cid)
	if err != nil {
		return err
	}
	usage, names, err := s.dashboardUsage(ctx, cid, now)
	if err != nil {
		return err
	}
	fc, pending, err := s.forecast(ctx, cid, sh.Fmt, b, usage, now)
	if err != nil {
		return err
	}
	page := views.NewDashboardPage(now, b, fc, views.NewDashboardChart(usage, names, period, now))
	page.RenewalPending = pending
	if s.cfg.Payments.Service != nil {
		tp, err := s.topUpPanel(c, false)
		if err != nil {
			return err
		}
		page.TopUp = &tp
		if fc.TopUp > 0 {
			last, err := s.lastPack(ctx, cid)
			if err != nil {
				return err
			}
			if pk, ok := billing.SuggestTopUpPack(tp.Packs, 0, fc.TopUp, last); ok {
				page.Suggested = &pk
			}
		}
		if page.Refill, page.Cards, err = s.refillStatus(c); err != nil {
			return err
		}
		for _, n := range sh.Notices {
			switch n.Event.Type {
			case billing.EventAutoRefillFailed:
				page.Refill.Failing = true
			case billing.EventAutoRefillActionRequired:
				page.Refill.Waiting = true
			}
		}
	}
	if live {
		return render(c, http.StatusOK, views.DashboardLiveInner(sh, page))
	}
	return render(c, http.StatusOK, views.Dashboard(sh, page))
}

// dashboardUsage reads the last dashboardHistory UTC days of usage
// rollups and the price book's names of the features.
// forecast is the overview's forecast of a customer's balance, with their
// plan's renewals (pending: a renewal is due and not in yet); the top-up
// page suggests a pack from the same forecast.
func (s *Server) forecast(ctx context.Context, cid string, f views.Fmt, b billing.Balance, usage []billing.UsageDay, now time.Time) (billing.Forecast, bool, error) {
	lots := make([]billing.Lot, len(b.Lots))
	for i, l := range b.Lots {
		lots[i] = l.Lot
	}
	renewals, pending, err := s.planRenewals(ctx, cid, now) // portal_plan.go
	if err != nil {
		return billing.Forecast{}, false, err
	}
	return billing.NewPlanForecast(now, usage, lots, b.Available, views.DashboardTopUpUntil(f, now), renewals), pending, nil
}

func (s *Server) dashboardUsage(ctx context.Context, customerID string, now time.Time) ([]billing.UsageDay, map[string]string, error) {
	today := now.UTC()
	usage, err := s.ledger.FindUsageDays(ctx, customerID,
		today.AddDate(0, 0, -(dashboardHistory-1)).Format(time.DateOnly), today.Format(time.DateOnly))
	if err != nil {
		return nil, nil, err
	}
	names := map[string]string{}
	pb, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return nil, nil, err
	}
	if pb != nil {
		for _, f := range pb.Features {
			names[f.Key] = f.Name
		}
	}
	return usage, names, nil
}

// refillStatus is auto-refill as the overview sums it up, and how many
// cards are saved.
func (s *Server) refillStatus(c echo.Context) (*views.RefillStatus, int, error) {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	set, found, err := s.cfg.Payments.Store.FindRefillSettings(ctx, cid)
	if err != nil {
		return nil, 0, err
	}
	cards, err := s.cfg.Payments.Store.FindCards(ctx, cid, s.cfg.Payments.Provider.Name())
	if err != nil {
		return nil, 0, err
	}
	r := &views.RefillStatus{Settings: set, Set: found, Failing: set.Failures > 0}
	if pb, err := s.prices.CurrentPriceBook(ctx); err != nil {
		return nil, 0, err
	} else if pk, ok := pb.Pack(set.PackID); ok {
		r.Pack = pk.Name
	}
	return r, len(cards), nil
}
