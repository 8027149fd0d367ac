package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// TestMigratePlan: three Pro subscribers on version 2 ($40.00, 5,000
// credits a month); one cancels at the period's end. Version 3 makes Pro
// $45.00 with 6,000 credits. The preview counts two subscribers (one
// skipped): +$5.00 and +1,000 credits each per period, +$10.00 MRR and
// +2,000 credits in all. The migration changes nothing this period; the
// same confirmation again moves nobody more (and writes no second audit
// entry); a new confirmation finds nobody left. At the next renewal the two
// are billed $45.00 and granted 6,000 credits on version 3.
func TestMigratePlan(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	var ids []string
	for _, ext := range []string{"m1", "m2", "m3"} {
		id := mustCustomer(t, d, ext, 0)
		if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "pro", Actor: billing.CustomerActor(id)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := d.CancelSubscription(ctx, ids[2], true, billing.CustomerActor(ids[2])); err != nil {
		t.Fatal(err)
	}
	pb := planPriceBook()
	pb.Plans[1].Price.Amount, pb.Plans[1].Credits = 4500, billing.CreditsOf(6000)
	if _, _, err := d.PublishPriceBook(ctx, pb); err != nil {
		t.Fatal(err)
	}
	im, err := d.PlanMigrationImpact(ctx, "pro")
	if err != nil {
		t.Fatal(err)
	}
	if im.Version != 3 || im.Subscribers != 2 || im.Skipped != 1 || len(im.Groups) != 1 || im.Groups[0].Version != 2 ||
		im.Groups[0].Old.Price.Amount != 4000 || im.Groups[0].Revenue.Amount != 1000 || im.Groups[0].Credits != billing.CreditsOf(2000) ||
		im.MRR.Amount != 1000 || im.Credits != billing.CreditsOf(2000) {
		t.Fatalf("impact = %+v", im)
	}
	admin := billing.AdminActor("adm_1")
	if _, err := d.MigratePlan(ctx, "pro", 2, "mig_a", admin); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("a migration to a version that is not the current one: %v", err)
	}
	mig, err := d.MigratePlan(ctx, "pro", 3, "mig_a", admin)
	if err != nil {
		t.Fatal(err)
	}
	if mig.Replayed || len(mig.Moved) != 2 {
		t.Fatalf("migration = %+v", mig)
	}
	for _, id := range ids[:2] {
		sub, _ := d.FindSubscription(ctx, id)
		if sub.PriceVersion != 2 || sub.NextPlan != "pro" || sub.NextPriceVersion != 3 {
			t.Fatalf("after the migration, mid-period: %+v", sub)
		}
		mustBalance(t, d, id, 5000)
	}
	again, err := d.MigratePlan(ctx, "pro", 3, "mig_a", admin)
	if err != nil || !again.Replayed || len(again.Moved) != 2 {
		t.Fatalf("the same confirmation again: %+v, %v", again, err)
	}
	if _, err := d.MigratePlan(ctx, "pro", 3, "mig_b", admin); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("a second migration with nobody left: %v", err)
	}
	recs, _, err := d.FindAudit(ctx, billing.AuditFilter{Action: billing.AuditPlanMigrated, Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Actor != admin {
		t.Fatalf("audit = %+v, %v; want one entry by the admin", recs, err)
	}
	// A customer's "keep my plan" does not take the migration back.
	if _, err := d.ResumeSubscription(ctx, ids[0], billing.CustomerActor(ids[0])); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("resume took back a migration: %v", err)
	}

	if _, err := d.AdvanceSandbox(ctx, 31*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:2] {
		sub, _ := d.FindSubscription(ctx, id)
		if sub.PriceVersion != 3 || sub.NextPlan != "" {
			t.Fatalf("after the renewal: %+v", sub)
		}
		invs, err := d.ListSubscriptionInvoices(ctx, id, 1)
		if err != nil || len(invs) != 1 || invs[0].Amount.Amount != 4500 || invs[0].Credits != billing.CreditsOf(6000) {
			t.Fatalf("the renewal's invoice = %+v, %v", invs, err)
		}
	}
	if sub, _ := d.FindSubscription(ctx, ids[2]); sub.Status != billing.SubCanceled {
		t.Fatalf("the canceled subscriber: %+v", sub)
	}
}
