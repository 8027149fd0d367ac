package db

import (
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/tally-billing/tally/billing"
)

// The writer keeps a working copy of each wallet it touches (balance, held,
// debt, limits and the lots that still hold credits) instead of reading and
// writing those rows for every operation. Operations change the copy; the
// rows are written once per batch, just before COMMIT, in the same
// transaction as the entries that explain them. A hot customer debited 200
// times in one batch costs one wallet UPDATE, not 200.
//
// Three layers keep this exact:
//   - op level: an operation works on clones; if it fails (and rolls back to
//     its savepoint) the clones are dropped, so memory matches the database;
//   - batch level: a successful operation's clones replace the batch's;
//   - writer cache: after a durable COMMIT the batch's copies are kept for
//     the next batches. It is dropped whenever another connection (another
//     process, such as the CLI) has committed: PRAGMA data_version tells.

// wallet is one customer's state as the writer sees it.
type wallet struct {
	customerID string
	billing.Wallet
	caps         billing.SpendCaps // the operator's spend caps
	customerCaps billing.SpendCaps // the caps the customer set in the portal
	lots         []billing.Lot     // remaining > 0, any order
	holds        []billing.Hold    // the open (active) holds, any order
	refillAt     *billing.Credits  // auto-refill threshold, nil when off or paused
	lowSet       *billing.Credits  // the customer's low-balance threshold (nil: the default)
	lastTopUp    billing.Credits   // the credits of the last purchase, for the default threshold
	lowAnnounced bool              // the last threshold event said "low"
	frozen       bool              // an admin froze the account (wallets.frozen_at)
	dirty        bool              // wallet row needs writing
	dirtyLots    []lotRemaining    // lots whose remaining must be written
}

// lotRemaining is a lot's new remaining credits, to write.
type lotRemaining struct {
	id        int64
	remaining billing.Credits
}

func (w *wallet) clone() *wallet {
	c := *w
	c.lots = slices.Clone(w.lots)
	c.holds = slices.Clone(w.holds)
	c.dirtyLots = slices.Clone(w.dirtyLots)
	return &c
}

type rollupKey struct{ customer, day, feature string }

type rollupDelta struct {
	credits  billing.Credits
	quantity billing.Quantity
	events   int64
}

type keySpendKey struct{ key, day string }

// batchState is what a batch has changed so far, not yet written.
type batchState struct {
	wallets  map[string]*wallet
	rollups  map[rollupKey]rollupDelta
	keySpend map[keySpendKey]billing.Credits
}

func newBatchState() batchState {
	return batchState{wallets: map[string]*wallet{}, rollups: map[rollupKey]rollupDelta{}, keySpend: map[keySpendKey]billing.Credits{}}
}

// beginOp starts an operation's private layer.
func (t *Tx) beginOp() {
	clear(t.op.wallets)
	clear(t.op.rollups)
	clear(t.op.keySpend)
	t.opTouch = t.opTouch[:0]
	t.inOp, t.opSQL, t.savepoint = true, false, false
	t.opNextID = t.nextID
	t.opEvLock = false
}

// endOp keeps (ok) or drops the operation's changes.
func (t *Tx) endOp(ok bool) {
	t.inOp = false
	if ok && t.opEvLock {
		t.evLock = true
	}
	t.opEvLock = false
	switch {
	case ok:
		t.opPend.moveTo(&t.pend)
	case t.opSQL:
		// Its rows were written and are being rolled back: the table tells
		// the next id again.
		t.opPend.reset()
		t.nextID = 0
	default:
		t.opPend.reset()
		t.nextID = t.opNextID
	}
	if !ok {
		return
	}
	maps.Copy(t.batch.wallets, t.op.wallets)
	for k, d := range t.op.rollups {
		b := t.batch.rollups[k]
		t.batch.rollups[k] = rollupDelta{b.credits + d.credits, b.quantity + d.quantity, b.events + d.events}
	}
	for k, c := range t.op.keySpend {
		t.batch.keySpend[k] += c
	}
	for _, id := range t.opTouch {
		t.touched[id] = true
	}
}

// loadWallet returns the operation's working copy of a customer's wallet.
func (t *Tx) loadWallet(customerID string) (*wallet, error) {
	if w, ok := t.op.wallets[customerID]; ok {
		return w, nil
	}
	var src *wallet
	if w, ok := t.batch.wallets[customerID]; ok {
		src = w
	} else if w, ok := t.w.cache[customerID]; ok {
		src = w
	} else {
		w, err := t.readWallet(customerID)
		if err != nil {
			return nil, err
		}
		src = w
		if t.w.d.dialect != Postgres {
			t.batch.wallets[customerID] = w // clean: safe to share with the batch as is
		}
		// PostgreSQL: the row lock readWallet took belongs to the
		// operation's savepoint; the wallet joins the batch when the
		// operation succeeds (endOp), so an operation undone never leaves
		// an unlocked copy behind.
	}
	w := src.clone()
	t.op.wallets[customerID] = w
	return w, nil
}

