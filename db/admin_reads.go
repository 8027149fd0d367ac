package db

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/tally-billing/tally/billing"
)

// FindAdminCustomers lists customers for the admin console, newest first,
// with what the list shows of each (one indexed read per column per row,
// on a page of at most 100). The cursor is "<created_at µs>.<id>".
func (d *DB) FindAdminCustomers(ctx context.Context, f billing.AdminCustomerFilter) ([]billing.AdminCustomerRow, string, error) {
	limit := clampLimit(f.Limit)
	where, args := []string{"1 = 1"}, []any{}
	if q := strings.TrimSpace(f.Query); q != "" {
		like := "%" + likePrefix(strings.ToLower(q)) + "%"
		where = append(where, `(c.id = ? OR c.external_id = ? OR lower(c.email) LIKE ? ESCAPE '\' OR lower(c.name) LIKE ? ESCAPE '\' OR lower(c.external_id) LIKE ? ESCAPE '\')`)
		args = append(args, q, q, like, like, like)
	}
	if f.Cursor != "" {
		at, id, ok := strings.Cut(f.Cursor, ".")
		n, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil {
			return nil, "", billing.Errorf(billing.CodeInvalidRequest, "cursor %q is not a cursor from a previous page", f.Cursor).With("param", "cursor")
		}
		where, args = append(where, "(c.created_at, c.id) < (?, ?)"), append(args, n, id)
	}
	rows, err := d.read.QueryContext(ctx, `SELECT `+customerCols+`, w.balance, w.low_announced, w.frozen_at IS NOT NULL,
			(SELECT created_at FROM entries e WHERE e.customer_id = c.id ORDER BY e.id DESC LIMIT 1),
			COALESCE((SELECT CASE WHEN r.enabled = 0 THEN '' WHEN r.paused_reason != '' THEN 'paused' ELSE 'on' END FROM refill_settings r WHERE r.customer_id = c.id), ''),
			(SELECT count(*) FROM customer_flags f WHERE f.customer_id = c.id AND f.cleared_at IS NULL)
		FROM customers c JOIN wallets w ON w.customer_id = c.id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY c.created_at DESC, c.id DESC LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []billing.AdminCustomerRow
	for rows.Next() {
		var r billing.AdminCustomerRow
		var c billing.Customer
		var created, overdraft, balance, low int64
		var daily, monthly, ownDaily, ownMonthly, last sql.NullInt64
		if err := rows.Scan(&c.ID, &c.ExternalID, &c.Email, &c.Name, &created, &overdraft, &daily, &monthly, &ownDaily, &ownMonthly,
			&balance, &low, &r.Frozen, &last, &r.AutoRefill, &r.Flags); err != nil {
			return nil, "", err
		}
		c.CreatedAt = fromMicros(created)
		c.Limits = billing.Limits{OverdraftLimit: billing.Credits(overdraft), DailyCap: creditsPtr(daily), MonthlyCap: creditsPtr(monthly)}
		c.CustomerCaps = billing.SpendCaps{DailyCap: creditsPtr(ownDaily), MonthlyCap: creditsPtr(ownMonthly)}
		r.Customer, r.Balance, r.Low, r.LastActivity = c, billing.Credits(balance), low != 0, timePtr(last)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		l := out[limit-1].Customer
		next = strconv.FormatInt(micros(l.CreatedAt), 10) + "." + l.ID
	}
	return out, next, nil
}

// FindCustomerFlags lists a customer's flags, open ones first, newest first.
func (d *DB) FindCustomerFlags(ctx context.Context, customerID string) ([]billing.CustomerFlag, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT rowid, reason, created_at, cleared_at, COALESCE(cleared_by, '') FROM customer_flags
		WHERE customer_id = ? ORDER BY cleared_at IS NOT NULL, created_at DESC LIMIT 100`, customerID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.CustomerFlag
	for rows.Next() {
		var f billing.CustomerFlag
		var created int64
		var cleared sql.NullInt64
		if err := rows.Scan(&f.ID, &f.Reason, &created, &cleared, &f.ClearedBy); err != nil {
			return nil, err
		}
		f.CreatedAt, f.ClearedAt = fromMicros(created), timePtr(cleared)
		out = append(out, f)
	}
	return out, rows.Err()
}

// ClearCustomerFlag marks a customer's open flag cleared by actor, and
// records the action in the audit log in the same transaction. not_found
// when the customer has no such open flag.
func (d *DB) ClearCustomerFlag(ctx context.Context, customerID string, flagID int64, actor billing.Actor, reason string) error {
	return d.Write(ctx, func(t *Tx) error {
		var flag string
		err := t.queryRow(`SELECT reason FROM customer_flags WHERE rowid = ? AND customer_id = ? AND cleared_at IS NULL`, flagID, customerID).Scan(&flag)
		if err == sql.ErrNoRows {
			return billing.Errorf(billing.CodeNotFound, "This flag is already cleared, or is not this customer's.")
		}
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE customer_flags SET cleared_at = ?, cleared_by = ? WHERE rowid = ?`, micros(t.Now), actor.String(), flagID); err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO admin_audit (actor, action, customer_id, reason, before, after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			actor.String(), billing.AuditDisputeCleared, customerID, reason, flag, "cleared", micros(t.Now))
		return err
	})
}

// FlagCustomer flags a customer for an admin to look at (the payment
// provider's dispute does it in its own transaction; this is for other
// callers and tests).
func (d *DB) FlagCustomer(ctx context.Context, customerID, reason string) error {
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO customer_flags (customer_id, reason, created_at) VALUES (?, ?, ?)`, customerID, reason, micros(t.Now))
		return err
	})
}

