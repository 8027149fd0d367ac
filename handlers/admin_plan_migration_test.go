package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
)

// TestAdminPlanMigration: three Pro subscribers on version 2 ($49.00,
// 6,000 credits a month), one ending at its period's end. Version 3 makes
// Pro $59.00 with 7,000 credits. The plan's page shows the impact, hand
// computed: 2 subscribers, +$20.00 and +2,000 credits per period, MRR
// +$20.00, one staying. Support sees it without the form and cannot post;
// an admin reviews (nothing written), confirms (once: the same
// confirmation again migrates nobody more), and the audit log has one
// entry. At the next renewal the two pay $59.00 and get 7,000 credits.
func TestAdminPlanMigration(t *testing.T) {
	p, a := planAdminAPI(t)
	ctx := context.Background()
	var ids []string
	for _, ext := range []string{"m1", "m2", "m3"} {
		id, _ := p.shopper(t, ext)
		subscribe(t, p, id, "pro")
		ids = append(ids, id)
	}
	if _, err := p.DB.CancelSubscription(ctx, ids[2], true, billing.CustomerActor(ids[2])); err != nil {
		t.Fatal(err)
	}
	pb := planBook()
	pb.Plans[1].Price.Amount, pb.Plans[1].Credits = 59_00, billing.CreditsOf(7000)
	if _, _, err := p.DB.PublishPriceBook(ctx, pb); err != nil {
		t.Fatal(err)
	}
	const page = "/admin/plans/pro"

	sv := a.signIn(t, "support@staff.test")
	r := sv.get(page).want(t, http.StatusOK)
	for id, want := range map[string]string{"migration-mrr": "+$20.00", "migration-subscribers": "2 subscribers",
		"migration-revenue": "Revenue +$20.00", "migration-credits": "Credits +2,000"} {
		if got := strings.Join(strings.Fields(testID(t, r, id)), " "); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if got := testID(t, r, "migration-skipped"); !strings.HasPrefix(got, "1 more stay") {
		t.Errorf("skipped: %q", got)
	}
	if doc(t, r).Find(`[data-testid="migration-form"]`).Length() != 0 {
		t.Fatal("support is offered the migration")
	}
	if r := sv.adminPost(page, page+"/migrate", nil); r.Status != http.StatusForbidden {
		t.Fatalf("support's migration: %d, want 403", r.Status)
	}

	v := a.signIn(t, "admin@staff.test")
	r = v.get(page).want(t, http.StatusOK)
	if doc(t, r).Find(`[data-testid="migration-form"]`).Length() != 1 {
		t.Fatal("no migration form for an admin")
	}
	r = v.adminPost(page, page+"/migrate", nil).want(t, http.StatusOK)
	if got := testID(t, r, "confirm-text"); got != "Move 2 subscribers of Pro on older versions to price book version 3 at their next renewal: "+
		"from then they pay $59.00 every month for 7,000 credits. Nothing changes in their current period, and nothing is charged now." {
		t.Fatalf("confirmation: %q", got)
	}
	if sub, _ := p.DB.FindSubscription(ctx, ids[0]); sub.NextPlan != "" {
		t.Fatal("the confirmation wrote")
	}
	// Each group's line is the change per period, signed and labelled (it
	// read "$0.00 · 0 credits per period", like a price).
	if doc(t, r).Find(`[data-testid="confirm-group-change"]`).Length() == 0 {
		t.Error("the confirmation says no group's change per period")
	}
	doc(t, r).Find(`[data-testid="confirm-group-change"]`).Each(func(_ int, s *goquery.Selection) {
		if txt := s.Text(); !strings.HasPrefix(txt, "Change per period: ") && txt != "No change per period" {
			t.Errorf("a group's change reads %q", txt)
		}
	})
	form := formValues(t, r, `[data-testid="confirm"] form`)
	if loc := v.location(v.post(page+"/migrate", form), http.StatusSeeOther); loc != page {
		t.Fatalf("after migrating: %s", loc)
	}
	r = v.get(page).want(t, http.StatusOK)
	if f := testID(t, r, "flash"); !strings.Contains(f, "2 subscribers move to version 3 at their next renewal") {
		t.Fatalf("flash: %q", f)
	}
	if doc(t, r).Find(`[data-testid="migration-form"]`).Length() != 0 {
		t.Fatal("the migration is offered again with nobody left")
	}
	// The subscribers list says who moves, to what and when.
	var moves []string
	doc(t, r).Find(`[data-testid="subscriber-moves"]`).Each(func(_ int, s *goquery.Selection) {
		moves = append(moves, strings.TrimSpace(s.Text()))
	})
	if len(moves) != 2 || !strings.HasPrefix(moves[0], "to v3 on ") || moves[0] != moves[1] {
		t.Errorf("moves shown in the subscribers list: %q, want two 'to v3 on <renewal>'", moves)
	}
	v.location(v.post(page+"/migrate", form), http.StatusSeeOther)
	if f := testID(t, v.get(page), "flash"); !strings.Contains(f, "made already") {
		t.Fatalf("flash after the same confirmation: %q", f)
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditPlanMigrated, Limit: 10}); len(recs) != 1 || recs[0].Actor != billing.AdminActor(a.Admin.ID) {
		t.Fatalf("audit = %+v", recs)
	}
	for _, id := range ids[:2] {
		if sub, _ := p.DB.FindSubscription(ctx, id); sub.PriceVersion == 3 || sub.NextPriceVersion != 3 {
			t.Fatalf("mid-period: %+v", sub)
		}
	}
	if _, err := p.DB.AdvanceSandbox(ctx, 31*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:2] {
		invs, err := p.DB.ListSubscriptionInvoices(ctx, id, 1)
		if err != nil || len(invs) != 1 || invs[0].Amount.Amount != 59_00 || invs[0].Credits != billing.CreditsOf(7000) {
			t.Fatalf("the renewal after the migration: %+v, %v", invs, err)
		}
	}
}

