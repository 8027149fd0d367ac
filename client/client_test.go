package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/client"
	"github.com/tally-billing/tally/internal/testserver"
)

// TestClient calls a real `tally serve --demo` through every method.
func TestClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts tally serve")
	}
	s := testserver.Start(t)
	ctx := context.Background()
	c := client.New(s.URL, s.Key)

	b, err := c.Balance(ctx, "acme-robotics")
	if err != nil || b.Customer == "" || b.Available <= 0 {
		t.Fatalf("balance: %+v %v", b, err)
	}
	q, err := c.Quote(ctx, "acme-robotics", "image.generate", client.Units(2))
	if err != nil || q.Credits != client.CreditsOf(10) || !q.Affordable {
		t.Fatalf("quote: %+v %v", q, err)
	}

	// A usage request gets a key, and sending it again replays it.
	req := &client.UsageRequest{Customer: "acme-robotics", Feature: "image.generate", Quantity: client.Units(1)}
	d1, err := c.Usage(ctx, req)
	if err != nil || req.IdempotencyKey == "" || d1.CreditsCharged != client.CreditsOf(5) {
		t.Fatalf("usage: %+v %v (key %q)", d1, err, req.IdempotencyKey)
	}
	d2, err := c.Usage(ctx, req)
	if err != nil || d2.ID != d1.ID {
		t.Fatalf("the same key charged again: %+v %v", d2, err)
	}
	if after, _ := c.Balance(ctx, "acme-robotics"); after.Balance != b.Balance-client.CreditsOf(5) {
		t.Fatalf("balance %v after one debit of 5 from %v", after.Balance, b.Balance)
	}
	// A feature priced per dimension (the demo's gpt-4o: 0.625 and 2.5 credits per 1,000 tokens).
	dims, err := c.Usage(ctx, &client.UsageRequest{Customer: "acme-robotics", Feature: "gpt-4o",
		Quantities: map[string]client.Quantity{"input_tokens": client.Units(1200), "output_tokens": client.Units(400)}})
	if err != nil || dims.CreditsCharged != 1750 || len(dims.Breakdown) != 2 || dims.Breakdown[1].Dimension != "output_tokens" {
		t.Fatalf("usage per dimension: %+v %v", dims, err)
	}

	items, err := c.UsageBatch(ctx, []client.UsageRequest{
		{Customer: "acme-robotics", Feature: "chat.request", Quantity: client.Units(1)},
		{Customer: "acme-robotics", Feature: "chat.request", Quantity: client.Units(2)},
		{Customer: "acme-robotics", Feature: "no.such.feature", Quantity: client.Units(1)},
	})
	if err != nil || len(items) != 3 || items[0].Status != 201 || items[1].Debit == nil || items[1].Debit.CreditsCharged != client.CreditsOf(2) ||
		items[2].Error == nil || items[2].Error.Type != "unknown_feature" {
		t.Fatalf("batch: %+v %v", items, err)
	}

	h, err := c.CreateHold(ctx, &client.HoldRequest{Customer: "acme-robotics", Credits: client.CreditsOf(100)})
	if err != nil || h.Status != "active" {
		t.Fatalf("hold: %+v %v", h, err)
	}
	h, err = c.CaptureHold(ctx, h.ID, &client.CaptureRequest{Feature: "chat.request", Quantity: client.Units(3)})
	if err != nil || h.Status != "captured" || h.CreditsCharged == nil || *h.CreditsCharged != client.CreditsOf(3) {
		t.Fatalf("capture: %+v %v", h, err)
	}
	h, _ = c.CreateHold(ctx, &client.HoldRequest{Customer: "acme-robotics", Credits: client.CreditsOf(50)})
	if h, err = c.ReleaseHold(ctx, h.ID); err != nil || h.Status != "released" {
		t.Fatalf("release: %+v %v", h, err)
	}

	// A typed error with its stable type and the field at fault.
	_, err = c.Usage(ctx, &client.UsageRequest{Customer: "acme-robotics", Feature: "nope", Quantity: client.Units(1)})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 422 || e.Type != "unknown_feature" || e.Message == "" {
		t.Fatalf("unknown feature: %v", err)
	}

	// 402: what was needed and the pack that covers it; TopUpLink sells it.
	post(t, s, "/api/v1/customers", `{"external_id": "broke"}`)
	_, err = c.Usage(ctx, &client.UsageRequest{Customer: "broke", Feature: "image.generate", Quantity: client.Units(1)})
	if !errors.As(err, &e) || e.Status != 402 || e.Type != client.InsufficientCredits || e.Required == nil || *e.Required != client.CreditsOf(5) ||
		e.SuggestedPack == nil || e.SuggestedPack.ID == "" {
		t.Fatalf("402: %#v", err)
	}
	link, err := c.TopUpLink(ctx, e, "broke", "https://app.example/resume")
	if err != nil || !strings.Contains(link.URL, "/portal/session/") || !strings.Contains(link.URL, "required=5") || link.Flow != "top_up" {
		t.Fatalf("top-up link: %+v %v", link, err)
	}

	// Embed tokens, with a portal key that allows the page's origin.
	out := s.CLI(t, "apikey", "create", "--name", "widget", "--scope", "portal", "--allowed-origin", "https://app.example")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	portal := client.New(s.URL, lines[len(lines)-1])
	tok, err := portal.CreateEmbedToken(ctx, "acme-robotics", "https://app.example")
	if err != nil || !strings.HasPrefix(tok.Token, "tet1.") || time.Until(tok.ExpiresAt) > 15*time.Minute {
		t.Fatalf("embed token: %+v %v", tok, err)
	}
	if _, err := portal.CreateEmbedToken(ctx, "acme-robotics", "https://evil.example"); !errors.As(err, &e) || e.Type != "origin_not_allowed" {
		t.Fatalf("a token for an origin the key does not list: %v", err)
	}
	if _, err := client.New(s.URL, "tsk_nope").Balance(ctx, "acme-robotics"); !errors.As(err, &e) || e.Type != client.Unauthorized {
		t.Fatalf("a bad key: %v", err)
	}
}

