package db

import (
	"time"

	"github.com/tally-billing/tally/billing"
)

// The applier: the one place in db that changes a balance, a lot, a hold or
// a debt. The contract for new code:
//
//  1. Load the customer's wallet with t.loadWallet (the writer's working
//     copy), expire what is due (t.debitSnapshot does, or t.liveLots and
//     t.expireHoldsOf), and build the plan's snapshot with t.state.
//  2. Call the pure plan in billing; it returns a billing.Change or an
//     error. On an error return it: nothing was written.
//  3. Call t.apply with the Change. It appends the entries (with their
//     burns and the actor), creates the new lot, opens or closes the hold,
//     freezes lots, sets the wallet's figures, adds the rollups, queues the
//     auto-refill and writes the events, all in the operation's transaction.
//
// Never set w.Balance, w.Held, w.Debt or a lot's remaining anywhere else: the
// writer keeps working copies (state.go) and defers a debit's rows
// (pending.go), and only this function keeps both exact. A new money
// operation is a new plan in billing and, at most, a new field of Change
// handled here.

// applied is what the store chose while applying a Change: the entries'
// row ids, in order, and the new lot's.
type applied struct {
	entryIDs []int64
	lotID    int64
}

// state is the plan's snapshot of w; lots are the lots it may burn (the
// live ones for a debit, all with credits left otherwise).
func (t *Tx) state(w *wallet, lots []billing.Lot) billing.WalletState {
	return billing.WalletState{Customer: w.customerID, Wallet: w.Wallet, Lots: lots, RefillAt: w.refillAt,
		LowThreshold: w.lowThreshold(), LowAnnounced: w.lowAnnounced, Frozen: w.frozen}
}

