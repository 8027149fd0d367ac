package db_test

import (
	"context"
	"testing"

	"github.com/tally-billing/tally/billing"
)

func publishDimensions(t *testing.T, d interface {
	PublishPriceBook(context.Context, billing.PriceBook) (billing.PriceBook, bool, error)
}) {
	t.Helper()
	pb := testPriceBook()
	pb.Features = append(pb.Features, billing.Feature{Key: "gpt-4o", Unit: "call", Dimensions: []billing.Dimension{
		{Key: "input_tokens", Credits: 2500, UnitSize: 1000},
		{Key: "output_tokens", Credits: 10_000, UnitSize: 1000},
	}})
	if _, _, err := d.PublishPriceBook(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
}

// A feature priced per dimension: one debit (and one capture) per event,
// the breakdown kept on the entry and in the replay, a conflicting reuse of
// the key refused, the quote agreeing with the debit.
func TestDebitPerDimension(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	publishDimensions(t, d)
	c := mustCustomer(t, d, "dims", 100)
	qs := func(in, out int64) billing.Quantities {
		return billing.Quantities{"input_tokens": billing.QuantityOf(in), "output_tokens": billing.QuantityOf(out)}
	}
	quote, err := d.Quote(ctx, c, "gpt-4o", nil, qs(1200, 350), nil)
	if err != nil || quote.Credits != 6500 || len(quote.Breakdown) != 2 || !quote.Affordable {
		t.Fatalf("quote: %+v %v", quote, err)
	}
	deb, err := d.Debit(ctx, billing.UsageRequest{Customer: c, Feature: "gpt-4o", Quantities: qs(1200, 350), IdempotencyKey: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if deb.CreditsCharged != quote.Credits || len(deb.Breakdown) != 2 || deb.Breakdown[1].Credits != 3500 || deb.Quantity != 0 {
		t.Fatalf("debit %+v", deb)
	}
	again, err := d.Debit(ctx, billing.UsageRequest{Customer: c, Feature: "gpt-4o", Quantities: qs(1200, 350), IdempotencyKey: "d1"})
	if err != nil || !again.Replayed || again.ID != deb.ID || len(again.Breakdown) != 2 || again.Breakdown[0] != deb.Breakdown[0] {
		t.Fatalf("replay %+v %v", again, err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: c, Feature: "gpt-4o", Quantities: qs(1200, 351), IdempotencyKey: "d1"}); billing.ErrorCode(err) != billing.CodeIdempotencyConflict {
		t.Fatalf("other quantities under the same key: %v", err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: c, Feature: "gpt-4o", Quantity: qty(3)}); billing.ErrorCode(err) != billing.CodeInvalidQuantity {
		t.Fatalf("a single quantity: %v", err)
	}
	// Many in one batch (the fast path's multi-row insert) read back whole.
	reqs := make([]billing.UsageRequest, 5)
	for i := range reqs {
		reqs[i] = billing.UsageRequest{Customer: c, Feature: "gpt-4o", Quantities: qs(int64(1000*(i+1)), 100)}
	}
	if _, errs := d.DebitMany(ctx, reqs); errs[0] != nil || errs[4] != nil {
		t.Fatal(errs)
	}
	h, err := d.CreateHold(ctx, billing.HoldRequest{Customer: c, Credits: billing.CreditsOf(10), TTLSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	captured, err := d.CaptureHold(ctx, h.ID, billing.CaptureRequest{Feature: "gpt-4o", Quantities: qs(2000, 500)}, nil)
	if err != nil || *captured.CreditsCharged != 10_000 || len(captured.Debit.Breakdown) != 2 {
		t.Fatalf("capture %+v %v", captured, err)
	}
	entries, _, err := d.FindEntries(ctx, billing.EntryFilter{Customer: c, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	var withBreakdown int
	for _, e := range entries {
		if e.Type == billing.EntryDebit {
			if len(e.Breakdown) != 2 || e.Quantity != nil {
				t.Errorf("entry %s: quantity %v, breakdown %+v", e.ID, e.Quantity, e.Breakdown)
			}
			withBreakdown++
		}
	}
	if withBreakdown != 7 {
		t.Errorf("%d debits read back, want 7", withBreakdown)
	}
	mustVerify(t, d)
}