// flaky sits between the client and the server: it loses the answer of
// the first request (the server applied it; the connection then drops),
// then answers 503 to the next without forwarding it, then lets requests
// through.
type flaky struct {
	mu       sync.Mutex
	attempts []string // the Idempotency-Key of each attempt
	proxy    *httputil.ReverseProxy
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.attempts = append(f.attempts, r.Header.Get("Idempotency-Key"))
	n := len(f.attempts)
	f.mu.Unlock()
	switch n {
	case 1:
		rec := httptest.NewRecorder()
		f.proxy.ServeHTTP(rec, r) // applied by the server...
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close() // ...and the answer is lost
	case 2:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"type":"unavailable","message":"Shutting down."}}`)
	default:
		f.proxy.ServeHTTP(w, r)
	}
}

// TestClientRetries: a lost answer and a 503 are retried with the same
// idempotency key, and the usage is charged once.
func TestClientRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts tally serve")
	}
	s := testserver.Start(t)
	ctx := context.Background()
	target, _ := url.Parse(s.URL)
	f := &flaky{proxy: httputil.NewSingleHostReverseProxy(target)}
	proxy := httptest.NewServer(f)
	defer proxy.Close()

	direct := client.New(s.URL, s.Key)
	before, err := direct.Balance(ctx, "lumen-studio")
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(proxy.URL, s.Key, client.WithBackoff(10*time.Millisecond))
	d, err := c.Usage(ctx, &client.UsageRequest{Customer: "lumen-studio", Feature: "document.analyze", Quantity: client.Units(1)})
	if err != nil || d.CreditsCharged != client.CreditsOf(10) {
		t.Fatalf("usage through the flaky proxy: %+v %v", d, err)
	}
	if len(f.attempts) != 3 || f.attempts[0] == "" || f.attempts[1] != f.attempts[0] || f.attempts[2] != f.attempts[0] {
		t.Fatalf("attempts and their keys: %q, want 3 with one key", f.attempts)
	}
	after, _ := direct.Balance(ctx, "lumen-studio")
	if got := before.Balance - after.Balance; got != client.CreditsOf(10) {
		t.Fatalf("charged %v for one usage of 10 sent 3 times", got)
	}

	// No server: after its retries, a network error carrying the key.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	_, err = client.New(gone.URL, s.Key, client.WithRetries(2), client.WithBackoff(time.Millisecond)).Usage(ctx, &client.UsageRequest{Customer: "lumen-studio", Feature: "chat.request", Quantity: client.Units(1), IdempotencyKey: "lost-1"})
	var e *client.Error
	if !errors.As(err, &e) || e.Type != client.NetworkError || e.IdempotencyKey != "lost-1" {
		t.Fatalf("no retries: %v", err)
	}
}

func post(t *testing.T, s *testserver.Server, path, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+s.Key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode >= 300 {
		t.Fatalf("POST %s: %d", path, res.StatusCode)
	}
}

// TestIdempotencyKeysGrow: generated keys keep their format, never repeat,
// and a key made in a later millisecond sorts after an earlier one.
func TestIdempotencyKeysGrow(t *testing.T) {
	format := regexp.MustCompile(`^idem_[0-9a-f]{32}$`)
	seen := map[string]bool{}
	prev := client.NewIdempotencyKey()
	for i := 0; i < 5; i++ {
		time.Sleep(2 * time.Millisecond)
		next := client.NewIdempotencyKey()
		if next <= prev {
			t.Errorf("key %s made after %s sorts before it", next, prev)
		}
		prev = next
	}
	for i := 0; i < 10000; i++ {
		k := client.NewIdempotencyKey()
		if !format.MatchString(k) || seen[k] {
			t.Fatalf("key %q: wrong format or made twice", k)
		}
		seen[k] = true
	}
	// The time is the key's first 12 hex digits.
	ms, err := strconv.ParseInt(prev[len("idem_"):len("idem_")+12], 16, 64)
	if err != nil || time.Since(time.UnixMilli(ms)) > time.Minute || time.Since(time.UnixMilli(ms)) < 0 {
		t.Errorf("key %s does not start with the time in milliseconds (%v)", prev, err)
	}
}
