package db_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/tally-billing/tally/billing"
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

// BenchmarkDebitMany measures the writer fed through the batch path.
func BenchmarkDebitMany(b *testing.B) {
	ctx := context.Background()
	d := mustOpenDB(b, nil)
	id := mustCustomer(b, d, "hot", 1_000_000_000)
	reqs := make([]billing.UsageRequest, 0, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reqs = append(reqs, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1), IdempotencyKey: fmt.Sprint("k", i)})
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
