package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers"
)

// metric returns the value of one sample line of /metrics ("" if absent).
func (a *testAPI) metric(t *testing.T, series string) string {
	t.Helper()
	r := a.do("GET", "/metrics", "", nil).want(t, http.StatusOK)
	for _, l := range strings.Split(string(r.Raw), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

func TestMetrics(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "measured")
	a.grant(t, cus, "10", billing.SourcePurchase)
	a.usage(cus, "image.generate", "1", "m-1").want(t, http.StatusCreated)
	a.usage(cus, "image.generate", "1", "m-1").want(t, http.StatusCreated) // a replay is not a new debit
	a.usage(cus, "gpt-4o.tokens", "1234", "").want(t, http.StatusCreated)
	a.usage(cus, "document.analyze", "1", "").want(t, http.StatusPaymentRequired)
	h := a.hold(t, cus, 1, 0)
	a.do("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 1}).want(t, http.StatusOK)
	a.do("GET", "/api/v1/customers/"+cus, a.Read, nil).want(t, http.StatusOK)
	a.do("GET", "/api/v1/customers/someone-else", a.Read, nil).want(t, http.StatusNotFound)
	a.do("GET", "/no/such/page-123", "", nil).want(t, http.StatusNotFound)

	// The fast path defers the replay's entry, which meets the UNIQUE
	// index at the batch's end: one rerun, on either store.
	reruns := "1"
	for series, want := range map[string]string{
		`tally_debits_total`:                                                                 "3",
		`tally_debited_credits_total`:                                                        "9.085",
		`tally_writer_reruns_total`:                                                          reruns,
		`tally_rejections_total{type="insufficient_credits"}`:                                "1",
		`tally_rejections_total{type="customer_not_found"}`:                                  "1",
		`tally_rejections_total{type="not_found"}`:                                           "1",
		`tally_http_requests_total{method="POST",route="/api/v1/usage",status="201"}`:        "3",
		`tally_http_requests_total{method="POST",route="/api/v1/usage",status="402"}`:        "1",
		`tally_http_requests_total{method="GET",route="/api/v1/customers/:id",status="200"}`: "1",
		`tally_http_requests_total{method="GET",route="/api/v1/customers/:id",status="404"}`: "1",
		`tally_http_requests_total{method="GET",route="unmatched",status="404"}`:             "1",
	} {
		if got := a.metric(t, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	// Labels carry route patterns, never ids.
	r := a.do("GET", "/metrics", "", nil).want(t, http.StatusOK)
	for _, raw := range []string{cus, "someone-else", "page-123", h["id"].(string)} {
		if strings.Contains(string(r.Raw), raw) {
			t.Fatalf("/metrics mentions %q", raw)
		}
	}
}

func TestMetricsToken(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{config: func(c *handlers.Config) { c.MetricsToken = "scrape-secret" }})
	a.do("GET", "/metrics", "", nil).wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
	a.do("GET", "/metrics", "", nil, "Authorization", "Bearer wrong").wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
	a.do("GET", "/metrics", a.Admin, nil).wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized) // an API key is not the token
	r := a.do("GET", "/metrics", "", nil, "Authorization", "Bearer scrape-secret").want(t, http.StatusOK)
	if !strings.Contains(string(r.Raw), "tally_http_requests_total") {
		t.Fatalf("metrics: %.200s", r.Raw)
	}
}
