package billing

import "context"

// An admin write and the audit record that says who made it commit
// together or not at all. The console puts the record in the write's
// context (WithAudit); the store functions that accept one (their doc
// comments say so) insert it in the write's own transaction, after the
// change, and may complete its Before and After from what they read and
// wrote there. A write without a record in its context records nothing.

type auditKey struct{}

// WithAudit returns ctx carrying an audit record for the store write it is
// passed to.
func WithAudit(ctx context.Context, r AuditRecord) context.Context {
	return context.WithValue(ctx, auditKey{}, r)
}

// AuditIn returns the record WithAudit put in ctx.
func AuditIn(ctx context.Context) (AuditRecord, bool) {
	r, ok := ctx.Value(auditKey{}).(AuditRecord)
	return r, ok
}
