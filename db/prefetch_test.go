package db

import (
	"context"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/internal/storetest"
)

// TestBatchSkipsAWalletAnotherInstanceLocked: on PostgreSQL a batch does
// not wait for a wallet another instance's batch has locked. It runs the
// operations whose wallets are free, and carries the others to its next
// batch, which waits for the lock. Here another connection holds customer
// x's wallet in an open transaction: a batch of a debit for x and one for
// y answers y's at once, and x's once the lock is gone, debited once.
func TestBatchSkipsAWalletAnotherInstanceLocked(t *testing.T) {
	if !storetest.Postgres() {
		t.Skip("PostgreSQL: SQLite has one writer, whose batches lock nothing row by row")
	}
	ctx := context.Background()
	dsn := storetest.DSN(t)
	d, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, _, err := d.PublishPriceBook(ctx, billing.PriceBook{Currency: "usd", Features: []billing.Feature{
		{Key: "chat.request", Unit: "request", Credits: billing.CreditsOf(1)}}}); err != nil {
		t.Fatal(err)
	}
	x := CustomerForTest(t, d, "x", 100)
	y := CustomerForTest(t, d, "y", 100)

	// "Another instance" locks x's wallet and keeps its transaction open.
	other, err := storetest.Raw(t, dsn).BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	var bal int64
	if err := other.QueryRow(`SELECT balance FROM wallets WHERE customer_id = ? FOR UPDATE`, x).Scan(&bal); err != nil {
		t.Fatal(err)
	}

	// Both debits in one batch: the writer is held busy until both are queued.
	gate, started := make(chan struct{}), make(chan struct{})
	go d.Write(ctx, func(*Tx) error { close(started); <-gate; return nil })
	<-started
	var dx, dy billing.Debit
	ox := d.w.submit(ctx, time.Time{}, x, debitOp(x, usage(x, "dx", 1), &dx))
	oy := d.w.submit(ctx, time.Time{}, y, debitOp(y, usage(y, "dy", 1), &dy))
	close(gate)

	select {
	case err := <-oy.done:
		if err != nil || dy.BalanceAfter != billing.CreditsOf(99) {
			t.Fatalf("y's debit: %v, balance after %v", err, dy.BalanceAfter)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("y's debit waited for x's wallet, locked by another transaction")
	}
	select {
	case err := <-ox.done:
		t.Fatalf("x's debit answered (%v) while its wallet was locked elsewhere", err)
	default:
	}
	if err := other.Rollback(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ox.done:
		if err != nil || dx.BalanceAfter != billing.CreditsOf(99) {
			t.Fatalf("x's debit: %v, balance after %v", err, dx.BalanceAfter)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("x's debit never ran after the lock was released")
	}
	// Each debited once.
	for _, c := range []string{x, y} {
		b, err := d.Balance(ctx, c)
		if err != nil || b.Balance != billing.CreditsOf(99) {
			t.Fatalf("%s: balance %v (%v)", c, b.Balance, err)
		}
	}
	VerifyForTest(t, d)
}
