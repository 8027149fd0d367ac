package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/tally-billing/tally/internal/storetest"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/notify"
)

// verifyStandardWebhook is the receiver's side of the Standard Webhooks
// specification, written from the specification and not from notify.Sign:
// the signed content is "<webhook-id>.<webhook-timestamp>.<body>", the key
// is the base64 after "whsec_", webhook-signature is a space-separated list
// of "v1,<base64 HMAC-SHA256>" and one match is enough; the timestamp must
// be within 5 minutes.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp too far from now: %s", d)
	}
	key, err := base64.StdEncoding.DecodeString(secret[len("whsec_"):])
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	want := m.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no signature matches")
}

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver records every request and answers with answer(n) for the n-th
// (from 1).
type receiver struct {
	mu     sync.Mutex
	got    []received
	answer func(n int) int
	srv    *httptest.Server
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	r := &receiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b})
		n := len(r.got)
		r.mu.Unlock()
		code := r.answer(n)
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d to request %d", code, n)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func openDB(t *testing.T) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), storetest.DSN(t), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newCustomer(t *testing.T, d *db.DB, ext string) string {
	t.Helper()
	c, _, err := d.CreateCustomer(context.Background(), billing.CustomerInput{ExternalID: ext, Email: ext + "@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func grant(t *testing.T, d *db.DB, customer string, credits int64) {
	t.Helper()
	if _, err := d.Grant(context.Background(), billing.GrantRequest{Customer: customer, Credits: billing.CreditsOf(credits), Source: billing.SourcePromo}); err != nil {
		t.Fatal(err)
	}
}

func endpoint(t *testing.T, d *db.DB, url string, types ...string) billing.WebhookEndpoint {
	t.Helper()
	in := billing.WebhookEndpointInput{URL: &url}
	if len(types) > 0 {
		in.EventTypes = &types
	}
	if err := in.Validate(true, true); err != nil {
		t.Fatal(err)
	}
	ep, _, err := d.CreateWebhookEndpoint(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// startWorker runs a worker with a fast schedule until the test ends.
func startWorker(t *testing.T, d *db.DB, w *notify.Webhooks) *notify.Webhooks {
	t.Helper()
	if w == nil {
		w = &notify.Webhooks{}
	}
	w.Store = d
	if w.Client == nil {
		w.Client = notify.NewWebhookClient(true)
	}
	w.Log = slog.New(slog.DiscardHandler)
	if w.Backoff == nil {
		w.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	}
	w.Poll = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebhookSignedAsTheSpecSays(t *testing.T) {
	d := openDB(t)
	rcv := newReceiver(t, func(int) int { return 204 })
	ep := endpoint(t, d, rcv.srv.URL, billing.EventGrantCreated)
	if !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("secret %q does not start with whsec_", ep.Secret)
	}
	cu := newCustomer(t, d, "ada")
	grant(t, d, cu, 10)
	startWorker(t, d, nil)
	waitFor(t, "a delivery", func() bool { return len(rcv.requests()) == 1 })
	r := rcv.requests()[0]
	if err := verifyStandardWebhook(ep.Secret, r.header, r.body, time.Now()); err != nil {
		t.Fatalf("signature: %v (headers %v)", err, r.header)
	}
	// A byte changed in the body no longer verifies.
	bad := append([]byte(nil), r.body...)
	bad[len(bad)-2] ^= 1
	if err := verifyStandardWebhook(ep.Secret, r.header, bad, time.Now()); err == nil {
		t.Fatal("a tampered body verified")
	}
	var p struct {
		ID, Type  string
		CreatedAt time.Time `json:"created_at"`
		Data      map[string]any
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != billing.EventGrantCreated || p.ID != r.header.Get("webhook-id") || !strings.HasPrefix(p.ID, "evt_") || p.CreatedAt.IsZero() || p.Data["customer"] != cu {
		t.Fatalf("payload %s", r.body)
	}
}

func TestWebhookRetriesThenSucceedsOnce(t *testing.T) {
	d := openDB(t)
	rcv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return 500
		}
		return 200
	})
	ep := endpoint(t, d, rcv.srv.URL)
	cu := newCustomer(t, d, "ada")
	grant(t, d, cu, 10) // one grant.created
	var waits []int
	var mu sync.Mutex
	startWorker(t, d, &notify.Webhooks{Backoff: func(n int) time.Duration {
		mu.Lock()
		waits = append(waits, n)
		mu.Unlock()
		return 30 * time.Millisecond
	}})
	ctx := context.Background()
	waitFor(t, "a successful delivery", func() bool {
		ds, err := d.FindWebhookDeliveries(ctx, ep.ID, 0, 10)
		return err == nil && len(ds) == 1 && ds[0].Status == billing.DeliverySucceeded
	})
	time.Sleep(150 * time.Millisecond) // time for a wrong extra attempt
	if n := len(rcv.requests()); n != 3 {
		t.Fatalf("receiver got %d requests, want 3", n)
	}
	ds, err := d.FindWebhookDeliveries(ctx, ep.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	h := ds[0].History
	if len(h) != 3 || ds[0].Attempts != 3 {
		t.Fatalf("history %+v", h)
	}
	for i, want := range []int{500, 500, 200} {
		if h[i].StatusCode != want || !strings.Contains(h[i].Response, "answer "+strconv.Itoa(want)) {
			t.Errorf("attempt %d: %+v, want status %d", i+1, h[i], want)
		}
		if (want == 500) != (h[i].Error != "") {
			t.Errorf("attempt %d error %q", i+1, h[i].Error)
		}
	}
	reqs := rcv.requests()
	if reqs[0].header.Get("webhook-id") != reqs[2].header.Get("webhook-id") || string(reqs[0].body) != string(reqs[2].body) {
		t.Error("a retry is not the same message")
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(waits) != "[1 2]" {
		t.Errorf("back-off asked for attempts %v, want [1 2]", waits)
	}
}

// A customer's later event waits while an earlier one to the same endpoint
// is retrying; another customer's events are not held up.
func TestWebhookOrderPerCustomer(t *testing.T) {
	d := openDB(t)
	var mu sync.Mutex
	failFirst := 3
	var order []string
	firstID := "" // ada's first event: failed three times
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			ID   string
			Data map[string]any
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &p)
		mu.Lock()
		defer mu.Unlock()
		cu, _ := p.Data["customer"].(string)
		if p.ID == firstID && failFirst > 0 {
			failFirst--
			w.WriteHeader(503)
			return
		}
		order = append(order, cu+" "+p.ID)
	}))
	defer srv.Close()
	endpoint(t, d, srv.URL, billing.EventGrantCreated)
	ada := newCustomer(t, d, "ada")
	bob := newCustomer(t, d, "bob")
	grant(t, d, ada, 1)
	grant(t, d, bob, 1)
	grant(t, d, ada, 2)
	grant(t, d, ada, 3)
	evs, err := d.FindEvents(context.Background(), db.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var adaIDs []string
	for _, e := range evs {
		if e.Customer == ada && e.Type == billing.EventGrantCreated {
			adaIDs = append(adaIDs, e.ID)
		}
	}
	mu.Lock()
	firstID = adaIDs[0]
	mu.Unlock()
	startWorker(t, d, &notify.Webhooks{Concurrency: 4})
	waitFor(t, "all deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 4
	})
	mu.Lock()
	defer mu.Unlock()
	var adaSeen []string
	for _, o := range order {
		cu, id, _ := strings.Cut(o, " ")
		if cu == ada {
			adaSeen = append(adaSeen, id)
		}
	}
	if fmt.Sprint(adaSeen) != fmt.Sprint(adaIDs) {
		t.Fatalf("ada's events arrived as %v, want %v (all: %v)", adaSeen, adaIDs, order)
	}
	if !strings.HasPrefix(order[0], bob) {
		t.Errorf("bob's event waited for ada's retries: %v", order)
	}
}

