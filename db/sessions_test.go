package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

func TestCustomerSessions(t *testing.T) {
	d := mustOpenDB(t, nil)
	ctx := context.Background()
	alpha := mustCustomer(t, d, "alpha", 0)
	bravo := mustCustomer(t, d, "bravo", 0)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	start := func(cid string, replace bool) string {
		t.Helper()
		id, err := d.StartCustomerSession(ctx, billing.CustomerSession{CustomerID: cid, ReturnURL: "https://app.example/", Flow: "top_up",
			CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(12 * time.Hour)}, replace)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	find := func(id string) billing.CustomerSession {
		t.Helper()
		s, err := d.FindCustomerSession(ctx, id)
		if err != nil {
			t.Fatalf("FindCustomerSession: %v", err)
		}
		return s
	}

	a1 := start(alpha, false)
	if len(a1) < 40 {
		t.Fatalf("session id %q is too short to be unguessable", a1)
	}
	s := find(a1)
	if s.CustomerID != alpha || s.ReturnURL != "https://app.example/" || s.Flow != "top_up" || !s.CreatedAt.Equal(now) ||
		!s.ExpiresAt.Equal(now.Add(12*time.Hour)) || s.EndedAt != nil || !s.Live(now, 30*time.Minute) {
		t.Fatalf("session %+v", s)
	}
	for _, id := range []string{"", "nope", a1 + "x", a1[:len(a1)-1]} {
		if _, err := d.FindCustomerSession(ctx, id); billing.ErrorCode(err) != billing.CodeNotFound {
			t.Fatalf("FindCustomerSession(%q): %v, want not_found", id, err)
		}
	}

	t.Run("idle and maximum age", func(t *testing.T) {
		if !s.Live(now.Add(30*time.Minute), 30*time.Minute) || s.Live(now.Add(30*time.Minute+time.Second), 30*time.Minute) {
			t.Fatal("idle timeout not at 30 min")
		}
		if err := d.TouchCustomerSession(ctx, a1, now.Add(20*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := d.TouchCustomerSession(ctx, a1, now.Add(10*time.Minute)); err != nil { // never back
			t.Fatal(err)
		}
		s := find(a1)
		if !s.LastSeenAt.Equal(now.Add(20*time.Minute)) || !s.Live(now.Add(45*time.Minute), 30*time.Minute) {
			t.Fatalf("after a touch at 20 min: last seen %v", s.LastSeenAt)
		}
		if s.Live(now.Add(12*time.Hour), 24*time.Hour) {
			t.Fatal("live at its maximum age")
		}
	})

	t.Run("sign-out ends one session", func(t *testing.T) {
		a2 := start(alpha, false)
		if err := d.EndCustomerSession(ctx, a2, now.Add(time.Minute), billing.SessionSignedOut); err != nil {
			t.Fatal(err)
		}
		s := find(a2)
		if s.EndedAt == nil || !s.EndedAt.Equal(now.Add(time.Minute)) || s.EndReason != billing.SessionSignedOut || s.Live(now.Add(time.Minute), time.Hour) {
			t.Fatalf("signed-out session %+v", s)
		}
		// Ending it again, or touching it, changes nothing.
		d.EndCustomerSession(ctx, a2, now.Add(time.Hour), billing.SessionRevoked)
		d.TouchCustomerSession(ctx, a2, now.Add(time.Hour))
		if s := find(a2); !s.EndedAt.Equal(now.Add(time.Minute)) || s.EndReason != billing.SessionSignedOut || !s.LastSeenAt.Equal(now) {
			t.Fatalf("ended session changed: %+v", s)
		}
		if !find(a1).Live(now.Add(time.Minute), time.Hour) {
			t.Fatal("signing one session out ended another")
		}
	})

	t.Run("a replacing sign-in ends the customer's others", func(t *testing.T) {
		b1 := start(bravo, false)
		a3 := start(alpha, true)
		if s := find(a1); s.EndedAt == nil || s.EndReason != billing.SessionReplaced {
			t.Fatalf("older session after a replacing sign-in: %+v", s)
		}
		if !find(a3).Live(now, time.Hour) || !find(b1).Live(now, time.Hour) {
			t.Fatal("the new session, or another customer's, is not live")
		}
	})

	t.Run("revoking every session of a customer", func(t *testing.T) {
		a4 := start(alpha, false)
		b2 := start(bravo, false)
		n, err := d.EndCustomerSessions(ctx, "alpha", now.Add(time.Minute), billing.SessionRevoked)
		if err != nil || n != 2 { // a3 and a4
			t.Fatalf("EndCustomerSessions: %d, %v; want 2", n, err)
		}
		if s := find(a4); s.EndReason != billing.SessionRevoked {
			t.Fatalf("revoked session %+v", s)
		}
		if !find(b2).Live(now, time.Hour) {
			t.Fatal("revoking alpha's sessions ended bravo's")
		}
		if n, err := d.EndCustomerSessions(ctx, alpha, now, billing.SessionRevoked); err != nil || n != 0 {
			t.Fatalf("revoking again: %d, %v; want 0", n, err)
		}
		if _, err := d.EndCustomerSessions(ctx, "ghost", now, billing.SessionRevoked); billing.ErrorCode(err) != billing.CodeCustomerNotFound {
			t.Fatalf("revoking an unknown customer: %v", err)
		}
	})

	t.Run("sweep", func(t *testing.T) {
		late := start(alpha, false)
		n, err := d.SweepCustomerSessions(ctx, now.Add(12*time.Hour))
		if err != nil || n == 0 {
			t.Fatalf("sweep: %d, %v", n, err)
		}
		if _, err := d.FindCustomerSession(ctx, late); billing.ErrorCode(err) != billing.CodeNotFound {
			t.Fatalf("a session past its maximum age is still stored: %v", err)
		}
		kept := start(alpha, false)
		if n, _ := d.SweepCustomerSessions(ctx, now.Add(12*time.Hour-time.Second)); n != 0 {
			t.Fatalf("sweep before the maximum age removed %d", n)
		}
		find(kept)
	})
}
