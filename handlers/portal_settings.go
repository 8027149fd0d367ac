package handlers

import (
	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// GET /portal/settings: spend controls (to be built).
func (s *Server) settingsPage(c echo.Context) error {
	return billing.Errorf(billing.CodeNotFound, "Not built yet.")
}

// POST /portal/settings saves spend controls (to be built).
func (s *Server) saveSettings(c echo.Context) error {
	return billing.Errorf(billing.CodeNotFound, "Not built yet.")
}