func TestWebhookSecretRotation(t *testing.T) {
	d := openDB(t)
	ctx := context.Background()
	rcv := newReceiver(t, func(int) int { return 200 })
	ep := endpoint(t, d, rcv.srv.URL)
	rot, err := d.RotateWebhookSecret(ctx, ep.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Secret == ep.Secret || rot.OldSecret != ep.Secret {
		t.Fatal("rotation did not keep the old secret beside a new one")
	}
	startWorker(t, d, nil)
	if _, err := d.CreateTestDelivery(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the test event", func() bool { return len(rcv.requests()) == 1 })
	r := rcv.requests()[0]
	if n := len(strings.Fields(r.header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures during the overlap, want 2", n)
	}
	for name, secret := range map[string]string{"old": ep.Secret, "new": rot.Secret} {
		if err := verifyStandardWebhook(secret, r.header, r.body, time.Now()); err != nil {
			t.Errorf("the %s secret does not verify: %v", name, err)
		}
	}
	if !strings.Contains(string(r.body), `"type":"webhook.test"`) {
		t.Errorf("test event body %s", r.body)
	}
	// After the overlap only the new secret signs.
	ep2 := rot
	later := time.Now().Add(25 * time.Hour)
	if got := ep2.Secrets(later); len(got) != 1 || got[0] != rot.Secret {
		t.Errorf("after the overlap the secrets are %d", len(got))
	}
}

// After GiveUpAfter the endpoint is disabled and the owner told.
func TestWebhookGivesUpAndDisables(t *testing.T) {
	d := openDB(t)
	ctx := context.Background()
	rcv := newReceiver(t, func(int) int { return 500 })
	ep := endpoint(t, d, rcv.srv.URL)
	mail := &fakeMailer{}
	startWorker(t, d, &notify.Webhooks{GiveUpAfter: 100 * time.Millisecond, Owner: "owner@example.com", Mailer: mail})
	if _, err := d.CreateTestDelivery(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the endpoint disabled", func() bool {
		e, err := d.FindWebhookEndpoint(ctx, ep.ID)
		return err == nil && !e.Enabled
	})
	e, _ := d.FindWebhookEndpoint(ctx, ep.ID)
	if !strings.Contains(e.DisabledReason, "HTTP 500") {
		t.Errorf("reason %q", e.DisabledReason)
	}
	ds, _ := d.FindWebhookDeliveries(ctx, ep.ID, 0, 10)
	if len(ds) != 1 || ds[0].Status != billing.DeliveryFailed || len(ds[0].History) < 2 {
		t.Fatalf("deliveries %+v", ds)
	}
	waitFor(t, "the owner's e-mail", func() bool { return len(mail.sent()) == 1 })
	m := mail.sent()[0]
	if m.To != "owner@example.com" || !strings.Contains(m.Subject, rcv.srv.URL) {
		t.Errorf("mail %+v", m)
	}
}

type fakeMailer struct {
	mu  sync.Mutex
	got []notify.Message
}

func (f *fakeMailer) Send(_ context.Context, m notify.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, m)
	return nil
}

func (f *fakeMailer) sent() []notify.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]notify.Message(nil), f.got...)
}

