package db

import "sync"

// Subscribers hear about committed changes to a customer's wallet, so pages
// can show the new balance at once (server-sent events). Only writes made by
// this process are announced; pages poll as a fallback for the rest.
type subscribers struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]bool
}

// Subscribe returns a channel that receives a signal (coalesced: at most one
// pending) after each commit that changes the customer's wallet, and a func
// to stop.
func (d *DB) Subscribe(customerID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s := &d.subs
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[string]map[chan struct{}]bool{}
	}
	if s.subs[customerID] == nil {
		s.subs[customerID] = map[chan struct{}]bool{}
	}
	s.subs[customerID][ch] = true
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs[customerID], ch)
		if len(s.subs[customerID]) == 0 {
			delete(s.subs, customerID)
		}
		s.mu.Unlock()
	}
}

func (d *DB) notify(customers map[string]bool) {
	s := &d.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.subs) == 0 {
		return
	}
	for c := range customers {
		for ch := range s.subs[c] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
