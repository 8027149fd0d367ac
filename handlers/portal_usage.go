package handlers

import (
	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// GET /portal/usage: usage history (to be built).
func (s *Server) usagePage(c echo.Context) error {
	return billing.Errorf(billing.CodeNotFound, "Not built yet.")
}

// GET /portal/usage.csv: the filtered history as CSV (to be built).
func (s *Server) usageCSV(c echo.Context) error {
	return billing.Errorf(billing.CodeNotFound, "Not built yet.")
}

// GET /portal/ledger: credits and history (to be built).
func (s *Server) ledgerPage(c echo.Context) error {
	return billing.Errorf(billing.CodeNotFound, "Not built yet.")
}