func (t *Tx) readWallet(customerID string) (*wallet, error) {
	w := &wallet{customerID: customerID}
	var daily, monthly, ownDaily, ownMonthly sql.NullInt64
	err := t.queryRow(`SELECT balance, held, debt, overdraft_limit, daily_cap, monthly_cap, customer_daily_cap, customer_monthly_cap, low_announced,
		frozen_at IS NOT NULL FROM wallets WHERE customer_id = ?`+t.w.d.sql("", " FOR UPDATE"), customerID).
		Scan(&w.Balance, &w.Held, &w.Debt, &w.OverdraftLimit, &daily, &monthly, &ownDaily, &ownMonthly, &w.lowAnnounced, &w.frozen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFoundCustomer(customerID)
	}
	if err != nil {
		return nil, err
	}
	w.caps = billing.SpendCaps{DailyCap: creditsPtr(daily), MonthlyCap: creditsPtr(monthly)}
	w.customerCaps = billing.SpendCaps{DailyCap: creditsPtr(ownDaily), MonthlyCap: creditsPtr(ownMonthly)}
	if w.refillAt, err = t.refillTrigger(customerID); err != nil {
		return nil, err
	}
	var low sql.NullInt64
	if err := t.queryRow(`SELECT low_balance_threshold FROM customer_settings WHERE customer_id = ?`, customerID).Scan(&low); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	w.lowSet = creditsPtr(low)
	if err := t.queryRow(`SELECT amount FROM lots WHERE customer_id = ? AND source = 'purchase' ORDER BY id DESC LIMIT 1`, customerID).Scan(&w.lastTopUp); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	rows, err := t.query(`SELECT `+lotCols+` FROM lots WHERE customer_id = ? AND remaining > 0`, customerID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			return nil, err
		}
		w.lots = append(w.lots, l)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	hrows, err := t.query(`SELECT `+holdCols+` FROM holds WHERE customer_id = ? AND status = 'active'`, customerID)
	if err != nil {
		return nil, err
	}
	defer hrows.Close()
	for hrows.Next() {
		h, err := scanHold(hrows)
		if err != nil {
			return nil, err
		}
		w.holds = append(w.holds, h)
	}
	return w, hrows.Err()
}

// openHold returns the customer's open hold id from the working copy.
func (w *wallet) openHold(id string) (billing.Hold, bool) {
	for _, h := range w.holds {
		if h.ID == id {
			return h, true
		}
	}
	return billing.Hold{}, false
}

// dropHold removes a closed hold from the working copy.
func (w *wallet) dropHold(id string) {
	w.holds = slices.DeleteFunc(w.holds, func(h billing.Hold) bool { return h.ID == id })
}

// saveWallet marks the wallet for writing at the end of the batch.
func (t *Tx) saveWallet(w *wallet) error {
	w.dirty = true
	t.touch(w.customerID)
	return nil
}

// setLot records a lot's new remaining credits in the working copy.
func (w *wallet) setLot(id int64, remaining billing.Credits) {
	for i := range w.lots {
		if w.lots[i].ID == id {
			w.lots[i].Remaining = remaining
			if remaining == 0 {
				w.lots = slices.Delete(w.lots, i, i+1)
			}
			break
		}
	}
	for i := range w.dirtyLots {
		if w.dirtyLots[i].id == id {
			w.dirtyLots[i].remaining = remaining
			return
		}
	}
	w.dirtyLots = append(w.dirtyLots, lotRemaining{id, remaining})
}

func (w *wallet) lot(id int64) (billing.Lot, bool) {
	for _, l := range w.lots {
		if l.ID == id {
			return l, true
		}
	}
	return billing.Lot{}, false
}

// pendingSpend is what this batch (and the running operation) have added to
// a customer's or key's spend today and this month, not yet written.
func (t *Tx) pendingSpend(customer, key string) billing.Spend {
	var s billing.Spend
	day := t.day()
	month := day[:8]
	for _, layer := range []batchState{t.batch, t.op} {
		for k, d := range layer.rollups {
			if customer != "" && k.customer == customer && strings.HasPrefix(k.day, month) {
				s.Month += d.credits
				if k.day == day {
					s.Day += d.credits
				}
			}
		}
		for k, c := range layer.keySpend {
			if key != "" && k.key == key && strings.HasPrefix(k.day, month) {
				s.Month += c
				if k.day == day {
					s.Day += c
				}
			}
		}
	}
	return s
}

