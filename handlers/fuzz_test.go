package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
)

// fuzzServer is a real server on a real database, shared by one fuzz run.
func fuzzServer(f *testing.F) (http.Handler, string) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(f.TempDir(), "fuzz.db"), db.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	pb := billing.PriceBook{Features: []billing.Feature{
		{Key: "chat.request", Credits: billing.CreditsOf(1)},
		{Key: "gpt-4o.tokens", Credits: 2500, UnitSize: 1000},
	}}
	if _, _, err := d.PublishPriceBook(ctx, pb); err != nil {
		f.Fatal(err)
	}
	_, secret, err := d.CreateAPIKey(ctx, "fuzz", billing.ScopeAdmin, billing.Limits{}, 0)
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "u1"}); err != nil {
		f.Fatal(err)
	}
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: "u1", Credits: billing.CreditsOf(1000), Source: billing.SourcePromo}); err != nil {
		f.Fatal(err)
	}
	return handlers.New(handlers.Config{}, d), secret
}

// FuzzAPIBodies sends arbitrary bodies to every JSON endpoint of a real
// server: whatever the input, the answer is never a 500 and always the one
// error shape when it is an error.
func FuzzAPIBodies(f *testing.F) {
	h, secret := fuzzServer(f)
	seeds := []string{
		`{"customer":"u1","feature":"chat.request","quantity":1}`,
		`{"customer":"u1","feature":"gpt-4o.tokens","quantity":1234.567,"metadata":{"user":"a"}}`,
		`{"customer":"u1","feature":"chat.request","quantity":1e-3}`,
		`{"customer":"u1","feature":"chat.request","quantity":-1}`,
		`{"customer":"u1","feature":"chat.request","quantity":"1"}`,
		`{"customer":"u1","feature":"chat.request","quantity":99999999999999999999}`,
		`{"events":[{"customer":"u1","feature":"chat.request","quantity":1},{}]}`,
		`{"customer":"u1","credits":2.5,"source":"promo","expires_at":"2099-01-01T00:00:00Z"}`,
		`{"customer":"u1","credits":5,"ttl_seconds":60}`,
		`{"external_id":"x","email":"a@b.c","name":"n"}`,
		`{"daily_cap":10,"monthly_cap":null,"overdraft_limit":0}`,
		`{"features":[{"key":"a","credits":1}],"packs":[]}`,
		`{"feature":"chat.request","quantity":1}`,
		`[]`, `null`, `{`, `{"customer":` + "\x00" + `}`, `{"a":1}{"b":2}`,
	}
	for _, s := range seeds {
		for ep := range 9 {
			f.Add(uint8(ep), []byte(s))
		}
	}
	endpoints := []struct{ method, path string }{
		{"POST", "/api/v1/usage"}, {"POST", "/api/v1/usage/batch"}, {"POST", "/api/v1/grants"},
		{"POST", "/api/v1/holds"}, {"POST", "/api/v1/customers"}, {"PUT", "/api/v1/customers/u1/limits"},
		{"POST", "/api/v1/price-books"}, {"POST", "/api/v1/holds/hld_nope/capture"}, {"POST", "/api/v1/holds/hld_nope/release"},
	}
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		e := endpoints[int(ep)%len(endpoints)]
		req := httptest.NewRequest(e.method, e.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q answered %d: %s", e.method, e.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !bytes.HasPrefix(rec.Body.Bytes(), []byte(`{"error":{`)) {
			t.Fatalf("%s %s %q: error body %s", e.method, e.path, body, rec.Body)
		}
	})
}

// FuzzDecodeUsage checks the usage decoder alone: it never panics, and what
// it accepts has a quantity with at most three decimals that re-encodes
// exactly.
func FuzzDecodeUsage(f *testing.F) {
	f.Add([]byte(`{"customer":"u1","feature":"chat.request","quantity":1.5}`))
	f.Add([]byte(`{"customer":"u1","feature":"chat.request","quantity":1.5001}`))
	f.Add([]byte(`{"customer":"u1","quantity":1e2,"metadata":{"k":"v"},"idempotency_key":"x"}`))
	f.Add([]byte(`{"customer":"u1","feature":"chat.request","quantity":1,"Quantity":50,"customer":"u2"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r billing.UsageRequest
		err := handlers.DecodeJSON(bytes.NewReader(body), &r)
		if err != nil {
			if c := billing.ErrorCode(err); c == billing.CodeInternal {
				t.Fatalf("decode %q: internal error %v", body, err)
			}
			return
		}
		if r.Quantity != nil {
			back, perr := billing.ParseQuantity(r.Quantity.String())
			if perr != nil || back != *r.Quantity {
				t.Fatalf("quantity %v does not round-trip: %v %v", *r.Quantity, back, perr)
			}
		}
	})
}
