package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

func rawCount(t *testing.T, d *db.DB, query string, args ...any) int {
	t.Helper()
	raw := db.RawForTest(t, d)
	var n int
	if err := raw.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTopUpGrantsExactlyOnce: the synchronous answer, a replay of it and the
// webhook (twice) all say "succeeded"; the credits are granted once.
func TestTopUpGrantsExactlyOnce(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "buyer", 0)
	tu, created, err := d.CreateTopUp(ctx, billing.TopUp{Customer: id, Origin: billing.OriginPortal, Description: "Starter",
		Credits: billing.CreditsOf(1000), Price: billing.Money{Amount: 1000, Currency: "usd"}, Provider: "sandbox"}, "click-1", "")
	if err != nil || !created {
		t.Fatal(created, err)
	}
	again, created, err := d.CreateTopUp(ctx, billing.TopUp{Customer: id, Origin: billing.OriginPortal, Description: "Starter",
		Credits: billing.CreditsOf(1000), Price: billing.Money{Amount: 1000, Currency: "usd"}, Provider: "sandbox"}, "click-1", "")
	if err != nil || created || again.ID != tu.ID {
		t.Fatalf("double click made another top-up: %v %v", again.ID, err)
	}
	pol := billing.DefaultPaymentPolicy
	p := billing.Payment{ProviderID: "pi_1", Status: billing.PaymentSucceeded}
	ev := billing.PaymentEvent{ID: "evt_1", Type: billing.EventPaymentSucceeded, PaymentID: "pi_1", TopUpID: tu.ID}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				if _, err := d.RecordPayment(ctx, tu.ID, p, pol); err != nil {
					t.Error(err)
				}
			} else if _, err := d.ApplyPaymentEvent(ctx, "sandbox", ev, pol); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, _ := d.Balance(ctx, id)
	if b.Balance != billing.CreditsOf(1000) {
		t.Fatalf("balance %v after one paid top-up answered 8 times", b.Balance)
	}
	if n := rawCount(t, d, `SELECT COUNT(*) FROM payment_events`); n != 1 {
		t.Fatalf("%d events stored", n)
	}
	got, _ := d.FindTopUp(ctx, tu.ID)
	if got.Status != billing.TopUpSucceeded || got.Lot == "" || got.RefundableUntil == nil {
		t.Fatalf("top-up %+v", got)
	}
	// A late failure event does not undo a success (out of order).
	d.ApplyPaymentEvent(ctx, "sandbox", billing.PaymentEvent{ID: "evt_0", Type: billing.EventPaymentFailed, PaymentID: "pi_1"}, pol)
	if got, _ := d.FindTopUp(ctx, tu.ID); got.Status != billing.TopUpSucceeded {
		t.Fatalf("late failure changed a succeeded top-up: %s", got.Status)
	}
	mustVerify(t, d)
}

// TestRefillJobOncePerCrossing: 100 concurrent debits take the balance
// below the threshold together; exactly one refill job is queued.
func TestRefillJobOncePerCrossing(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "auto", 300)
	if err := d.SaveRefillSettings(ctx, id, billing.RefillSettings{Enabled: true, Threshold: billing.CreditsOf(200), Mode: billing.RefillTarget, Target: billing.CreditsOf(500)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(2)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := rawCount(t, d, `SELECT COUNT(*) FROM refill_jobs WHERE customer_id = ?`, id); n != 1 {
		t.Fatalf("%d refill jobs for one crossing", n)
	}
	select {
	case <-d.RefillSignal():
	default:
		t.Fatal("the runner was not signalled")
	}
	job, ok, err := d.ClaimRefillJob(ctx)
	if err != nil || !ok || job.CustomerID != id {
		t.Fatalf("claim: %+v %v %v", job, ok, err)
	}
	if _, ok, _ := d.ClaimRefillJob(ctx); ok {
		t.Fatal("a running job was claimed twice")
	}
	mustVerify(t, d)
}

// TestStaleAuthenticationDoesNotBlockRefills: a refill waiting a day for
// the customer to authenticate gives way to the next crossing.
func TestStaleAuthenticationDoesNotBlockRefills(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "auto", 300)
	if err := d.SaveRefillSettings(ctx, id, billing.RefillSettings{Enabled: true, Threshold: billing.CreditsOf(200), Mode: billing.RefillTarget, Target: billing.CreditsOf(500)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(30)}); err != nil {
		t.Fatal(err)
	}
	job, ok, _ := d.ClaimRefillJob(ctx)
	if !ok {
		t.Fatal("no job after the crossing")
	}
	err := d.Write(ctx, func(tx *db.Tx) error {
		return db.ExecForTest(tx, `UPDATE refill_jobs SET status = 'requires_action' WHERE id = '`+job.ID+`'`)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Back above the threshold, then below again a day later.
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.CreditsOf(200), Source: billing.SourcePromo}); err != nil {
		t.Fatal(err)
	}
	clk.Add(25 * time.Hour)
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(31)}); err != nil {
		t.Fatal(err)
	}
	if n := rawCount(t, d, `SELECT COUNT(*) FROM refill_jobs WHERE customer_id = ? AND status = 'pending'`, id); n != 1 {
		t.Fatalf("%d pending jobs after the stale one: the stale authentication still blocks", n)
	}
}

