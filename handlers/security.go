package handlers

import (
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// contentSecurityPolicy is the policy of every response. The pages load
// their scripts, styles and htmx from /static only: no inline script, no
// eval, no <style> element (htmx's own indicator style is turned off by the
// htmx-config meta tag; its rules are in app.css). Inline style attributes
// are allowed (style-src-attr): the bars and the chart size themselves with
// them, and a style attribute cannot run script. img-src allows data: for
// the form controls' SVG arrows in app.css. connect-src 'self' covers htmx's
// requests and the balance's event stream. Stripe's pages are reached by
// redirect only (Tally's pages load no Stripe.js), so no other origin is
// needed. frame-ancestors 'none': no page may be framed (an embeddable
// widget sets its own policy on its own routes). form-action is left out on
// purpose: browsers apply it to the redirect after a post, and some posts
// rightly end elsewhere (adding a card on Stripe Checkout, signing out back
// to the product's return_url).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// securityHeaders sets the security headers on every response, pages,
// error pages, the start page and API answers alike (Echo's secure
// middleware): the CSP above, X-Frame-Options DENY for browsers without
// frame-ancestors, nosniff, Referrer-Policy same-origin (no URL of the
// portal, sign-in links included, leaves for another site) and
// X-XSS-Protection 0 (the old filter is gone from modern browsers and could
// be abused in old ones). Everything but /static is Cache-Control:
// no-store: pages and API answers carry a customer's data and CSRF tokens
// and must not stay in a shared or back-button cache; the fingerprinted
// static assets keep their one-year immutable caching.
func securityHeaders() echo.MiddlewareFunc {
	secure := middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection:         "0",
		ContentTypeNosniff:    "nosniff",
		XFrameOptions:         "DENY",
		ContentSecurityPolicy: contentSecurityPolicy,
		ReferrerPolicy:        "same-origin",
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		h := secure(next)
		return func(c echo.Context) error {
			if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
				c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
			}
			return h(c)
		}
	}
}