// flush writes the batch's pending rows, wallets, lots and rollups. It runs
// once, after the last operation and before COMMIT. Each kind of row goes in
// a few multi-row statements: a batch spread over many customers changes
// hundreds of wallets, lots and rollups.
func (t *Tx) flush() error {
	if err := t.writePending(&t.pend); err != nil {
		return t.breakOn(err)
	}
	w := t.w
	ids := slices.Sorted(maps.Keys(t.batch.wallets)) // a stable order for the writes
	lots, wallets := w.vals[0][:0], w.vals[1][:0]
	for _, id := range ids {
		wal := t.batch.wallets[id]
		for _, l := range wal.dirtyLots {
			lots = append(lots, l.id, int64(l.remaining))
		}
		if wal.dirty {
			wallets = append(wallets, id, int64(wal.Balance), int64(wal.Held), int64(wal.Debt), int64(wal.OverdraftLimit),
				nullCredits(wal.caps.DailyCap), nullCredits(wal.caps.MonthlyCap),
				nullCredits(wal.customerCaps.DailyCap), nullCredits(wal.customerCaps.MonthlyCap), boolInt(wal.lowAnnounced), micros(t.Now))
		}
	}
	rollups, spend := w.vals[2][:0], w.vals[3][:0]
	for k, d := range t.batch.rollups {
		rollups = append(rollups, k.customer, k.day, k.feature, int64(d.credits), int64(d.quantity), d.events)
	}
	for k, c := range t.batch.keySpend {
		spend = append(spend, k.key, k.day, int64(c))
	}
	w.vals = [4][]any{lots, wallets, rollups, spend}
	defer func() {
		for i := range w.vals {
			clear(w.vals[i])
		}
	}()
	// UPDATE ... FROM (VALUES ...): SQLite reads the values and finds each
	// row by its key.
	// PostgreSQL types a VALUES list's parameters as text unless told.
	d := w.d
	if err := w.writeRows(`UPDATE lots SET remaining = v.column2 FROM (VALUES `, d.sql(`(?, ?)`, `(?::bigint, ?::bigint)`),
		`) AS v WHERE lots.id = v.column1`, 2, lots); err != nil {
		return err
	}
	if err := w.writeRows(`UPDATE wallets SET balance = v.column2, held = v.column3, debt = v.column4, overdraft_limit = v.column5,
		daily_cap = v.column6, monthly_cap = v.column7, customer_daily_cap = v.column8, customer_monthly_cap = v.column9,
		low_announced = v.column10, updated_at = v.column11 FROM (VALUES `,
		d.sql(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, `(?, ?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::bigint)`),
		`) AS v WHERE wallets.customer_id = v.column1`, 11, wallets); err != nil {
		return err
	}
	if err := w.writeRows(`INSERT INTO usage_daily (customer_id, day, feature, credits, quantity, events) VALUES `, `(?, ?, ?, ?, ?, ?)`,
		` ON CONFLICT (customer_id, day, feature) DO UPDATE SET credits = usage_daily.credits + excluded.credits,
		quantity = usage_daily.quantity + excluded.quantity, events = usage_daily.events + excluded.events`, 6, rollups); err != nil {
		return err
	}
	return w.writeRows(`INSERT INTO api_key_spend (api_key_id, day, credits) VALUES `, `(?, ?, ?)`,
		` ON CONFLICT (api_key_id, day) DO UPDATE SET credits = api_key_spend.credits + excluded.credits`, 3, spend)
}

// keep moves a committed batch's wallets into the writer's cache, and
// indexes their open holds by id (so a capture finds its customer without
// SQL); closed is the holds the batch closed.
func (w *writer) keep(b batchState, closed []string) {
	if w.cache == nil || len(w.cache) > maxCachedWallets || len(w.holdOwner) > maxIndexedHolds {
		w.forget()
	}
	for id, wal := range b.wallets {
		wal.dirty, wal.dirtyLots = false, nil
		w.cache[id] = wal
		for _, h := range wal.holds {
			w.holdOwner[h.ID] = id
		}
	}
	for _, id := range closed {
		delete(w.holdOwner, id)
	}
}

// forget drops what the writer remembers of committed wallets and holds.
func (w *writer) forget() {
	w.cache, w.holdOwner = map[string]*wallet{}, map[string]string{}
}

// maxIndexedHolds bounds the writer's hold index.
const maxIndexedHolds = 200_000

// maxCachedWallets bounds the writer's cache (a wallet with a few lots is
// well under a kilobyte).
const maxCachedWallets = 50_000

// lowThreshold is the available balance at or below which balance.low
// fires: the customer's setting or the default (billing.CustomerSettings).
func (w *wallet) lowThreshold() billing.Credits {
	return billing.CustomerSettings{LowBalanceThreshold: w.lowSet}.Threshold(w.lastTopUp)
}

// boolInt is a boolean as the driver's int64.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
