package billing

import "time"

// The admin console's edits of API keys and its view of holds.

// AuditAPIKeyUpdated is an admin's change of a key's scope, caps, rate
// limit or origins (before and after: the key, never its secret).
const AuditAPIKeyUpdated = "api_key.updated"

// APIKeyUpdate is an admin's edit of an existing key: everything but its
// name and secret.
type APIKeyUpdate struct {
	Scope     string
	Limits    Limits
	RateLimit int
	Origins   []string
}

// OpenHold is one of a customer's active holds as the admin console lists
// it: the hold and the API key that opened it ("" for none recorded).
// Holds reserve credits, not a feature: what they are for is known only
// when they are captured.
type OpenHold struct {
	ID        string
	Credits   Credits
	CreatedAt time.Time
	ExpiresAt time.Time
	KeyID     string
	KeyName   string
}

// AuditHoldReleased is an admin's release of a customer's hold.
const AuditHoldReleased = "customer.hold_released"
