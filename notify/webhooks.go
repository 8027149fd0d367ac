package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// WebhookStore is what the webhook worker needs from storage (*db.DB).
type WebhookStore interface {
	FanOutWebhooks(ctx context.Context, after int64, limit int, save bool) (last int64, events, added int, err error)
	EventCursor(ctx context.Context, consumer string) (int64, error)
	DueWebhookDeliveries(ctx context.Context, now time.Time, limit int, skip map[int64]bool) ([]billing.WebhookJob, error)
	RecordWebhookAttempt(ctx context.Context, job billing.WebhookJob, o db.WebhookOutcome) error
	EventSignal() <-chan struct{}
}

// Webhooks delivers the outbox's events to the webhook endpoints: it fans
// each event out as delivery rows (db.FanOutWebhooks, its own cursor), then
// sends the due deliveries, a bounded number at once, with a client that
// has timeouts, so a slow or dead endpoint costs the debit path nothing: it
// only holds one of this worker's slots. Deliveries are at least once (a
// crash after the POST and before its log is written sends it again: the
// webhook-id stays the same so receivers can drop the repeat), in order per
// customer per endpoint, retried with exponential back-off and jitter for
// up to GiveUpAfter, after which the endpoint is disabled and the owner
// told.
type Webhooks struct {
	Store  WebhookStore
	Client *http.Client // nil: NewWebhookClient(false)
	Log    *slog.Logger
	// Concurrency is the most deliveries in flight at once (default 8).
	Concurrency int
	// Backoff is the wait after the n-th failed attempt (n from 1); nil:
	// DefaultBackoff. Tests make it short.
	Backoff func(n int) time.Duration
	// GiveUpAfter is how long after its first attempt a delivery is
	// retried (default 3 days).
	GiveUpAfter time.Duration
	// Poll is how often due retries and other processes' events are
	// looked for (default 1 s).
	Poll time.Duration
	// Gather is how long the fan-out waits after a commit's signal to take
	// the events that follow it in the same transaction (default 50 ms).
	Gather time.Duration
	Now    func() time.Time
	// Owner gets an e-mail when an endpoint is disabled (nil Mailer or no
	// address: the log says it).
	Owner  string
	Mailer Mailer

	wake     chan struct{}
	mu       sync.Mutex
	inflight map[int64]bool
}

// DefaultBackoff waits 30 s after the first failure, doubling up to 6 h,
// each wait shortened by up to a fifth at random so endpoints that failed
// together are not all retried in the same second. Over 3 days that is
// about 20 attempts.
func DefaultBackoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < 6*time.Hour; i++ {
		d *= 2
	}
	d = min(d, 6*time.Hour)
	return d - time.Duration(rand.Int64N(int64(d/5)+1))
}

// errPrivateAddress is the dialer's refusal of a private address.
var errPrivateAddress = errors.New("the endpoint's address is private or loopback (Tally runs without --webhook-allow-private)")

