package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers"
)

// failuresAllowed is how many failed authentications an address gets
// before the throttle answers 429 (handlers.authFailBurst).
const failuresAllowed = 10

// wantThrottled checks a 429 rate_limited answer with a Retry-After header
// of at least a second.
func wantThrottled(t *testing.T, r response, what string) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("%s: %d, want 429; body %.300s", what, r.Status, r.Raw)
	}
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("%s: Retry-After %q, want a number of seconds", what, r.Header.Get("Retry-After"))
	}
}

func TestFailedAPIKeysThrottled(t *testing.T) {
	a := newTestAPI(t)
	bad := func(i int) response {
		return a.do("GET", "/api/v1/customers", fmt.Sprintf("tsk_guess%023d", i), nil)
	}
	for i := range failuresAllowed {
		bad(i).wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
	}
	r := bad(failuresAllowed)
	wantThrottled(t, r, "one bad key too many")
	e := r.wantError(t, http.StatusTooManyRequests, billing.CodeRateLimited)
	if num(t, e["retry_after"]) != r.Header.Get("Retry-After") {
		t.Fatalf("retry_after %v differs from Retry-After %s", e["retry_after"], r.Header.Get("Retry-After"))
	}
	// A valid key from the same address right after is not slowed, for
	// any scope, and does not lift the throttle for bad keys.
	for _, k := range []string{a.Read, a.Meter, a.Admin} {
		a.do("GET", "/api/v1/customers", k, nil).want(t, http.StatusOK)
	}
	a.do("POST", "/api/v1/customers", a.Meter, map[string]any{"external_id": "still-works"}).want(t, http.StatusCreated)
	wantThrottled(t, bad(failuresAllowed+1), "a bad key after a good one")

	t.Run("requests without a key are not attempts", func(t *testing.T) {
		b := newTestAPI(t)
		for range 3 * failuresAllowed {
			b.do("GET", "/api/v1/customers", "", nil).wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
		}
	})

	t.Run("X-Forwarded-For is not believed by default", func(t *testing.T) {
		b := newTestAPI(t)
		for i := range failuresAllowed {
			b.do("GET", "/api/v1/customers", "tsk_nope", nil, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)).
				wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
		}
		wantThrottled(t, b.do("GET", "/api/v1/customers", "tsk_nope", nil, "X-Forwarded-For", "198.51.100.7"), "a fresh X-Forwarded-For")
	})

	t.Run("behind a proxy each forwarded address has its own budget", func(t *testing.T) {
		b := newTestAPIWith(t, apiOptions{config: func(c *handlers.Config) { c.TrustProxy = true }})
		for i := range 3 * failuresAllowed {
			b.do("GET", "/api/v1/customers", "tsk_nope", nil, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)).
				wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
		}
		// IPv6 clients are counted by /64: a host holds a whole one.
		for i := range failuresAllowed {
			b.do("GET", "/api/v1/customers", "tsk_nope", nil, "X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1)).
				wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
		}
		wantThrottled(t, b.do("GET", "/api/v1/customers", "tsk_nope", nil, "X-Forwarded-For", "2001:db8:1:2:ffff::1"), "another address of the same /64")
		b.do("GET", "/api/v1/customers", "tsk_nope", nil, "X-Forwarded-For", "2001:db8:1:3::1").
			wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
	})
}

func TestFailedSignInLinksThrottled(t *testing.T) {
	a := newPortalAPI(t, func(pc *handlers.PortalConfig) { pc.Demo = true })
	a.namedCustomer(t, "alpha", "Alpha Labs")
	good := a.link(t, "alpha")
	v := newPortalVisitor(t, a)

	// A used link was real: opening it again is no guess and never throttled.
	used := a.link(t, "alpha")
	newPortalVisitor(t, a).open(used)
	for range 2 * failuresAllowed {
		if r := v.open(used); r.Status != http.StatusGone {
			t.Fatalf("used link: %d, want 410", r.Status)
		}
	}
	for i := range failuresAllowed {
		if r := v.get(fmt.Sprintf("/portal/session/madeup%026d", i)); r.Status != http.StatusNotFound {
			t.Fatalf("made-up link %d: %d, want 404", i, r.Status)
		}
	}
	r := v.get("/portal/session/madeup-one-too-many")
	wantThrottled(t, r, "one made-up link too many")
	if !strings.Contains(testID(t, r, "error-page"), "Too many") || v.cookie("tally_portal") != "" {
		t.Fatalf("throttled link: page %q, session cookie %q", testID(t, r, "error-page"), v.cookie("tally_portal"))
	}
	// Demo sign-ins as nobody count too.
	tok := v.csrf("/")
	wantThrottled(t, v.post("/demo/sign-in", url.Values{"_csrf": {tok}, "customer": {"ghost"}}), "a demo sign-in as nobody")

	// The customer's real link, from the same address, still signs in.
	if r := v.open(good); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal" {
		t.Fatalf("valid link from a throttled address: %d to %q", r.Status, r.Header.Get("Location"))
	}
	if got := v.signedInAs(); got != "Alpha Labs" {
		t.Fatalf("signed in as %q", got)
	}
}
