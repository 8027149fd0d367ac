package db

import (
	"context"
	"testing"

	"github.com/tally-billing/tally/billing"
)

// ExecForTest runs a statement inside a writer operation.
func ExecForTest(t *Tx, query string) error {
	_, err := t.exec(query)
	return err
}

// CustomerForTest creates a customer holding credits (one purchased lot),
// for the tests in this package and in db_test.
func CustomerForTest(t testing.TB, d *DB, ext string, credits int64) string {
	t.Helper()
	ctx := context.Background()
	c, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: ext})
	if err != nil {
		t.Fatal(err)
	}
	if credits > 0 {
		if _, err := d.Grant(ctx, billing.GrantRequest{Customer: c.ID, Credits: billing.CreditsOf(credits), Source: billing.SourcePurchase}); err != nil {
			t.Fatal(err)
		}
	}
	return c.ID
}

// VerifyForTest fails t with every broken ledger invariant.
func VerifyForTest(t testing.TB, d *DB) {
	t.Helper()
	problems, err := d.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error("invariant:", p)
	}
}
