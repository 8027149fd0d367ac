package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestCLISandboxAdvance lives through a Starter period from the command
// line: 500 of 2,000 credits used, 1,000 roll over (the cap), 2,000 renew;
// advancing again renews nothing twice.
func TestCLISandboxAdvance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	env := map[string]string{"TALLY_DB": path}
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PublishPriceBook(ctx, DemoPriceBook()); err != nil {
		t.Fatal(err)
	}
	c, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: c.ID, Plan: "starter"}); err != nil {
		t.Fatal(err)
	}
	q := billing.QuantityOf(100)
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: c.ID, Feature: "image.generate", Quantity: &q}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	for _, args := range [][]string{{"sandbox"}, {"sandbox", "rewind"}, {"sandbox", "advance", "--days", "-1"}, {"sandbox", "advance", "x"}} {
		if _, errs, code := runCLI(t, env, args...); code != exitUsage {
			t.Fatalf("%v: exit %d (%s), want %d", args, code, errs, exitUsage)
		}
	}
	out, errs, code := runCLI(t, env, "sandbox", "advance", "--days", "31")
	if code != 0 || !strings.Contains(out, "Renewed 1 period(s)") {
		t.Fatalf("advance: %d %q %q", code, out, errs)
	}
	out, _, code = runCLI(t, env, "sandbox", "advance", "--days", "0")
	if code != 0 || !strings.Contains(out, "Renewed 0 period(s)") {
		t.Fatalf("advance again: %d %q", code, out)
	}
	d, err = db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := d.Balance(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if b.Balance != billing.CreditsOf(3000) {
		t.Fatalf("balance after the renewal = %s, want 3000 (1,000 rolled over + 2,000)", b.Balance)
	}
}
