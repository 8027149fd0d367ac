package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
)

func TestHealth(t *testing.T) {
	a := newTestAPI(t)
	r := a.do("GET", "/healthz", "", nil).want(t, http.StatusOK)
	if string(r.Raw) != "ok\n" {
		t.Fatalf("healthz: %q", r.Raw)
	}
	r = a.do("GET", "/readyz", "", nil).want(t, http.StatusOK)
	if string(r.Raw) != "ready\n" {
		t.Fatalf("readyz: %q", r.Raw)
	}

	t.Run("HEAD", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := a.do("HEAD", p, "", nil).want(t, http.StatusOK); len(r.Raw) != 0 {
				t.Fatalf("HEAD %s has a body: %q", p, r.Raw)
			}
		}
	})
	t.Run("draining", func(t *testing.T) {
		a.Server.SetDraining(func() bool { return true })
		defer a.Server.SetDraining(func() bool { return false })
		a.do("GET", "/readyz", "", nil).wantError(t, http.StatusServiceUnavailable, billing.CodeUnavailable)
		a.do("GET", "/healthz", "", nil).want(t, http.StatusOK) // alive, just not ready
	})
}

func TestOpenAPIServed(t *testing.T) {
	a := newTestAPI(t)
	r := a.do("GET", "/api/v1/openapi.json", "", nil).want(t, http.StatusOK)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || r.Body == nil {
		t.Fatalf("openapi.json: %s %q", r.Header.Get("Content-Type"), r.Raw)
	}
}

func TestRoutingErrors(t *testing.T) {
	a := newTestAPI(t)
	for _, tc := range []struct {
		name, method, path string
		status             int
		typ                string
	}{
		{"unknown API route", "GET", "/api/v1/invoices", 404, billing.CodeNotFound},
		{"unknown nested route", "GET", "/api/v1/customers/x/invoices", 404, billing.CodeNotFound},
		{"unknown version", "GET", "/api/v2/customers", 404, billing.CodeNotFound},
		{"DELETE customers", "DELETE", "/api/v1/customers", 405, "method_not_allowed"},
		{"GET usage", "GET", "/api/v1/usage", 405, "method_not_allowed"},
		{"GET grants", "GET", "/api/v1/grants", 405, "method_not_allowed"},
		{"POST quote", "POST", "/api/v1/quote", 405, "method_not_allowed"},
		{"GET capture", "GET", "/api/v1/holds/hld_x/capture", 405, "method_not_allowed"},
		{"GET limits", "GET", "/api/v1/customers/x/limits", 405, "method_not_allowed"},
		{"POST healthz", "POST", "/healthz", 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(tc.method, tc.path, a.Admin, nil)
			r.wantError(t, tc.status, tc.typ)
			if tc.status == http.StatusMethodNotAllowed && r.Header.Get("Allow") == "" {
				t.Fatalf("405 without an Allow header")
			}
		})
	}
}

// faultStore is a real database whose chosen methods fail, for the error
// paths a healthy SQLite file cannot reach.
type faultStore struct {
	*db.DB
	debitErr   error
	debitPanic any
	pingErr    error
}

func (f *faultStore) Debit(ctx context.Context, req billing.UsageRequest) (billing.Debit, error) {
	if f.debitPanic != nil {
		panic(f.debitPanic)
	}
	if f.debitErr != nil {
		return billing.Debit{}, f.debitErr
	}
	return f.DB.Debit(ctx, req)
}

func (f *faultStore) Ping(ctx context.Context) error {
	if f.pingErr != nil {
		return f.pingErr
	}
	return f.DB.Ping(ctx)
}

