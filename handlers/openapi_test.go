package handlers

import (
	"context"
	"encoding/json"
	"github.com/tally-billing/tally/internal/storetest"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/payments"
)

// openAPISpec is the part of the OpenAPI document the tests read.
type openAPISpec struct {
	OpenAPI    string                                `json:"openapi"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Schemas struct {
			ErrorType struct {
				Enum []string `json:"enum"`
			} `json:"ErrorType"`
		} `json:"schemas"`
	} `json:"components"`
}

// openAPIOperation is one operation of a path item.
type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Description string                     `json:"description"`
	Security    *[]map[string][]string     `json:"security"` // nil: the document's default (bearerAuth)
	Scope       string                     `json:"x-tally-scope"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

// openAPIMethods are the path item fields that hold operations.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// specOperations returns the document's operations keyed "METHOD /path".
func specOperations(t *testing.T, spec openAPISpec) map[string]openAPIOperation {
	t.Helper()
	ops := map[string]openAPIOperation{}
	for path, item := range spec.Paths {
		for field, raw := range item {
			if !slices.Contains(openAPIMethods, field) {
				continue // summary, parameters, ...
			}
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", field, path, err)
			}
			ops[strings.ToUpper(field)+" "+path] = op
		}
	}
	return ops
}

// openAPIPath turns an Echo route path (/holds/:id) into OpenAPI's (/holds/{id}).
func openAPIPath(t *testing.T, p string) string {
	t.Helper()
	segs := strings.Split(p, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":"):
			segs[i] = "{" + s[1:] + "}"
		case strings.Contains(s, "*"):
			t.Fatalf("route %s has a wildcard, which OpenAPI cannot describe", p)
		}
	}
	return strings.Join(segs, "/")
}

// newOpenAPIServer builds the real router on a real database.
func newOpenAPIServer(t *testing.T) (*Server, *db.DB) {
	t.Helper()
	d, err := db.Open(context.Background(), storetest.DSN(t), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	// With payments, so the top-up routes are registered too.
	sb := payments.NewSandbox("http://127.0.0.1")
	svc := &payments.Service{Provider: sb, Store: d, Policy: billing.DefaultPaymentPolicy}
	return New(Config{Payments: PaymentsConfig{Service: svc, Store: d, Provider: sb, Policy: billing.DefaultPaymentPolicy},
		Webhooks: WebhooksConfig{Store: d}}, d), d
}

func parseOpenAPI(t *testing.T, data []byte) openAPISpec {
	t.Helper()
	var spec openAPISpec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return spec
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	s, _ := newOpenAPIServer(t)
	spec := parseOpenAPI(t, openAPIDoc)
	ops := specOperations(t, spec)

	routes := map[string]bool{}
	for _, r := range s.Echo().Routes() {
		if r.Method == echo.RouteNotFound {
			continue // Echo's catch-all 404 routes are not operations
		}
		if !isAPIPath(r.Path) {
			continue // the portal's pages are HTML, not API operations
		}
		routes[r.Method+" "+openAPIPath(t, r.Path)] = true
	}
	if len(routes) == 0 {
		t.Fatal("the router has no routes")
	}
	for r := range routes {
		if _, ok := ops[r]; !ok {
			t.Errorf("route %s is registered but not in openapi.json", r)
		}
	}
	for op := range ops {
		if !routes[op] {
			t.Errorf("openapi.json describes %s, which the router does not register", op)
		}
	}
}

func TestOpenAPIDocument(t *testing.T) {
	spec := parseOpenAPI(t, openAPIDoc)
	if !strings.HasPrefix(spec.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", spec.OpenAPI)
	}
	if bs, ok := spec.Components.SecuritySchemes["bearerAuth"]; !ok || bs.Type != "http" || bs.Scheme != "bearer" {
		t.Errorf("components.securitySchemes.bearerAuth = %+v, want an http bearer scheme", bs)
	}
	if !slices.ContainsFunc(spec.Security, func(r map[string][]string) bool { _, ok := r["bearerAuth"]; return ok }) {
		t.Errorf("the document's default security %v does not require bearerAuth", spec.Security)
	}

	ids := map[string]string{}
	for name, op := range specOperations(t, spec) {
		if op.OperationID == "" {
			t.Errorf("%s has no operationId", name)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share operationId %q", name, other, op.OperationID)
		}
		ids[op.OperationID] = name
		if !slices.ContainsFunc(slices.Collect(maps.Keys(op.Responses)), func(code string) bool { return strings.HasPrefix(code, "2") }) {
			t.Errorf("%s has no 2xx response", name)
		}
		public := op.Security != nil && len(*op.Security) == 0
		switch {
		case public && op.Scope != "":
			t.Errorf("%s needs no authentication but declares x-tally-scope %q", name, op.Scope)
		case op.Scope == scopeEmbedToken:
			// An embed token, not an API key: described by the embedToken scheme.
			if op.Security == nil || len(*op.Security) != 1 || (*op.Security)[0]["embedToken"] == nil {
				t.Errorf("%s: an embed token route without the embedToken security scheme", name)
			}
		case !public && !billing.ValidScope(op.Scope):
			t.Errorf("%s: x-tally-scope = %q, want one of %v", name, op.Scope, billing.Scopes())
		case !public:
			if !strings.Contains(op.Description, "scope: **"+op.Scope+"**") {
				t.Errorf("%s: the description does not name its required scope %q", name, op.Scope)
			}
			// 429: the key's rate limit, and the throttle of failed keys.
			for _, code := range []string{"401", "403", "429"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s needs an API key but does not document %s", name, code)
				}
			}
		}
	}

	// The error types are those the error handler maps to a status.
	codes := slices.Sorted(maps.Keys(statusOf))
	enum := slices.Sorted(slices.Values(spec.Components.Schemas.ErrorType.Enum))
	if !slices.Equal(enum, codes) {
		t.Errorf("ErrorType enum = %v, want the codes of statusOf %v", enum, codes)
	}

	var whole any
	if err := json.Unmarshal(openAPIDoc, &whole); err != nil {
		t.Fatal(err)
	}
	for _, r := range collectRefs(whole, nil) {
		if !resolvePointer(whole, r) {
			t.Errorf("$ref %q points at nothing", r)
		}
	}
}

