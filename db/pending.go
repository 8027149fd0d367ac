package db

import (
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/tally-billing/tally/billing"
)

// Deferred rows: the writer's fast path for debits, holds and captures.
//
// A debit's effects are decided in memory (the wallet, its lots and the
// rollups are working copies, see state.go); what is left for SQL is two
// appends, the entry and the lots it burned. Run one by one, each inside its
// own SAVEPOINT, those appends were most of the writer's time: SQLite copies
// every page a savepoint touches to its statement journal, and every
// statement pays the driver's per-call cost. So in a fast batch a debit does
// not write them: it gives its entry an id from the writer's counter and
// leaves both rows in the operation's pending layer. When the operation
// succeeds they join the batch's pending rows; when it fails they are dropped
// with the rest of its working copies. That in-memory layer is the
// operation's savepoint. The batch's rows are then written in a few
// multi-row INSERTs just before COMMIT, in the same transaction.
//
// Three rules keep this exact:
//   - An operation that touches SQL itself (a grant, a hold, a debit that
//     must expire a hold, look a key up or read a wallet the writer does not
//     hold in memory) first writes every pending row,
//     the batch's and then, inside the SAVEPOINT it opens, its own. From
//     there on it runs as every operation did before: its statements see
//     the whole ledger, and a failure rolls back to its savepoint.
//   - A debit whose idempotency key is already pending in this batch goes
//     the same way, so its insert meets the UNIQUE index and replays.
//   - A key that is already in the ledger (a retry of a committed debit) is
//     found only when the pending rows are written: the multi-row INSERT
//     fails on the UNIQUE index. The writer then rolls the whole batch back
//     and runs it again in careful mode (no deferred rows: every operation
//     writes its own rows inside its savepoint), where the retry replays.
//     The next batches stay careful for a while, as retries come in bursts.
//
// Holds and captures defer theirs too: the hold's row (written before the
// entries, which name it) and its close (an UPDATE written after them, only
// of a row still active). A capture finds its hold in the wallet's working
// copy through the writer's hold index (state.go); a hold the writer does
// not know as open is read from SQL.
//
// The UNIQUE index and the primary key stay the backstop: a deferred row can
// never be written twice, only refused. A refusal by a constraint reruns the
// batch; any other error (a full disk, a bug) fails it.

// pendingEntry is an entry whose id is given and whose row is not yet written.
type pendingEntry struct {
	id  int64
	row entryRow
	at  int64 // created_at, unix microseconds
}

type pendingLot struct {
	entryID, lotID, amount int64
}

// pendingHold is a hold opened by a deferred operation; pendingClose is a
// hold's capture, release or expiry.
type pendingHold struct {
	id, customerID, apiKeyID string
	amount, expiresAt, at    int64
}

type pendingClose struct {
	id, status string
	at         int64
	entryID    any // int64, or nil when the close wrote no entry of its own
}

// pendingRows are rows waiting to be written.
type pendingRows struct {
	entries []pendingEntry
	lots    []pendingLot
	events  []pendingEvent  // the outbox rows of the same operations
	holds   []pendingHold   // holds opened
	closes  []pendingClose  // holds closed
	keys    map[string]bool // idempotency keys of entries
}

func (p *pendingRows) empty() bool {
	return len(p.entries) == 0 && len(p.lots) == 0 && len(p.events) == 0 && len(p.holds) == 0 && len(p.closes) == 0
}

func (p *pendingRows) reset() {
	p.entries, p.lots, p.events = p.entries[:0], p.lots[:0], p.events[:0]
	p.holds, p.closes = p.holds[:0], p.closes[:0]
	clear(p.keys)
}

// moveTo appends p's rows to dst and empties p.
func (p *pendingRows) moveTo(dst *pendingRows) {
	dst.entries = append(dst.entries, p.entries...)
	dst.lots = append(dst.lots, p.lots...)
	dst.events = append(dst.events, p.events...)
	dst.holds = append(dst.holds, p.holds...)
	dst.closes = append(dst.closes, p.closes...)
	for k := range p.keys {
		if dst.keys == nil {
			dst.keys = map[string]bool{}
		}
		dst.keys[k] = true
	}
	p.reset()
}

func (t *Tx) keyPending(key string) bool {
	return key != "" && (t.pend.keys[key] || t.opPend.keys[key])
}

// deferring reports whether the running operation leaves its rows pending.
func (t *Tx) deferring() bool { return t.fast && t.inOp && !t.opSQL && t.broken == nil }