// A purchase paid once answered eight times writes one topup.succeeded; its
// refund writes refund.succeeded. A refund while open holds reserve part of
// the purchase is refused with the reason and changes nothing (it used to
// refund only the unheld part and mark the top-up refunded for good); once
// the hold ends, the whole unused purchase is refundable.
func TestTopUpEventsAndRefundWithHolds(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "buyer", 0)
	tu, _, err := d.CreateTopUp(ctx, billing.TopUp{Customer: id, Origin: billing.OriginPortal, Description: "Starter",
		Credits: billing.CreditsOf(1000), Price: billing.Money{Amount: 1000, Currency: "usd"}, Provider: "sandbox"}, "click-1", "")
	if err != nil {
		t.Fatal(err)
	}
	pol := billing.DefaultPaymentPolicy
	for i := 0; i < 8; i++ {
		if _, err := d.RecordPayment(ctx, tu.ID, billing.Payment{ProviderID: "pi_1", Status: billing.PaymentSucceeded}, pol); err != nil {
			t.Fatal(err)
		}
	}
	h, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: billing.CreditsOf(300), TTLSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = d.RefundTopUp(ctx, tu.ID)
	var be *billing.Error
	if !errors.As(err, &be) || be.Code != billing.CodeConflict || be.Details["reason"] != "held" {
		t.Fatalf("refund under a hold: %v, want a conflict that says why", err)
	}
	if got, _ := d.FindTopUp(ctx, tu.ID); got.Status != billing.TopUpSucceeded {
		t.Fatalf("a refused refund changed the top-up: %s", got.Status)
	}
	if _, err := d.ReleaseHold(ctx, h.ID, nil); err != nil {
		t.Fatal(err)
	}
	got, amount, _, err := d.RefundTopUp(ctx, tu.ID)
	if err != nil || amount != 1000 || got.RefundedCredits != billing.CreditsOf(1000) {
		t.Fatalf("refund after the hold ended: %+v %d %v", got, amount, err)
	}
	evs, err := d.FindEvents(ctx, db.EventFilter{Customer: id})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range evs {
		count[e.Type]++
	}
	if count[billing.EventTopUpSucceeded] != 1 || count[billing.EventRefundSucceeded] != 1 || count[billing.EventGrantCreated] != 1 {
		t.Fatalf("events %v: want one topup.succeeded, one grant.created, one refund.succeeded", count)
	}
	mustVerify(t, d)
}

