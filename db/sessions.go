package db

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Customer sessions are the portal's signed-in browsers. The cookie carries
// a random id (32 bytes, as long as a session key); only its SHA-256 is
// stored, like API keys and sign-in links. Their times are the portal's
// clock, passed in by the caller, not the Tx's: tests move the ledger's
// clock by days without signing anyone out.

var errSessionUnknown = billing.Errorf(billing.CodeNotFound, "No such session.")

// StartCustomerSession stores a new session and returns its id. With
// replace, the customer's other live sessions end in the same transaction,
// so there is never a moment with two.
func (d *DB) StartCustomerSession(ctx context.Context, s billing.CustomerSession, replace bool) (string, error) {
	id := newID("", 32)[1:]
	h := hashSecret(id)
	err := d.Write(ctx, func(t *Tx) error {
		if replace {
			if _, err := t.exec(`UPDATE customer_sessions SET ended_at = ?, end_reason = ? WHERE customer_id = ? AND ended_at IS NULL`,
				micros(s.CreatedAt), billing.SessionReplaced, s.CustomerID); err != nil {
				return err
			}
		}
		_, err := t.exec(`INSERT INTO customer_sessions (id_hash, customer_id, return_url, flow, created_at, last_seen_at, expires_at, read_only_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, h[:], s.CustomerID, s.ReturnURL, s.Flow, micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt), nullString(s.ReadOnlyBy))
		return err
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// FindCustomerSession reads a session by its id, ended or not. Every portal
// request reads it, from a read connection (an indexed lookup).
func (d *DB) FindCustomerSession(ctx context.Context, id string) (billing.CustomerSession, error) {
	if id == "" || len(id) > 100 {
		return billing.CustomerSession{}, errSessionUnknown
	}
	h := hashSecret(id)
	var s billing.CustomerSession
	var created, seen, expires int64
	var ended sql.NullInt64
	var reason, readOnly sql.NullString
	err := d.read.QueryRowContext(ctx, `SELECT customer_id, return_url, flow, created_at, last_seen_at, expires_at, ended_at, end_reason, read_only_by
		FROM customer_sessions WHERE id_hash = ?`, h[:]).
		Scan(&s.CustomerID, &s.ReturnURL, &s.Flow, &created, &seen, &expires, &ended, &reason, &readOnly)
	if errors.Is(err, sql.ErrNoRows) {
		return s, errSessionUnknown
	}
	if err != nil {
		return s, err
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expires)
	s.EndedAt, s.EndReason, s.ReadOnlyBy = timePtr(ended), reason.String, readOnly.String
	return s, nil
}

// TouchCustomerSession moves a live session's idle timer to at (never back).
func (d *DB) TouchCustomerSession(ctx context.Context, id string, at time.Time) error {
	h := hashSecret(id)
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE customer_sessions SET last_seen_at = `+t.w.d.greatest()+`(last_seen_at, ?) WHERE id_hash = ? AND ended_at IS NULL`, micros(at), h[:])
		return err
	})
}

// EndCustomerSession ends one session (sign-out). Ending an ended or
// unknown session changes nothing.
func (d *DB) EndCustomerSession(ctx context.Context, id string, at time.Time, reason string) error {
	h := hashSecret(id)
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE customer_sessions SET ended_at = ?, end_reason = ? WHERE id_hash = ? AND ended_at IS NULL`, micros(at), reason, h[:])
		return err
	})
}

// EndCustomerSessions ends every live session of a customer (by id or
// external_id) and returns how many it ended. A server notices at the
// customer's next request, and ends their live balance streams within a
// keepalive interval.
func (d *DB) EndCustomerSessions(ctx context.Context, customerRef string, at time.Time, reason string) (int, error) {
	id, err := d.ResolveCustomer(ctx, customerRef)
	if err != nil {
		return 0, err
	}
	var n int64
	err = d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`UPDATE customer_sessions SET ended_at = ?, end_reason = ? WHERE customer_id = ? AND ended_at IS NULL`, micros(at), reason, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// SweepCustomerSessions deletes the sessions past their maximum age at
// before, ended or not (an ended one is kept until then, for the record),
// and returns how many.
func (d *DB) SweepCustomerSessions(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`DELETE FROM customer_sessions WHERE expires_at <= ?`, micros(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
