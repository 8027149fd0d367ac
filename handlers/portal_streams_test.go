package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers"
)

// openStream opens an event stream over its own connection and waits for
// its first balance event. events is nil when the stream was refused: res
// is the answer, raw its body.
func openStream(t *testing.T, v *portalVisitor) (events <-chan sseEvent, cancel context.CancelFunc, res *http.Response, raw []byte) {
	t.Helper()
	res, cancel = v.stream("/portal/events")
	if res.StatusCode != http.StatusOK {
		raw, _ = io.ReadAll(res.Body)
		return nil, cancel, res, raw
	}
	events = readEvents(res)
	nextBalance(t, events, 5*time.Second)
	return events, cancel, res, nil
}

// wantRefused checks a 429 too_many_streams answer in JSON with Retry-After.
func wantRefused(t *testing.T, res *http.Response, raw []byte, what string) {
	t.Helper()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("%s: %d, want 429", what, res.StatusCode)
	}
	var body struct {
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Error.Type != billing.CodeTooManyStreams || body.Error.Message == "" {
		t.Fatalf("%s: body %s, want a too_many_streams error", what, raw)
	}
	if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("%s: Retry-After %q", what, res.Header.Get("Retry-After"))
	}
}

// waitEnded waits for a stream to end (its channel closes).
func waitEnded(t *testing.T, events <-chan sseEvent, within time.Duration, what string) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s: the stream is still open after %v", what, within)
		}
	}
}

// TestPortalEventStreamsBounded opens real streams over real connections:
// a session gets 4, the server its maximum (6 here), the excess is refused
// with 429 too_many_streams while the server keeps answering, and streams
// end with their session.
func TestPortalEventStreamsBounded(t *testing.T) {
	a := newPortalAPI(t, func(pc *handlers.PortalConfig) {
		pc.MaxStreams, pc.StreamKeepAlive = 6, 200*time.Millisecond
	})
	a.namedCustomer(t, "alpha", "Alpha Labs")
	a.namedCustomer(t, "bravo", "Bravo Corp")
	a.namedCustomer(t, "charlie", "Charlie Inc")
	v := newPortalVisitor(t, a)
	v.signIn("alpha")
	w := newPortalVisitor(t, a)
	w.signIn("bravo")

	var alphaStreams []<-chan sseEvent
	var alphaCancel []context.CancelFunc
	for i := range 4 {
		ev, cancel, res, raw := openStream(t, v)
		if ev == nil {
			t.Fatalf("stream %d of a session: %d %s", i+1, res.StatusCode, raw)
		}
		alphaStreams, alphaCancel = append(alphaStreams, ev), append(alphaCancel, cancel)
	}
	_, _, res, raw := openStream(t, v)
	wantRefused(t, res, raw, "a session's fifth stream")

	var bravoStreams []<-chan sseEvent
	for i := range 2 {
		ev, _, res, raw := openStream(t, w)
		if ev == nil {
			t.Fatalf("another session's stream %d: %d %s", i+1, res.StatusCode, raw)
		}
		bravoStreams = append(bravoStreams, ev)
	}
	_, _, res, raw = openStream(t, w)
	wantRefused(t, res, raw, "a stream over the server's maximum")

	// The server still answers everything else.
	a.do("GET", "/healthz", "", nil).want(t, http.StatusOK)
	v.get("/portal").want(t, http.StatusOK)
	a.do("GET", "/api/v1/customers", a.Read, nil).want(t, http.StatusOK)

	// A stream that ends gives its place back.
	alphaCancel[0]()
	waitEnded(t, alphaStreams[0], 5*time.Second, "a cancelled stream")
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev, _, res, raw := openStream(t, w)
		if ev != nil {
			bravoStreams = append(bravoStreams, ev)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the place of a closed stream is not given back: %d %s", res.StatusCode, raw)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Signing out ends the session's streams at once.
	if r := v.post("/portal/sign-out", url.Values{"_csrf": {v.csrf("/portal")}}); r.Status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", r.Status)
	}
	for _, ev := range alphaStreams[1:] {
		waitEnded(t, ev, time.Second, "a stream of a signed-out session")
	}

	// Revoked elsewhere (the store, as the CLI does): the streams end at
	// their next keepalive.
	if _, err := a.DB.EndCustomerSessions(context.Background(), "bravo", time.Now(), billing.SessionRevoked); err != nil {
		t.Fatal(err)
	}
	for _, ev := range bravoStreams {
		waitEnded(t, ev, 2*time.Second, "a stream of a revoked session")
	}

	// Every place is free again.
	x := newPortalVisitor(t, a)
	x.signIn("charlie")
	for i := range 4 {
		if ev, _, res, raw := openStream(t, x); ev == nil {
			t.Fatalf("stream %d after the others ended: %d %s", i+1, res.StatusCode, raw)
		}
	}
}
