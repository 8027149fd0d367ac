package handlers_test

import (
	"bufio"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// routeScopes is the security decision for every /api/v1 route: the scope
// it needs ("" for none). TestScopeMatrix fails on a route that is not
// here, so a new endpoint cannot ship without someone deciding who may call
// it (and writing it in docs/api.md).
var routeScopes = map[string]string{
	"GET /api/v1/openapi.json":          "",
	"POST /api/v1/customers":            billing.ScopeMetering,
	"GET /api/v1/customers":             billing.ScopeRead,
	"GET /api/v1/customers/:id":         billing.ScopeRead,
	"GET /api/v1/customers/:id/balance": billing.ScopeRead,
	"GET /api/v1/customers/:id/usage":   billing.ScopeRead,
	"GET /api/v1/customers/:id/ledger":  billing.ScopeRead,
	"PUT /api/v1/customers/:id/limits":  billing.ScopeAdmin,
	"PATCH /api/v1/customers/:id":       billing.ScopeMetering,
	"POST /api/v1/grants":               billing.ScopeAdmin,
	"POST /api/v1/adjustments":          billing.ScopeAdmin,
	"POST /api/v1/usage":                billing.ScopeMetering,
	"POST /api/v1/usage/batch":          billing.ScopeMetering,
	"GET /api/v1/quote":                 billing.ScopeRead,
	"POST /api/v1/holds":                billing.ScopeMetering,
	"GET /api/v1/holds/:id":             billing.ScopeRead,
	"POST /api/v1/holds/:id/capture":    billing.ScopeMetering,
	"POST /api/v1/holds/:id/release":    billing.ScopeMetering,
	"GET /api/v1/price-book":            billing.ScopeRead,
	"GET /api/v1/price-books":           billing.ScopeRead,
	"GET /api/v1/price-books/:version":  billing.ScopeRead,
	"POST /api/v1/price-books":          billing.ScopeAdmin,
	// A sign-in link buys top-ups with the saved card, turns on
	// auto-refill and changes cards: never with a metering key.
	"POST /api/v1/portal-sessions":   billing.ScopePortal,
	"GET /api/v1/topups/:id":         billing.ScopeRead,
	"POST /api/v1/topups/:id/refund": billing.ScopeAdmin,
	// Webhook endpoints receive every customer's events, signed with
	// secrets these routes reveal: admin only.
	"POST /api/v1/webhook-endpoints":                   billing.ScopeAdmin,
	"GET /api/v1/webhook-endpoints":                    billing.ScopeAdmin,
	"GET /api/v1/webhook-endpoints/:id":                billing.ScopeAdmin,
	"PATCH /api/v1/webhook-endpoints/:id":              billing.ScopeAdmin,
	"DELETE /api/v1/webhook-endpoints/:id":             billing.ScopeAdmin,
	"POST /api/v1/webhook-endpoints/:id/rotate-secret": billing.ScopeAdmin,
	"GET /api/v1/webhook-endpoints/:id/deliveries":     billing.ScopeAdmin,
	"POST /api/v1/webhook-endpoints/:id/resend":        billing.ScopeAdmin,
	"POST /api/v1/webhook-endpoints/:id/test":          billing.ScopeAdmin,
	// An embed token shows a balance and tops up with the saved card after
	// the customer confirms: like a sign-in link, portal scope.
	"POST /api/v1/embed-tokens": billing.ScopePortal,
	// The embed API takes an embed token, never an API key; its CORS
	// preflight carries nothing.
	"GET /api/v1/embed/balance":     scopeEmbedToken,
	"GET /api/v1/embed/events":      scopeEmbedToken,
	"OPTIONS /api/v1/embed/balance": "",
	"OPTIONS /api/v1/embed/events":  "",

	// Subscription plans (portal_plan.go).
	"GET /api/v1/customers/:id/subscription": billing.ScopeRead,
}

// scopeEmbedToken marks routes that an embed token authenticates: no API
// key of any scope is let through.
const scopeEmbedToken = "embed token"

// mayCall is what each scope may call besides its own routes, written out
// here rather than taken from billing.Allows, so the test checks the rule
// and not only its implementation.
var mayCall = map[string][]string{
	billing.ScopeAdmin:    {billing.ScopeAdmin, billing.ScopeMetering, billing.ScopePortal, billing.ScopeRead},
	billing.ScopeMetering: {billing.ScopeMetering, billing.ScopeRead},
	billing.ScopePortal:   {billing.ScopePortal, billing.ScopeRead},
	billing.ScopeRead:     {billing.ScopeRead},
}

// TestScopeMatrix sends every /api/v1 route of the real router (payments
// on) with a key of every scope and with none: a key whose scope does not
// cover the route gets 403 forbidden, one that does reaches the handler
// (whatever it then answers to an empty body), no key gets 401.
func TestScopeMatrix(t *testing.T) {
	p := newPayAPI(t)
	keys := map[string]string{billing.ScopeAdmin: p.Admin, billing.ScopeMetering: p.Meter, billing.ScopePortal: p.Portal, billing.ScopeRead: p.Read}
	if len(keys) != len(billing.Scopes()) || len(mayCall) != len(billing.Scopes()) {
		t.Fatalf("the test covers scopes %v, billing has %v", slices.Sorted(maps.Keys(keys)), billing.Scopes())
	}

	var routes []string
	for _, r := range p.Server.Echo().Routes() {
		if r.Method == echo.RouteNotFound || !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		routes = append(routes, r.Method+" "+r.Path)
	}
	slices.Sort(routes)
	for _, r := range routes {
		if _, ok := routeScopes[r]; !ok {
			t.Errorf("route %s has no scope decided in routeScopes (and docs/api.md)", r)
		}
	}
	for r := range routeScopes {
		if !slices.Contains(routes, r) {
			t.Errorf("routeScopes names %s, which the router does not register", r)
		}
	}

	fill := strings.NewReplacer(":id", "x", ":version", "1")
	for _, r := range routes {
		need := routeScopes[r]
		method, path, _ := strings.Cut(r, " ")
		path = fill.Replace(path)
		var body any
		if method == http.MethodPost || method == http.MethodPut {
			body = "{}"
		}
		t.Run(r, func(t *testing.T) {
			res := p.do(method, path, "", body)
			if need == "" {
				if res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden {
					t.Fatalf("public route without a key: %d", res.Status)
				}
				return
			}
			if need == scopeEmbedToken {
				res.wantError(t, http.StatusUnauthorized, billing.CodeEmbedTokenInvalid)
				for _, have := range billing.Scopes() {
					p.do(method, path, keys[have], body).wantError(t, http.StatusUnauthorized, billing.CodeEmbedTokenInvalid)
				}
				return
			}
			res.wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
			for _, have := range billing.Scopes() {
				res := p.do(method, path, keys[have], body)
				if slices.Contains(mayCall[have], need) {
					if res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden {
						t.Errorf("%s key on a %s route: %d, want it let through; body %s", have, need, res.Status, res.Raw)
					}
					continue
				}
				if res.Status != http.StatusForbidden || !strings.Contains(string(res.Raw), `"forbidden"`) {
					t.Errorf("%s key on a %s route: %d, want 403 forbidden; body %s", have, need, res.Status, res.Raw)
				}
			}
		})
	}

	// The documentation says the same: the endpoint table of docs/api.md
	// gives each route the scope decided here, and the scope tables of
	// README.md and docs/api.md list every scope.
	documented := docEndpointScopes(t, "../docs/api.md")
	for r, need := range routeScopes {
		method, path, _ := strings.Cut(r, " ")
		key := method + " " + openAPIStylePath(path)
		want := need
		if want == "" {
			want = "none"
		}
		if got, ok := documented[key]; !ok || got != want {
			t.Errorf("docs/api.md endpoint table: %s has scope %q, want %q", key, got, want)
		}
	}
	for _, f := range []string{"../README.md", "../docs/api.md"} {
		if got := docScopeTable(t, f); !slices.Equal(got, billing.Scopes()) {
			t.Errorf("%s: the scope table lists %v, want %v", f, got, billing.Scopes())
		}
	}
}

// openAPIStylePath writes /holds/:id as the docs do, /holds/{id}.
func openAPIStylePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

// docLines reads a documentation file's lines.
func docLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// tableCells splits a Markdown table row into its trimmed cells, without
// the backticks around code.
func tableCells(line string) []string {
	line = strings.Trim(strings.TrimSpace(line), "|")
	cells := strings.Split(line, "|")
	for i, c := range cells {
		cells[i] = strings.Trim(strings.TrimSpace(c), "`")
	}
	return cells
}

// docTable returns the cells of each row of the Markdown table in file
// whose header row starts with header.
func docTable(t *testing.T, file, header string) [][]string {
	t.Helper()
	var rows [][]string
	in := false
	for _, l := range docLines(t, file) {
		switch {
		case strings.HasPrefix(l, header):
			in = true
		case in && !strings.HasPrefix(l, "|"):
			return rows
		case in && !strings.HasPrefix(l, "| ---"):
			rows = append(rows, tableCells(l))
		}
	}
	if rows == nil {
		t.Fatalf("%s has no table %q", file, header)
	}
	return rows
}

// docEndpointScopes reads the "| method and path | scope | what |" table.
func docEndpointScopes(t *testing.T, file string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range docTable(t, file, "| method and path | scope |") {
		out[c[0]] = c[1]
	}
	return out
}

// docScopeTable reads the first column of the "| scope | may call |" table.
func docScopeTable(t *testing.T, file string) []string {
	t.Helper()
	var out []string
	for _, c := range docTable(t, file, "| scope | may call |") {
		out = append(out, c[0])
	}
	return out
}
