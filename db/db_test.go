package db_test

import (
	"context"
	"fmt"
	"github.com/tally-billing/tally/internal/storetest"
	"golang.org/x/crypto/bcrypt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func mustOpenDB(t testing.TB, now func() time.Time) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), storetest.DSN(t), db.Options{Now: now, PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	if _, _, err := d.PublishPriceBook(context.Background(), testPriceBook()); err != nil {
		t.Fatal(err)
	}
	return d
}

func testPriceBook() billing.PriceBook {
	return billing.PriceBook{Currency: "usd", Features: []billing.Feature{
		{Key: "chat.request", Unit: "request", Credits: billing.CreditsOf(1)},
		{Key: "image.generate", Unit: "image", Credits: billing.CreditsOf(5)},
		{Key: "gpt-4o.tokens", Unit: "token", Credits: 2500, UnitSize: 1000},
	}}
}

func mustVerify(t testing.TB, d *db.DB) { t.Helper(); db.VerifyForTest(t, d) }

func mustCustomer(t testing.TB, d *db.DB, ext string, credits int64) string {
	t.Helper()
	return db.CustomerForTest(t, d, ext, credits)
}

func qty(n int64) *billing.Quantity { q := billing.QuantityOf(n); return &q }

func TestDebitBurnsLotsInOrderAndRecordsThem(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "c1", 0)
	exp := clk.Now().Add(48 * time.Hour)
	grants := []billing.GrantRequest{
		{Customer: id, Credits: billing.CreditsOf(10), Source: billing.SourcePurchase},
		{Customer: id, Credits: billing.CreditsOf(3), Source: billing.SourcePromo, ExpiresAt: &exp},
	}
	for _, g := range grants {
		if _, err := d.Grant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	deb, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(1)})
	if err != nil {
		t.Fatal(err)
	}
	if deb.CreditsCharged != billing.CreditsOf(5) || deb.BalanceAfter != billing.CreditsOf(8) || deb.PriceVersion != 1 {
		t.Fatalf("debit = %+v", deb)
	}
	es, _, err := d.FindEntries(ctx, billing.EntryFilter{Customer: id, Type: billing.EntryDebit})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || len(es[0].Burns) != 2 {
		t.Fatalf("entries = %+v", es)
	}
	// Promo (priority 10) burns before purchase (50).
	if es[0].Burns[0].Source != billing.SourcePromo || es[0].Burns[0].Credits != billing.CreditsOf(3) ||
		es[0].Burns[1].Source != billing.SourcePurchase || es[0].Burns[1].Credits != billing.CreditsOf(2) {
		t.Fatalf("burns = %+v", es[0].Burns)
	}
	// A debit that takes everything from one lot names the lot on its entry
	// (no entry_lots row); it reads back the same way.
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(2)}); err != nil {
		t.Fatal(err)
	}
	es, _, err = d.FindEntries(ctx, billing.EntryFilter{Customer: id, Type: billing.EntryDebit})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || len(es[0].Burns) != 1 || es[0].Burns[0].Source != billing.SourcePurchase ||
		es[0].Burns[0].Credits != billing.CreditsOf(2) || es[0].Lot != "" || len(es[1].Burns) != 2 {
		t.Fatalf("entries = %+v", es)
	}
	mustVerify(t, d)
}

func TestRejectedDebitWritesNothing(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "c1", 4)
	_, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(1), IdempotencyKey: "k1"})
	if billing.ErrorCode(err) != billing.CodeInsufficientCredits {
		t.Fatalf("err = %v", err)
	}
	b, _ := d.Balance(ctx, id)
	if b.Balance != billing.CreditsOf(4) {
		t.Fatalf("balance = %v", b.Balance)
	}
	es, _, _ := d.FindEntries(ctx, billing.EntryFilter{Customer: id})
	if len(es) != 1 {
		t.Fatalf("entries after a refused debit = %d, want just the grant", len(es))
	}
	// The refused key is not used up.
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.CreditsOf(10), Source: billing.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(1), IdempotencyKey: "k1"}); err != nil {
		t.Fatalf("after top-up: %v", err)
	}
	mustVerify(t, d)
}

