package handlers_test

import (
	"context"
	"github.com/tally-billing/tally/internal/storetest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
	"github.com/tally-billing/tally/payments"
)

// countingSandbox is the sandbox provider, counting the payments it makes:
// a double click must charge once. It keeps the sandbox's page methods
// (AddCard, Authenticate...), so the server still serves the sandbox pages.
type countingSandbox struct {
	*payments.SandboxProvider
	mu       sync.Mutex
	payments map[string]bool // provider payment ids Charge answered with
	calls    int
}

func (c *countingSandbox) Charge(ctx context.Context, req billing.ChargeRequest) (billing.Payment, error) {
	p, err := c.SandboxProvider.Charge(ctx, req)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if err == nil {
		c.payments[p.ProviderID] = true
	}
	return p, err
}

// charges is how many distinct payments the provider made.
func (c *countingSandbox) charges() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.payments)
}

// payAPI is a test server with payments wired as `tally serve` wires them,
// on a real SQLite file and the test clock.
type payAPI struct {
	*testAPI
	Service  *payments.Service
	Sandbox  *countingSandbox // nil with Stripe
	Provider billing.PaymentProvider
	Policy   billing.PaymentPolicy
}

// newPayAPI serves Tally with the sandbox provider. The server listens on a
// port chosen first, so the sandbox's pages (and the portal's links) carry
// the server's real URL, as they do in `tally serve`.
func newPayAPI(t *testing.T) *payAPI {
	t.Helper()
	return newPayAPIWith(t, func(base string) billing.PaymentProvider {
		return &countingSandbox{SandboxProvider: payments.NewSandbox(base), payments: map[string]bool{}}
	})
}

// testWebhookSecret signs the webhooks of the Stripe-configured test server.
const testWebhookSecret = "whsec_test_handlers"

// newStripeAPI serves Tally with a Stripe provider whose API is never
// reached (nothing in these tests calls it): webhooks only.
func newStripeAPI(t *testing.T) *payAPI {
	t.Helper()
	return newPayAPIWith(t, func(string) billing.PaymentProvider {
		p, err := payments.NewStripe(payments.StripeConfig{SecretKey: "sk_test_handlers", WebhookSecret: testWebhookSecret, APIBase: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
}

func newPayAPIWith(t *testing.T, provider func(base string) billing.PaymentProvider) *payAPI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	p := &payAPI{Provider: provider(base), Policy: billing.DefaultPaymentPolicy}
	p.Sandbox, _ = p.Provider.(*countingSandbox)
	a := newTestAPIWith(t, apiOptions{
		store: func(d *db.DB) handlers.Store {
			// As `tally serve` wires it.
			// The policy in force is the stored one once an admin saved one
			// (as serve's startPolicy reads it), else p.Policy.
			policies := func(ctx context.Context) billing.PaymentPolicy {
				if cur, err := d.CurrentPolicy(ctx); err == nil && cur.Version > 0 {
					return cur.Policy.Payment()
				}
				return p.Policy
			}
			p.Service = &payments.Service{Provider: p.Provider, Store: d, Policy: p.Policy, Policies: policies, Now: d.Now,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ReturnURL: base + "/portal/top-ups/return"}
			return d
		},
		config: func(c *handlers.Config) {
			c.Portal.BaseURL = base
			c.Portal.ProductName = "Pixel AI"
			c.Payments = handlers.PaymentsConfig{Service: p.Service, Store: p.Service.Store.(*db.DB), Provider: p.Provider, Policy: p.Policy}
			c.Webhooks = handlers.WebhooksConfig{Store: p.Service.Store.(*db.DB)}
			c.Notifications = handlers.NotificationsConfig{Store: p.Service.Store.(*db.DB)}
		},
	})
	// Serve on the port the links were made for.
	a.HTTP.Close()
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: a.Server}}
	srv.Start()
	t.Cleanup(srv.Close)
	a.HTTP = srv
	p.testAPI = a
	return p
}

// sqlCount runs a COUNT query on the database file (read-only).
func (p *payAPI) sqlCount(t *testing.T, query string, args ...any) int {
	t.Helper()
	raw := storetest.Raw(t, p.DB.Path())
	var n int
	if err := raw.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// verify checks the ledger's invariants over the whole database.
func (p *payAPI) verify(t *testing.T) {
	t.Helper()
	problems, err := p.DB.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Error("invariant:", pr)
	}
}

// available is the customer's available balance.
func (p *payAPI) available(t *testing.T, customer string) billing.Credits {
	t.Helper()
	return credits(t, p.balance(t, customer)["available"])
}

// topUp reads a top-up through the API.
func (p *payAPI) topUp(t *testing.T, id string) map[string]any {
	t.Helper()
	return p.do("GET", "/api/v1/topups/"+id, p.Read, nil).want(t, http.StatusOK).Body
}

// runRefills runs the due auto-refill jobs, as the runner does.
func (p *payAPI) runRefills(t *testing.T) int {
	t.Helper()
	n, err := p.Service.RunRefillsOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// location is a redirect's target; a URL on the test server becomes its
// path and query.
func (v *portalVisitor) location(r response, status int) string {
	v.t.Helper()
	if r.Status != status {
		v.t.Fatalf("status %d, want %d; body %.500s", r.Status, status, r.Raw)
	}
	loc := r.Header.Get("Location")
	if loc == "" {
		v.t.Fatalf("no Location in the %d answer", r.Status)
	}
	if rest, ok := strings.CutPrefix(loc, v.a.HTTP.URL); ok {
		return rest
	}
	return loc
}

// form reads the named inputs of the first form matching sel, ready to post.
func formValues(t *testing.T, r response, sel string) url.Values {
	t.Helper()
	f := doc(t, r).Find(sel).First()
	if f.Length() == 0 {
		t.Fatalf("no form %s in %.500s", sel, r.Raw)
	}
	vals := url.Values{}
	f.Find("input[name]").Each(func(_ int, in *goquery.Selection) {
		name, _ := in.Attr("name")
		val, _ := in.Attr("value")
		vals.Set(name, val)
	})
	return vals
}
