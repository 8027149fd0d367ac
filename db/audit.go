package db

import (
	"context"

	"github.com/tally-billing/tally/billing"
)

// See billing.WithAudit: an admin write's audit record is inserted by the
// write itself, in its transaction.

// auditFrom writes the context's audit record, if any, in t's transaction;
// fill (may be nil) completes it from the change (an id made by the store,
// the state before it).
func (t *Tx) auditFrom(ctx context.Context, fill func(*billing.AuditRecord)) error {
	r, ok := billing.AuditIn(ctx)
	if !ok {
		return nil
	}
	if fill != nil {
		fill(&r)
	}
	return t.recordAudit(r)
}

// recordAudit appends one admin action to admin_audit at the Tx's clock.
func (t *Tx) recordAudit(r billing.AuditRecord) error {
	if r.Actor.Kind == "" || r.Action == "" {
		return billing.Errorf(billing.CodeValidation, "an audit record needs an actor and an action")
	}
	_, err := t.exec(`INSERT INTO admin_audit (actor, action, customer_id, reason, before, after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.Actor.String(), r.Action, nullString(r.Customer), r.Reason, r.Before, r.After, micros(t.Now))
	return err
}
