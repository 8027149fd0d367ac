package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// scheduleFixture is a store on a test clock (1 March 2026, noon UTC)
// with one customer of 100 credits, and debit, which charges them one
// chat request.
func scheduleFixture(t *testing.T) (*db.DB, *clock, func() billing.Debit) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "c1", 100)
	return d, clk, func() billing.Debit {
		t.Helper()
		deb, err := d.Debit(context.Background(), billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)})
		if err != nil {
			t.Fatal(err)
		}
		return deb
	}
}

// A version scheduled for later is not used until its time: debits before
// it are priced with the version in effect, debits after it with the new
// one (the writer re-reads the price book at the scheduled time without
// any other write), and CurrentPriceBook follows.
func TestScheduledPriceBookTakesEffect(t *testing.T) {
	ctx := context.Background()
	d, clk, debit := scheduleFixture(t)
	if deb := debit(); deb.PriceVersion != 1 { // the writer holds version 1 now
		t.Fatalf("first debit priced with v%d", deb.PriceVersion)
	}
	pb := testPriceBook()
	pb.Features[0].Credits = billing.CreditsOf(3)
	at := clk.Now().Add(time.Hour)
	v2, changed, err := d.PublishPriceBookWith(ctx, pb, db.PublishOptions{EffectiveAt: at, Actor: billing.AdminActor("adm_1"),
		Audit: billing.AuditPriceBookScheduled, Reason: "spring prices"})
	if err != nil || !changed || v2.Version != 2 || !v2.EffectiveAt.Equal(at) || v2.PublishedBy != "admin:adm_1" {
		t.Fatalf("schedule = %+v %v %v", v2, changed, err)
	}
	if deb := debit(); deb.PriceVersion != 1 || deb.CreditsCharged != billing.CreditsOf(1) {
		t.Fatalf("before its time: v%d, %v", deb.PriceVersion, deb.CreditsCharged)
	}
	if cur, _ := d.CurrentPriceBook(ctx); cur.Version != 1 {
		t.Fatalf("current before its time: v%d", cur.Version)
	}
	clk.Add(time.Hour) // exactly its time
	if deb := debit(); deb.PriceVersion != 2 || deb.CreditsCharged != billing.CreditsOf(3) {
		t.Fatalf("at its time: v%d, %v", deb.PriceVersion, deb.CreditsCharged)
	}
	// The read path's copy (trusted for a second) is read again at the
	// scheduled time, not a second later.
	if cur, _ := d.CurrentPriceBook(ctx); cur.Version != 2 {
		t.Fatalf("current after its time: v%d", cur.Version)
	}
	got, err := d.PriceBookVersion(ctx, 2)
	if err != nil || got.PublishedBy != "admin:adm_1" || !got.EffectiveAt.Equal(at) {
		t.Fatalf("stored = %+v %v", got, err)
	}
	recs, _, err := d.FindAudit(ctx, billing.AuditFilter{Action: billing.AuditPriceBookScheduled})
	if err != nil || len(recs) != 1 || recs[0].Reason != "spring prices" || recs[0].Before != "v1" {
		t.Fatalf("audit = %+v %v", recs, err)
	}
	mustVerify(t, d)
}

// A version published now after one scheduled for later is in effect until
// the scheduled one's time; identical republishing makes no version.
func TestPublishNowBetweenScheduled(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	later := testPriceBook()
	later.Features[0].Credits = billing.CreditsOf(4)
	if _, _, err := d.PublishPriceBookWith(ctx, later, db.PublishOptions{EffectiveAt: clk.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	now := testPriceBook()
	now.Features[0].Credits = billing.CreditsOf(2)
	v3, changed, err := d.PublishPriceBook(ctx, now)
	if err != nil || !changed || v3.Version != 3 {
		t.Fatalf("publish now = v%d %v %v", v3.Version, changed, err)
	}
	if _, changed, _ := d.PublishPriceBook(ctx, now); changed {
		t.Fatal("the same book again made a version")
	}
	id := mustCustomer(t, d, "c1", 100)
	deb, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)})
	if err != nil || deb.PriceVersion != 3 {
		t.Fatalf("debit = %+v %v", deb, err)
	}
	clk.Add(25 * time.Hour)
	deb, err = d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)})
	if err != nil || deb.PriceVersion != 2 || deb.CreditsCharged != billing.CreditsOf(4) {
		t.Fatalf("after the scheduled time: %+v %v", deb, err)
	}
}