// TestAdminPlanMigrationStripe: a Stripe subscriber's migration changes
// its price at Stripe (stripe-mock) from the next invoice; with Stripe
// unreachable, Tally's migration stands and the flash says to press the
// confirmation again, which retries Stripe and migrates nobody more.
func TestAdminPlanMigrationStripe(t *testing.T) {
	for _, reachable := range []bool{true, false} {
		t.Run(map[bool]string{true: "stripe-mock", false: "unreachable"}[reachable], func(t *testing.T) {
			var p *payAPI
			if reachable {
				p = newStripeMockAPI(t)
			} else {
				p = newStripeAPI(t)
			}
			p, a := planAdminAPIWith(t, p)
			ctx := context.Background()
			id := p.namedCustomer(t, "acme", "Acme")
			p1 := p.Clock.Now().UTC().Truncate(time.Second)
			p.deliver(t, stripeEvent("evt_inv1", "invoice.paid", stripeInvoice("in_1", "sub_M", id, "subscription_create", p1, p1.AddDate(0, 1, 0), 1900, 1, "null")))
			pb := planBook()
			pb.Plans[0].Price.Amount = 24_00
			if _, _, err := p.DB.PublishPriceBook(ctx, pb); err != nil {
				t.Fatal(err)
			}
			const page = "/admin/plans/starter"
			v := a.signIn(t, "admin@staff.test")
			form := formValues(t, v.adminPost(page, page+"/migrate", nil).want(t, http.StatusOK), `[data-testid="confirm"] form`)
			v.location(v.post(page+"/migrate", form), http.StatusSeeOther)
			flash := testID(t, v.get(page), "flash")
			if sub, _ := p.DB.FindSubscription(ctx, id); sub.NextPlan != "starter" || sub.NextPriceVersion != 3 {
				t.Fatalf("after the migration: %+v", sub)
			}
			if reachable != !strings.Contains(flash, "Stripe could not be told for 1 of them") {
				t.Fatalf("flash: %q", flash)
			}
			if !reachable {
				v.location(v.post(page+"/migrate", form), http.StatusSeeOther)
				if f := testID(t, v.get(page), "flash"); !strings.Contains(f, "made already") || !strings.Contains(f, "Stripe could not be told for 1") {
					t.Fatalf("the retry's flash: %q", f)
				}
			}
		})
	}
}
