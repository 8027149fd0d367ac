package billing

import (
	"context"
	"time"
)

// Portal sign-in link error codes (shown as pages, not API errors).
const (
	CodeLinkUsed    = "link_used"    // the single-use link was already opened (410)
	CodeLinkExpired = "link_expired" // the link's five minutes are over (410)
)

// PortalSessionTTL is how long a portal sign-in link works.
const PortalSessionTTL = 5 * time.Minute

// PortalSignIn is what an opened sign-in link gives: whom to sign in, where
// "Back to <product>" goes and which page to open first.
type PortalSignIn struct {
	CustomerID string
	ReturnURL  string
	Flow       string
}

// CustomerSettings are a customer's portal preferences.
type CustomerSettings struct {
	LowBalanceThreshold *Credits // nil: 10% of the last top-up
}

// LowBalanceThreshold is the balance under which the portal warns: the
// customer's own setting, or 10% of their last top-up.
func (s CustomerSettings) Threshold(lastTopUp Credits) Credits {
	if s.LowBalanceThreshold != nil {
		return *s.LowBalanceThreshold
	}
	return lastTopUp / 10
}

// Portal is what the customer portal needs from storage beyond the Ledger.
type Portal interface {
	// CreatePortalSession makes a single-use sign-in link token.
	CreatePortalSession(ctx context.Context, ref, returnURL, flow string, ttl time.Duration) (string, time.Time, error)
	// UsePortalSession consumes a link: not_found, link_used, link_expired.
	UsePortalSession(ctx context.Context, token string) (PortalSignIn, error)
	FindCustomerSettings(ctx context.Context, customerID string) (CustomerSettings, error)
	UpdateCustomerSettings(ctx context.Context, customerID string, s CustomerSettings) error
	// LastTopUp is the credits of the customer's last purchase (0 if none).
	LastTopUp(ctx context.Context, customerID string) (Credits, error)
	// Subscribe signals after each commit that changes the customer's wallet.
	Subscribe(customerID string) (<-chan struct{}, func())
	// Secret returns a named random secret, created on first use.
	Secret(ctx context.Context, name string, n int) ([]byte, error)
}