// The draft is one row that survives a restart; a save from an older
// revision is a conflict; publishing it consumes it, once.
func TestPriceBookDraft(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	if dr, err := d.FindPriceBookDraft(ctx); err != nil || dr != nil {
		t.Fatalf("no draft yet: %+v %v", dr, err)
	}
	actor := billing.AdminActor("adm_1")
	pb := testPriceBook()
	pb.Packs = []billing.CreditPack{{ID: "starter", Credits: billing.CreditsOf(1000), Bonus: billing.CreditsOf(100), Price: billing.Money{Amount: 1000}}}
	dr, err := d.SavePriceBookDraft(ctx, pb, 1, 0, actor)
	if err != nil || dr.Rev != 1 {
		t.Fatalf("save = %+v %v", dr, err)
	}
	if _, err := d.SavePriceBookDraft(ctx, pb, 1, 0, actor); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("a second new draft: %v", err)
	}
	bad := testPriceBook()
	bad.Features[1].Credits = -1
	if _, err := d.SavePriceBookDraft(ctx, bad, 1, 1, actor); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("an invalid draft: %v", err)
	}
	pb.Features[0].Credits = billing.CreditsOf(7)
	if dr, err = d.SavePriceBookDraft(ctx, pb, 0, 1, actor); err != nil || dr.Rev != 2 || dr.BaseVersion != 1 {
		t.Fatalf("second save = %+v %v", dr, err)
	}
	if _, err := d.SavePriceBookDraft(ctx, pb, 0, 1, actor); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("a save from an old revision: %v", err)
	}
	got, err := d.FindPriceBookDraft(ctx)
	if err != nil || got.Rev != 2 || got.Book.Features[0].Credits != billing.CreditsOf(7) || got.Book.Packs[0].Bonus != billing.CreditsOf(100) ||
		got.UpdatedBy != actor {
		t.Fatalf("draft = %+v %v", got, err)
	}
	if _, _, err := d.PublishPriceBookWith(ctx, got.Book, db.PublishOptions{Actor: actor, Audit: billing.AuditPriceBookPublished, DraftRev: 1}); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("publishing an old revision: %v", err)
	}
	if vs, _ := d.ListPriceBooks(ctx); len(vs) != 1 {
		t.Fatalf("a refused publish made a version: %d", len(vs))
	}
	v, changed, err := d.PublishPriceBookWith(ctx, got.Book, db.PublishOptions{Actor: actor, Audit: billing.AuditPriceBookPublished, DraftRev: 2})
	if err != nil || !changed || v.Version != 2 {
		t.Fatalf("publish = %+v %v %v", v, changed, err)
	}
	if dr, _ := d.FindPriceBookDraft(ctx); dr != nil {
		t.Fatal("the published draft is still there")
	}
	if _, _, err := d.PublishPriceBookWith(ctx, got.Book, db.PublishOptions{Actor: actor, Audit: billing.AuditPriceBookPublished, DraftRev: 2}); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("publishing the draft twice: %v", err)
	}
	cur, _ := d.PriceBookVersion(ctx, 2)
	if cur.Packs[0].Bonus != billing.CreditsOf(100) || cur.PublishedBy != "admin:adm_1" {
		t.Fatalf("v2 = %+v", cur)
	}
}

