package db

import (
	"context"
	"errors"
	"fmt"
	"github.com/tally-billing/tally/internal/storetest"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The fast path (pending.go): debits leave their rows pending and the batch
// writes them just before COMMIT. These tests put known operations in one
// batch and check that the outcome is what one-savepoint-per-operation gave.

type batchLog struct {
	mu    sync.Mutex
	stats []BatchStats
}

func (l *batchLog) observe(s BatchStats) { l.mu.Lock(); l.stats = append(l.stats, s); l.mu.Unlock() }

func (l *batchLog) last() BatchStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats[len(l.stats)-1]
}

func openPendingDB(t *testing.T) (*DB, *batchLog) {
	t.Helper()
	storetest.SkipIfPostgres(t, "these check the SQLite writer's internals: its entry id counter, careful batches after a rerun, "+
		"WAL checkpoints and wallet memory across batches (on PostgreSQL every batch re-reads its wallets under row locks, "+
		"ids come from the sequence; prefetch_test.go and the store suite cover it)")
	ctx := context.Background()
	d, err := Open(ctx, storetest.DSN(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	pb := billing.PriceBook{Currency: "usd", Features: []billing.Feature{
		{Key: "chat.request", Unit: "request", Credits: billing.CreditsOf(1)},
	}}
	if _, _, err := d.PublishPriceBook(ctx, pb); err != nil {
		t.Fatal(err)
	}
	log := &batchLog{}
	d.SetBatchObserver(log.observe)
	return d, log
}

// oneBatch runs fns in a single batch, in order: the writer is held busy
// until all of them are queued.
func oneBatch(t *testing.T, d *DB, fns ...func(*Tx) error) []error {
	t.Helper()
	ctx := context.Background()
	gate, started := make(chan struct{}), make(chan struct{})
	go d.Write(ctx, func(*Tx) error { close(started); <-gate; return nil })
	<-started
	var errs []error
	done := make(chan struct{})
	go func() { errs = d.WriteMany(ctx, fns); close(done) }()
	for deadline := time.Now().Add(5 * time.Second); len(d.w.ops) < len(fns); {
		if time.Now().After(deadline) {
			t.Fatal("operations were not queued")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	<-done
	return errs
}

func usage(customer, key string, n int64) *billing.UsageRequest {
	q := billing.QuantityOf(n)
	return &billing.UsageRequest{Customer: customer, Feature: "chat.request", Quantity: &q, IdempotencyKey: key}
}

func debitOp(customer string, req *billing.UsageRequest, out *billing.Debit) func(*Tx) error {
	return func(t *Tx) (err error) {
		*out, err = t.debit(customer, req)
		return err
	}
}

// errNotDeferred fails a fastDebitOp that used SQL itself.
var errNotDeferred = errors.New("the debit did not stay on the fast path")

// fastDebitOp is debitOp for a debit that must leave its rows pending.
func fastDebitOp(customer string, req *billing.UsageRequest, out *billing.Debit) func(*Tx) error {
	return func(t *Tx) (err error) {
		*out, err = t.debit(customer, req)
		if err == nil && (t.opSQL || len(t.opPend.entries) != 1) {
			return errNotDeferred
		}
		return err
	}
}

// warm has the writer remember the price book and the customers' wallets,
// as it does in steady traffic, so a batch's debits need no SQL of their own.
func warm(t *testing.T, d *DB, customers ...string) {
	t.Helper()
	for _, c := range customers {
		if _, err := d.Debit(context.Background(), *usage(c, "", 1)); err != nil && billing.ErrorCode(err) != billing.CodeInsufficientCredits {
			t.Fatal(err)
		}
	}
}

func entryCount(t *testing.T, d *DB) int {
	t.Helper()
	var n int
	if err := d.read.QueryRow(`SELECT COUNT(*) FROM entries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPendingBatchWithRetriedKeyRunsAgainCarefully(t *testing.T) {
	ctx := context.Background()
	d, log := openPendingDB(t)
	rich := CustomerForTest(t, d, "rich", 100)
	poor := CustomerForTest(t, d, "poor", 0)
	first, err := d.Debit(ctx, *usage(rich, "committed", 1))
	if err != nil {
		t.Fatal(err)
	}
	warm(t, d, poor)
	before := entryCount(t, d)

	var out [6]billing.Debit
	errs := oneBatch(t, d,
		debitOp(rich, usage(rich, "new-1", 1), &out[0]),
		debitOp(rich, usage(rich, "committed", 1), &out[1]), // a retry of a committed debit
		debitOp(poor, usage(poor, "poor-1", 1), &out[2]),    // refused: no credits
		debitOp(rich, usage(rich, "twice", 2), &out[3]),
		debitOp(rich, usage(rich, "twice", 2), &out[4]), // the same request twice in one batch
		debitOp(rich, usage(rich, "twice", 3), &out[5]), // the same key, another body
	)
	want := []string{"", "", billing.CodeInsufficientCredits, "", "", billing.CodeIdempotencyConflict}
	for i, err := range errs {
		if got := billing.ErrorCode(err); (err == nil) != (want[i] == "") || (err != nil && got != want[i]) {
			t.Errorf("op %d: %v, want %q", i, err, want[i])
		}
	}
	if !log.last().Rerun {
		t.Error("a batch replaying a committed key was not run again in careful mode")
	}
	if !out[1].Replayed || out[1].ID != first.ID {
		t.Errorf("retry: %+v, want a replay of %s", out[1], first.ID)
	}
	if out[3].Replayed || !out[4].Replayed || out[4].ID != out[3].ID {
		t.Errorf("same key twice in a batch: %s (replayed %v) then %s (replayed %v)", out[3].ID, out[3].Replayed, out[4].ID, out[4].Replayed)
	}
	if got := entryCount(t, d) - before; got != 2 {
		t.Errorf("%d entries written, want 2 (new-1 and twice)", got)
	}
	if b, _ := d.Balance(ctx, rich); b.Balance != billing.CreditsOf(100-1-1-2) {
		t.Errorf("balance %v, want 96", b.Balance)
	}
	// Outside a rerun, the same kind of batch stays on the fast path.
	for d.w.careful > 0 {
		warm(t, d, rich)
	}
	var more [2]billing.Debit
	if errs := oneBatch(t, d, fastDebitOp(rich, usage(rich, "new-2", 1), &more[0]), fastDebitOp(rich, usage(rich, "new-3", 1), &more[1])); errs[0] != nil || errs[1] != nil || log.last().Rerun {
		t.Errorf("fresh keys: %v, rerun %v", errs, log.last().Rerun)
	}
	VerifyForTest(t, d)

}

func TestPendingCarefulModeLastsSomeBatches(t *testing.T) {
	ctx := context.Background()
	d, _ := openPendingDB(t)
	c := CustomerForTest(t, d, "c", 100)
	if _, err := d.Debit(ctx, *usage(c, "k", 1)); err != nil {
		t.Fatal(err)
	}
	if r, err := d.Debit(ctx, *usage(c, "k", 1)); err != nil || !r.Replayed {
		t.Fatalf("retry: %+v %v", r, err)
	}
	if d.w.careful != carefulBatches {
		t.Fatalf("careful = %d after a rerun, want %d", d.w.careful, carefulBatches)
	}
	for i := 0; i < carefulBatches; i++ {
		warm(t, d, c)
	}
	if d.w.careful != 0 {
		t.Errorf("still careful after %d batches", carefulBatches)
	}
}

func TestPendingRowsMeetDirectOperationsInOrder(t *testing.T) {
	// Debits defer their rows; a grant between them writes SQL itself, so
	// the rows before it are written first and ids follow the batch order.
	ctx := context.Background()
	d, log := openPendingDB(t)
	c := CustomerForTest(t, d, "c", 11)
	warm(t, d, c)
	var a, b, e billing.Debit
	var g billing.Grant
	errs := oneBatch(t, d,
		fastDebitOp(c, usage(c, "a", 4), &a),
		func(t *Tx) (err error) {
			g, err = t.grant(c, &billing.GrantRequest{Customer: c, Credits: billing.CreditsOf(5), Source: billing.SourcePromo, IdempotencyKey: "g"})
			return err
		},
		debitOp(c, usage(c, "b", 9), &b),  // needs the grant
		debitOp(c, usage(c, "e", 50), &e), // refused
	)
	for i, err := range errs[:3] {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if billing.ErrorCode(errs[3]) != billing.CodeInsufficientCredits {
		t.Fatalf("op 3: %v", errs[3])
	}
	if log.last().Rerun {
		t.Error("a batch with new keys only was run again")
	}
	if ids := []int64{rowID(t, a.ID), rowID(t, g.ID), rowID(t, b.ID)}; !(ids[0] < ids[1] && ids[1] < ids[2]) {
		t.Errorf("entry ids %s, %s, %s: not in batch order", a.ID, g.ID, b.ID)
	}
	if b.BalanceAfter != billing.CreditsOf(2) {
		t.Errorf("balance after b = %v, want 2", b.BalanceAfter)
	}
	// Every id answered is the one stored, with its idempotency key.
	for key, id := range map[string]string{"a": a.ID, "b": b.ID} {
		got, err := d.Debit(ctx, *usage(c, key, map[string]int64{"a": 4, "b": 9}[key]))
		if err != nil || !got.Replayed || got.ID != id {
			t.Errorf("replay of %s: %+v %v, want %s", key, got, err, id)
		}
	}
	VerifyForTest(t, d)
}

func TestPendingRowsOfAFailedOperationAreDropped(t *testing.T) {
	ctx := context.Background()
	d, _ := openPendingDB(t)
	c := CustomerForTest(t, d, "c", 101)
	warm(t, d, c)
	before := entryCount(t, d)
	boom := errors.New("boom")
	var x, y, z billing.Debit
	errs := oneBatch(t, d,
		// Debits, then fails before touching SQL: its rows only ever lived in memory.
		func(t *Tx) error {
			if _, err := t.debit(c, usage(c, "x1", 1)); err != nil {
				return err
			}
			if t.opSQL {
				return errNotDeferred
			}
			return boom
		},
		fastDebitOp(c, usage(c, "x", 1), &x),
		// Debits, then writes SQL itself (its rows go in under its savepoint),
		// then fails: the savepoint takes them back.
		func(t *Tx) error {
			if _, err := t.debit(c, usage(c, "y1", 1)); err != nil {
				return err
			}
			if _, err := t.grant(c, &billing.GrantRequest{Customer: c, Credits: billing.CreditsOf(1), Source: billing.SourcePromo}); err != nil {
				return err
			}
			return boom
		},
		debitOp(c, usage(c, "y", 1), &y),
		debitOp(c, usage(c, "z", 1), &z),
	)
	for i, err := range errs {
		if wantErr := i == 0 || i == 2; wantErr != errors.Is(err, boom) {
			t.Errorf("op %d: %v", i, err)
		}
	}
	if got := entryCount(t, d) - before; got != 3 {
		t.Errorf("%d entries written, want 3", got)
	}
	if b, _ := d.Balance(ctx, c); b.Balance != billing.CreditsOf(97) {
		t.Errorf("balance %v, want 97", b.Balance)
	}
	// The failed operations' keys were never used.
	for _, key := range []string{"x1", "y1"} {
		if got, err := d.Debit(ctx, *usage(c, key, 1)); err != nil || got.Replayed {
			t.Errorf("key %s after its operation failed: %+v %v", key, got, err)
		}
	}
	// Ids handed out to the dropped rows are handed out again: no gaps.
	if ids := []int64{rowID(t, x.ID), rowID(t, y.ID), rowID(t, z.ID)}; ids[1] != ids[0]+1 || ids[2] != ids[1]+1 {
		t.Errorf("ids %s %s %s: want consecutive", x.ID, y.ID, z.ID)
	}
	VerifyForTest(t, d)
}

func rowID(t *testing.T, id string) int64 {
	t.Helper()
	n, err := parseRowID("ent", id)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return n
}

func TestCheckpointsRunOffTheWriter(t *testing.T) {
	ctx := context.Background()
	d, _ := openPendingDB(t)
	c := CustomerForTest(t, d, "c", 1000)
	var auto int
	err := d.Write(ctx, func(t *Tx) error { return t.queryRow("PRAGMA wal_autocheckpoint").Scan(&auto) })
	if err != nil || auto != walBackstopPages {
		t.Fatalf("writer's automatic checkpoint at %d pages (%v), want the %d-page backstop", auto, err, walBackstopPages)
	}
	before := d.ckpt.passes.Load()
	reqs := make([]billing.UsageRequest, 500)
	for i := range reqs {
		reqs[i] = *usage(c, "", 1)
	}
	if _, errs := d.DebitMany(ctx, reqs); errs[0] != nil {
		t.Fatal(errs[0])
	}
	for deadline := time.Now().Add(5 * time.Second); d.ckpt.passes.Load() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after the writer committed")
		}
	}
	VerifyForTest(t, d)
}

// TestCheckpointsSmallAndOften: under a steady stream of commits the
// checkpointer runs about every checkpointEvery (25 ms), not every 100 ms
// as it did (each pass then copied four times the pages and its fsync of
// the database file held the writer's WAL fsyncs back), never more often;
// and once the commits stop, it stops.
func TestCheckpointsSmallAndOften(t *testing.T) {
	ctx := context.Background()
	d, _ := openPendingDB(t)
	c := CustomerForTest(t, d, "c", 1_000_000)
	before := d.ckpt.passes.Load()
	start := time.Now()
	for i := 0; time.Since(start) < time.Second; i++ {
		if _, err := d.Debit(ctx, *usage(c, fmt.Sprint("k", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// The pass the last commit asked for; on a loaded machine it may start
	// late, so wait until the count stays still for a while.
	quiet := func() int64 {
		n := d.ckpt.passes.Load()
		for still, deadline := time.Now(), time.Now().Add(5*time.Second); time.Now().Before(deadline); {
			time.Sleep(checkpointEvery)
			if m := d.ckpt.passes.Load(); m != n {
				n, still = m, time.Now()
			} else if time.Since(still) >= 8*checkpointEvery {
				break
			}
		}
		return n
	}
	passes := quiet() - before
	if most := 2 + int64(elapsed/checkpointEvery); passes > most {
		t.Errorf("%d checkpoints in %v of commits: more than one every %v (at most %d)", passes, elapsed, checkpointEvery, most)
	}
	// Often: not a ticker's 100 ms. Under the race detector a pass itself
	// takes longer than that, so the cadence is measured without it.
	if least := int64(elapsed / (60 * time.Millisecond)); !raceEnabled && passes < least {
		t.Errorf("%d checkpoints in %v of commits, want at least %d (one every 60 ms or better)", passes, elapsed, least)
	}
	if passes < 1 {
		t.Error("no checkpoint after a second of commits")
	}
	idle := d.ckpt.passes.Load()
	time.Sleep(10 * checkpointEvery)
	if n := d.ckpt.passes.Load(); n != idle {
		t.Errorf("%d checkpoints with nothing committed", n-idle)
	}
}

func TestPendingIDsFollowAnotherProcess(t *testing.T) {
	// The writer carries its next entry id from batch to batch. Another
	// process (here another DB on the same file) appending entries changes
	// PRAGMA data_version, and the writer forgets what it remembered (the id,
	// the wallets, the price book): its next debit neither collides with the
	// other's entries nor needs a rerun.
	ctx := context.Background()
	d, log := openPendingDB(t)
	c := CustomerForTest(t, d, "c", 100)
	warm(t, d, c)
	other, err := Open(ctx, d.path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := 0; i < 3; i++ {
		if _, err := other.Grant(ctx, billing.GrantRequest{Customer: c, Credits: billing.CreditsOf(1), Source: billing.SourcePromo}); err != nil {
			t.Fatal(err)
		}
		deb, err := d.Debit(ctx, *usage(c, fmt.Sprint("after-", i), 1))
		if err != nil {
			t.Fatal(err)
		}
		if log.last().Rerun {
			t.Fatalf("debit %d after another process wrote: its batch was rerun (stale entry id)", i)
		}
		var maxID int64
		if err := d.read.QueryRow(`SELECT MAX(id) FROM entries`).Scan(&maxID); err != nil || rowID(t, deb.ID) != maxID {
			t.Fatalf("debit %s, newest entry %d (%v)", deb.ID, maxID, err)
		}
	}
	VerifyForTest(t, d)
}

func TestRefusedLoneDebitKeepsTheWritersMemory(t *testing.T) {
	// A customer out of credits, refused one request at a time, must not make
	// the writer forget every other customer's wallet.
	ctx := context.Background()
	d, log := openPendingDB(t)
	rich := CustomerForTest(t, d, "rich", 100)
	poor := CustomerForTest(t, d, "poor", 0)
	warm(t, d, rich)
	if _, ok := d.w.cache[rich]; !ok {
		t.Fatal("the writer does not remember the rich customer's wallet after a debit")
	}
	_, err := d.Debit(ctx, *usage(poor, "", 1))
	if billing.ErrorCode(err) != billing.CodeInsufficientCredits {
		t.Fatalf("poor debit: %v", err)
	}
	if _, ok := d.w.cache[rich]; !ok {
		t.Error("a refused lone debit emptied the writer's wallet cache")
	}
	if st := log.last(); st.Err != nil {
		t.Errorf("a refused lone debit was observed as a failed batch: %v", st.Err)
	}
	var fresh billing.Debit
	if errs := oneBatch(t, d, fastDebitOp(rich, usage(rich, "after", 1), &fresh)); errs[0] != nil {
		t.Errorf("debit after the refusal: %v (want it on the fast path, from memory)", errs[0])
	}
	VerifyForTest(t, d)
}

// holdOp opens a hold; fastHoldOp also fails when the hold did not stay on
// the fast path (its hold row and entry left pending, no SQL of its own).
func holdOp(customer, key string, credits int64, out *billing.Hold, fast bool) func(*Tx) error {
	return func(t *Tx) (err error) {
		*out, err = t.createHold(customer, &billing.HoldRequest{Customer: customer, Credits: billing.CreditsOf(credits), TTLSeconds: 60, IdempotencyKey: key})
		if fast && err == nil && (t.opSQL || len(t.opPend.holds) != 1 || len(t.opPend.entries) != 1) {
			return errNotDeferred
		}
		return err
	}
}

func captureOp(id *string, key string, n int64, out *billing.Hold, fast bool) func(*Tx) error {
	return func(t *Tx) (err error) {
		q := billing.QuantityOf(n)
		*out, err = t.captureHold(*id, &billing.CaptureRequest{Feature: "chat.request", Quantity: &q, IdempotencyKey: key}, nil)
		if fast && err == nil && (t.opSQL || len(t.opPend.closes) != 1) {
			return errNotDeferred
		}
		return err
	}
}

func holdStatus(t *testing.T, d *DB, id string) string {
	t.Helper()
	h, err := d.FindHold(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return h.Status
}

// Holds and captures defer their rows like debits: a hold opened, a hold
// opened and captured in the same batch, a capture of a hold the writer
// knows, a retried hold and a retried capture (replayed after a careful
// rerun), a capture reusing another capture's key (a conflict).
func TestPendingHoldsAndCaptures(t *testing.T) {
	ctx := context.Background()
	d, log := openPendingDB(t)
	c := CustomerForTest(t, d, "c", 100)
	warm(t, d, c)
	known, err := d.CreateHold(ctx, billing.HoldRequest{Customer: c, Credits: billing.CreditsOf(10), TTLSeconds: 60, IdempotencyKey: "known"})
	if err != nil {
		t.Fatal(err)
	}
	for d.w.careful > 0 {
		warm(t, d, c)
	}

	// All on the fast path.
	var h [4]billing.Hold
	var sameBatch string
	errs := oneBatch(t, d,
		holdOp(c, "fresh", 5, &h[0], true),
		holdOp(c, "opened-and-captured", 7, &h[1], true),
		func(t *Tx) error { sameBatch = h[1].ID; return nil },
		captureOp(&sameBatch, "cap-same", 6, &h[2], false), // the hold is not in the writer's index yet: SQL
		captureOp(&known.ID, "cap-known", 4, &h[3], true),
	)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if log.last().Rerun {
		t.Error("a batch of fresh holds and captures was run again")
	}
	if got := holdStatus(t, d, h[0].ID); got != billing.HoldActive {
		t.Errorf("fresh hold %s", got)
	}
	if got := holdStatus(t, d, sameBatch); got != billing.HoldCaptured || *h[2].CreditsCharged != billing.CreditsOf(6) {
		t.Errorf("hold opened and captured in one batch: %s, charged %v", got, h[2].CreditsCharged)
	}
	if got := holdStatus(t, d, known.ID); got != billing.HoldCaptured || h[3].Debit == nil || h[3].Debit.HoldID != known.ID {
		t.Errorf("known hold: %s, %+v", got, h[3].Debit)
	}
	if b, _ := d.Balance(ctx, c); b.Balance != billing.CreditsOf(100-1-6-4) || b.Held != billing.CreditsOf(5) {
		t.Errorf("balance %v held %v, want 89 and 5", b.Balance, b.Held)
	}

	// Retries and a conflict: found only when the pending rows are written,
	// so the batch runs again carefully and replays.
	for d.w.careful > 0 {
		warm(t, d, c)
	}
	var r [4]billing.Hold
	fresh := h[0].ID
	errs = oneBatch(t, d,
		holdOp(c, "fresh", 5, &r[0], false),                // a retried hold
		captureOp(&known.ID, "cap-known", 4, &r[1], false), // a retried capture
		captureOp(&fresh, "cap-known", 2, &r[2], false),    // another hold, a used key
		holdOp(c, "fresh-2", 1, &r[3], false),
	)
	want := []string{"", "", billing.CodeIdempotencyConflict, ""}
	for i, err := range errs {
		if got := billing.ErrorCode(err); (err == nil) != (want[i] == "") || (err != nil && got != want[i]) {
			t.Errorf("op %d: %v, want %q", i, err, want[i])
		}
	}
	if !log.last().Rerun {
		t.Error("a batch retrying committed keys was not run again in careful mode")
	}
	if !r[0].Replayed || r[0].ID != fresh || !r[1].Replayed || r[1].Debit == nil || r[1].Debit.ID != h[3].Debit.ID {
		t.Errorf("retries: hold %+v, capture %+v", r[0], r[1])
	}
	if got := holdStatus(t, d, fresh); got != billing.HoldActive {
		t.Errorf("the hold whose capture conflicted is %s", got)
	}
	if b, _ := d.Balance(ctx, c); b.Held != billing.CreditsOf(6) {
		t.Errorf("held %v, want 6 (fresh and fresh-2)", b.Held)
	}
	VerifyForTest(t, d)
}

// A hold the writer holds in memory expires, is released and is captured
// against its in-memory copy; after another process writes, the writer reads
// the holds again.
func TestHeldInMemoryExpiresAndFollowsAnotherProcess(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	path := storetest.DSN(t)
	d, err := Open(ctx, path, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, _, err := d.PublishPriceBook(ctx, billing.PriceBook{Currency: "usd", Features: []billing.Feature{{Key: "chat.request", Unit: "request", Credits: billing.CreditsOf(1)}}}); err != nil {
		t.Fatal(err)
	}
	c := CustomerForTest(t, d, "c", 50)
	short, err := d.CreateHold(ctx, billing.HoldRequest{Customer: c, Credits: billing.CreditsOf(20), TTLSeconds: 30})
	if err != nil {
		t.Fatal(err)
	}
	long, err := d.CreateHold(ctx, billing.HoldRequest{Customer: c, Credits: billing.CreditsOf(20), TTLSeconds: 300})
	if err != nil {
		t.Fatal(err)
	}
	// 40 credits held of 50: a debit of 20 is refused until the short hold expires.
	if _, err := d.Debit(ctx, *usage(c, "", 20)); billing.ErrorCode(err) != billing.CodeInsufficientCredits {
		t.Fatalf("debit with 40 of 50 held: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := d.Debit(ctx, *usage(c, "", 20)); err != nil {
		t.Fatalf("debit after the short hold expired: %v", err)
	}
	if got := holdStatus(t, d, short.ID); got != billing.HoldExpired {
		t.Errorf("short hold %s, want expired", got)
	}
	// Another process captures the long hold; the writer must not capture it again.
	other, err := Open(ctx, path, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	q := billing.QuantityOf(3)
	if _, err := other.CaptureHold(ctx, long.ID, billing.CaptureRequest{Feature: "chat.request", Quantity: &q}, nil); err != nil {
		t.Fatal(err)
	}
	other.Close()
	q4 := billing.QuantityOf(4)
	if _, err := d.CaptureHold(ctx, long.ID, billing.CaptureRequest{Feature: "chat.request", Quantity: &q4}, nil); billing.ErrorCode(err) != billing.CodeHoldNotActive {
		t.Errorf("capture of a hold another process captured: %v, want hold_not_active", err)
	}
	if r, err := d.ReleaseHold(ctx, long.ID, nil); billing.ErrorCode(err) != billing.CodeHoldNotActive {
		t.Errorf("release of a captured hold: %+v %v", r, err)
	}
	if b, _ := d.Balance(ctx, c); b.Balance != billing.CreditsOf(50-20-3) || b.Held != 0 {
		t.Errorf("balance %v held %v, want 27 and 0", b.Balance, b.Held)
	}
	VerifyForTest(t, d)
}
