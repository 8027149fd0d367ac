package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/notify"
)

// TestWebhookSurvivesKill9: a grant is committed (and acknowledged) while
// the receiver hangs, Tally is killed with SIGKILL at once, and after the
// restart the event is delivered, signed, and answered 2xx exactly once.
func TestWebhookSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real process")
	}
	bin := tallyBinary(t)
	path := filepath.Join(t.TempDir(), "tally.db")
	secret := setupCrashDB(t, path, 1, 100)

	var answering atomic.Bool // false: hang until the test ends
	release := make(chan struct{})
	var mu sync.Mutex
	type got struct {
		id, typ, customer string
		h                 http.Header
		body              []byte
	}
	var ok []got
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !answering.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		var p struct {
			ID, Type string
			Data     map[string]any
		}
		json.Unmarshal(b, &p)
		cu, _ := p.Data["customer"].(string)
		mu.Lock()
		ok = append(ok, got{p.ID, p.Type, cu, r.Header.Clone(), b})
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	t.Cleanup(func() { close(release) })

	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	url, types := rcv.URL+"/hook", []string{billing.EventGrantCreated}
	in := billing.WebhookEndpointInput{URL: &url, EventTypes: &types}
	if err := in.Validate(true, true); err != nil {
		t.Fatal(err)
	}
	ep, _, err := d.CreateWebhookEndpoint(ctx, in)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	p := startTally(t, bin, path, addr, "--webhook-allow-private")
	c := &apiClient{http: &http.Client{Timeout: 5 * time.Second}, base: p.base, secret: secret}
	status, _, body, err := c.post("/api/v1/grants", "grant-before-kill", `{"customer": "c0", "credits": 5, "source": "promo"}`)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("grant: %d %v %v", status, body, err)
	}
	p.kill9()

	answering.Store(true)
	p = startTally(t, bin, path, addr, "--webhook-allow-private")
	defer p.term(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(ok)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event committed before the kill was not delivered after the restart:\n%s", p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time for a wrong second delivery
	mu.Lock()
	defer mu.Unlock()
	if len(ok) != 1 || ok[0].typ != billing.EventGrantCreated {
		t.Fatalf("receiver answered %d deliveries, want the grant once: %+v", len(ok), ok)
	}
	sig, err := notify.Sign(ep.Secret, ok[0].h.Get("webhook-id"), parseUnix(t, ok[0].h.Get("webhook-timestamp")), ok[0].body)
	if err != nil || sig != ok[0].h.Get("webhook-signature") {
		t.Errorf("signature %q, want %q", ok[0].h.Get("webhook-signature"), sig)
	}
}

func parseUnix(t *testing.T, s string) time.Time {
	t.Helper()
	var sec int64
	if err := json.Unmarshal([]byte(s), &sec); err != nil {
		t.Fatal(err)
	}
	return time.Unix(sec, 0)
}