func TestExpiryIsAnEntryAndNeverBurned(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "c1", 0)
	exp := clk.Now().Add(time.Hour)
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.CreditsOf(5), Source: billing.SourcePromo, ExpiresAt: &exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(2)}); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	_, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)})
	if billing.ErrorCode(err) != billing.CodeInsufficientCredits {
		t.Fatalf("debit after expiry: %v", err)
	}
	// The refused debit rolled back the expiry it wrote; the sweeper writes it.
	if n, err := d.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v", n, err)
	}
	b, _ := d.Balance(ctx, id)
	if b.Balance != 0 {
		t.Fatalf("balance after expiry = %v", b.Balance)
	}
	es, _, _ := d.FindEntries(ctx, billing.EntryFilter{Customer: id, Type: billing.EntryExpiry})
	if len(es) != 1 || es[0].Amount != -billing.CreditsOf(3) {
		t.Fatalf("expiry entries = %+v", es)
	}
	mustVerify(t, d)
}

func TestBalanceSweepsStaleExpiries(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "c1", 10)
	exp := clk.Now().Add(time.Hour)
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.CreditsOf(5), Source: billing.SourcePromo, ExpiresAt: &exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: billing.CreditsOf(4), TTLSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	b, err := d.Balance(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if b.Balance != billing.CreditsOf(10) || b.Held != 0 || b.Available != billing.CreditsOf(10) {
		t.Fatalf("balance = %+v", b)
	}
	mustVerify(t, d)
}

func TestHoldCaptureBeyondAvailableGoesNegative(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "c1", 10)
	// The actual may pass the hold by what is available plus the overdraft.
	if _, err := d.SetLimits(ctx, id, billing.Limits{OverdraftLimit: billing.CreditsOf(5)}); err != nil {
		t.Fatal(err)
	}
	h, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: billing.CreditsOf(8)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(2)}); billing.ErrorCode(err) != billing.CodeInsufficientCredits {
		t.Fatalf("debit over held credits: %v", err)
	}
	got, err := d.CaptureHold(ctx, h.ID, billing.CaptureRequest{Feature: "image.generate", Quantity: qty(3)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != billing.HoldCaptured || *got.CreditsCharged != billing.CreditsOf(15) || got.Debit.BalanceAfter != -billing.CreditsOf(5) {
		t.Fatalf("capture = %+v", got)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)}); billing.ErrorCode(err) != billing.CodeInsufficientCredits {
		t.Fatalf("debit while negative: %v", err)
	}
	mustVerify(t, d)
	// A top-up repays the debt first.
	g, err := d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.CreditsOf(20), Source: billing.SourcePurchase})
	if err != nil {
		t.Fatal(err)
	}
	if g.BalanceAfter != billing.CreditsOf(15) || g.Lot.Remaining != billing.CreditsOf(15) {
		t.Fatalf("grant after debt = %+v", g)
	}
	mustVerify(t, d)
}

// TestConcurrentDebitsExactlyOnce is the ledger's core promise: 64 clients
// debiting one customer, every request sent twice with the same key, never
// overdraw it, never lose a debit and never apply one twice.
func TestConcurrentDebitsExactlyOnce(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "hot", 1000)
	const clients, perClient = 64, 30 // 1,920 keys x 1 credit, demand > 1,000 balance
	var ok, refused atomic.Int64
	ids := sync.Map{}
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				key := fmt.Sprintf("c%d-%d", c, i)
				var first string
				for try := 0; try < 2; try++ {
					deb, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1), IdempotencyKey: key})
					switch billing.ErrorCode(err) {
					case "internal":
						if err != nil {
							t.Errorf("debit: %v", err)
							return
						}
						if try == 0 {
							first = deb.ID
							ok.Add(1)
							ids.Store(deb.ID, key)
						} else if deb.ID != first && first != "" {
							t.Errorf("key %s: retry got %s, first %s", key, deb.ID, first)
						} else if first == "" {
							// first try was refused, the retry went through: impossible
							// without a top-up in between.
							t.Errorf("key %s: refused then accepted", key)
						}
					case billing.CodeInsufficientCredits:
						if try == 0 {
							refused.Add(1)
						}
					default:
						t.Errorf("debit: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1000 {
		t.Errorf("accepted %d debits of 1 credit from 1,000 credits, want exactly 1,000", ok.Load())
	}
	if ok.Load()+refused.Load() != clients*perClient {
		t.Errorf("accepted %d + refused %d != %d", ok.Load(), refused.Load(), clients*perClient)
	}
	b, _ := d.Balance(ctx, id)
	if b.Balance != 0 {
		t.Errorf("balance = %v, want 0", b.Balance)
	}
	n := 0
	ids.Range(func(_, _ any) bool { n++; return true })
	if int64(n) != ok.Load() {
		t.Errorf("%d distinct debit ids for %d accepted keys", n, ok.Load())
	}
	mustVerify(t, d)
}