// NewWebhookClient is the deliveries' HTTP client: 5 s to connect, 10 s
// for the answer's headers, 15 s in all, no redirects followed (a 3xx is a
// failed attempt), no proxy from the environment, and unless allowPrivate
// a dialer that refuses loopback, private and link-local addresses after
// name resolution, so a public name that resolves to an internal address
// is refused as well (SSRF).
func NewWebhookClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || billing.PrivateIP(ip) {
				return errPrivateAddress
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (w *Webhooks) defaults() {
	if w.Client == nil {
		w.Client = NewWebhookClient(false)
	}
	if w.Log == nil {
		w.Log = slog.Default()
	}
	if w.Concurrency <= 0 {
		w.Concurrency = 8
	}
	if w.Backoff == nil {
		w.Backoff = DefaultBackoff
	}
	if w.GiveUpAfter <= 0 {
		w.GiveUpAfter = 72 * time.Hour
	}
	if w.Poll <= 0 {
		w.Poll = time.Second
	}
	if w.Gather <= 0 {
		w.Gather = 50 * time.Millisecond
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	w.wake = make(chan struct{}, 1)
	w.inflight = map[int64]bool{}
}

// Wake makes the worker look for due deliveries now (a test event, a resend).
func (w *Webhooks) Wake() {
	if w.wake == nil {
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run fans out and delivers until ctx ends, then waits for the deliveries
// in flight (each bounded by the client's timeout).
func (w *Webhooks) Run(ctx context.Context) {
	w.defaults()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.fanOut(ctx)
	}()
	w.deliver(ctx, &wg)
	wg.Wait()
}

// fanOut turns new outbox events into deliveries, woken by this process's
// commits (EventSignal) and polling for other processes'.
func (w *Webhooks) fanOut(ctx context.Context) {
	tick := time.NewTicker(w.Poll)
	defer tick.Stop()
	after, loaded := int64(0), false
	var saved time.Time
	for {
		if !loaded {
			c, err := w.Store.EventCursor(ctx, db.WebhookFanOutConsumer)
			if err != nil && ctx.Err() == nil {
				w.Log.Warn("webhook fan-out cursor", "err", err)
			}
			after, loaded = c, err == nil
		}
		for loaded {
			// The place is kept in memory and saved at least every 5 s
			// (and with every delivery added).
			save := time.Since(saved) > 5*time.Second
			last, n, added, err := w.Store.FanOutWebhooks(ctx, after, 500, save)
			if err != nil {
				if ctx.Err() == nil {
					w.Log.Warn("webhook fan-out", "err", err)
				}
				break
			}
			if save || added > 0 {
				saved = time.Now()
			}
			after = last
			if added > 0 {
				w.Wake()
			}
			if n < 500 {
				break
			}
		}
		select {
		case <-ctx.Done():
			if loaded && after > 0 {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				w.Store.FanOutWebhooks(sctx, after, 1, true) // save the place
				cancel()
			}
			return
		case <-tick.C:
		case <-w.Store.EventSignal():
			// Gather the events of the next moments into one transaction:
			// under load one fan-out commit serves many debits' events
			// instead of competing with each for the writer.
			select {
			case <-ctx.Done():
			case <-time.After(w.Gather):
			}
		}
	}
}

func (w *Webhooks) deliver(ctx context.Context, wg *sync.WaitGroup) {
	tick := time.NewTicker(w.Poll)
	defer tick.Stop()
	done := make(chan struct{}, w.Concurrency)
	for {
		w.mu.Lock()
		free := w.Concurrency - len(w.inflight)
		skip := make(map[int64]bool, len(w.inflight))
		for id := range w.inflight {
			skip[id] = true
		}
		w.mu.Unlock()
		if free > 0 {
			jobs, err := w.Store.DueWebhookDeliveries(ctx, w.Now(), free, skip)
			if err != nil && ctx.Err() == nil {
				w.Log.Warn("webhook deliveries", "err", err)
			}
			for _, j := range jobs {
				w.mu.Lock()
				w.inflight[j.Delivery.ID] = true
				w.mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.attempt(ctx, j)
					w.mu.Lock()
					delete(w.inflight, j.Delivery.ID)
					w.mu.Unlock()
					select {
					case done <- struct{}{}:
					default:
					}
				}()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.wake:
		case <-done:
		}
	}
}

// excerpt is how much of an answer's body the log keeps.
const excerpt = 512

// attempt sends one delivery and records what happened.
func (w *Webhooks) attempt(ctx context.Context, j billing.WebhookJob) {
	start := w.Now()
	a := billing.WebhookAttempt{At: start}
	status, resp, err := w.post(ctx, j, start)
	a.LatencyMS = w.Now().Sub(start).Milliseconds()
	a.StatusCode, a.Response = status, resp
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: the delivery stays due and is sent after the restart
		}
		a.Error = err.Error()
	} else if status < 200 || status > 299 {
		a.Error = "HTTP " + strconv.Itoa(status)
	}
	o := db.WebhookOutcome{Attempt: a, Status: billing.DeliverySucceeded}
	if a.Error != "" {
		first := start
		if j.Delivery.FirstAt != nil {
			first = *j.Delivery.FirstAt
		}
		retry := w.Now().Add(w.Backoff(j.Delivery.Attempts + 1))
		if retry.Sub(first) > w.GiveUpAfter {
			o.Status = billing.DeliveryFailed
			o.DisableReason = fmt.Sprintf("Deliveries failed for %s (last: %s); the endpoint was disabled.", w.GiveUpAfter.Round(time.Minute), a.Error)
		} else {
			o.Status, o.RetryAt = billing.DeliveryPending, retry
		}
	}
	// The log is written even when ctx ends now: the POST was sent.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.Store.RecordWebhookAttempt(wctx, j, o); err != nil {
		w.Log.Warn("webhook attempt not recorded", "delivery", j.Delivery.PublicID, "err", err)
		return
	}
	w.Log.Debug("webhook attempt", "endpoint", j.Endpoint.ID, "delivery", j.Delivery.PublicID, "status", status, "result", o.Status)
	if o.Status == billing.DeliveryFailed {
		w.Log.Warn("webhook endpoint disabled", "endpoint", j.Endpoint.ID, "url", j.Endpoint.URL, "reason", o.DisableReason)
		w.tellOwner(wctx, j.Endpoint, o.DisableReason)
	}
}

func (w *Webhooks) post(ctx context.Context, j billing.WebhookJob, now time.Time) (int, string, error) {
	body := []byte(j.Delivery.Payload)
	sig, err := SignatureHeader(j.Endpoint.Secrets(now), j.Delivery.MessageID, now, body)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.Endpoint.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tally-Webhooks/1")
	req.Header.Set(HeaderID, j.Delivery.MessageID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	res, err := w.Client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, excerpt))
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // let the connection be reused
	for !utf8.Valid(b) && len(b) > 0 {
		b = b[:len(b)-1]
	}
	return res.StatusCode, string(b), nil
}

// tellOwner e-mails the owner that an endpoint was disabled.
func (w *Webhooks) tellOwner(ctx context.Context, ep billing.WebhookEndpoint, reason string) {
	if w.Mailer == nil || w.Owner == "" {
		w.Log.Warn("no owner e-mail sent for the disabled webhook endpoint (set TALLY_OWNER_EMAIL and TALLY_SMTP_HOST)", "endpoint", ep.ID)
		return
	}
	msg := Message{To: w.Owner, Subject: "Tally disabled the webhook endpoint " + ep.URL,
		Text: fmt.Sprintf("Tally could not deliver events to the webhook endpoint %s (%s).\n\n%s\n\nFix the receiver, then enable the endpoint again (PATCH /api/v1/webhook-endpoints/%s with {\"enabled\": true}); the deliveries that waited are then sent, and failed ones can be resent.\n",
			ep.URL, ep.ID, reason, ep.ID)}
	if err := w.Mailer.Send(ctx, msg); err != nil {
		w.Log.Warn("owner e-mail about a disabled webhook endpoint failed", "endpoint", ep.ID, "err", err)
	}
}