// apply writes ch to w's customer (see the contract above).
func (t *Tx) apply(w *wallet, ch *billing.Change) (applied, error) {
	var out applied
	actor := ch.Actor.String()
	now := t.Now.UTC().Truncate(time.Microsecond)
	if s := ch.Subscription; s != nil {
		if err := t.saveSubscription(s); err != nil {
			return out, err
		}
	}
	if l := ch.NewLot; l != nil {
		if err := t.queryRow(`INSERT INTO lots (customer_id, source, priority, amount, remaining, expires_at, refundable_until, reason, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, w.customerID, l.Source, l.Priority, int64(l.Amount), int64(l.Remaining),
			nullMicros(l.ExpiresAt), nullMicros(l.RefundableUntil), l.Reason, micros(l.CreatedAt)).Scan(&out.lotID); err != nil {
			return out, err
		}
		l.ID = out.lotID
		if l.Remaining > 0 {
			w.lots = append(w.lots, *l)
		}
		if l.Source == billing.SourcePurchase {
			w.lastTopUp = l.Amount // the default low-balance line follows the last purchase
		}
		if r := ch.Rollover; r != nil {
			if _, err := t.exec(`INSERT INTO lot_rollovers (lot_id, subscription_id, policy, max, periods, keep_until) VALUES (?, ?, ?, ?, ?, ?)`,
				out.lotID, r.Subscription, r.Rollover.Policy, int64(r.Rollover.Max), r.Rollover.Periods, micros(r.KeepUntil)); err != nil {
				return out, err
			}
		}
	}
	if h := ch.OpenHold; h != nil {
		keyID := ""
		if len(ch.Entries) > 0 {
			keyID = ch.Entries[0].APIKeyID
		}
		if t.deferring() {
			t.opPend.holds = append(t.opPend.holds, pendingHold{id: h.ID, customerID: w.customerID, apiKeyID: keyID,
				amount: int64(h.Credits), expiresAt: micros(h.ExpiresAt), at: micros(h.CreatedAt)})
		} else if _, err := t.exec(`INSERT INTO holds (id, customer_id, amount, status, expires_at, created_at, api_key_id) VALUES (?, ?, ?, 'active', ?, ?, ?)`,
			h.ID, w.customerID, int64(h.Credits), micros(h.ExpiresAt), micros(h.CreatedAt), nullStr(keyID)); err != nil {
			return out, err
		}
		open := *h
		open.Object, open.ExpiresAt, open.CreatedAt = "hold", fromMicros(micros(h.ExpiresAt)), fromMicros(micros(h.CreatedAt))
		w.holds = append(w.holds, open)
	}
	for i := range ch.Entries {
		e := &ch.Entries[i]
		row := entryRow{customerID: w.customerID, typ: e.Type, amount: e.Amount, heldDelta: e.HeldDelta, balanceAfter: e.BalanceAfter,
			feature: e.Feature, quantity: e.Quantity, breakdown: e.Breakdown, priceVersion: e.PriceVersion, lotID: e.LotID, holdID: e.HoldID, source: e.Source,
			reason: e.Reason, metadata: e.Metadata, apiKeyID: e.APIKeyID, actor: actor, key: e.Key, hash: e.Hash}
		if e.OnNewLot {
			row.lotID = out.lotID
		}
		// A debit that takes all it charges from one lot names the lot on
		// its entry instead of an entry_lots row: one B-tree insert fewer on
		// the hot path; readers and Verify read both forms.
		oneLot := e.Type == billing.EntryDebit && len(e.Burns) == 1 && e.Burns[0].Credits == -e.Amount
		if oneLot {
			row.lotID = e.Burns[0].LotID
		}
		id, err := t.insertEntry(row)
		if err != nil {
			return out, err
		}
		out.entryIDs = append(out.entryIDs, id)
		if oneLot {
			err = t.take(w, e.Burns)
		} else {
			err = t.burn(w, id, e.Burns)
		}
		if err != nil {
			return out, err
		}
	}
	for _, id := range ch.Freeze {
		for i := range w.lots {
			if w.lots[i].ID == id {
				w.lots[i].Frozen = true
			}
		}
		if _, err := t.exec(`UPDATE lots SET frozen = 1 WHERE id = ?`, id); err != nil {
			return out, err
		}
	}
	for _, id := range ch.EmptyLots {
		w.setLot(id, 0)
	}
	for _, c := range ch.CloseLots {
		if err := t.closeLot(w, c); err != nil {
			return out, err
		}
	}
	if p := ch.Period; p != nil {
		if err := t.insertPeriod(w.customerID, p, out.lotID); err != nil {
			return out, err
		}
	}
	if c := ch.CloseHold; c != nil {
		var entryID any
		if len(out.entryIDs) > 0 {
			entryID = out.entryIDs[0]
		}
		if t.deferring() {
			t.opPend.closes = append(t.opPend.closes, pendingClose{id: c.ID, status: c.Status, at: micros(now), entryID: entryID})
		} else if _, err := t.exec(`UPDATE holds SET status = ?, closed_at = ?, close_entry_id = ? WHERE id = ? AND status = 'active'`,
			c.Status, micros(now), entryID, c.ID); err != nil {
			return out, err
		}
		w.dropHold(c.ID)
		t.closedHolds = append(t.closedHolds, c.ID)
	}
	w.Balance, w.Held, w.Debt, w.lowAnnounced = ch.Balance, ch.Held, ch.Debt, ch.LowAnnounced
	if err := t.saveWallet(w); err != nil {
		return out, err
	}
	if ch.QueueRefill {
		if err := t.enqueueRefill(w.customerID); err != nil {
			return out, err
		}
	}
	if u := ch.Usage; u != nil {
		t.recordUsage(w.customerID, u.Feature, u.Quantity, u.Credits, u.APIKeyID)
	}
	for i := range ch.Events {
		ev := &ch.Events[i]
		if ev.Entry > 0 && ev.Entry <= len(out.entryIDs) {
			ev.Data["entry"] = EntryID(out.entryIDs[ev.Entry-1])
		}
		if out.lotID != 0 && ev.Entry > 0 && ch.Entries[ev.Entry-1].OnNewLot {
			ev.Data["lot"] = LotID(out.lotID)
		}
	}
	return out, t.emit(ch.Actor, ch.Events...)
}
