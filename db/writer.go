package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/tally-billing/tally/billing"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Tx is one writer transaction as an operation sees it. Now is the time of the
// operation (the batch's start, or a time the caller fixed), so every row an
// operation writes carries the same clock reading.
type Tx struct {
	w       *writer
	Now     time.Time
	after   []func()
	touched map[string]bool // customers whose wallet changed, for live updates
	opTouch []string        // those the running operation changed
	batch   batchState      // changes of the batch's successful operations, written at flush
	op      batchState      // changes of the running operation

	// Deferred rows (pending.go).
	fast      bool        // debits leave their rows pending; false in careful mode
	single    bool        // the operation is alone in its batch: no savepoint needed
	inOp      bool        // an operation is running
	opsLeft   int         // operations of the batch not yet run, this one included
	idsTaken  int         // PostgreSQL: entry ids the batch took from blocks (pgEntryID)
	opSQL     bool        // the running operation has used SQL itself
	savepoint bool        // the running operation's SAVEPOINT is open
	pend      pendingRows // rows of the batch's finished operations
	opPend    pendingRows // rows of the running operation
	nextID    int64       // next deferred entry id; 0: read it from the table
	opNextID  int64       // nextID when the running operation began
	broken    error       // sticky: the batch must end (errRerun or a storage fault)

	lotBuf []billing.Lot // liveLots' result, reused

	closedHolds []string // holds closed in this batch (for the writer's hold index)

	// PostgreSQL: the outbox's advisory lock, held by the batch (evLock) or
	// taken by the running operation (opEvLock, dropped with its savepoint).
	evLock, opEvLock bool
	events           bool // the batch wrote events (to NOTIFY other instances)
}

// AfterCommit runs fn once the transaction holding this operation is durably
// committed (and never, if it is not). Used for caches and notifications.
func (t *Tx) AfterCommit(fn func()) { t.after = append(t.after, fn) }

func (t *Tx) touch(customerID string) { t.opTouch = append(t.opTouch, customerID) }

// stmt returns the statement for query, prepared once on the writer's
// connection and reused by every later operation.
func (t *Tx) stmt(query string) (*sql.Stmt, error) {
	s, ok := t.w.stmts[query]
	if !ok {
		var err error
		s, err = t.w.conn.PrepareContext(context.Background(), query)
		if err != nil {
			return nil, err
		}
		t.w.stmts[query] = s
	}
	return s, nil
}

func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	if err := t.direct(); err != nil {
		return nil, err
	}
	s, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.Exec(args...)
}

func (t *Tx) query(query string, args ...any) (*sql.Rows, error) {
	if err := t.direct(); err != nil {
		return nil, err
	}
	s, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.Query(args...)
}

func (t *Tx) queryRow(query string, args ...any) *sql.Row {
	if err := t.direct(); err != nil {
		// The batch ends anyway (t.broken); a cancelled query makes Scan
		// fail. It goes to the reader pool, which refuses a done context
		// before taking a connection: on the writer's own connection pgx
		// answers it with driver.ErrBadConn, and database/sql then closes
		// that connection under the rest of the batch.
		return t.w.d.read.QueryRowContext(cancelled, query, args...)
	}
	s, err := t.stmt(query)
	if err != nil {
		// sql.Row cannot carry an error of ours; the unprepared path reports
		// the same error on Scan.
		return t.w.conn.QueryRowContext(context.Background(), query, args...)
	}
	return s.QueryRow(args...)
}

// day is the UTC calendar day of the operation, as rollups key it.
func (t *Tx) day() string { return t.Now.UTC().Format(time.DateOnly) }

// op is one queued write.
type op struct {
	ctx  context.Context
	fn   func(*Tx) error
	now  time.Time // fixed time for the operation; zero means the batch's time
	done chan error
	// customer is the customer whose wallet fn changes, when the caller
	// knows it up front ("" otherwise): PostgreSQL batches lock and read
	// those wallets together before running (prefetch.go).
	customer string
	// carried is set when a PostgreSQL batch left the operation for the
	// next one, its wallet being locked by another instance (prefetchBatch).
	carried bool
}

// BatchObserver is told about every group commit (for metrics).
type BatchObserver func(BatchStats)

// BatchStats describes one group commit.
type BatchStats struct {
	Size     int           // operations in the batch
	Duration time.Duration // to run them and durably commit
	Err      error         // the batch's own error (a storage fault), if any
	// Rerun is true when the batch was rolled back and run again in careful
	// mode because a deferred row was refused (pending.go).
	Rerun bool
}

