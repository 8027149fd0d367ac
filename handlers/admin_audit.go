package handlers

import (
	"cmp"
	"encoding/csv"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// auditActions are the actions the audit log's filter offers: every one
// it records (billing.AuditActions).
var auditActions = billing.AuditActions

func (s *Server) auditFilter(c echo.Context) (billing.AuditFilter, error) {
	f := billing.AuditFilter{Actor: strings.TrimSpace(c.QueryParam("actor")), Customer: strings.TrimSpace(c.QueryParam("customer")),
		Action: c.QueryParam("action"), Cursor: c.QueryParam("cursor"), Limit: 50}
	if f.Action != "" && !contains(auditActions, f.Action) {
		return f, billing.Errorf(billing.CodeValidation, "There is no action %q to filter by.", f.Action).With("param", "action")
	}
	if len(f.Actor) > 200 || len(f.Customer) > 200 {
		return f, billing.Errorf(billing.CodeValidation, "A filter is at most 200 characters.")
	}
	if strings.Contains(f.Actor, "@") && !strings.Contains(f.Actor, ":") {
		// A staff member by the e-mail the log shows for them (an unknown
		// one matches nothing).
		admins, err := s.store.FindAdmins(c.Request().Context())
		if err != nil {
			return f, err
		}
		for _, a := range admins {
			if strings.EqualFold(a.Email, f.Actor) {
				f.Actor = billing.AdminActor(a.ID).String()
			}
		}
	}
	if f.Customer != "" {
		// An external id works too.
		if id, err := s.ledger.ResolveCustomer(c.Request().Context(), f.Customer); err == nil {
			f.Customer = id
		}
	}
	return f, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// GET /admin/audit: the audit log, newest first, filtered.
func (s *Server) adminAudit(c echo.Context) error {
	f, err := s.auditFilter(c)
	if err != nil {
		return err
	}
	shown := f
	shown.Actor = strings.TrimSpace(c.QueryParam("actor")) // an e-mail stays as typed
	recs, next, err := s.store.FindAudit(c.Request().Context(), f)
	if err != nil {
		return err
	}
	admins, err := s.store.FindAdmins(c.Request().Context())
	if err != nil {
		return err
	}
	names := make(map[string]string, len(admins))
	for _, a := range admins {
		names[a.ID] = a.Email
	}
	page := views.AdminAuditPage{Filter: shown, Records: recs, Next: next, Actions: auditActions, Admins: names,
		Keys: map[string]string{}, Customers: map[string]string{}, Currency: s.policyCurrency(c.Request().Context())}
	keys, err := s.store.(adminKeyStore).FindAPIKeys(c.Request().Context())
	if err != nil {
		return err
	}
	for _, k := range keys {
		page.Keys[k.ID] = k.Name
	}
	// Name the page's customers (at most one page's worth of lookups).
	for _, r := range recs {
		for _, id := range []string{r.Customer, customerActor(r.Actor)} {
			if _, seen := page.Customers[id]; id == "" || seen {
				continue
			}
			page.Customers[id] = ""
			if cu, err := s.ledger.FindCustomer(c.Request().Context(), id); err == nil {
				page.Customers[id] = cmp.Or(cu.Name, cu.ExternalID)
			}
		}
	}
	return render(c, http.StatusOK, views.AdminAuditView(s.adminShell(c, "Audit log", "audit"), page))
}

// customerActor is the customer id of an actor in the portal, or "".
func customerActor(a billing.Actor) string {
	if a.Kind == billing.ActorCustomer {
		return a.ID
	}
	return ""
}

// GET /admin/audit.csv streams the filtered audit log, every page, as CSV:
// each page is written and flushed before the next is read, so a long log
// never sits in memory.
func (s *Server) adminAuditCSV(c echo.Context) error {
	f, err := s.auditFilter(c)
	if err != nil {
		return err
	}
	f.Limit, f.Cursor = 100, ""
	ctx := c.Request().Context()
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	w.Header().Set(echo.HeaderContentDisposition, `attachment; filename="tally-audit-`+time.Now().UTC().Format("20060102")+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "at", "actor_kind", "actor_id", "action", "customer", "before", "after", "reason"})
	for {
		recs, next, err := s.store.FindAudit(ctx, f)
		if err != nil {
			// The header is sent: end the file short rather than lie.
			s.log.Error("audit export", "err", err)
			return nil
		}
		for _, r := range recs {
			cw.Write([]string{r.ID, r.At.UTC().Format(time.RFC3339Nano), r.Actor.Kind, r.Actor.ID, r.Action, r.Customer,
				csvSafe(r.Before), csvSafe(r.After), csvSafe(r.Reason)})
		}
		cw.Flush()
		w.Flush()
		if next == "" || ctx.Err() != nil {
			return cw.Error()
		}
		f.Cursor = next
	}
}

// csvSafe keeps a spreadsheet from reading a typed value as a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		if _, err := billing.ParseCredits(v); err == nil {
			return v // a negative number of credits is a number
		}
		return "'" + v
	}
	return v
}
