package payments

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/internal/stripemock"
)

// startStripeMock runs stripe-mock on free ports (internal/stripemock) and
// returns its HTTP base URL; it skips without stripe-mock unless
// TALLY_REQUIRE_STRIPE_MOCK=1.
func startStripeMock(t *testing.T) string {
	t.Helper()
	return stripemock.Start(t, testSecretKey)
}

const (
	testSecretKey     = "sk_test_tally0123456789abcdef" // stripe-mock wants sk_test_ and letters or digits
	testWebhookSecret = "whsec_tally_test_secret"
)

// recorded is one request the provider sent.
type recorded struct {
	Method, Path   string
	IdempotencyKey string
	Form           url.Values // body of a POST, query of a GET
}

// recorder is an http.RoundTripper that keeps every request.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorded{Method: req.Method, Path: req.URL.Path, IdempotencyKey: req.Header.Get("Idempotency-Key"), Form: req.URL.Query()}
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(body) > 0 {
			rec.Form, _ = url.ParseQuery(string(body))
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// take returns the requests since the last take.
func (r *recorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// newRecordedStripe is a provider talking to base through a recorder.
func newRecordedStripe(t *testing.T, base string) (*StripeProvider, *recorder) {
	t.Helper()
	rec := &recorder{next: http.DefaultTransport}
	p, err := NewStripe(StripeConfig{
		SecretKey:     testSecretKey,
		WebhookSecret: testWebhookSecret,
		APIBase:       base,
		HTTPClient:    &http.Client{Transport: rec, Timeout: 20 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, rec
}