// writer is the one goroutine that writes. Operations queue on ops; the
// writer takes everything queued (up to max), runs each with a savepoint of
// its own in one IMMEDIATE transaction and commits once: a group commit.
// One fsync then serves the whole batch, and a rejected operation is undone
// without spoiling its batch-mates. An operation's savepoint has two layers:
// its working copies and pending rows in memory (state.go, pending.go), and
// a SQL SAVEPOINT, opened at its first statement of its own; a debit that
// only appends rows never needs the second. When nothing else is queued the
// batch is a single operation: there is never a fixed wait.
//
// The writer owns one connection and runs BEGIN IMMEDIATE, SAVEPOINT and
// COMMIT on it itself rather than through database/sql's Tx: statements are
// then prepared once for the life of the connection, not once per transaction.
type writer struct {
	d     *DB
	conn  *sql.Conn
	ops   chan *op
	max   int
	stmts map[string]*sql.Stmt

	mu     sync.RWMutex
	closed bool
	done   chan struct{}

	observe BatchObserver

	ctx         context.Context
	spare       [2]pendingRows         // a batch's pending rows' buffers, reused
	args        []driver.NamedValue    // reused for multi-row statements
	vals        [4][]any               // their values, reused
	driverStmts map[string]driver.Stmt // their prepared statements
	multi       map[multiKey]string    // their statements' text
	// careful counts down the batches that run without deferred rows after
	// a batch had to be rerun (pending.go).
	careful int

	nextID   int64              // the next entry id as of the last commit (0: read it)
	idBlock  []int64            // PostgreSQL: entry ids taken from the sequence, not yet used
	entrySeq string             // PostgreSQL: the query that takes a block of them (pgEntryID)
	carry    []*op              // PostgreSQL: operations left for the next batch (prefetchBatch)
	pb       *billing.PriceBook // the writer's copy of the current price book (nil: read it)
	// pbDecoded is the last version the writer read and decoded. Versions
	// never change, so when w.pb is dropped (every PostgreSQL batch, or
	// after another process wrote) and the version in effect is still this
	// one, priceBook reads only its number, not its body.
	pbDecoded   *billing.PriceBook
	cache       map[string]*wallet // wallets as of the last commit
	holdOwner   map[string]string  // open hold id -> customer id, for the wallets in cache (a hint: a miss reads SQL)
	dataVersion int64              // PRAGMA data_version when cache and pb were last valid
}

func newWriter(d *DB, db *sql.DB, max int) (*writer, error) {
	conn, err := db.Conn(context.Background())
	if err != nil {
		return nil, err
	}
	w := &writer{d: d, conn: conn, ops: make(chan *op, 4*max), max: max, ctx: context.Background(),
		stmts: map[string]*sql.Stmt{}, done: make(chan struct{})}
	go w.run()
	return w, nil
}

// SetBatchObserver installs a metrics hook; call before serving traffic.
func (d *DB) SetBatchObserver(o BatchObserver) { d.w.observe = o }

// errClosed answers writes that arrive while Tally shuts down.
var errClosed = billing.Errorf(billing.CodeUnavailable, "Tally is shutting down; nothing was written. Retry shortly.")

// Write runs fn in the writer and returns once the batch holding it is
// durably committed (or fn's error, in which case nothing fn did was kept).
func (d *DB) Write(ctx context.Context, fn func(*Tx) error) error {
	return d.writeAt(ctx, time.Time{}, fn)
}

// writeAt is Write with the operation's clock fixed (demo seeding and tests).
func (d *DB) writeAt(ctx context.Context, now time.Time, fn func(*Tx) error) error {
	return d.writeFor(ctx, now, "", fn)
}

// writeFor is writeAt for an operation on one customer's wallet, named up
// front (see op.customer).
func (d *DB) writeFor(ctx context.Context, now time.Time, customer string, fn func(*Tx) error) error {
	o := d.w.submit(ctx, now, customer, fn)
	if o == nil {
		return errClosed
	}
	return <-o.done
}

// WriteMany queues all fns at once so they can share batches, and returns
// each one's error in order (each is atomic on its own).
func (d *DB) WriteMany(ctx context.Context, fns []func(*Tx) error) []error {
	return d.writeManyFor(ctx, nil, fns)
}