// TestEveryErrorType drives each error code through the one error handler
// and checks its status and the body's shape.
func TestEveryErrorType(t *testing.T) {
	fs := &faultStore{}
	a := newTestAPIWith(t, apiOptions{store: func(d *db.DB) handlers.Store { fs.DB = d; return fs }})
	cus := a.customer(t, "faulty")
	a.grant(t, cus, "10", billing.SourcePurchase)
	usage := map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1}

	codes := map[string]int{
		billing.CodeInvalidRequest:      400,
		billing.CodeUnauthorized:        401,
		billing.CodeForbidden:           403,
		billing.CodeNotFound:            404,
		billing.CodeCustomerNotFound:    404,
		billing.CodeHoldNotFound:        404,
		billing.CodeIdempotencyConflict: 409,
		billing.CodeHoldNotActive:       409,
		billing.CodeConflict:            409,
		billing.CodeInsufficientCredits: 402,
		billing.CodeRequestTooLarge:     413,
		billing.CodeUnknownFeature:      422,
		billing.CodeInvalidQuantity:     422,
		billing.CodeValidation:          422,
		billing.CodeSpendLimitExceeded:  429,
		billing.CodeRateLimited:         429,
		billing.CodeStorageUnavailable:  503,
		billing.CodeUnavailable:         503,
		billing.CodeInternal:            500,
	}
	for code, status := range codes {
		t.Run(code, func(t *testing.T) {
			fs.debitErr = billing.Errorf(code, "Injected %s.", code).With("extra", "detail").With("type", "spoofed").With("message", "spoofed")
			defer func() { fs.debitErr = nil }()
			r := a.do("POST", "/api/v1/usage", a.Meter, usage)
			e := r.wantError(t, status, code)
			if e["extra"] != "detail" {
				t.Fatalf("details lost: %s", r.Raw)
			}
			if code != billing.CodeInternal && e["message"] != "Injected "+code+"." {
				t.Fatalf("message %v", e["message"])
			}
		})
	}

	t.Run("an unknown error is internal and bland", func(t *testing.T) {
		fs.debitErr = errors.New("disk sector 42 on /dev/sda is on fire")
		defer func() { fs.debitErr = nil }()
		r := a.do("POST", "/api/v1/usage", a.Meter, usage)
		e := r.wantError(t, http.StatusInternalServerError, billing.CodeInternal)
		if strings.Contains(string(r.Raw), "sda") || len(e) != 2 {
			t.Fatalf("internal details leaked: %s", r.Raw)
		}
		if !strings.Contains(a.Log.String(), "sda") {
			t.Fatalf("the internal error was not logged: %s", a.Log.String())
		}
	})
	t.Run("a panic is internal", func(t *testing.T) {
		fs.debitPanic = "boom in the handler"
		r := a.do("POST", "/api/v1/usage", a.Meter, usage)
		fs.debitPanic = nil
		r.wantError(t, http.StatusInternalServerError, billing.CodeInternal)
		if strings.Contains(string(r.Raw), "boom") {
			t.Fatalf("panic leaked: %s", r.Raw)
		}
		// The server still serves.
		a.do("POST", "/api/v1/usage", a.Meter, usage).want(t, http.StatusCreated)
	})
	t.Run("readyz without a database", func(t *testing.T) {
		fs.pingErr = errors.New("database is locked")
		defer func() { fs.pingErr = nil }()
		r := a.do("GET", "/readyz", "", nil)
		r.wantError(t, http.StatusServiceUnavailable, billing.CodeStorageUnavailable)
		if strings.Contains(string(r.Raw), "locked") {
			t.Fatalf("cause leaked: %s", r.Raw)
		}
	})
	t.Run("insufficient credits details", func(t *testing.T) {
		e := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{"customer": cus, "feature": "document.analyze", "quantity": 2}).
			wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
		for _, k := range []string{"balance", "available", "held", "required"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("detail %s missing: %v", k, e)
			}
		}
	})
}

func TestClosedDatabase(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "late")
	a.grant(t, cus, "10", billing.SourcePurchase)
	if err := a.DB.Close(); err != nil {
		t.Fatal(err)
	}
	// Writes after shutdown are refused as unavailable, reads as storage
	// faults: both 503 with nothing written, neither a 500.
	a.usage(cus, "chat.request", "1", "").wantError(t, http.StatusServiceUnavailable, billing.CodeUnavailable)
	a.do("GET", "/readyz", "", nil).wantError(t, http.StatusServiceUnavailable, billing.CodeStorageUnavailable)
}

// Outside the API, people meet errors as pages, not JSON.
func TestUnknownPageIsHTML(t *testing.T) {
	a := newTestAPI(t)
	r := a.do("GET", "/nope", "", nil)
	if r.Status != 404 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.Raw), `data-testid="error-page"`) {
		t.Fatalf("GET /nope: %d %s %.200s", r.Status, r.Header.Get("Content-Type"), r.Raw)
	}
}

// A signed-in customer who meets an error page (an address that does not
// exist, a stale page link) is offered their billing, not only Back; a bad
// address is not called a fault of ours.
func TestPortalErrorPagesOfferBilling(t *testing.T) {
	a := newPortalAPI(t, nil)
	a.customer(t, "lost")
	v := newPortalVisitor(t, a)
	v.signIn("lost")
	for _, tc := range []struct{ path, heading string }{
		{"/portal/nope", "Page not found"},
		{"/nope", "Page not found"}, // outside the portal's routes
		{"/portal/ledger?cursor=zzz", "This page address is not valid"},
	} {
		r := v.get(tc.path)
		if r.Status != http.StatusNotFound && r.Status != http.StatusBadRequest {
			t.Fatalf("%s: %d", tc.path, r.Status)
		}
		d := doc(t, r)
		if h := d.Find(`[data-testid="error-page"] h1`).Text(); h != tc.heading {
			t.Errorf("%s: heading %q, want %q", tc.path, h, tc.heading)
		}
		if href, _ := d.Find(`[data-testid="error-portal"]`).Attr("href"); href != "/portal" {
			t.Errorf("%s: no way to the customer's billing", tc.path)
		}
	}
	// Signed out, an unknown address offers only the way back.
	r := newPortalVisitor(t, a).get("/nope")
	if d := doc(t, r); d.Find(`[data-testid="error-portal"]`).Length() != 0 || d.Find(`[data-testid="error-back"]`).Length() != 1 {
		t.Fatalf("signed out: %.300s", r.Raw)
	}
}
