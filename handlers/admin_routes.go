package handlers

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// registerAdmin mounts the admin console at /admin. Every route says the
// least role that may call it; support never writes (requireAdmin refuses
// any support request but a read). TestAdminAuthorizationMatrix walks them
// all for every role, a customer session and a visitor.
func (s *Server) registerAdmin() {
	s.adminDefaults()
	e := s.e
	csrf := s.csrfFor(s.adminCookieID)
	support := s.requireAdmin(billing.RoleSupport)
	admin := s.requireAdmin(billing.RoleAdmin)
	owner := s.requireAdmin(billing.RoleOwner)

	e.GET("/admin/sign-in", s.adminSignInPage, csrf)
	e.POST("/admin/sign-in", s.adminSignIn, csrf)

	g := e.Group("/admin", csrf)
	g.GET("", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/admin/customers") }, support)
	g.POST("/sign-out", s.adminSignOut, support) // the one write support may make

	g.GET("/customers", s.adminCustomers, support)
	g.GET("/customers/:id", s.adminCustomer, support)
	g.POST("/customers/:id/grant", s.adminGrant, admin)
	g.POST("/customers/:id/deduct", s.adminDeduct, admin)
	g.POST("/customers/:id/limits", s.adminLimits, admin)
	g.POST("/customers/:id/flags/:flag/clear", s.adminClearFlag, admin)
	g.POST("/customers/:id/portal-link", s.adminPortalLink, admin)
	g.POST("/customers/:id/view-portal", s.adminViewPortal, support) // a read-only session: support may
	g.POST("/customers/:id/topups/:topup/refund", s.adminRefund, admin)
	g.POST("/customers/:id/freeze", s.adminFreeze, admin)
	g.POST("/customers/:id/unfreeze", s.adminFreeze, admin)
	g.POST("/customers/:id/holds/:hold/release", s.adminReleaseHold, admin)

	s.registerAdminPlans(g, support, admin)

	g.GET("/audit", s.adminAudit, support)
	g.GET("/audit.csv", s.adminAuditCSV, support)

	g.GET("/finance", s.adminFinance, owner)
	g.GET("/finance.csv", s.adminFinanceCSV, owner)

	s.registerAdminConsole(g, support, admin) // webhooks and API keys
	s.registerAdminPriceBook(g, support, admin)
	s.registerAdminPolicies(g, support, admin)

	g.GET("/admins", s.adminAdminsPage, owner)
	g.POST("/admins/:id/sign-out", s.adminSignOutEverywhere, owner)
	g.POST("/admins/:id/role", s.adminStaffChange, owner)
	g.POST("/admins/:id/disable", s.adminStaffChange, owner)
	g.POST("/admins/:id/enable", s.adminStaffChange, owner)
}

func itoa(n int) string { return strconv.Itoa(n) }

// plural is "1 session", "2 sessions".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return itoa(n) + " " + word + "s"
}
