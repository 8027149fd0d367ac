package billing

// Audit actions of the admin console's webhook endpoints and API keys
// pages (the endpoint or key id is the record's Before/After subject).
const (
	AuditWebhookCreated       = "webhook.created"
	AuditWebhookUpdated       = "webhook.updated"
	AuditWebhookDeleted       = "webhook.deleted"
	AuditWebhookSecretRotated = "webhook.secret_rotated"
	AuditWebhookResent        = "webhook.resent"
	AuditWebhookTested        = "webhook.test_sent"
	AuditAPIKeyCreated        = "api_key.created"
	AuditAPIKeyOrigins        = "api_key.origins_set"
	AuditAPIKeyRevoked        = "api_key.revoked"
)
