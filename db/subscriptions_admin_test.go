package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestGrantFreePeriodFrom: the period the admin saw is granted once; the
// same confirmation again writes nothing; a stale one is a conflict.
func TestGrantFreePeriodFrom(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 0)
	start, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "pro"})
	if err != nil {
		t.Fatal(err)
	}
	admin := billing.Actor{Kind: billing.ActorAdmin, ID: "adm_1"}
	end := start.Subscription.CurrentPeriodEnd
	res, err := d.GrantFreePeriodFrom(ctx, id, end, admin)
	if err != nil || res.Replayed || !res.Subscription.CurrentPeriodEnd.Equal(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("free period: %+v, %v", res, err)
	}
	mustBalance(t, d, id, 10000)
	res, err = d.GrantFreePeriodFrom(ctx, id, end, admin)
	if err != nil || !res.Replayed {
		t.Fatalf("the same period again: %+v, %v", res, err)
	}
	mustBalance(t, d, id, 10000)
	if _, err := d.GrantFreePeriodFrom(ctx, id, end.Add(-time.Hour), admin); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("a stale period: %v, want conflict", err)
	}
	if _, err := d.GrantFreePeriodFrom(ctx, mustCustomer(t, d, "c2", 0), end, admin); billing.ErrorCode(err) != billing.CodeNotFound {
		t.Fatalf("no subscription: %v, want not_found", err)
	}
	subs, err := d.ListPlanSubscribers(ctx, "pro", 10)
	if err != nil || len(subs) != 1 || subs[0].Customer != id || subs[0].ExternalID != "c1" || subs[0].Status != "active" ||
		!subs[0].PeriodEnd.Equal(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("subscribers: %+v, %v", subs, err)
	}
	mustVerify(t, d)
}

// TestFreePeriodKeepsTheCurrentPeriod: a free period given mid-period
// leaves the current period's credits to their own end (Starter keeps at
// most 500 rolled over: closing the period early would expire 500 of its
// 1,000 at once); at that end the rollover rule applies as usual.
func TestFreePeriodKeepsTheCurrentPeriod(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 0)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "starter"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GrantFreePeriod(ctx, id, billing.Actor{Kind: billing.ActorAdmin, ID: "adm_1"}); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, d, id, 2000)
	mustVerify(t, d)
}
