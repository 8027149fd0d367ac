package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
)

var usageBody = []byte(`{"customer":"acme","feature":"gpt-4o.tokens","quantity":1234,"idempotency_key":"k-1","metadata":{"user":"maria"}}`)

// BenchmarkDecodeUsage is the JSON decoding of one usage request.
func BenchmarkDecodeUsage(b *testing.B) {
	for b.Loop() {
		var r billing.UsageRequest
		if err := handlers.DecodeJSON(bytes.NewReader(usageBody), &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostUsage is POST /api/v1/usage through the whole server (auth,
// decoding, the writer with group commit, encoding) without the network,
// from many goroutines.
func BenchmarkPostUsage(b *testing.B) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), "b.db"), db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	d.PublishPriceBook(ctx, billing.PriceBook{Features: []billing.Feature{{Key: "chat.request", Credits: billing.CreditsOf(1)}}})
	_, secret, _ := d.CreateAPIKey(ctx, "bench", billing.ScopeAdmin, billing.Limits{}, 0)
	d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "hot"})
	d.Grant(ctx, billing.GrantRequest{Customer: "hot", Credits: billing.CreditsOf(1_000_000_000), Source: billing.SourcePurchase})
	h := handlers.New(handlers.Config{}, d)
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"customer":"hot","feature":"chat.request","quantity":1,"idempotency_key":"k%d"}`, n.Add(1))
			req := httptest.NewRequest("POST", "/api/v1/usage", bytes.NewReader([]byte(body)))
			req.Header.Set("Authorization", "Bearer "+secret)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
}
