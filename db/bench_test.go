package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// BenchmarkDebitParallel measures the writer with many concurrent debits of
// one customer (group commit at work).
func BenchmarkDebitParallel(b *testing.B) {
	ctx := context.Background()
	d := mustOpenDB(b, nil)
	id := mustCustomer(b, d, "hot", 1_000_000_000)
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1), IdempotencyKey: fmt.Sprint("k", i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDebitSerial measures one caller's debits one after another: an
// idle Tally, where every debit is a batch of its own and pays its fsync
// (the writer never waits for company: letOthersQueue only yields).
func BenchmarkDebitSerial(b *testing.B) {
	ctx := context.Background()
	d := mustOpenDB(b, nil)
	id := mustCustomer(b, d, "hot", 1_000_000_000)
	for i := 0; b.Loop(); i++ {
		if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1), IdempotencyKey: fmt.Sprint("k", i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHoldCapture measures the streaming path: many concurrent
// clients each open a hold and capture it (one op is the pair), spread over
// 64 customers.
func BenchmarkHoldCapture(b *testing.B) {
	ctx := context.Background()
	d := mustOpenDB(b, nil)
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = mustCustomer(b, d, fmt.Sprint("c", i), 1_000_000_000)
	}
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			h, err := d.CreateHold(ctx, billing.HoldRequest{Customer: ids[i%64], Credits: billing.CreditsOf(5), TTLSeconds: 300, IdempotencyKey: fmt.Sprint("h", i)})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := d.CaptureHold(ctx, h.ID, billing.CaptureRequest{Feature: "chat.request", Quantity: qty(1), IdempotencyKey: fmt.Sprint("c", i)}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDebitMany measures the writer fed through the batch path.
func BenchmarkDebitMany(b *testing.B) {
	d := mustOpenDB(b, nil)
	benchDebitMany(b, d, []string{mustCustomer(b, d, "hot", 1_000_000_000)})
}

// BenchmarkDebitManySpread is BenchmarkDebitMany over 1,000 customers.
func BenchmarkDebitManySpread(b *testing.B) {
	d := mustOpenDB(b, nil)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = mustCustomer(b, d, fmt.Sprint("c", i), 1_000_000_000)
	}
	benchDebitMany(b, d, ids)
}

// benchDebitMany debits the customers in turn, 1,000 debits per DebitMany.
func benchDebitMany(b *testing.B, d *db.DB, customers []string) {
	ctx := context.Background()
	reqs := make([]billing.UsageRequest, 0, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reqs = append(reqs, billing.UsageRequest{Customer: customers[(i*7919)%len(customers)], Feature: "chat.request", Quantity: qty(1), IdempotencyKey: fmt.Sprint("k", i)})
		if len(reqs) == cap(reqs) || i == b.N-1 {
			_, errs := d.DebitMany(ctx, reqs)
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			reqs = reqs[:0]
		}
	}
}

// BenchmarkRecoverLargeWAL measures startup after a crash that left a large
// write-ahead log: the database and its WAL are copied mid-flight (what a
// crash leaves on disk) and opened; SQLite rebuilds its WAL index by reading
// the log. The WAL size is reported.
func BenchmarkRecoverLargeWAL(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	path := filepath.Join(dir, "big.db")
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	d.PublishPriceBook(ctx, testPriceBook())
	// No checkpoints: the WAL keeps growing, as when a long reader starves
	// them. A read transaction held open on a connection of its own stops the
	// checkpointer from copying past its snapshot; the writer's own backstop
	// is turned off.
	if err := d.Write(ctx, func(tx *db.Tx) error { return db.ExecForTest(tx, "PRAGMA wal_autocheckpoint = 0") }); err != nil {
		b.Fatal(err)
	}
	reader, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer reader.Close()
	snapshot, err := reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	var n int
	if err := snapshot.QueryRow(`SELECT COUNT(*) FROM customers`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	defer snapshot.Rollback()
	id := mustCustomer(b, d, "c", 1_000_000_000)
	reqs := make([]billing.UsageRequest, 1000)
	for round := 0; round < 300; round++ { // 300,000 debits
		for i := range reqs {
			reqs[i] = billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1), IdempotencyKey: fmt.Sprintf("r%d-%d", round, i),
				Metadata: map[string]string{"user": "someone"}}
		}
		if _, errs := d.DebitMany(ctx, reqs); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
	st, _ := os.Stat(path + "-wal")
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		crash := filepath.Join(dir, fmt.Sprintf("crash%d", i))
		os.Mkdir(crash, 0o755)
		copyFile(b, path, filepath.Join(crash, "big.db"))
		copyFile(b, path+"-wal", filepath.Join(crash, "big.db-wal"))
		b.StartTimer()
		d2, err := db.Open(ctx, filepath.Join(crash, "big.db"), db.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d2.Balance(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		d2.Close()
		os.RemoveAll(crash)
		b.StartTimer()
	}
	b.ReportMetric(float64(st.Size())/(1<<20), "WAL-MB")
	d.Close()
}

func copyFile(b *testing.B, from, to string) {
	data, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		b.Fatal(err)
	}
}
