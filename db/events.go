package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The outbox. Every operation that changes a wallet emits the events its
// plan decided with t.emit; they are written in the operation's transaction
// (left pending with a debit's rows on the fast path, see pending.go), so an
// event exists exactly when its change was committed. Consumers read them
// in seq order from a cursor they keep in event_cursors.

// pendingEvent is an event not yet written.
type pendingEvent struct {
	typ, customer, data, actor string
	at                         int64
}

// emit appends events caused by actor to the running operation's outbox rows.
func (t *Tx) emit(actor billing.Actor, evs ...billing.NewEvent) error {
	if len(evs) > 0 {
		t.AfterCommit(t.w.d.signalEvents)
		t.events = true
		if err := t.lockOutbox(); err != nil {
			return err
		}
	}
	for _, ev := range evs {
		if ev.Data == nil {
			ev.Data = map[string]any{}
		}
		b, err := json.Marshal(ev.Data)
		if err != nil {
			return err
		}
		pe := pendingEvent{typ: ev.Type, customer: ev.Customer, data: string(b), actor: actor.String(), at: micros(t.Now)}
		if t.deferring() {
			t.opPend.events = append(t.opPend.events, pe)
			continue
		}
		if _, err := t.exec(`INSERT INTO events (type, customer_id, data, actor, created_at) VALUES (?, ?, ?, ?, ?)`,
			pe.typ, nullStr(pe.customer), pe.data, pe.actor, pe.at); err != nil {
			return err
		}
	}
	return nil
}

// outboxLock is the advisory lock that orders the outbox on PostgreSQL.
const outboxLock = 7_461_001

// lockOutbox makes seq order commit order on PostgreSQL, where several
// instances write: a transaction takes the outbox's advisory lock before
// its first event (its seq numbers come from a sequence) and holds it to
// COMMIT, so no transaction holding a lower seq commits after one holding a
// higher one, and a consumer's cursor never skips an event. SQLite has one
// writer at a time already.
func (t *Tx) lockOutbox() error {
	if t.w.d.dialect != Postgres || t.evLock || t.opEvLock {
		return nil
	}
	if _, err := t.exec(`SELECT pg_advisory_xact_lock(?)`, int64(outboxLock)); err != nil {
		return err
	}
	if t.inOp {
		t.opEvLock = true
	} else {
		t.evLock = true
	}
	return nil
}

// writeEvents writes pending events in multi-row INSERTs, in the order they
// were emitted (so seq follows it).
func (w *writer) writeEvents(evs []pendingEvent) error {
	if len(evs) == 0 {
		return nil
	}
	vals := make([]any, 0, 5*len(evs))
	for _, e := range evs {
		vals = append(vals, e.typ, nullStr(e.customer), e.data, e.actor, e.at)
	}
	return w.writeRows(`INSERT INTO events (type, customer_id, data, actor, created_at) VALUES `, `(?, ?, ?, ?, ?)`, "", 5, vals)
}

// EventFilter selects events: after a sequence number, optionally one
// customer's, at most Limit (default 100, at most 1,000).
type EventFilter struct {
	After    int64
	Customer string
	Limit    int
}