// TestOpenAPIScopes checks what the document says about authentication
// against the router: public operations answer without a key, the others
// answer 401 without one and 403 exactly when the key's scope is too low.
func TestOpenAPIScopes(t *testing.T) {
	s, d := newOpenAPIServer(t)
	ctx := context.Background()
	secrets := map[string]string{}
	for _, scope := range billing.Scopes() {
		_, secret, err := d.CreateAPIKey(ctx, scope+" key", scope, billing.Limits{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		secrets[scope] = secret
	}
	do := func(method, path, secret string) int {
		var body io.Reader
		if method == http.MethodPost || method == http.MethodPut {
			body = strings.NewReader("{}")
		}
		req := httptest.NewRequest(method, path, body)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Code
	}
	fill := strings.NewReplacer("{id}", "x", "{version}", "1")
	for name, op := range specOperations(t, parseOpenAPI(t, openAPIDoc)) {
		method, path, _ := strings.Cut(name, " ")
		url := fill.Replace(path)
		if strings.Contains(url, "{") {
			t.Fatalf("%s: no test value for its path parameter", name)
		}
		t.Run(op.OperationID, func(t *testing.T) {
			got := do(method, url, "")
			if op.Scope == "" {
				if got == http.StatusUnauthorized {
					t.Errorf("documented as public, answered %d without a key", got)
				}
				return
			}
			if got != http.StatusUnauthorized {
				t.Errorf("without a key: %d, want 401", got)
			}
			if op.Scope == scopeEmbedToken {
				for have, secret := range secrets { // no API key is an embed token
					if got := do(method, url, secret); got != http.StatusUnauthorized {
						t.Errorf("with a %s key: %d, want 401", have, got)
					}
				}
				return
			}
			for have, secret := range secrets {
				got := do(method, url, secret)
				if want := !billing.Allows(have, op.Scope); (got == http.StatusForbidden) != want {
					t.Errorf("with a %s key: %d; documented scope %q, so 403 = %v", have, got, op.Scope, want)
				}
			}
		})
	}
}

func TestOpenAPIDocumentServed(t *testing.T) {
	s, _ := newOpenAPIServer(t)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", rec.Code, rec.Body)
	}
	if mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || mt != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", rec.Header().Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("the served document is not JSON: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("served openapi = %q, want 3.1.x", v)
	}
	if rec.Body.String() != string(openAPIDoc) {
		t.Error("the served document differs from handlers/openapi.json")
	}
}

// collectRefs returns every "$ref" value in v.
func collectRefs(v any, out []string) []string {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				out = append(out, s)
				continue
			}
			out = collectRefs(e, out)
		}
	case []any:
		for _, e := range x {
			out = collectRefs(e, out)
		}
	}
	return out
}

// resolvePointer reports whether a local reference (#/a/b) names a value in doc.
func resolvePointer(doc any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	cur := doc
	for _, tok := range strings.Split(p, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[tok]; !ok {
			return false
		}
	}
	return true
}

// isAPIPath reports whether a route belongs to the JSON API the OpenAPI
// description covers (the portal's HTML pages and assets do not).
func isAPIPath(p string) bool {
	return strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/readyz" || p == "/metrics"
}

// scopeEmbedToken is the x-tally-scope of routes an embed token
// authenticates (the balance widget's JSON API), never an API key.
const scopeEmbedToken = "embed token"
