package handlers

import (
	"sync"

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
