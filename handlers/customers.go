package handlers

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// POST /api/v1/customers: create, or return the customer with that external_id.
func (s *Server) createCustomer(c echo.Context) error {
	var in billing.CustomerInput
	if err := DecodeJSON(c.Request().Body, &in); err != nil {
		return err
	}
	cus, isNew, err := s.ledger.CreateCustomer(c.Request().Context(), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if isNew {
		status = http.StatusCreated
	}
	return writeJSON(c, status, customerView(cus))
}

// PATCH /api/v1/customers/:id changes the e-mail and name.
func (s *Server) updateCustomer(c echo.Context) error {
	var u billing.CustomerUpdate
	if err := DecodeJSON(c.Request().Body, &u); err != nil {
		return err
	}
	cus, err := s.ledger.UpdateCustomer(c.Request().Context(), customerParam(c), u)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, customerView(cus))
}

type customerJSON struct {
	Object string `json:"object"`
	billing.Customer
}

func customerView(c billing.Customer) customerJSON {
	return customerJSON{Object: "customer", Customer: c}
}

func (s *Server) getCustomer(c echo.Context) error {
	cus, err := s.ledger.FindCustomer(c.Request().Context(), customerParam(c))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, customerView(cus))
}

func (s *Server) listCustomers(c echo.Context) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	cur := c.QueryParam("cursor")
	if cur != "" && !strings.HasPrefix(cur, "cus_") {
		// A cursor is a customer's id; another string answered the first page.
		return billing.Errorf(billing.CodeInvalidRequest, "cursor must be a next_cursor from an earlier page").With("param", "cursor")
	}
	cs, more, err := s.ledger.FindCustomers(c.Request().Context(), billing.CustomerFilter{Limit: limit, Cursor: cur})
	if err != nil {
		return err
	}
	views := make([]customerJSON, len(cs))
	for i, cu := range cs {
		views[i] = customerView(cu)
	}
	next := ""
	if more {
		next = cs[len(cs)-1].ID
	}
	return writeJSON(c, http.StatusOK, newList(views, next))
}

func (s *Server) getBalance(c echo.Context) error {
	b, err := s.ledger.Balance(c.Request().Context(), customerParam(c))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, b)
}

// PUT /api/v1/customers/:id/limits replaces the operator's limits (spend caps and overdraft limit); a field left
// out or null removes that cap.
func (s *Server) putLimits(c echo.Context) error {
	var lim billing.Limits
	if err := DecodeJSON(c.Request().Body, &lim); err != nil {
		return err
	}
	cus, err := s.ledger.SetLimits(c.Request().Context(), customerParam(c), lim)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, customerView(cus))
}

func (s *Server) entryFilter(c echo.Context, typ string) (billing.EntryFilter, error) {
	id, err := s.ledger.ResolveCustomer(c.Request().Context(), customerParam(c))
	if err != nil {
		return billing.EntryFilter{}, err
	}
	f := billing.EntryFilter{Customer: id, Type: typ, Feature: c.QueryParam("feature"), Cursor: c.QueryParam("cursor")}
	if f.Limit, err = queryLimit(c); err != nil {
		return f, err
	}
	if f.From, err = queryTime(c, "from"); err != nil {
		return f, err
	}
	if f.To, err = queryTime(c, "to"); err != nil {
		return f, err
	}
	if typ == "" {
		if t := c.QueryParam("type"); t != "" {
			if !slices.Contains(billing.EntryTypes, t) {
				return f, billing.Errorf(billing.CodeInvalidRequest, "type %q is not an entry type: use one of %s.", t, strings.Join(billing.EntryTypes, ", ")).With("param", "type")
			}
			f.Type = t
		}
	}
	return f, nil
}

// GET /api/v1/customers/:id/usage: debits, newest first.
func (s *Server) listUsage(c echo.Context) error {
	f, err := s.entryFilter(c, billing.EntryDebit)
	if err != nil {
		return err
	}
	es, next, err := s.ledger.FindEntries(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, newList(es, next))
}

// GET /api/v1/customers/:id/ledger: every entry, newest first.
func (s *Server) listLedger(c echo.Context) error {
	f, err := s.entryFilter(c, "")
	if err != nil {
		return err
	}
	es, next, err := s.ledger.FindEntries(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, newList(es, next))
}

// POST /api/v1/grants adds credits as a new lot.
func (s *Server) createGrant(c echo.Context) error {
	var req billing.GrantRequest
	if err := DecodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if err := idempotencyKey(c, &req.IdempotencyKey); err != nil {
		return err
	}
	req.Actor = billing.KeyActor(apiKey(c))
	g, err := s.ledger.Grant(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return created(c, g.Replayed, g)
}

// customerParam is the customer named in the path: Tally's id or the
// product's external_id, which may hold characters such as '/' or '%' that
// arrive percent-encoded. It is decoded exactly once: Echo routes on the
// decoded path, and so hands over a decoded parameter, unless the path's
// escaping is not the default one (an escaped '/'), when it routes on the
// raw path and the parameter is still escaped.
func customerParam(c echo.Context) string {
	p := c.Param("id")
	if c.Request().URL.RawPath == "" {
		return p
	}
	if u, err := url.PathUnescape(p); err == nil {
		return u
	}
	return p
}

// POST /api/v1/adjustments corrects a balance by hand (admin).
func (s *Server) createAdjustment(c echo.Context) error {
	var req billing.AdjustmentRequest
	if err := DecodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if err := idempotencyKey(c, &req.IdempotencyKey); err != nil {
		return err
	}
	req.Actor = billing.KeyActor(apiKey(c))
	e, replayed, err := s.ledger.Adjust(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return created(c, replayed, e)
}
