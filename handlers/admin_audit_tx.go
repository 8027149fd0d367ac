package handlers

import (
	"context"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// audited is the request's context carrying the admin's audit record for
// the one store write it is passed to (billing.WithAudit): the store
// inserts it in that write's transaction, so the change and its record
// commit together or not at all. Stores that know the state before and
// after (they read and write it there) fill Before and After themselves.
func (s *Server) audited(c echo.Context, action, customer, reason, before, after string) context.Context {
	return billing.WithAudit(c.Request().Context(), billing.AuditRecord{Actor: billing.AdminActor(currentAdmin(c).User.ID),
		Action: action, Customer: customer, Reason: reason, Before: before, After: after})
}