// TestGroupCommitOnOneCPU: with one P (a one-core server), concurrent
// debits still share their commits. The writer used to take the next batch
// before the requests it had just answered could queue again, so each
// commit carried one to three operations (docs/BENCHMARKS.md, "One core for
// the server").
func TestGroupCommitOnOneCPU(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "hot", 1_000_000)
	var batches, ops atomic.Int64
	d.SetBatchObserver(func(b db.BatchStats) { batches.Add(1); ops.Add(int64(b.Size)) })
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const clients, perClient = 64, 20
	// Three rounds: before the fix, a round now and then fell into step and
	// shared its commits anyway.
	for round := range 3 {
		batches.Store(0)
		ops.Store(0)
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for i := range perClient {
					_, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1),
						IdempotencyKey: fmt.Sprintf("r%d-c%d-%d", round, c, i)})
					if err != nil {
						t.Errorf("debit: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if got := ops.Load(); got != clients*perClient {
			t.Fatalf("round %d: the writer ran %d operations, want %d", round, got, clients*perClient)
		}
		// 64 clients: a batch holds about 64 operations; before, 1 to 3.
		if mean := float64(ops.Load()) / float64(batches.Load()); mean < 16 {
			t.Errorf("round %d: %d debits from %d clients on one CPU took %d commits (%.1f a commit), want at least 16 a commit",
				round, ops.Load(), clients, batches.Load(), mean)
		}
	}
	mustVerify(t, d)
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	// Many customers at once: the poor ones are refused, the others are not
	// spoiled by sharing their batch.
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	var rich, poor []string
	for i := 0; i < 20; i++ {
		rich = append(rich, mustCustomer(t, d, fmt.Sprintf("rich%d", i), 100))
		poor = append(poor, mustCustomer(t, d, fmt.Sprintf("poor%d", i), 0))
	}
	var reqs []billing.UsageRequest
	for i := range rich {
		reqs = append(reqs, billing.UsageRequest{Customer: rich[i], Feature: "image.generate", Quantity: qty(1)},
			billing.UsageRequest{Customer: poor[i], Feature: "image.generate", Quantity: qty(1)})
	}
	_, errs := d.DebitMany(ctx, reqs)
	for i, err := range errs {
		want := ""
		if i%2 == 1 {
			want = billing.CodeInsufficientCredits
		}
		if got := map[bool]string{true: "", false: billing.ErrorCode(err)}[err == nil]; got != want {
			t.Errorf("event %d: %v, want %q", i, err, want)
		}
	}
	for _, id := range rich {
		if b, _ := d.Balance(ctx, id); b.Balance != billing.CreditsOf(95) {
			t.Errorf("rich balance = %v", b.Balance)
		}
	}
	mustVerify(t, d)
}

func TestIdempotencyConflictAcrossEndpoints(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "c1", 100)
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1), IdempotencyKey: "same"}); err != nil {
		t.Fatal(err)
	}
	_, err := d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: 5, Source: billing.SourcePromo, IdempotencyKey: "same"})
	if billing.ErrorCode(err) != billing.CodeIdempotencyConflict {
		t.Fatalf("grant reusing a debit's key: %v", err)
	}
	// By external id it is the same request.
	r, err := d.Debit(ctx, billing.UsageRequest{Customer: "c1", Feature: "chat.request", Quantity: qty(1), IdempotencyKey: "same"})
	if err != nil || !r.Replayed {
		t.Fatalf("replay by external id: %+v %v", r, err)
	}
}

func TestSpendCaps(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "c1", 1000)
	daily, monthly := billing.CreditsOf(10), billing.CreditsOf(15)
	if _, err := d.SetLimits(ctx, id, billing.Limits{DailyCap: &daily, MonthlyCap: &monthly}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(2)}); err != nil {
		t.Fatal(err) // exactly the daily cap
	}
	_, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)})
	if billing.ErrorCode(err) != billing.CodeSpendLimitExceeded {
		t.Fatalf("over the daily cap: %v", err)
	}
	clk.Add(2 * time.Hour) // 1 February: a new day and a new month
	for i := 0; i < 3; i++ {
		if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(1)}); err != nil && i < 2 {
			t.Fatal(err)
		} else if i == 2 && billing.ErrorCode(err) != billing.CodeSpendLimitExceeded {
			t.Fatalf("over the daily cap on a new day: %v", err)
		}
	}
	mustVerify(t, d)
}

