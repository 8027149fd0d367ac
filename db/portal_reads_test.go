package db_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

func TestFindLots(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, c.Now)
	cus := mustCustomer(t, d, "lots", 5)
	other := mustCustomer(t, d, "other", 7)
	exp := c.Now().Add(24 * time.Hour)
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: cus, Credits: billing.CreditsOf(3), Source: billing.SourcePromo,
		Reason: "Promo", ExpiresAt: &exp}); err != nil {
		t.Fatal(err)
	}
	// The promo is used up, then its date passes: it is still listed.
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: cus, Feature: "chat.request", Quantity: qty(5)}); err != nil {
		t.Fatal(err)
	}
	c.Add(48 * time.Hour)
	if _, err := d.Balance(ctx, cus); err != nil { // writes the expiry
		t.Fatal(err)
	}
	lots, err := d.FindLots(ctx, cus, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lots) != 2 {
		t.Fatalf("%d lots, want 2", len(lots))
	}
	promo, purchase := lots[0], lots[1] // newest first
	if promo.Source != billing.SourcePromo || promo.Reason != "Promo" || promo.Amount != billing.CreditsOf(3) || promo.Remaining != 0 ||
		promo.ExpiresAt == nil || !promo.ExpiresAt.Equal(exp) {
		t.Fatalf("promo lot %+v", promo)
	}
	// 5 credits: 3 from the promo (it burns first), 2 of the purchase's 5.
	if purchase.Source != billing.SourcePurchase || purchase.Remaining != billing.CreditsOf(3) {
		t.Fatalf("purchase lot %+v", purchase)
	}
	if lots, err := d.FindLots(ctx, cus, 1); err != nil || len(lots) != 1 || lots[0].ID != promo.ID {
		t.Fatalf("limit 1: %v %v", lots, err)
	}
	if lots, err := d.FindLots(ctx, other, 0); err != nil || len(lots) != 1 || lots[0].Amount != billing.CreditsOf(7) {
		t.Fatalf("other customer's lots: %v %v", lots, err)
	}
	if lots, err := d.FindLots(ctx, "cus_nobody", 0); err != nil || len(lots) != 0 {
		t.Fatalf("unknown customer: %v %v", lots, err)
	}
	mustVerify(t, d)
}

func TestFindUsageFacets(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, c.Now)
	cus := mustCustomer(t, d, "facets", 10000)
	other := mustCustomer(t, d, "facets-other", 100)
	debit := func(customer, feature string, meta map[string]string) {
		t.Helper()
		if _, err := d.Debit(ctx, billing.UsageRequest{Customer: customer, Feature: feature, Quantity: qty(1), Metadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	debit(cus, "chat.request", map[string]string{"user": "bob", "project": "apollo"})
	c.Add(24 * time.Hour)
	debit(cus, "image.generate", map[string]string{"user": "alice"})
	debit(cus, "chat.request", nil)
	debit(other, "gpt-4o.tokens", map[string]string{"secret": "theirs", "user": "mallory"})

	f, err := d.FindUsageFacets(ctx, cus)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Features, []string{"chat.request", "image.generate"}) {
		t.Fatalf("features %v", f.Features)
	}
	if len(f.Tags) != 2 || !slices.Equal(f.Tags["user"], []string{"alice", "bob"}) || !slices.Equal(f.Tags["project"], []string{"apollo"}) {
		t.Fatalf("tags %v", f.Tags)
	}

	t.Run("values per tag are bounded", func(t *testing.T) {
		many := mustCustomer(t, d, "many", 10000)
		var reqs []billing.UsageRequest
		for i := range 150 {
			q := billing.QuantityOf(1)
			reqs = append(reqs, billing.UsageRequest{Customer: many, Feature: "chat.request", Quantity: &q,
				Metadata: map[string]string{"user": fmt.Sprintf("u%03d", i)}})
		}
		if _, errs := d.DebitMany(ctx, reqs); slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
			t.Fatal(errs)
		}
		f, err := d.FindUsageFacets(ctx, many)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Tags["user"]) != 100 || f.Tags["user"][0] != "u000" {
			t.Fatalf("%d values, first %q", len(f.Tags["user"]), f.Tags["user"][0])
		}
	})
	t.Run("a customer without usage", func(t *testing.T) {
		f, err := d.FindUsageFacets(ctx, mustCustomer(t, d, "idle", 0))
		if err != nil || len(f.Features) != 0 || len(f.Tags) != 0 {
			t.Fatalf("%+v %v", f, err)
		}
	})
}
