package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// BenchmarkDebitDeadWebhook measures debits through `tally serve` (in this
// process, real HTTP and SQLite) with no webhook endpoint, and with one
// endpoint subscribed to every event that accepts connections and never
// answers. Each op is a debit that crosses the customer's low-balance line
// (balance.low) and a grant that lifts it back (balance.recovered): two
// events, so two deliveries to the dead endpoint, per op. The worker's
// slots fill with hung requests; the debits must not notice.
//
//	go test ./cmd/tally -run '^$' -bench DebitDeadWebhook -benchtime 2000x -count 3
func BenchmarkDebitDeadWebhook(b *testing.B) {
	for _, mode := range []string{"no-endpoint", "live-endpoint", "dead-endpoint"} {
		b.Run(mode, func(b *testing.B) { benchDebits(b, mode) })
	}
}

func benchDebits(b *testing.B, mode string) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "tally.db")
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := d.PublishPriceBook(ctx, DemoPriceBook()); err != nil {
		b.Fatal(err)
	}
	_, secret, err := d.CreateAPIKey(ctx, "bench", billing.ScopeAdmin, billing.Limits{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	cu, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "c0"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: cu.ID, Credits: billing.CreditsOf(100), Source: billing.SourcePurchase}); err != nil {
		b.Fatal(err)
	}
	line := billing.CreditsOf(100) - 500 // a 1-credit debit crosses it, a 1-credit grant lifts it back
	if err := d.UpdateCustomerSettings(ctx, cu.ID, billing.CustomerSettings{LowBalanceThreshold: &line}); err != nil {
		b.Fatal(err)
	}
	var hung sync.WaitGroup
	var receiver string
	switch mode {
	case "live-endpoint": // answers 204 at once
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		b.Cleanup(srv.Close)
		receiver = srv.URL
	case "dead-endpoint":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		go func() { // accepts, reads nothing, answers nothing
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				hung.Add(1)
				go func() { defer hung.Done(); <-stop; c.Close() }()
			}
		}()
		b.Cleanup(func() { ln.Close(); close(stop); hung.Wait() })
		receiver = "http://" + ln.Addr().String()
	}
	if receiver != "" {
		url, all := receiver+"/hook", []string{billing.AllEvents}
		in := billing.WebhookEndpointInput{URL: &url, EventTypes: &all}
		if err := in.Validate(true, true); err != nil {
			b.Fatal(err)
		}
		if _, _, err := d.CreateWebhookEndpoint(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	d.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--db", path, "--addr", addr, "--log-requests=false", "--log-level", "error", "--webhook-allow-private"},
			func(string) string { return "" }, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	base := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("tally serve did not become ready")
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(path, body string) time.Duration {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d", path, res.StatusCode)
		}
		return time.Since(start)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, post("/api/v1/usage", fmt.Sprintf(`{"customer":"c0","feature":"chat.request","quantity":1,"idempotency_key":"u%d"}`, i)))
		post("/api/v1/grants", fmt.Sprintf(`{"customer":"c0","credits":1,"source":"promo","idempotency_key":"g%d"}`, i))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "debit-p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "debit-p99-µs")
}