func TestPriceBookVersionsAreRecorded(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "c1", 100)
	d1, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)})
	if err != nil {
		t.Fatal(err)
	}
	pb := testPriceBook()
	pb.Features[0].Credits = billing.CreditsOf(2)
	v2, changed, err := d.PublishPriceBook(ctx, pb)
	if err != nil || !changed || v2.Version != 2 {
		t.Fatalf("publish = %v %v %v", v2.Version, changed, err)
	}
	if _, changed, _ := d.PublishPriceBook(ctx, pb); changed {
		t.Fatal("publishing the same book twice made a new version")
	}
	d2, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)})
	if err != nil {
		t.Fatal(err)
	}
	if d1.PriceVersion != 1 || d2.PriceVersion != 2 || d2.CreditsCharged != billing.CreditsOf(2) {
		t.Fatalf("versions %d/%d, charge %v", d1.PriceVersion, d2.PriceVersion, d2.CreditsCharged)
	}
}

func TestLedgerIsAppendOnly(t *testing.T) {
	// The database itself refuses to change history.
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	mustCustomer(t, d, "c1", 100)
	err := d.Write(ctx, func(tx *db.Tx) error { return db.ExecForTest(tx, `UPDATE entries SET amount = 1`) })
	if err == nil {
		t.Fatal("UPDATE of a ledger entry succeeded")
	}
	err = d.Write(ctx, func(tx *db.Tx) error { return db.ExecForTest(tx, `DELETE FROM entries`) })
	if err == nil {
		t.Fatal("DELETE of ledger entries succeeded")
	}
}

func TestAdjustments(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "c1", 10)
	e, replayed, err := d.Adjust(ctx, billing.AdjustmentRequest{Customer: id, Credits: billing.CreditsOf(5), Reason: "goodwill", IdempotencyKey: "adj-1"})
	if err != nil || replayed || e.Type != billing.EntryAdjustment || e.Amount != billing.CreditsOf(5) || e.BalanceAfter != billing.CreditsOf(15) || e.Lot == "" {
		t.Fatalf("positive adjustment = %+v %v %v", e, replayed, err)
	}
	again, replayed, err := d.Adjust(ctx, billing.AdjustmentRequest{Customer: "c1", Credits: billing.CreditsOf(5), Reason: "goodwill", IdempotencyKey: "adj-1"})
	if err != nil || !replayed || again.ID != e.ID {
		t.Fatalf("replay = %+v %v %v", again, replayed, err)
	}
	// A removal burns lots in burn order (the adjustment lot, priority 30, before the purchase, 50).
	e, _, err = d.Adjust(ctx, billing.AdjustmentRequest{Customer: id, Credits: -billing.CreditsOf(7), Reason: "duplicate top-up"})
	if err != nil || e.Amount != -billing.CreditsOf(7) || e.BalanceAfter != billing.CreditsOf(8) || len(e.Burns) != 2 ||
		e.Burns[0].Source != billing.SourceAdjustment || e.Burns[0].Credits != billing.CreditsOf(5) {
		t.Fatalf("negative adjustment = %+v %v", e, err)
	}
	// Never below what is available, and nothing written when refused.
	if _, _, err := d.Adjust(ctx, billing.AdjustmentRequest{Customer: id, Credits: -billing.CreditsOf(9), Reason: "too much"}); billing.ErrorCode(err) != billing.CodeInsufficientCredits {
		t.Fatalf("removing more than the balance: %v", err)
	}
	if _, _, err := d.Adjust(ctx, billing.AdjustmentRequest{Customer: id, Credits: 0, Reason: "x"}); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("zero adjustment: %v", err)
	}
	if _, _, err := d.Adjust(ctx, billing.AdjustmentRequest{Customer: id, Credits: 1}); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("adjustment without a reason: %v", err)
	}
	b, _ := d.Balance(ctx, id)
	if b.Balance != billing.CreditsOf(8) {
		t.Fatalf("balance = %v", b.Balance)
	}
	mustVerify(t, d)
}

