package main

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestDemoPurchasesArePaidTopUps: with sandbox payments the demo's
// purchases are top-ups paid in the sandbox (revenue for the finance page,
// receipts for the portal), granting what the history says; the history's
// notifications count as read, so a visitor's bell shows only what is new
// (Lumen Studio's low balance).
func TestDemoPurchasesArePaidTopUps(t *testing.T) {
	ctx := context.Background()
	d := seededDemo(t)
	pb, err := d.CurrentPriceBook(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, dc := range demoCustomers() {
		c, err := d.FindCustomer(ctx, dc.in.ExternalID)
		if err != nil {
			t.Fatal(err)
		}
		tus, err := d.FindTopUps(ctx, c.ID, 50)
		if err != nil {
			t.Fatal(err)
		}
		var wantN int
		var wantAmount, gotAmount int64
		for _, g := range dc.grants {
			if p, ok := pb.Pack(g.pack); ok {
				wantN++
				wantAmount += p.Price.Amount
			}
		}
		for _, tu := range tus {
			if tu.Status != billing.TopUpSucceeded || tu.Provider != "sandbox" || tu.Lot == "" {
				t.Errorf("%s: top-up %+v", dc.in.Name, tu)
			}
			gotAmount += tu.Price.Amount
		}
		if len(tus) != wantN || wantN == 0 || gotAmount != wantAmount {
			t.Errorf("%s: %d top-ups paying %d, want %d paying %d", dc.in.Name, len(tus), gotAmount, wantN, wantAmount)
		}
		unread, err := d.UnreadNotifications(ctx, c.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"lumen-studio": 1}[dc.in.ExternalID]; unread != want {
			t.Errorf("%s: %d unread notifications, want %d", dc.in.Name, unread, want)
		}
	}
}

// TestDemoAuditLog: the demo's history reads as a real one in the audit
// log: every change names who made it (the usage its API key, the grants
// the demo), and the customers' histories are one timeline, so the
// grants, listed newest first, go back in time.
func TestDemoAuditLog(t *testing.T) {
	ctx := context.Background()
	d := seededDemo(t)
	f := billing.AuditFilter{Limit: 100}
	n, kinds := 0, map[string]int{}
	for {
		recs, next, err := d.FindAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			n++
			kinds[r.Actor.Kind]++
			if r.Actor.Kind == "" {
				t.Fatalf("%s %s at %s names nobody", r.ID, r.Action, r.At)
			}
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if n < 5000 || kinds[billing.ActorAPIKey] == 0 || kinds[billing.ActorSystem] == 0 || kinds[billing.ActorCustomer] == 0 {
		t.Fatalf("%d records by %v", n, kinds)
	}
	grants, _, err := d.FindAudit(ctx, billing.AuditFilter{Action: "ledger.grant", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var customers = map[string]bool{}
	for i, g := range grants {
		customers[g.Customer] = true
		if i > 0 && g.At.After(grants[i-1].At) {
			t.Fatalf("grant %d (%s, %s) is newer than the one listed before it (%s)", i, g.At, g.Customer, grants[i-1].At)
		}
	}
	if len(grants) < 10 || len(customers) != 3 {
		t.Fatalf("%d grants for %d customers", len(grants), len(customers))
	}
}

// seededDemo is a new SQLite database seeded as `serve --demo` seeds it,
// with sandbox payments.
func seededDemo(t *testing.T) *db.DB {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "demo.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := seedDemo(ctx, d, io.Discard, true); err != nil {
		t.Fatal(err)
	}
	return d
}
