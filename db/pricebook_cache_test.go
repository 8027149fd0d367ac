package db

import (
	"context"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/internal/storetest"
)

// TestWriterPriceBookFollowsAnotherProcess: the writer keeps the last price
// book it decoded and, when it must look again (every PostgreSQL batch, or
// after another process wrote to SQLite), reads only the number of the
// version in effect. A version another process (another instance)
// publishes must still price the next debit; an unrelated write must not
// make the writer read and decode the body again.
func TestWriterPriceBookFollowsAnotherProcess(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	d, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pb := billing.PriceBook{Currency: "usd", Features: []billing.Feature{{Key: "chat.request", Unit: "request", Credits: billing.CreditsOf(1)}}}
	if _, _, err := d.PublishPriceBook(ctx, pb); err != nil {
		t.Fatal(err)
	}
	c := CustomerForTest(t, d, "c", 100)
	other, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	debit := func(key string) billing.Debit {
		t.Helper()
		deb, err := d.Debit(ctx, *usage(c, key, 1))
		if err != nil {
			t.Fatal(err)
		}
		return deb
	}
	if deb := debit("one"); deb.CreditsCharged != billing.CreditsOf(1) {
		t.Fatalf("first debit: %v credits", deb.CreditsCharged)
	}
	decoded := d.w.pbDecoded
	if decoded == nil {
		t.Fatal("the writer kept no decoded price book")
	}
	// Another process writes, but publishes nothing: the same decoded book.
	if _, err := other.Grant(ctx, billing.GrantRequest{Customer: c, Credits: billing.CreditsOf(1), Source: billing.SourcePromo}); err != nil {
		t.Fatal(err)
	}
	if deb := debit("two"); deb.CreditsCharged != billing.CreditsOf(1) || d.w.pbDecoded != decoded {
		t.Fatalf("after an unrelated write: %v credits, decoded again: %v", deb.CreditsCharged, d.w.pbDecoded != decoded)
	}
	// Another process publishes a dearer version: the next debit uses it.
	pb.Features[0].Credits = billing.CreditsOf(3)
	v2, _, err := other.PublishPriceBook(ctx, pb)
	if err != nil {
		t.Fatal(err)
	}
	if deb := debit("three"); deb.CreditsCharged != billing.CreditsOf(3) || deb.PriceVersion != v2.Version {
		t.Fatalf("after another process published version %d: %v credits at version %d", v2.Version, deb.CreditsCharged, deb.PriceVersion)
	}
}
