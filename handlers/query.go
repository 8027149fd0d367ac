package handlers

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tally-billing/tally/billing"
)

// apiQuery names the query parameters each API read takes. A body's
// unknown fields are refused; so are a query's: "?qty=4" priced one unit,
// and "?type=grants" answered an empty list, as if there were none.
// A route not listed here (the widget's, which EventSource calls with its
// token in the query) is not checked.
var apiQuery = map[string][]string{
	"/api/v1/customers":                        {"cursor", "limit"},
	"/api/v1/customers/:id":                    nil,
	"/api/v1/customers/:id/balance":            nil,
	"/api/v1/customers/:id/usage":              {"feature", "cursor", "limit", "from", "to"},
	"/api/v1/customers/:id/ledger":             {"type", "feature", "cursor", "limit", "from", "to"},
	"/api/v1/customers/:id/subscription":       nil,
	"/api/v1/quote":                            {"customer", "feature", "quantity", "quantities[*]"},
	"/api/v1/holds/:id":                        nil,
	"/api/v1/topups/:id":                       nil,
	"/api/v1/price-book":                       nil,
	"/api/v1/price-books":                      nil,
	"/api/v1/price-books/:version":             nil,
	"/api/v1/webhook-endpoints":                nil,
	"/api/v1/webhook-endpoints/:id":            nil,
	"/api/v1/webhook-endpoints/:id/deliveries": {"cursor", "limit"},
}

// strictQuery refuses, on the API reads apiQuery lists, a query parameter
// the route does not take, one given twice and one given empty: each is
// a client's mistake that would otherwise answer something else.
func strictQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodGet || r.URL.RawQuery == "" {
			return next(c)
		}
		allowed, ok := apiQuery[c.Path()]
		if !ok {
			return next(c)
		}
		for name, vals := range r.URL.Query() {
			if !takes(allowed, name) {
				msg := "Unknown query parameter " + quote(name) + ": this endpoint takes none."
				if len(allowed) > 0 {
					msg = "Unknown query parameter " + quote(name) + ": this endpoint takes " + strings.Join(allowed, ", ") + "."
				}
				return billing.Errorf(billing.CodeInvalidRequest, "%s", msg).With("param", name)
			}
			if len(vals) > 1 {
				return billing.Errorf(billing.CodeInvalidRequest, "Query parameter %s is given %d times: give it once.", quote(name), len(vals)).With("param", name)
			}
			if strings.TrimSpace(vals[0]) == "" {
				return billing.Errorf(billing.CodeInvalidRequest, "Query parameter %s is empty: give a value, or leave it out.", quote(name)).With("param", name)
			}
		}
		return next(c)
	}
}

// takes reports whether a route taking allowed takes the parameter name
// ("quantities[*]" stands for quantities[input_tokens] and the like).
func takes(allowed []string, name string) bool {
	if slices.Contains(allowed, name) {
		return true
	}
	if dim, ok := strings.CutPrefix(name, "quantities["); ok && strings.HasSuffix(dim, "]") {
		return slices.Contains(allowed, "quantities[*]")
	}
	return false
}

func quote(s string) string { return `"` + s + `"` }
