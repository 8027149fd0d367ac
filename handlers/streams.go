package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// streamSet counts the open live balance streams, per session and in all,
// so one session (or many) cannot hold thousands of connections and
// goroutines open, and ends a session's streams when the session ends.
type streamSet struct {
	mu        sync.Mutex
	total     int
	bySession map[string]map[*liveStream]bool
}

// liveStream is one open GET /portal/events.
type liveStream struct {
	session, customer string
	done              chan struct{} // closed when the session ends here
	ended             bool
}

// retryStreamsAfter is the Retry-After of a refused stream, in seconds.
const retryStreamsAfter = 30

// open registers a stream of the session, unless the session already has
// perSession open or the server max: too_many_streams.
func (r *streamSet) open(session, customer string, perSession, max int) (*liveStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.total >= max {
		return nil, billing.Errorf(billing.CodeTooManyStreams,
			"The server has %d live balance streams open, its limit. The balance still shows on each page; retry in %d s.", max, retryStreamsAfter).
			With("retry_after", retryStreamsAfter)
	}
	if len(r.bySession[session]) >= perSession {
		return nil, billing.Errorf(billing.CodeTooManyStreams,
			"This session already has %d live balance streams open, its limit. Close other tabs of the billing portal.", perSession).
			With("retry_after", retryStreamsAfter)
	}
	st := &liveStream{session: session, customer: customer, done: make(chan struct{})}
	if r.bySession == nil {
		r.bySession = map[string]map[*liveStream]bool{}
	}
	if r.bySession[session] == nil {
		r.bySession[session] = map[*liveStream]bool{}
	}
	r.bySession[session][st] = true
	r.total++
	return st, nil
}

// close unregisters a stream that has ended.
func (r *streamSet) close(st *liveStream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.bySession[st.session]; m[st] {
		delete(m, st)
		r.total--
		if len(m) == 0 {
			delete(r.bySession, st.session)
		}
	}
}

// endSession ends the streams of a session (signed out, or replaced by a
// sign-in in the same browser).
func (r *streamSet) endSession(session string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for st := range r.bySession[session] {
		st.end()
	}
}

// endCustomer ends the streams of a customer's sessions but one (a newly
// opened sign-in link replaced them).
func (r *streamSet) endCustomer(customer, except string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for session, m := range r.bySession {
		if session == except {
			continue
		}
		for st := range m {
			if st.customer == customer {
				st.end()
			}
		}
	}
}

// end closes done once; the caller holds the set's lock.
func (st *liveStream) end() {
	if !st.ended {
		st.ended = true
		close(st.done)
	}
}

// liveStreamSpec is what a live balance stream sends and when it ends.
type liveStreamSpec struct {
	// data is the body of a balance event (HTML or JSON), read now.
	data func(ctx context.Context) (string, error)
	// live is asked at each keepalive: false ends the stream (a session
	// ended elsewhere, a revoked key).
	live func(ctx context.Context) bool
	// ends, when not nil, ends the stream with an "expired" event.
	ends <-chan time.Time
}

// serveStream serves a registered stream of a customer's balance as
// server-sent events: one balance event now and one after every committed
// change to the wallet, a keepalive every StreamKeepAlive, until the
// client goes, the server drains, the stream is ended here (st.done) or
// the spec says it is over. Used by the portal (GET /portal/events) and
// the balance widget (its events, HTML or JSON).
func (s *Server) serveStream(c echo.Context, st *liveStream, spec liveStreamSpec) error {
	ctx := c.Request().Context()
	ch, stop := s.portal.Subscribe(st.customer)
	defer stop()
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The server's write timeout is for whole responses, not a stream: each
	// write gets its own deadline instead.
	rc := http.NewResponseController(w.Writer)
	write := func(msg string) error {
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := io.WriteString(w, msg); err != nil {
			return err
		}
		return rc.Flush()
	}
	send := func() error {
		d, err := spec.data(ctx)
		if err != nil {
			return err
		}
		var ev strings.Builder
		ev.WriteString("event: balance\n")
		for _, line := range strings.Split(d, "\n") {
			fmt.Fprintf(&ev, "data: %s\n", line)
		}
		ev.WriteString("\n")
		return write(ev.String())
	}
	if err := send(); err != nil {
		return nil
	}
	keepalive := time.NewTicker(s.cfg.Portal.StreamKeepAlive)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.quit:
			return nil
		case <-st.done: // signed out or replaced in this process
			return nil
		case <-spec.ends:
			write("event: expired\ndata: {}\n\n")
			return nil
		case <-ch:
			if err := send(); err != nil {
				return nil
			}
		case <-keepalive.C:
			if spec.live != nil && !spec.live(ctx) {
				return nil
			}
			if err := write(": keepalive\n\n"); err != nil {
				return nil
			}
		}
	}
}
