package billing

// AuditFreePeriod is the audit action of a free subscription period given
// by an admin (before: the period it starts; after: the new period end).
const AuditFreePeriod = "subscription.free_period"
