package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
)

// BenchmarkDashboard is GET /portal through the real handler (session,
// CSRF, shell, balance, forecast, chart, templ) for a customer with
// 1,000,000 usage events over 90 days. The overview reads the daily
// rollups and the balance only, so its cost does not grow with the events;
// the target is under 100 ms. Seeding takes a while and happens once per
// run (go test -run '^$' -bench Dashboard ./handlers).
func BenchmarkDashboard(b *testing.B) {
	const events = 1_000_000
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), "dash.db"), db.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if _, _, err := d.PublishPriceBook(ctx, testPriceBook()); err != nil {
		b.Fatal(err)
	}
	_, secret, err := d.CreateAPIKey(ctx, "bench", billing.ScopeAdmin, billing.Limits{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "heavy", Name: "Heavy User"}); err != nil {
		b.Fatal(err)
	}

	// A year's credits, then a million debits spread evenly over 90 days,
	// written at the times they happened, in chunks.
	now := time.Now().UTC()
	start := now.Add(-90 * 24 * time.Hour)
	// About 4 credits an event: chat requests, images, 1,500 tokens, documents.
	features := []string{"chat.request", "chat.request", "image.generate", "gpt-4o.tokens", "document.analyze"}
	quantities := []billing.Quantity{billing.QuantityOf(1), billing.QuantityOf(1), billing.QuantityOf(1), billing.QuantityOf(1500), billing.QuantityOf(1)}
	seeded := time.Now()
	grant := []db.BackfillItem{{At: start.Add(-time.Hour), Grant: &billing.GrantRequest{Customer: "heavy",
		Credits: billing.CreditsOf(20_000_000), Source: billing.SourcePurchase, Reason: "Enterprise pack"}}}
	for _, err := range d.Backfill(ctx, grant) {
		if err != nil {
			b.Fatal(err)
		}
	}
	step := 90 * 24 * time.Hour / events
	const chunk = 20_000
	items := make([]db.BackfillItem, 0, chunk)
	for i := 0; i < events; i += chunk {
		items = items[:0]
		for j := i; j < min(i+chunk, events); j++ {
			q := &quantities[j%len(features)]
			items = append(items, db.BackfillItem{At: start.Add(time.Duration(j) * step),
				Usage: &billing.UsageRequest{Customer: "heavy", Feature: features[j%len(features)], Quantity: q}})
		}
		for _, err := range d.Backfill(ctx, items) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("seeded %d debits in %s", events, time.Since(seeded).Round(time.Second))

	days, err := d.FindUsageDays(ctx, mustResolve(b, d, "heavy"), start.Format(time.DateOnly), now.Format(time.DateOnly))
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, u := range days {
		n += u.Events
	}
	if n != events {
		b.Fatalf("the rollups count %d events, want %d", n, events)
	}

	h := handlers.New(handlers.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, d)
	cookies := benchSignIn(b, h, secret, "heavy")
	for _, path := range []string{"/portal", "/portal?days=90"} {
		name := "30days"
		if strings.HasSuffix(path, "90") {
			name = "90days"
		}
		b.Run(name, func(b *testing.B) {
			get := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest("GET", path, nil)
				for _, c := range cookies {
					req.AddCookie(c)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}
			if rec := get(); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `data-testid="usage-chart-svg"`) {
				b.Fatalf("GET %s: %d %.300s", path, rec.Code, rec.Body.String())
			}
			for b.Loop() {
				if rec := get(); rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d", path, rec.Code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
		})
	}
}

func mustResolve(b *testing.B, d *db.DB, ref string) string {
	id, err := d.ResolveCustomer(context.Background(), ref)
	if err != nil {
		b.Fatal(err)
	}
	return id
}

// benchSignIn signs a customer in as a product does (a portal session from
// the API, its link opened) and returns the session cookies.
func benchSignIn(b *testing.B, h http.Handler, secret, customer string) []*http.Cookie {
	b.Helper()
	req := httptest.NewRequest("POST", "/api/v1/portal-sessions", strings.NewReader(`{"customer":"`+customer+`","return_url":"https://app.example/"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		b.Fatalf("portal session: %d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	i := strings.Index(body, "/portal/session/")
	if i < 0 {
		b.Fatalf("no link in %s", body)
	}
	link := body[i:]
	link = link[:strings.IndexByte(link, '"')]
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", link, nil))
	if rec.Code != http.StatusSeeOther {
		b.Fatalf("sign-in link: %d", rec.Code)
	}
	return rec.Result().Cookies()
}