// writeManyFor is WriteMany with each operation's customer named up front
// (customers[i] for fns[i]; nil when unknown).
func (d *DB) writeManyFor(ctx context.Context, customers []string, fns []func(*Tx) error) []error {
	queued := make([]*op, len(fns))
	for i, fn := range fns {
		c := ""
		if customers != nil {
			c = customers[i]
		}
		queued[i] = d.w.submit(ctx, time.Time{}, c, fn)
	}
	errs := make([]error, len(fns))
	for i, o := range queued {
		if o == nil {
			errs[i] = errClosed
			continue
		}
		errs[i] = <-o.done
	}
	return errs
}

func (w *writer) submit(ctx context.Context, now time.Time, customer string, fn func(*Tx) error) *op {
	o := &op{ctx: ctx, fn: fn, now: now, done: make(chan error, 1), customer: customer}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return nil
	}
	w.ops <- o
	return o
}

// close stops taking operations, finishes the queued ones and waits.
func (w *writer) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return
	}
	w.closed = true
	close(w.ops)
	w.mu.Unlock()
	<-w.done
	for _, s := range w.stmts {
		s.Close()
	}
	w.closeDriverStmts()
	w.conn.Close()
}

func (w *writer) run() {
	defer close(w.done)
	batch := make([]*op, 0, w.max)
	for {
		// Operations carried from the last batch (prefetchBatch) go first.
		batch = append(batch[:0], w.carry...)
		w.carry = w.carry[:0]
		if len(batch) == 0 {
			first, ok := <-w.ops
			if !ok {
				return
			}
			batch = append(batch, first)
		}
		w.letOthersQueue()
	drain:
		for len(batch) < w.max {
			select {
			case o, ok := <-w.ops:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		w.commit(batch)
	}
}

// letOthersQueue stops yielding after maxYields turns or maxYieldTime, so
// a steady trickle of operations, or a busy neighbour (each turn may last a
// scheduler time slice), cannot hold a batch back for long.
const (
	maxYields    = 8
	maxYieldTime = 2 * time.Millisecond
)

// letOthersQueue gives the goroutines that are ready to run (the requests
// the last batch answered, new requests read from the network) their turn
// before the batch is taken, and does so again while they keep queueing
// operations. It is not a wait: when nothing else is runnable,
// runtime.Gosched returns at once.
//
// It matters most with one CPU (GOMAXPROCS=1, a one-core server): there the
// writer, which has just readied the batch's waiters, kept the only P and
// took the next batch before any of them ran, so most batches held one
// operation, each paid a COMMIT and an fsync, and one core served about
// 2,500 debits/s with a p99 of 0.2-0.5 s. With the yield a batch takes what
// the whole round queued (docs/BENCHMARKS.md, "One core for the server").
func (w *writer) letOthersQueue() {
	start := time.Now()
	for n, i := len(w.ops), 0; i < maxYields; i++ {
		runtime.Gosched()
		m := len(w.ops)
		if m == n || time.Since(start) > maxYieldTime {
			return
		}
		n = m
	}
}

func (w *writer) commit(batch []*op) {
	start := time.Now()
	errs := make([]error, len(batch))
	fail := func(err error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	pb, dec := w.pb, w.pbDecoded
	pg := w.d.dialect == Postgres
	// Both stores defer rows (pending.go); a batch whose deferred row is
	// refused runs again careful. On PostgreSQL the prefetch (prefetch.go)
	// has locked and read the named wallets first.
	t, err := w.runBatch(batch, errs, w.careful == 0)
	if w.careful > 0 {
		w.careful--
	}
	rerun := false
	for try := 0; ; try++ {
		if err == nil {
			err = w.finish(t)
		}
		if err == nil {
			break
		}
		if errors.Is(err, errRerun) {
			// A deferred row was refused (most often a retry of a committed
			// debit): undo the batch and run it again, every operation writing
			// its own rows inside its savepoint. Memory is as of the last commit
			// but for the price book, which an undone operation may have changed.
			// (A careful batch defers nothing, so this happens once.)
			w.careful = carefulBatches
		} else if !pg || !isRetryable(err) || try >= maxRetries {
			break
		} else {
			// PostgreSQL: the batch lost a deadlock against another
			// instance's, or found its transaction aborted (then COMMIT
			// rolled it back: nothing of it was kept); the other went
			// through. It runs again, careful.
			w.forget()
		}
		rerun = true
		w.exec("ROLLBACK")
		w.pb, w.pbDecoded, w.nextID = nil, dec, 0
		clear(errs)
		t, err = w.runBatch(batch, errs, false)
	}
	// A lone operation refused for its own reasons (insufficient credits, a
	// cap, a conflict) is not a failed batch: its transaction is rolled back
	// and what the writer remembers of committed state stays true.
	refused := len(batch) == 1 && err != nil && errs[0] == err && refusal(err)
	if err != nil {
		if t != nil {
			// After a failed COMMIT SQLite may already have rolled back; a
			// second ROLLBACK then fails harmlessly.
			w.exec("ROLLBACK")
		}
		fail(err)
		if w.pbDecoded != dec {
			// Read inside the undone transaction: a version published there
			// was not kept, and its number may be published again.
			w.pbDecoded = nil
		}
		if refused {
			w.nextID = 0
			if w.pb != pb {
				w.pb = nil // read (or published) inside the undone transaction
			}
		} else {
			w.forget() // memory may now differ from the database
			w.pb, w.nextID = nil, 0
		}
	} else {
		w.keep(t.batch, t.closedHolds)
		w.nextID = t.nextID
		if w.d.ckpt != nil {
			w.d.ckpt.committed()
		}
	}
	if w.observe != nil {
		st := BatchStats{Size: len(batch), Duration: time.Since(start), Err: err, Rerun: rerun}
		if refused {
			st.Err = nil
		}
		w.observe(st)
	}
	if err == nil {
		for _, fn := range t.after {
			fn()
		}
		if len(t.touched) > 0 {
			w.d.notify(t.touched)
		}
	}
	for i, o := range batch {
		if errs[i] == errCarried {
			o.carried = true
			w.carry = append(w.carry, o)
			continue
		}
		o.done <- errs[i]
	}
}

// finish makes a batch that ran durable: on PostgreSQL it tells other
// instances (NOTIFY, delivered at COMMIT) and commits, checking that
// COMMIT did commit. PostgreSQL answers COMMIT on a transaction an earlier
// statement aborted with ROLLBACK and no error; such a batch must not be
// acknowledged, and since nothing of it was kept it runs again.
func (w *writer) finish(t *Tx) error {
	if w.d.dialect != Postgres {
		if _, err := w.exec("COMMIT"); err != nil {
			return storageError(err)
		}
		return nil
	}
	if err := t.pgNotify(t.events); err != nil {
		return err
	}
	return w.conn.Raw(func(dc any) error {
		tag, err := rawPgx(dc).Exec(w.ctx, "COMMIT")
		if err != nil {
			return storageError(err)
		}
		if tag.String() != "COMMIT" {
			return errCommitRolledBack
		}
		return nil
	})
}

// carefulBatches is how many batches run in careful mode after a rerun.
const carefulBatches = 16

// maxRetries is how many times a PostgreSQL batch is run again after a
// deadlock or serialization failure.
const maxRetries = 8

// runBatch runs every operation of the batch in one transaction. An
// operation's error is stored in errs and its writes are undone (its
// in-memory layer dropped, and its savepoint rolled back if it opened one);
// the returned error is for the batch as a whole. fast lets debits defer
// their rows (pending.go).
func (w *writer) runBatch(batch []*op, errs []error, fast bool) (*Tx, error) {
	// IMMEDIATE takes the write lock now, so a CLI command writing to the
	// same file makes us wait (busy_timeout) rather than fail mid-batch.
	if _, err := w.exec(w.d.sql("BEGIN IMMEDIATE", "BEGIN")); err != nil {
		return nil, storageError(err)
	}
	batchNow := w.d.now()
	t := &Tx{w: w, touched: map[string]bool{}, batch: newBatchState(), op: newBatchState(), fast: fast, single: len(batch) == 1,
		pend: w.spare[0], opPend: w.spare[1]}
	defer func() {
		t.pend.reset()
		t.opPend.reset()
		w.spare = [2]pendingRows{t.pend, t.opPend}
	}()
	if w.d.dialect == Postgres {
		// Other instances write at any time: nothing remembered from an
		// earlier batch is trusted. Each wallet is read again, under a row
		// lock (readWallet), by the first operation that needs it.
		w.forget()
		w.pb, w.nextID = nil, 0
		w.idBlock = w.idBlock[:0] // ids follow commit order (pgIDBlock)
		// The wallets the operations named are locked (in id order) and
		// read now, together.
		if err := t.prefetchBatch(batch, errs); err != nil {
			if isRetryable(err) {
				return t, err
			}
			return t, storageError(err)
		}
		// The price book too, before any operation (whose first query
		// would otherwise open a savepoint). An error (none published yet)
		// is the operations' to report.
		t.Now = batchNow
		t.priceBook()
	} else {
		// Has another connection (another process) committed since our last
		// batch? Then what we remember may be stale: forget it.
		var dv int64
		if err := t.queryRow("PRAGMA data_version").Scan(&dv); err != nil {
			return t, storageError(err)
		}
		if dv != w.dataVersion {
			w.forget()
			w.pb, w.dataVersion, w.nextID = nil, dv, 0
		}
	}
	t.nextID = w.nextID
	for i, o := range batch {
		if errs[i] == errCarried {
			continue
		}
		if err := o.ctx.Err(); err != nil {
			errs[i] = billing.Errorf(billing.CodeUnavailable, "The request was cancelled before it was written.")
			continue
		}
		t.Now = batchNow
		if !o.now.IsZero() {
			t.Now = o.now
		}
		nAfter := len(t.after)
		t.opsLeft = len(batch) - i
		t.beginOp()
		err := safeRun(o.fn, t)
		if t.broken != nil {
			return t, t.broken
		}
		t.endOp(err == nil)
		if err == nil {
			if t.savepoint {
				if _, err := w.exec("RELEASE op"); err != nil {
					return t, storageError(err)
				}
			}
			continue
		}
		errs[i] = classify(err)
		if isRetryable(err) {
			return t, err // the whole batch runs again (commit)
		}
		if t.single {
			// Nothing else shares the transaction: undo it all.
			return t, errs[i]
		}
		if t.savepoint {
			if _, rerr := w.exec("ROLLBACK TO op"); rerr != nil {
				return t, storageError(rerr)
			}
			if _, rerr := w.exec("RELEASE op"); rerr != nil {
				return t, storageError(rerr)
			}
		}
		t.after = t.after[:nAfter]
		if billing.ErrorCode(errs[i]) == billing.CodeStorageUnavailable {
			// The disk is full or read-only: the rest of the batch will fail the
			// same way, and the commit with it. Stop here.
			return t, errs[i]
		}
	}
	if err := t.flush(); err != nil {
		if t.broken != nil {
			return t, t.broken
		}
		return t, storageError(err)
	}
	return t, nil
}

func (w *writer) exec(query string) (sql.Result, error) { return w.execArgs(query) }

// execArgs runs a statement of the writer's own (not an operation's),
// prepared once.
func (w *writer) execArgs(query string, args ...any) (sql.Result, error) {
	s, ok := w.stmts[query]
	if !ok {
		var err error
		if s, err = w.conn.PrepareContext(w.ctx, query); err != nil {
			return nil, err
		}
		w.stmts[query] = s
	}
	return s.Exec(args...)
}

// cancelled is a context that is done, for queries that must fail.
var cancelled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// safeRun turns a panic in an operation into an internal error, so one bug
// cannot take down the writer and with it every request in flight.
func safeRun(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("db: panic in write operation: %v", r)
		}
	}()
	return fn(t)
}

// refusal reports whether err is an operation's own refusal (a billing error
// other than storage_unavailable), not a fault of the batch.
func refusal(err error) bool {
	var be *billing.Error
	return errors.As(err, &be) && be.Code != billing.CodeStorageUnavailable
}

// classify keeps billing errors and turns storage faults into
// storage_unavailable; anything else stays as is (an internal error).
func classify(err error) error {
	var be *billing.Error
	if errors.As(err, &be) {
		return err
	}
	return storageError(err)
}

// storageError maps SQLite's I/O-level failures (disk full, read-only file,
// lock timeouts, I/O errors) to a storage_unavailable error that tells the
// client nothing was written. Other errors pass through unchanged.
func storageError(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	var why string
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		why = "the disk is full"
	case sqlite3.SQLITE_READONLY:
		why = "the database file is read-only"
	case sqlite3.SQLITE_IOERR:
		why = "a disk I/O error occurred"
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		why = "the database is locked by another process"
	case sqlite3.SQLITE_CANTOPEN:
		why = "the database file cannot be opened"
	default:
		return err
	}
	return &billing.Error{Code: billing.CodeStorageUnavailable,
		Message: "Storage is unavailable (" + why + "). Nothing was written; retry later.", Cause: err}
}