// The fan-out enqueues each event once per endpoint, however often it runs.
func TestWebhookFanOutOnce(t *testing.T) {
	d := openDB(t)
	ctx := context.Background()
	ep := endpoint(t, d, "http://127.0.0.1:1/hook", billing.EventGrantCreated)
	cu := newCustomer(t, d, "ada")
	grant(t, d, cu, 1)
	grant(t, d, cu, 2)
	if _, _, added, err := d.FanOutWebhooks(ctx, 0, 100, false); err != nil || added != 2 {
		t.Fatalf("added %d, %v", added, err)
	}
	// The cursor moved back (as if the commit of the cursor had been lost
	// while the deliveries' had not): nothing doubles.
	raw := storetest.Raw(t, d.Path())
	if _, err := raw.Exec(`UPDATE event_cursors SET seq = 0 WHERE consumer = ?`, db.WebhookFanOutConsumer); err != nil {
		t.Fatal(err)
	}
	cur, _ := d.EventCursor(ctx, db.WebhookFanOutConsumer)
	if _, n, added, err := d.FanOutWebhooks(ctx, cur, 100, false); err != nil || added != 0 || n == 0 {
		t.Fatalf("second fan-out added %d, %v", added, err)
	}
	evs, _ := d.FindEvents(ctx, db.EventFilter{})
	if _, err := d.ResendWebhookEvent(ctx, ep.ID, evs[len(evs)-1].ID); err != nil {
		t.Fatal(err)
	}
	ds, _ := d.FindWebhookDeliveries(ctx, ep.ID, 0, 10)
	if len(ds) != 2 {
		t.Fatalf("%d deliveries after a resend, want 2 (the resend reuses the row)", len(ds))
	}
}

func TestSignKnownVector(t *testing.T) {
	// The Standard Webhooks specification's example.
	sig, err := notify.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if sig != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("signature %s", sig)
	}
}

// Without --webhook-allow-private the worker's dialer refuses a loopback
// address even when the endpoint was saved (as a name could resolve to one
// later): the attempt is logged with the reason and the receiver gets
// nothing.
func TestWebhookDialerRefusesPrivate(t *testing.T) {
	d := openDB(t)
	ctx := context.Background()
	rcv := newReceiver(t, func(int) int { return 200 })
	ep := endpoint(t, d, rcv.srv.URL)
	startWorker(t, d, &notify.Webhooks{Client: notify.NewWebhookClient(false)})
	if _, err := d.CreateTestDelivery(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a refused attempt", func() bool {
		ds, err := d.FindWebhookDeliveries(ctx, ep.ID, 0, 10)
		return err == nil && len(ds) == 1 && len(ds[0].History) > 0
	})
	ds, _ := d.FindWebhookDeliveries(ctx, ep.ID, 0, 10)
	if a := ds[0].History[0]; a.StatusCode != 0 || !strings.Contains(a.Error, "private or loopback") {
		t.Errorf("attempt %+v", a)
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
}

// A test event reaches a disabled endpoint (how an admin checks it before
// enabling it again); the events it subscribes to wait until it is enabled.
func TestWebhookTestEventToDisabledEndpoint(t *testing.T) {
	d := openDB(t)
	ctx := context.Background()
	rcv := newReceiver(t, func(int) int { return 200 })
	ep := endpoint(t, d, rcv.srv.URL)
	off, on := false, true
	if _, err := d.UpdateWebhookEndpoint(ctx, ep.ID, billing.WebhookEndpointInput{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, d, nil)
	if _, err := d.CreateTestDelivery(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the test event", func() bool { return len(rcv.requests()) == 1 })
	cu := newCustomer(t, d, "ada")
	grant(t, d, cu, 1) // a disabled endpoint gets no delivery for it
	time.Sleep(100 * time.Millisecond)
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("%d requests to the disabled endpoint, want the test only", n)
	}
	if _, err := d.UpdateWebhookEndpoint(ctx, ep.ID, billing.WebhookEndpointInput{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	w.Wake()
	grant(t, d, cu, 1)
	waitFor(t, "the grant after enabling", func() bool { return len(rcv.requests()) == 2 })
}