// errRerun marks a batch whose pending rows were refused: it is rolled back
// and run again in careful mode.
var errRerun = errors.New("db: pending rows refused; the batch runs again in careful mode")

// direct prepares the running operation to use SQL itself: the batch's
// pending rows are written, the operation's savepoint opened (unless it is
// alone in its batch) and its own pending rows written inside it. Failures
// are sticky (t.broken): the batch then ends, whatever the operation makes
// of the error.
func (t *Tx) direct() error {
	if t.broken != nil {
		return t.broken
	}
	if !t.inOp || t.opSQL {
		return nil
	}
	t.opSQL = true
	if err := t.writePending(&t.pend); err != nil {
		return t.breakOn(err)
	}
	if !t.single {
		if _, err := t.w.exec("SAVEPOINT op"); err != nil {
			return t.breakOn(err)
		}
		t.savepoint = true
	}
	if err := t.writePending(&t.opPend); err != nil {
		return t.breakOn(err)
	}
	// Nothing is pending now, and the operation may append entries itself:
	// the next deferred id is read from the table again (on PostgreSQL,
	// taken from a new block, after the sequence values this one uses).
	t.nextID = 0
	t.w.idBlock = t.w.idBlock[:0]
	return nil
}

// breakOn makes err the batch's: a constraint the pending rows broke (a
// key already in the ledger) reruns it carefully; anything else (a storage
// fault, or a bug) fails it.
func (t *Tx) breakOn(err error) error {
	if isConstraint(err) {
		t.broken = errRerun
	} else {
		t.broken = storageError(err)
	}
	return t.broken
}

// allocEntryID hands out the next entry id for a deferred entry. The writer
// holds the write lock for the whole batch, so nobody else appends entries
// meanwhile; the counter is read from the table when it is not known (at
// the first batch, after another process wrote, after an operation appended
// entries itself or a batch failed) and otherwise carried from batch to batch.
//
// On PostgreSQL other instances append entries at any time: ids come from
// the entries' sequence, fetched in blocks (pgEntryIDs) and kept by the
// writer across batches (a sequence never hands a value out twice; an id
// given to a row that was dropped is a gap, nothing more).
func (t *Tx) allocEntryID() (int64, error) {
	if t.w.d.dialect == Postgres {
		return t.pgEntryID()
	}
	if t.nextID == 0 {
		s, err := t.stmt(`SELECT COALESCE(MAX(id), 0) + 1 FROM entries`)
		if err != nil {
			return 0, t.breakOn(err)
		}
		if err := s.QueryRow().Scan(&t.nextID); err != nil {
			return 0, t.breakOn(err)
		}
	}
	id := t.nextID
	t.nextID++
	return id, nil
}

// pgIDBlock bounds how many entry ids the PostgreSQL writer takes from
// the sequence at once: as many as the batch has operations left (a debit
// writes one entry) or as it has taken so far, at least pgIDBlockMin.
//
// A block is good for one stretch of deferred entries only: it is dropped
// when the batch ends and when an operation writes directly (direct),
// whose entries take later values of the sequence. So an instance's entry
// ids follow its commit order, as on SQLite (the ledger's running balance
// is read in id order); an unused id is a gap.
const (
	pgIDBlock    = 1024
	pgIDBlockMin = 8
)

func (t *Tx) pgEntryID() (int64, error) {
	w := t.w
	if len(w.idBlock) == 0 {
		if w.entrySeq == "" {
			// The sequence is named once, so the block's query names it as a
			// literal: pg_get_serial_sequence in the query ran once per id,
			// six times the cost of the nextval itself.
			var name string
			if err := w.conn.QueryRowContext(w.ctx, `SELECT pg_get_serial_sequence('entries', 'id')`).Scan(&name); err != nil {
				return 0, err
			}
			w.entrySeq = `SELECT nextval('` + strings.ReplaceAll(name, `'`, `''`) + `') FROM generate_series(1, ?)`
		}
		// A batch request's one operation writes many entries: a batch
		// that used up its block takes twice as many next time.
		n := min(max(t.opsLeft, t.idsTaken, pgIDBlockMin), pgIDBlock)
		rows, err := w.conn.QueryContext(w.ctx, w.entrySeq, n)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return 0, err
			}
			w.idBlock = append(w.idBlock, id)
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if len(w.idBlock) == 0 {
			return 0, errors.New("db: the entries sequence gave no ids")
		}
	}
	id := w.idBlock[0]
	w.idBlock = w.idBlock[1:]
	t.idsTaken++
	return id, nil
}