// UsageTotals adds up the window's debits (single quantities and each
// dimension's) per customer and feature, and nothing from before it.
func TestUsageTotals(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	pb := testPriceBook()
	pb.Features = append(pb.Features, billing.Feature{Key: "gpt", Unit: "call", Dimensions: []billing.Dimension{
		{Key: "input_tokens", Credits: 1000, UnitSize: 1000}, {Key: "output_tokens", Credits: 4000, UnitSize: 1000}}})
	if _, _, err := d.PublishPriceBook(ctx, pb); err != nil {
		t.Fatal(err)
	}
	a := mustCustomer(t, d, "a", 1000)
	b := mustCustomer(t, d, "b", 1000)
	use := func(cus, feature string, q int64, qs billing.Quantities) {
		t.Helper()
		req := billing.UsageRequest{Customer: cus, Feature: feature, Quantities: qs}
		if qs == nil {
			req.Quantity = qty(q)
		}
		if _, err := d.Debit(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	use(a, "chat.request", 5, nil) // before the window
	clk.Add(10 * 24 * time.Hour)
	since := clk.Now()
	use(a, "chat.request", 2, nil)
	use(a, "chat.request", 3, nil)
	use(b, "chat.request", 1, nil)
	use(a, "gpt", 0, billing.Quantities{"input_tokens": billing.QuantityOf(1000), "output_tokens": billing.QuantityOf(10)})
	use(a, "gpt", 0, billing.Quantities{"input_tokens": billing.QuantityOf(1000), "output_tokens": billing.QuantityOf(10)})
	use(a, "gpt", 0, billing.Quantities{"input_tokens": billing.QuantityOf(500)})
	got, err := d.UsageTotals(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]billing.UsageTotal{
		{a, "chat.request"}: {Events: 2, Quantity: billing.QuantityOf(5)},
		{b, "chat.request"}: {Events: 1, Quantity: billing.QuantityOf(1)},
		{a, "gpt"}:          {Events: 3, Quantities: billing.Quantities{"input_tokens": billing.QuantityOf(2500), "output_tokens": billing.QuantityOf(20)}},
	}
	if len(got) != len(want) {
		t.Fatalf("totals = %+v", got)
	}
	for _, u := range got {
		w, ok := want[[2]string{u.Customer, u.Feature}]
		if !ok || u.Events != w.Events || u.Quantity != w.Quantity || len(u.Quantities) != len(w.Quantities) {
			t.Fatalf("%s/%s = %+v, want %+v", u.Customer, u.Feature, u, w)
		}
		for k, q := range w.Quantities {
			if u.Quantities[k] != q {
				t.Fatalf("%s/%s %s = %v, want %v", u.Customer, u.Feature, k, u.Quantities[k], q)
			}
		}
	}
	clk.Add(time.Hour)
	if got, err := d.UsageTotals(ctx, clk.Now()); err != nil || len(got) != 0 {
		t.Fatalf("an empty window: %+v %v", got, err)
	}
}

// A scheduled version cancelled before its time never takes effect: debits
// at and after its time are priced with the version before it, the read
// path agrees, the history marks it, the audit log says who, and a
// version in effect (or one cancelled already) cannot be cancelled.
// Numbers are not reused: the next publication is version 3.
func TestCancelScheduledPriceBook(t *testing.T) {
	ctx := context.Background()
	d, clk, debit := scheduleFixture(t)
	debit() // the writer holds version 1 and the time of the next
	pb := testPriceBook()
	pb.Features[0].Credits = billing.CreditsOf(3)
	at := clk.Now().Add(time.Hour)
	v2, _, err := d.PublishPriceBookWith(ctx, pb, db.PublishOptions{EffectiveAt: at})
	if err != nil || v2.Version != 2 {
		t.Fatal(v2, err)
	}
	if _, err := d.CancelScheduledPriceBook(ctx, 1, billing.AdminActor("adm_1"), ""); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("cancelling the version in effect: %v", err)
	}
	if _, err := d.CancelScheduledPriceBook(ctx, 9, billing.AdminActor("adm_1"), ""); billing.ErrorCode(err) != billing.CodeNotFound {
		t.Fatalf("cancelling no version: %v", err)
	}
	got, err := d.CancelScheduledPriceBook(ctx, 2, billing.AdminActor("adm_1"), "wrong prices")
	if err != nil || got.CancelledAt == nil || got.CancelledBy != "admin:adm_1" {
		t.Fatalf("cancel = %+v %v", got, err)
	}
	if _, err := d.CancelScheduledPriceBook(ctx, 2, billing.AdminActor("adm_1"), ""); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("cancelling twice: %v", err)
	}
	clk.Add(2 * time.Hour) // past its time
	if deb := debit(); deb.PriceVersion != 1 || deb.CreditsCharged != billing.CreditsOf(1) {
		t.Fatalf("after the cancelled version's time: v%d, %v", deb.PriceVersion, deb.CreditsCharged)
	}
	if cur, err := d.CurrentPriceBook(ctx); err != nil || cur.Version != 1 {
		t.Fatalf("current: %+v %v", cur, err)
	}
	all, err := d.ListPriceBooks(ctx)
	if err != nil || len(all) != 2 || all[0].Version != 2 || all[0].CancelledAt == nil || all[1].CancelledAt != nil {
		t.Fatalf("history: %+v %v", all, err)
	}
	recs, _, err := d.FindAudit(ctx, billing.AuditFilter{Action: billing.AuditPriceBookCancelled})
	if err != nil || len(recs) != 1 || recs[0].Actor != billing.AdminActor("adm_1") || recs[0].Reason != "wrong prices" {
		t.Fatalf("audit = %+v %v", recs, err)
	}
	v3, _, err := d.PublishPriceBook(ctx, pb)
	if err != nil || v3.Version != 3 {
		t.Fatalf("the next publication: v%d %v", v3.Version, err)
	}
	if deb := debit(); deb.PriceVersion != 3 || deb.CreditsCharged != billing.CreditsOf(3) {
		t.Fatalf("after publishing v3: v%d, %v", deb.PriceVersion, deb.CreditsCharged)
	}
	mustVerify(t, d)
}
