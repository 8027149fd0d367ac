package handlers

import (
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/handlers/forms"
	"github.com/tally-billing/tally/views"
)

// readForm is the request's form, read the way the customer writes
// numbers (their Accept-Language): the one place portal forms are parsed.
func readForm(c echo.Context) *forms.Form {
	vals, err := c.FormParams()
	if err != nil {
		vals = url.Values{}
	}
	return forms.New(vals, localeOf(views.NewFmt(c.Request().Header.Get("Accept-Language"), "")))
}

// localeOf is the number locale of a formatter.
func localeOf(f views.Fmt) forms.Locale {
	dec, group := f.Separators()
	return forms.Locale{Decimal: dec, Group: group}
}
