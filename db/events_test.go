package db_test

import (
	"context"
	"encoding/json"
	"github.com/tally-billing/tally/internal/storetest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

func eventTypes(evs []billing.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// Every change writes its events to the outbox in its own transaction, the
// debit fast path included: threshold events fire once per crossing, a
// refused debit writes none, seq increases without gaps, each event names
// its actor, and a consumer's cursor survives a reopen and never moves back.
func TestEventsOutbox(t *testing.T) {
	ctx := context.Background()
	path := storetest.DSN(t)
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PublishPriceBook(ctx, testPriceBook()); err != nil {
		t.Fatal(err)
	}
	id := mustCustomer(t, d, "c1", 100) // a purchase of 100: the default low-balance line is 10
	k, _, err := d.CreateAPIKey(ctx, "meter", billing.ScopeMetering, billing.Limits{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	key := &k

	// 18 images (90 credits) in one batch of the fast path: 100 -> 10 crosses
	// the line once.
	reqs := make([]billing.UsageRequest, 18)
	for i := range reqs {
		reqs[i] = billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(1), APIKey: key}
	}
	for i, err := range func() []error { _, errs := d.DebitMany(ctx, reqs); return errs }() {
		if err != nil {
			t.Fatalf("debit %d: %v", i, err)
		}
	}
	// Two more: 10 -> 0 depletes; the next is refused and writes nothing.
	for i := 0; i < 3; i++ {
		_, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(1), APIKey: key})
		if i == 2 && billing.ErrorCode(err) != billing.CodeInsufficientCredits {
			t.Fatalf("debit past zero: %v", err)
		} else if i < 2 && err != nil {
			t.Fatal(err)
		}
	}
	admin := billing.Actor{Kind: billing.ActorAdmin, ID: "adm_1"}
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.CreditsOf(50), Source: billing.SourcePromo, Actor: admin}); err != nil {
		t.Fatal(err)
	}
	evs, err := d.FindEvents(ctx, db.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{billing.EventGrantCreated, billing.EventBalanceLow, billing.EventBalanceDepleted, billing.EventGrantCreated, billing.EventBalanceRecovered}
	if got := eventTypes(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i, e := range evs {
		if e.Seq != evs[0].Seq+int64(i) || e.Customer != id || e.ID == "" {
			t.Fatalf("event %d: %+v: want consecutive seqs for customer %s", i, e, id)
		}
	}
	if evs[1].Actor != billing.KeyActor(key) || evs[2].Actor != billing.KeyActor(key) || evs[3].Actor != admin {
		t.Fatalf("actors %v %v %v", evs[1].Actor, evs[2].Actor, evs[3].Actor)
	}
	if evs[1].Data["available"] != json.Number("10") || evs[1].Data["threshold"] != json.Number("10") { // credits, as the API writes them
		t.Fatalf("balance.low payload %v", evs[1].Data)
	}

	// A consumer's cursor: saved, never moved back, kept across a reopen.
	if err := d.SaveEventCursor(ctx, "test", evs[2].Seq); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveEventCursor(ctx, "test", evs[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cur, err := d.EventCursor(ctx, "test")
	if err != nil || cur != evs[2].Seq {
		t.Fatalf("cursor %d (%v), want %d", cur, err, evs[2].Seq)
	}
	rest, err := d.FindEvents(ctx, db.EventFilter{After: cur})
	if err != nil || !slices.Equal(eventTypes(rest), want[3:]) {
		t.Fatalf("after the cursor: %v (%v), want %v", eventTypes(rest), err, want[3:])
	}
	mustVerify(t, d)
	// Verify reads the outbox too: a cursor past the newest event is a bug.
	if err := d.SaveEventCursor(ctx, "ahead", rest[len(rest)-1].Seq+5); err != nil {
		t.Fatal(err)
	}
	if problems, err := d.Verify(ctx); err != nil || len(problems) != 1 || !strings.Contains(problems[0], "event cursor past the newest event") {
		t.Fatalf("Verify with a cursor ahead of the outbox: %v %v", problems, err)
	}
}

// Holds move available credits too: a hold that crosses the line fires
// balance.low, its expiry fires hold.expired and balance.recovered, written
// by the sweep as the system.
func TestHoldEvents(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "c1", 100)
	if _, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: billing.CreditsOf(95), TTLSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if _, err := d.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	evs, _ := d.FindEvents(ctx, db.EventFilter{Customer: id})
	want := []string{billing.EventGrantCreated, billing.EventBalanceLow, billing.EventHoldExpired, billing.EventBalanceRecovered}
	if got := eventTypes(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if evs[2].Actor != billing.SystemActor("expiry") {
		t.Fatalf("hold.expired actor %v", evs[2].Actor)
	}
}

// The live balance hears about changes other processes commit through the
// outbox: a grant written by another handle on the same file (as the CLI
// does) wakes a subscriber of this one.
func TestWatchEventsWakesOtherProcessesChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := storetest.DSN(t)
	server, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cli, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	id := mustCustomer(t, cli, "c1", 0)
	done := make(chan error, 1)
	go func() { done <- server.WatchEvents(ctx) }()
	time.Sleep(100 * time.Millisecond) // the watch starts from the newest event
	ch, stop := server.Subscribe(id)
	defer stop()
	if _, err := cli.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.CreditsOf(5), Source: billing.SourcePromo}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("a grant committed by another process did not wake the live balance")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A low-balance line set after the writer has the customer's wallet in
// memory applies to the next debit (the writer's copy follows the setting).
func TestLowLineSetAfterTheWalletIsCached(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "late-line", 100)
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)}); err != nil {
		t.Fatal(err) // the wallet is now in the writer's memory
	}
	line := billing.CreditsOf(50)
	if err := d.UpdateCustomerSettings(ctx, id, billing.CustomerSettings{LowBalanceThreshold: &line}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(10)}); err != nil {
		t.Fatal(err) // 99 -> 49: below the new line of 50
	}
	evs, err := d.FindEvents(ctx, db.EventFilter{Customer: id})
	if err != nil {
		t.Fatal(err)
	}
	var low bool
	for _, e := range evs {
		low = low || e.Type == billing.EventBalanceLow
	}
	if !low {
		t.Errorf("no balance.low after crossing a line set while the wallet was cached: %v", evs)
	}
}
