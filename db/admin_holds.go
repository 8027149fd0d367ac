package db

import (
	"context"

	"github.com/tally-billing/tally/billing"
)

// The admin customer page's holds: the customer's open holds with the key
// that opened each, and an admin's release through the kernel's hold-close
// plan (billing.PlanHoldClose) with the admin as the actor.

// FindOpenHolds lists a customer's active holds that have not expired,
// oldest first, with the API key that opened each (if any).
func (d *DB) FindOpenHolds(ctx context.Context, customerID string) ([]billing.OpenHold, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT h.id, h.amount, h.created_at, h.expires_at, COALESCE(h.api_key_id, ''), COALESCE(k.name, '')
		FROM holds h LEFT JOIN api_keys k ON k.id = h.api_key_id
		WHERE h.customer_id = ? AND h.status = 'active' AND h.expires_at > ? ORDER BY h.created_at, h.id`, customerID, micros(d.now()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.OpenHold
	for rows.Next() {
		var h billing.OpenHold
		var created, expires int64
		if err := rows.Scan(&h.ID, &h.Credits, &created, &expires, &h.KeyID, &h.KeyName); err != nil {
			return nil, err
		}
		h.CreatedAt, h.ExpiresAt = fromMicros(created), fromMicros(expires)
		out = append(out, h)
	}
	return out, rows.Err()
}

// ReleaseCustomerHold releases one of a customer's holds for an admin
// (actor), with the audit record in ctx (billing.WithAudit) in the same
// transaction. A hold of another customer is hold_not_found; one already
// released or expired is returned Replayed, changing nothing; a captured
// one is hold_not_active.
func (d *DB) ReleaseCustomerHold(ctx context.Context, customerID, holdID string, actor billing.Actor) (billing.Hold, error) {
	if customerID == "" {
		return billing.Hold{}, billing.Errorf(billing.CodeHoldNotFound, "No such hold.")
	}
	return d.releaseHold(ctx, holdID, customerID, actor)
}

// closeHoldBy is closeHold, then the context's audit record, if any, in
// the same transaction.
func (t *Tx) closeHoldBy(ctx context.Context, w *wallet, h *billing.Hold, status string, actor billing.Actor) error {
	if err := t.closeHold(w, h, status, actor); err != nil {
		return err
	}
	return t.auditFrom(ctx, func(r *billing.AuditRecord) {
		r.Customer, r.Before, r.After = h.Customer, h.ID+" "+h.Credits.String()+" credits held", h.Status
	})
}
