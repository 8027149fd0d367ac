package handlers

import (
	"fmt"
	"testing"
	"time"
)

// TestFailThrottleBounded checks the throttle's memory stays bounded under
// failures from ever new addresses, that addresses whose bucket refilled
// are the ones forgotten, and that a throttled address is remembered.
func TestFailThrottleBounded(t *testing.T) {
	var f failThrottle
	now := time.Now()
	for range authFailBurst {
		f.fail("attacker", now)
	}
	if ok, wait := f.fail("attacker", now); ok || wait <= 0 {
		t.Fatalf("attacker after %d failures: ok %v, wait %v", authFailBurst, ok, wait)
	}
	// Many addresses failing once each, long enough ago that their buckets
	// have refilled by the time the map is full.
	for i := range authFailAddrs - 1 {
		f.fail(fmt.Sprint("idle-", i), now)
	}
	later := now.Add(authFailEvery)
	f.fail("newcomer", later)
	if n := len(f.m); n > authFailAddrs {
		t.Fatalf("%d addresses remembered, want at most %d", n, authFailAddrs)
	}
	// One token came back in authFailEvery: one more failure passes, the
	// next is refused, so the attacker's bucket was kept.
	f.fail("attacker", later)
	if ok, _ := f.fail("attacker", later); ok {
		t.Fatal("the throttled address was forgotten when idle ones could go")
	}
	// A flood of fresh addresses that all keep failing: still bounded.
	for i := range 3 * authFailAddrs {
		f.fail(fmt.Sprint("flood-", i), later)
	}
	if n := len(f.m); n > authFailAddrs {
		t.Fatalf("%d addresses remembered after a flood, want at most %d", n, authFailAddrs)
	}
}