// A card row belongs to one customer. Saving a provider card that another
// customer already has is refused (conflict): it never returns that
// customer's row, nor brings it back after they removed it; the same
// customer saving it again gets their own row back. The UNIQUE (provider,
// provider_id) constraint keeps it so whatever the code does: a second row
// for the card cannot be written.
func TestSavedCardBelongsToOneCustomer(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	alice := mustCustomer(t, d, "alice", 0)
	bob := mustCustomer(t, d, "bob", 0)
	card := billing.Card{ProviderID: "pm_shared", Brand: "visa", Last4: "4242", ExpMonth: 12, ExpYear: 2040}

	mine, err := d.SaveCard(ctx, alice, "stripe", card)
	if err != nil || !mine.Default {
		t.Fatalf("alice's card: %+v %v", mine, err)
	}
	if _, err := d.RemoveCard(ctx, alice, mine.ID); err != nil {
		t.Fatal(err)
	}

	got, err := d.SaveCard(ctx, bob, "stripe", card)
	if billing.ErrorCode(err) != billing.CodeConflict || got.ID != "" {
		t.Fatalf("bob saving alice's card: %+v %v, want a conflict and no card", got, err)
	}
	if cards, _ := d.FindCards(ctx, bob, "stripe"); len(cards) != 0 {
		t.Fatalf("bob has %+v", cards)
	}
	if cards, _ := d.FindCards(ctx, alice, "stripe"); len(cards) != 0 {
		t.Fatalf("alice's removed card came back when bob saved it: %+v", cards)
	}
	if n := rawCount(t, d, `SELECT COUNT(*) FROM payment_methods WHERE provider_id = 'pm_shared' AND customer_id = ? AND removed_at IS NOT NULL`, alice); n != 1 {
		t.Fatalf("alice's row changed: %d removed rows", n)
	}

	// A provider event naming bob's provider customer and alice's card is
	// taken (not retried forever) and saves nothing.
	if err := d.SaveProviderCustomer(ctx, bob, "stripe", "cus_bob"); err != nil {
		t.Fatal(err)
	}
	applied, err := d.ApplyPaymentEvent(ctx, "stripe", billing.PaymentEvent{ID: "evt_setup", Type: billing.EventSetupSucceeded,
		ProviderCustomerID: "cus_bob", Card: &billing.Card{ProviderID: "pm_shared"}}, billing.DefaultPaymentPolicy)
	if err != nil || !applied {
		t.Fatalf("setup event: applied %v, %v", applied, err)
	}
	if n := rawCount(t, d, `SELECT COUNT(*) FROM payment_methods WHERE customer_id = ?`, bob); n != 0 {
		t.Fatalf("bob has %d card rows after the event", n)
	}
	if cards, _ := d.FindCards(ctx, alice, "stripe"); len(cards) != 0 {
		t.Fatalf("the event brought alice's removed card back: %+v", cards)
	}

	// Alice adding it again gets her own row back.
	again, err := d.SaveCard(ctx, alice, "stripe", card)
	if err != nil || again.ID != mine.ID {
		t.Fatalf("alice again: %+v %v, want her row %s", again, err, mine.ID)
	}

	// The schema holds it too: one row per provider card.
	raw := db.RawForTest(t, d)
	_, err = raw.Exec(`INSERT INTO payment_methods (id, customer_id, provider, provider_id, brand, last4, exp_month, exp_year, created_at)
		VALUES ('card_forged', ?, 'stripe', 'pm_shared', 'visa', '4242', 12, 2040, 0)`, bob)
	if err == nil || !db.IsUniqueViolationForTest(err) {
		t.Fatalf("a second row for the same provider card: %v, want a UNIQUE constraint error", err)
	}
}

// TestBackfillPaidTopUp: a backfilled purchase (the demo's history) is a
// top-up paid at its time, like a click and the sandbox's answer: the
// top-up succeeded with its payment, its lot and refund window date from
// that time, and its receipt event was emitted; a debit after it spends it.
func TestBackfillPaidTopUp(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "history", 0)
	at := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Second)
	pol := billing.PaymentPolicy{RefundWindow: 30 * 24 * time.Hour}
	errs := d.Backfill(ctx, []db.BackfillItem{
		{At: at, TopUp: &billing.TopUp{Customer: "history", Origin: billing.OriginPortal, PackID: "pack_1000", Description: "Starter: 1,000 credits",
			Credits: billing.CreditsOf(1000), Price: billing.Money{Amount: 1000, Currency: "usd"}, CardBrand: "visa", CardLast4: "4242"}, Policy: pol},
		{At: at.Add(time.Hour), Usage: &billing.UsageRequest{Customer: "history", Feature: "chat.request", Quantity: qty(3), IdempotencyKey: "after-purchase"}},
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	tus, err := d.FindTopUps(ctx, id, 10)
	if err != nil || len(tus) != 1 {
		t.Fatalf("top-ups %+v %v", tus, err)
	}
	tu := tus[0]
	if tu.Status != billing.TopUpSucceeded || tu.Provider != "sandbox" || tu.PaymentID == "" || tu.Lot == "" ||
		!tu.CreatedAt.Equal(at) || tu.RefundableUntil == nil || !tu.RefundableUntil.Equal(at.Add(30*24*time.Hour)) {
		t.Fatalf("backfilled top-up %+v", tu)
	}
	if b, _ := d.Balance(ctx, id); b.Balance != billing.CreditsOf(997) {
		t.Fatalf("balance %v, want 997 (1,000 bought, 3 spent)", b.Balance)
	}
	if n := rawCount(t, d, `SELECT COUNT(*) FROM events WHERE customer_id = ? AND type = ? AND created_at = ?`, id, billing.EventTopUpSucceeded, at.UnixMicro()); n != 1 {
		t.Fatalf("%d topup.succeeded events at the purchase's time", n)
	}
	// Past its refund window: refunding it is refused.
	if _, _, _, err := d.RefundTopUp(ctx, tu.ID); billing.ErrorCode(err) != billing.CodeRefundWindowClosed {
		t.Fatalf("a top-up past its refund window: %v", err)
	}
	mustVerify(t, d)
}