func TestCaptureFromOneLotNamesIt(t *testing.T) {
	// A capture is a debit too: paid from one lot, its entry names the lot
	// and reads back with that one burn.
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "c1", 10)
	h, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: billing.CreditsOf(8)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CaptureHold(ctx, h.ID, billing.CaptureRequest{Feature: "chat.request", Quantity: qty(3)}, nil); err != nil {
		t.Fatal(err)
	}
	es, _, err := d.FindEntries(ctx, billing.EntryFilter{Customer: id, Type: billing.EntryDebit})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Hold != h.ID || len(es[0].Burns) != 1 || es[0].Burns[0].Credits != billing.CreditsOf(3) ||
		es[0].Burns[0].Source != billing.SourcePurchase || es[0].Lot != "" {
		t.Fatalf("capture entry = %+v", es)
	}
	if b, _ := d.Balance(ctx, id); b.Balance != billing.CreditsOf(7) || b.Held != 0 {
		t.Fatalf("balance after capture = %+v", b)
	}
	mustVerify(t, d)
}

// A capture is bounded: it may pass its hold by no more than what is
// available plus the overdraft, and what it passes the hold by counts against
// the spend caps. A refused capture writes nothing and leaves the hold open.
// (A hold of 0.001 credits captured with a trillion units once charged a
// trillion credits and, repeated, overflowed the balance into a 500.)
func TestCaptureIsBounded(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "c1", 100)
	h, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: 1})
	if err != nil {
		t.Fatal(err)
	}
	huge := billing.QuantityOf(1_000_000_000_000)
	for _, q := range []billing.Quantity{huge, billing.QuantityOf(21)} { // 21 images = 105 credits > 100
		_, err := d.CaptureHold(ctx, h.ID, billing.CaptureRequest{Feature: "image.generate", Quantity: &q}, nil)
		if code := billing.ErrorCode(err); code != billing.CodeInsufficientCredits && code != billing.CodeInvalidQuantity {
			t.Fatalf("capture of %v: %v, want a 4xx refusal", q, err)
		}
	}
	if got, _ := d.FindHold(ctx, h.ID); got.Status != billing.HoldActive {
		t.Fatalf("hold after refused captures: %s, want active", got.Status)
	}
	b, _ := d.Balance(ctx, id)
	if b.Balance != billing.CreditsOf(100) || b.Held != 1 {
		t.Fatalf("a refused capture wrote: %+v", b)
	}
	// The most it may take: 100 credits available besides the hold, plus the hold.
	got, err := d.CaptureHold(ctx, h.ID, billing.CaptureRequest{Feature: "image.generate", Quantity: qty(20)}, nil)
	if err != nil || *got.CreditsCharged != billing.CreditsOf(100) {
		t.Fatalf("capture of everything available: %+v, %v", got, err)
	}

	// Caps: what a capture passes its hold by must fit the customer's cap.
	id2 := mustCustomer(t, d, "c2", 100)
	cap := billing.CreditsOf(12)
	if _, err := d.SetLimits(ctx, id2, billing.Limits{DailyCap: &cap}); err != nil {
		t.Fatal(err)
	}
	h2, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id2, Credits: billing.CreditsOf(10)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CaptureHold(ctx, h2.ID, billing.CaptureRequest{Feature: "image.generate", Quantity: qty(3)}, nil); billing.ErrorCode(err) != billing.CodeSpendLimitExceeded {
		t.Fatalf("capture of 15 under a daily cap of 12 with a hold of 10: %v, want spend_limit_exceeded", err)
	}
	if _, err := d.CaptureHold(ctx, h2.ID, billing.CaptureRequest{Feature: "image.generate", Quantity: qty(2)}, nil); err != nil {
		t.Fatalf("capture of 10 within the hold: %v", err)
	}
	mustVerify(t, d)
}

// No sum of grants can wrap the balance around: past the most a wallet may
// hold, a grant is a clear 4xx (out_of_range), never a 500.
func TestGrantOverflowIsRefused(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	id := mustCustomer(t, d, "c1", 0)
	var err error
	for i := 0; i < 1001 && err == nil; i++ {
		_, err = d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.MaxCredits, Source: billing.SourcePromo})
	}
	if billing.ErrorCode(err) != billing.CodeOutOfRange {
		t.Fatalf("grants past the most a wallet may hold: %v, want out_of_range", err)
	}
	b, _ := d.Balance(ctx, id)
	if b.Balance != billing.MaxBalance {
		t.Fatalf("balance %v, want exactly the most a wallet may hold", b.Balance)
	}
	mustVerify(t, d)
}