// FindEvents returns events in seq order.
func (d *DB) FindEvents(ctx context.Context, f EventFilter) ([]billing.Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	q := `SELECT seq, type, COALESCE(customer_id, ''), data, actor, created_at FROM events WHERE seq > ?`
	args := []any{f.After}
	if f.Customer != "" {
		q += ` AND customer_id = ?`
		args = append(args, f.Customer)
	}
	rows, err := d.read.QueryContext(ctx, q+` ORDER BY seq LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.Event
	for rows.Next() {
		var e billing.Event
		var data, actor string
		var at int64
		if err := rows.Scan(&e.Seq, &e.Type, &e.Customer, &data, &actor, &at); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(strings.NewReader(data))
		dec.UseNumber() // credits and amounts stay exact, whatever their size
		if err := dec.Decode(&e.Data); err != nil {
			return nil, fmt.Errorf("db: event %d: %w", e.Seq, err)
		}
		e.ID, e.Actor, e.CreatedAt = fmt.Sprintf("evt_%d", e.Seq), billing.ParseActor(actor), fromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// EventCursor is how far a consumer has handled the outbox (0: nothing yet).
func (d *DB) EventCursor(ctx context.Context, consumer string) (int64, error) {
	var seq int64
	err := d.read.QueryRowContext(ctx, `SELECT seq FROM event_cursors WHERE consumer = ?`, consumer).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq, err
}

// SaveEventCursor records that a consumer has handled every event up to
// seq. A cursor never moves back: saving an older seq changes nothing.
func (d *DB) SaveEventCursor(ctx context.Context, consumer string, seq int64) error {
	return d.Write(ctx, func(t *Tx) error { return t.saveEventCursor(consumer, seq) })
}

// saveEventCursor is SaveEventCursor inside a transaction, so a consumer
// whose effect is in this database commits it with its cursor: exactly once.
func (t *Tx) saveEventCursor(consumer string, seq int64) error {
	_, err := t.exec(`INSERT INTO event_cursors (consumer, seq, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (consumer) DO UPDATE SET seq = `+t.w.d.greatest()+`(event_cursors.seq, excluded.seq), updated_at = excluded.updated_at`, consumer, seq, micros(t.Now))
	return err
}

// LastEventSeq is the newest event's sequence number (0 when there is none).
func (d *DB) LastEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := d.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq)
	return seq, err
}

// EventSignal is signalled (coalesced) after each commit that wrote events,
// so consumers in this process wake at once instead of at their next poll.
func (d *DB) EventSignal() <-chan struct{} { return d.eventCh }

func (d *DB) signalEvents() {
	select {
	case d.eventCh <- struct{}{}:
	default:
	}
}

// eventPoll is how often a consumer looks for events written by another
// process (this process's commits wake it at once).
const eventPoll = time.Second

// WatchEvents tails the outbox from its newest event and wakes the live
// balance of each customer an event names. This process's own commits wake
// their customers' streams directly (notify.go); the outbox brings the
// changes other processes commit on the same database, such as a grant
// from the CLI, without waiting for the pages' polling. It runs until ctx
// ends and keeps its cursor in memory: a live stream needs no history.
func (d *DB) WatchEvents(ctx context.Context) error {
	after, err := d.LastEventSeq(ctx)
	if err != nil {
		return err
	}
	tick := time.NewTicker(eventPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.eventCh:
		}
		for {
			evs, err := d.FindEvents(ctx, EventFilter{After: after, Limit: 1000})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				d.log.Warn("outbox watch", "err", err)
				break
			}
			if len(evs) == 0 {
				break
			}
			customers := map[string]bool{}
			for _, e := range evs {
				if e.Customer != "" {
					customers[e.Customer] = true
				}
			}
			d.notify(customers)
			after = evs[len(evs)-1].Seq
		}
	}
}

// FindNotices returns the customer's open notices, newest first: outbox
// events the portal shows (billing.IsNotice) that the customer has not
// dismissed and no later event resolved (billing.ResolvedBy).
func (d *DB) FindNotices(ctx context.Context, customerID string, limit int) ([]billing.Notice, error) {
	limit = clampLimit(limit)
	types := slices.Concat(billing.NoticeResolvers, billing.NoticeTypes)
	q := `SELECT seq, type, data, created_at FROM events e WHERE customer_id = ? AND type IN (?` + strings.Repeat(", ?", len(types)-1) + `)
		AND NOT EXISTS (SELECT 1 FROM notice_dismissals n WHERE n.customer_id = e.customer_id AND n.seq = e.seq)
		ORDER BY seq DESC LIMIT 500`
	args := []any{customerID}
	for _, t := range types {
		args = append(args, t)
	}
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.Notice
	var later []string // types of newer events, to resolve older notices
	for rows.Next() {
		var n billing.Notice
		var data string
		var at int64
		if err := rows.Scan(&n.ID, &n.Type, &data, &at); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &n.Data); err != nil {
			return nil, fmt.Errorf("db: event %d: %w", n.ID, err)
		}
		n.Customer, n.CreatedAt = customerID, fromMicros(at)
		resolved := slices.ContainsFunc(later, func(l string) bool { return billing.ResolvedBy(n.Type, l) })
		later = append(later, n.Type)
		if resolved || !billing.IsNotice(n.Type, n.Data) || len(out) == limit {
			continue
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// DismissNotice hides one of the customer's notices (another customer's
// event, or one that is no notice, is not_found).
func (d *DB) DismissNotice(ctx context.Context, customerID string, seq int64) error {
	return d.Write(ctx, func(t *Tx) error {
		var typ string
		err := t.queryRow(`SELECT type FROM events WHERE seq = ? AND customer_id = ?`, seq, customerID).Scan(&typ)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !slices.Contains(billing.NoticeTypes, typ)) {
			return billing.Errorf(billing.CodeNotFound, "No such notice.")
		}
		if err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO notice_dismissals (customer_id, seq, dismissed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			customerID, seq, micros(t.Now))
		t.touch(customerID)
		return err
	})
}
