package handlers

import (
	"context"
	"net/http"
	"sort"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

const (
	ledgerPageSize = 50
	ledgerLotLimit = 100 // past lots listed; live ones are always all shown
)

// ledgerTypeFilters are the entry types the history can be narrowed to.
var ledgerTypeFilters = map[string]bool{"": true, billing.EntryGrant: true, billing.EntryDebit: true, billing.EntryExpiry: true,
	billing.EntryRefund: true, billing.EntryAdjustment: true, billing.EntryHold: true, billing.EntryHoldRelease: true}

// GET /portal/ledger: credits & history. Reminders of credits expiring
// within 30 days, the lots (live ones in burn order, then the rest) and the
// ledger's entries, filtered by type, paginated. htmx gets the history alone,
// or for "Load more" the next rows alone.
func (s *Server) ledgerPage(c echo.Context) error {
	c.Response().Header().Add(echo.HeaderVary, "HX-Request")
	cid := currentCustomer(c).CustomerID
	typ := c.QueryParam("type")
	if !ledgerTypeFilters[typ] {
		return billing.Errorf(billing.CodeInvalidRequest, "There is no entry type %q to filter by.", typ).With("param", "type")
	}
	d, err := s.ledgerData(c.Request().Context(), cid, typ, c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	b := d.Balance
	fm := s.publicShell(c, "").Fmt
	if partial, target := htmxPart(c); partial {
		if target == "ledger-more" {
			return render(c, http.StatusOK, views.LedgerRows(fm, d))
		}
		return render(c, http.StatusOK, views.LedgerHistory(fm, d))
	}
	d.Reminders = append([]billing.LotView(nil), b.ExpiringSoon...)
	sort.SliceStable(d.Reminders, func(i, j int) bool { return d.Reminders[i].ExpiresAt.Before(*d.Reminders[j].ExpiresAt) })
	sh, err := s.shell(c, "Credits & history", "ledger")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.LedgerPage(sh, d))
}

// ledgerData is a customer's lots and one page of their ledger entries, as
// the portal's credits & history page and the admin console show them.
func (s *Server) ledgerData(ctx context.Context, cid, typ, cursor string) (views.LedgerData, error) {
	// Balance first: it writes any expiry that is due, so the lots and the
	// entries below agree with it.
	b, err := s.ledger.Balance(ctx, cid)
	if err != nil {
		return views.LedgerData{}, err
	}
	d := views.LedgerData{Type: typ, Cursor: cursor, Balance: b, Now: b.AsOf, Lots: b.Lots}
	es, next, err := s.ledger.FindEntries(ctx, billing.EntryFilter{Customer: cid, Type: typ, Limit: ledgerPageSize, Cursor: d.Cursor})
	if err != nil {
		return views.LedgerData{}, err
	}
	d.Next = next
	lots, err := s.portal.FindLots(ctx, cid, ledgerLotLimit)
	if err != nil {
		return views.LedgerData{}, err
	}
	byID := make(map[string]*billing.LotView, len(lots)+len(b.Lots))
	for i := range lots {
		byID[lots[i].ID] = &lots[i]
		if !lots[i].Live(b.AsOf) {
			d.PastLots = append(d.PastLots, lots[i])
		}
	}
	for i := range b.Lots {
		byID[b.Lots[i].ID] = &b.Lots[i]
	}
	cat := newFeatureCatalog(ctx, s.prices)
	d.Rows = make([]views.LedgerRow, len(es))
	for i, e := range es {
		r := views.LedgerRow{Entry: e, Lot: byID[e.Lot]}
		if e.Type == billing.EntryDebit {
			ft, err := cat.feature(e.PriceVersion, e.Feature)
			if err != nil {
				return views.LedgerData{}, err
			}
			r.FeatureName, r.Unit = ft.Name, ft.Unit
		}
		d.Rows[i] = r
	}
	return d, nil
}
