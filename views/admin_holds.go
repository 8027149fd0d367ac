package views

import (
	"time"

	"github.com/tally-billing/tally/billing"
)

// AdminHold is one of a customer's open holds on the admin customer page.
type AdminHold struct {
	ID        string
	Credits   billing.Credits
	CreatedAt time.Time
	ExpiresAt time.Time
	KeyID     string // the API key that opened it ("" : none recorded)
	KeyName   string
}