// SetFrozen freezes (frozen) or unfreezes a customer's account and records
// it in the audit log, in one transaction: from the next debit on, the
// plans see the wallet's Frozen and refuse debits and new holds
// (account_frozen). Freezing a frozen account (or unfreezing one that is
// not) is a conflict.
func (d *DB) SetFrozen(ctx context.Context, customerID string, frozen bool, actor billing.Actor, reason string) error {
	return d.Write(ctx, func(t *Tx) error {
		w, err := t.loadWallet(customerID)
		if err != nil {
			return err
		}
		if w.frozen == frozen {
			if frozen {
				return billing.Errorf(billing.CodeConflict, "This account is already frozen.")
			}
			return billing.Errorf(billing.CodeConflict, "This account is not frozen.")
		}
		action, before, after := billing.AuditCustomerFrozen, "active", "frozen"
		if frozen {
			_, err = t.exec(`UPDATE wallets SET frozen_at = ?, frozen_by = ?, frozen_reason = ? WHERE customer_id = ?`, micros(t.Now), actor.String(), reason, customerID)
		} else {
			action, before, after = billing.AuditCustomerUnfroze, "frozen", "active"
			_, err = t.exec(`UPDATE wallets SET frozen_at = NULL, frozen_by = NULL, frozen_reason = NULL WHERE customer_id = ?`, customerID)
		}
		if err != nil {
			return err
		}
		w.frozen = frozen
		if err := t.saveWallet(w); err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO admin_audit (actor, action, customer_id, reason, before, after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			actor.String(), action, customerID, reason, before, after, micros(t.Now))
		return err
	})
}

// FindFreeze is a customer's freeze, nil when the account is not frozen.
func (d *DB) FindFreeze(ctx context.Context, customerID string) (*billing.Freeze, error) {
	var at sql.NullInt64
	var by, reason sql.NullString
	err := d.read.QueryRowContext(ctx, `SELECT frozen_at, frozen_by, frozen_reason FROM wallets WHERE customer_id = ?`, customerID).Scan(&at, &by, &reason)
	if err == sql.ErrNoRows {
		return nil, notFoundCustomer(customerID)
	}
	if err != nil || !at.Valid {
		return nil, err
	}
	return &billing.Freeze{At: fromMicros(at.Int64), By: billing.ParseActor(by.String), Reason: reason.String}, nil
}
