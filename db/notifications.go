package db

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tally-billing/tally/billing"
)

// Customer notifications (billing.NotificationKind): the portal's list of
// them with what was read, the e-mail kinds a customer turned off, and the
// sent-mail claims that keep an e-mail to at most one per event.

// MailConsumer is the e-mail consumer's cursor in event_cursors.
const MailConsumer = "mail"

// MailOptOuts returns the kinds of e-mail the customer turned off.
func (d *DB) MailOptOuts(ctx context.Context, customerID string) (map[string]bool, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT kind FROM mail_optouts WHERE customer_id = ?`, customerID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out[k] = true
	}
	return out, rows.Err()
}

// SaveMailOptOuts sets which kinds of e-mail the customer gets: every kind
// not in on is turned off.
func (d *DB) SaveMailOptOuts(ctx context.Context, customerID string, on map[string]bool) error {
	for k := range on {
		if !billing.ValidNotificationKind(k) {
			return billing.Errorf(billing.CodeValidation, "%q is not a kind of notification", k).With("param", "notifications")
		}
	}
	return d.Write(ctx, func(t *Tx) error {
		if _, err := t.exec(`DELETE FROM mail_optouts WHERE customer_id = ?`, customerID); err != nil {
			return err
		}
		for _, k := range billing.NotificationKinds {
			if !on[k] {
				if _, err := t.exec(`INSERT INTO mail_optouts (customer_id, kind) VALUES (?, ?)`, customerID, k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ClaimMail records that the e-mail of an event to a customer is being
// sent; false when it was claimed before (sent, or being sent). The claim
// comes before the send, so a crash between them loses that e-mail rather
// than sending it twice: at most once per event and customer.
func (d *DB) ClaimMail(ctx context.Context, customerID string, seq int64, kind string) (bool, error) {
	var claimed bool
	err := d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`INSERT INTO sent_mail (customer_id, event_seq, kind, sent_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			customerID, seq, kind, micros(t.Now))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		claimed = n == 1
		return nil
	})
	return claimed, err
}

// ReleaseMail drops a claim whose send failed, so it is tried again.
func (d *DB) ReleaseMail(ctx context.Context, customerID string, seq int64) error {
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`DELETE FROM sent_mail WHERE customer_id = ? AND event_seq = ?`, customerID, seq)
		return err
	})
}

// notificationQuery selects a customer's events of the notification types.
func notificationQuery(cols, extra string) (string, []any) {
	q := `SELECT ` + cols + ` FROM events WHERE customer_id = ? AND type IN (?` + strings.Repeat(", ?", len(billing.NotificationTypes)-1) + `)` + extra
	args := make([]any, 0, len(billing.NotificationTypes))
	for _, t := range billing.NotificationTypes {
		args = append(args, t)
	}
	return q, args
}

// FindNotifications returns a customer's notifications, newest first,
// those before seq before (0: from the newest), at most limit; and whether
// more follow.
func (d *DB) FindNotifications(ctx context.Context, customerID string, before int64, limit int) ([]billing.Notice, bool, error) {
	limit = clampLimit(limit)
	if before <= 0 {
		before = 1<<63 - 1
	}
	q, types := notificationQuery(`seq, type, data, created_at`, ` AND seq < ? ORDER BY seq DESC LIMIT ?`)
	// A few events of these types are no notification (a retried refill's
	// later failures): read a margin and filter.
	args := append(append([]any{customerID}, types...), before, 3*limit+1)
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []billing.Notice
	more := false
	for rows.Next() {
		var n billing.Notice
		var data string
		var at int64
		if err := rows.Scan(&n.ID, &n.Type, &data, &at); err != nil {
			return nil, false, err
		}
		if err := json.Unmarshal([]byte(data), &n.Data); err != nil {
			return nil, false, fmt.Errorf("db: event %d: %w", n.ID, err)
		}
		if billing.NotificationKind(n.Type, n.Data) == "" {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		n.Customer, n.CreatedAt = customerID, fromMicros(at)
		out = append(out, n)
	}
	return out, more, rows.Err()
}

// UnreadNotifications counts the customer's notifications newer than the
// last they read, up to max.
func (d *DB) UnreadNotifications(ctx context.Context, customerID string, max int) (int, error) {
	q, types := notificationQuery(`type, data`, ` AND seq > COALESCE((SELECT seq FROM notification_reads WHERE customer_id = ?), 0) ORDER BY seq DESC LIMIT ?`)
	args := append(append([]any{customerID}, types...), customerID, 3*max)
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() && n < max {
		var typ, data string
		if err := rows.Scan(&typ, &data); err != nil {
			return 0, err
		}
		var m map[string]any
		json.Unmarshal([]byte(data), &m)
		if billing.NotificationKind(typ, m) != "" {
			n++
		}
	}
	return n, rows.Err()
}

// MarkNotificationsRead records that the customer has seen every
// notification up to seq (it never moves back).
func (d *DB) MarkNotificationsRead(ctx context.Context, customerID string, seq int64) error {
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO notification_reads (customer_id, seq) VALUES (?, ?)
			ON CONFLICT (customer_id) DO UPDATE SET seq = `+d.greatest()+`(notification_reads.seq, excluded.seq)`, customerID, seq)
		return err
	})
}