// deferEntry leaves an entry pending and returns its id.
func (t *Tx) deferEntry(e entryRow) (int64, error) {
	id, err := t.allocEntryID()
	if err != nil {
		return 0, err
	}
	t.opPend.entries = append(t.opPend.entries, pendingEntry{id: id, row: e, at: micros(t.Now)})
	if e.key != "" {
		if t.opPend.keys == nil {
			t.opPend.keys = map[string]bool{}
		}
		t.opPend.keys[e.key] = true
	}
	return id, nil
}

// Entries are written with one of two statements: plain debits (the bulk)
// bind only the columns a debit uses; any other entry binds them all.
const (
	entryInsert = `INSERT INTO entries (id, customer_id, type, amount, held_delta, balance_after, feature, quantity,
	price_version, lot_id, hold_id, source, reason, metadata, api_key_id, idempotency_key, request_hash, created_at, actor, quantities) VALUES `
	entryGroup     = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	debitInsert    = `INSERT INTO entries (id, customer_id, type, amount, balance_after, feature, quantity, price_version, lot_id, metadata, api_key_id, idempotency_key, request_hash, created_at) VALUES `
	debitGroup     = `(?, ?, 'debit', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	entryLotInsert = `INSERT INTO entry_lots (entry_id, lot_id, amount) VALUES `
	entryLotGroup  = `(?, ?, ?)`
	maxChunk       = 128 // rows per INSERT: 128 entries bind 2,560 values, well under SQLite's limit
)

// Rows per multi-row INSERT: a few fixed sizes, so the statements are
// prepared once.
var insertChunks = []int{maxChunk, 64, 32, 16, 8, 4, 2, 1}

// plainDebit reports whether e uses only the columns of debitInsert.
func plainDebit(e *entryRow) bool {
	return e.typ == billing.EntryDebit && e.heldDelta == 0 && e.holdID == "" && e.source == "" && e.reason == "" && len(e.breakdown) == 0 &&
		(e.actor == "" || e.actor == "api_key:"+e.apiKeyID) // the actor a plain debit's row implies
}

// writePending writes p's rows and empties p.
func (t *Tx) writePending(p *pendingRows) error {
	if p.empty() {
		return nil
	}
	w := t.w
	// Holds first: entries name them (entries.hold_id references holds).
	if len(p.holds) > 0 {
		vals := make([]any, 0, 6*len(p.holds))
		for _, h := range p.holds {
			vals = append(vals, h.id, h.customerID, h.amount, h.expiresAt, h.at, nullStr(h.apiKeyID))
		}
		if err := w.writeRows(`INSERT INTO holds (id, customer_id, amount, status, expires_at, created_at, api_key_id) VALUES `,
			`(?, ?, ?, 'active', ?, ?, ?)`, "", 6, vals); err != nil {
			return err
		}
	}
	used := 0
	defer func() { clear(w.args[:used]) }() // drop references to this batch's strings
	for rest := p.entries; len(rest) > 0; {
		// The longest run of entries of one kind, up to a chunk.
		plain := plainDebit(&rest[0].row)
		run := 1
		for run < len(rest) && run < maxChunk && plainDebit(&rest[run].row) == plain {
			run++
		}
		n := w.chunk(run)
		args := w.args[:0]
		for _, pe := range rest[:n] {
			e := &pe.row
			var qty any
			if e.quantity != nil {
				qty = int64(*e.quantity)
			}
			meta, err := metadataJSON(e.metadata)
			if err != nil {
				return err
			}
			var hash any
			if e.hash != nil {
				hash = e.hash
			}
			dims, err := breakdownJSON(e.breakdown)
			if err != nil {
				return err
			}
			if plain {
				args = appendArgs(args, pe.id, e.customerID, int64(e.amount), int64(e.balanceAfter), nullStr(e.feature), qty,
					nullInt(e.priceVersion), nullInt(e.lotID), meta, nullStr(e.apiKeyID), nullStr(e.key), hash, pe.at)
			} else {
				args = appendArgs(args, pe.id, e.customerID, e.typ, int64(e.amount), int64(e.heldDelta), int64(e.balanceAfter),
					nullStr(e.feature), qty, nullInt(e.priceVersion), nullInt(e.lotID), nullStr(e.holdID), nullStr(e.source),
					e.reason, meta, nullStr(e.apiKeyID), nullStr(e.key), hash, pe.at, entryActor(e), dims)
			}
		}
		w.args, used = args, max(used, len(args))
		q := w.multiRow(entryInsert, entryGroup, "", n)
		if plain {
			q = w.multiRow(debitInsert, debitGroup, "", n)
		}
		if err := w.execDriver(q, args); err != nil {
			return err
		}
		rest = rest[n:]
	}
	if len(p.events) > 0 {
		// PostgreSQL: events are numbered in commit order (lockOutbox).
		if err := t.lockOutbox(); err != nil {
			return err
		}
	}
	if err := w.writeEvents(p.events); err != nil {
		return err
	}
	if len(p.lots) > 0 {
		vals := w.vals[0][:0]
		for _, l := range p.lots {
			vals = append(vals, l.entryID, l.lotID, l.amount)
		}
		w.vals[0] = vals
		err := w.writeRows(entryLotInsert, entryLotGroup, "", 3, vals)
		clear(vals)
		if err != nil {
			return err
		}
	}
	if len(p.closes) > 0 {
		// Only an open hold closes: the writer's copy says it is open, and
		// the row must agree (a hold opened in this batch was inserted above).
		vals := make([]any, 0, 4*len(p.closes))
		for _, c := range p.closes {
			vals = append(vals, c.id, c.status, c.at, c.entryID)
		}
		if err := w.writeRows(`UPDATE holds SET status = v.column2, closed_at = v.column3, close_entry_id = v.column4 FROM (VALUES `,
			w.d.sql(`(?, ?, ?, ?)`, `(?, ?, ?::bigint, ?::bigint)`), `) AS v WHERE holds.id = v.column1 AND holds.status = 'active'`, 4, vals); err != nil {
			return err
		}
	}
	p.reset()
	return nil
}

// writeRows runs prefix, then one group per row, then suffix, in chunks of
// rows; vals holds width values per row.
func (w *writer) writeRows(prefix, group, suffix string, width int, vals []any) error {
	used := 0
	defer func() { clear(w.args[:used]) }()
	for rest := vals; len(rest) > 0; {
		n := w.chunk(len(rest) / width)
		args := w.args[:0]
		for _, v := range rest[:n*width] {
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: v})
		}
		w.args, used = args, max(used, len(args))
		if err := w.execDriver(w.multiRow(prefix, group, suffix, n), args); err != nil {
			return err
		}
		rest = rest[n*width:]
	}
	return nil
}

// appendArgs appends values as numbered driver arguments. The values are
// already of the driver's types (int64, string, []byte or nil).
func appendArgs(args []driver.NamedValue, vals ...any) []driver.NamedValue {
	for _, v := range vals {
		args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: v})
	}
	return args
}

// execDriver runs one of the writer's multi-row INSERTs on the driver
// connection itself: database/sql would check and convert each of the
// thousands of arguments, which the writer has already typed.
func (w *writer) execDriver(query string, args []driver.NamedValue) error {
	return w.conn.Raw(func(dc any) error {
		s, ok := w.driverStmts[query]
		if !ok {
			var err error
			if s, err = dc.(driver.ConnPrepareContext).PrepareContext(w.ctx, query); err != nil {
				return err
			}
			if w.driverStmts == nil {
				w.driverStmts = map[string]driver.Stmt{}
			}
			w.driverStmts[query] = s
		}
		_, err := s.(driver.StmtExecContext).ExecContext(w.ctx, args)
		return err
	})
}

// closeDriverStmts releases the statements execDriver prepared.
func (w *writer) closeDriverStmts() {
	w.conn.Raw(func(any) error {
		for _, s := range w.driverStmts {
			s.Close()
		}
		return nil
	})
}

// chunk is how many of n rows the next multi-row statement writes. On
// PostgreSQL, every statement is a round trip to the server while the
// writer waits, so the rows go in one statement of exactly their number
// (prepared once per size seen); SQLite, in-process, keeps to a few sizes.
func (w *writer) chunk(n int) int {
	if w.d.dialect == Postgres {
		return min(n, maxChunk)
	}
	return chunk(n)
}

func chunk(n int) int {
	for _, c := range insertChunks {
		if n >= c {
			return c
		}
	}
	return n
}

// multiRow is prefix, n copies of group, then suffix. The strings are kept,
// as they key the writer's prepared statements.
func (w *writer) multiRow(prefix, group, suffix string, n int) string {
	k := multiKey{prefix, n}
	if q, ok := w.multi[k]; ok {
		return q
	}
	var sb strings.Builder
	sb.WriteString(prefix)
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(group)
	}
	sb.WriteString(suffix)
	q := sb.String()
	if w.multi == nil {
		w.multi = map[multiKey]string{}
	}
	w.multi[k] = q
	return q
}

type multiKey struct {
	prefix string
	n      int
}
