package handlers

import "github.com/labstack/echo/v4"

// portalPages registers the portal's pages. Each page lives in its own file:
// portal_dashboard.go, portal_usage.go, portal_settings.go.
func (s *Server) portalPages(p *echo.Group) {
	p.GET("/usage", s.usagePage)
	p.GET("/usage.csv", s.usageCSV)
	p.GET("/ledger", s.ledgerPage)
	p.GET("/settings", s.settingsPage)
	p.POST("/settings", s.saveSettings)
}
