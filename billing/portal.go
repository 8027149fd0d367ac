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

// CustomerSession is a customer signed in to the portal in one browser.
// The browser's cookie carries the session's random id; the store keeps
// only the id's SHA-256, so a copy of the database signs nobody in. The
// session lives on the server, so signing out, a revocation or a newer
// sign-in ends it for every copy of the cookie at once.
//
// Its times are the portal's clock (the wall clock), not the ledger's.
type CustomerSession struct {
	CustomerID string
	ReturnURL  string // "Back to <product>" and where sign-out goes
	Flow       string // the flow the sign-in link opened ("" or "top_up")
	CreatedAt  time.Time
	LastSeenAt time.Time  // the customer's last request (the idle timer)
	ExpiresAt  time.Time  // the session ends then whatever happens (the maximum age)
	EndedAt    *time.Time // signed out, revoked or replaced by a newer sign-in
	EndReason  string     // SessionSignedOut, SessionRevoked, SessionReplaced
	// ReadOnlyBy is the admin (actor, kind:id) who opened this session to
	// see the customer's portal read-only: every portal write is refused.
	ReadOnlyBy string
}

// Why a customer session ended.
const (
	SessionSignedOut = "signed_out" // the customer signed out
	SessionRevoked   = "revoked"    // an operator ended the customer's sessions
	SessionReplaced  = "replaced"   // a newer sign-in (a new link, or this browser signing in again)
)

// Live reports whether the session may be used at now: not ended, not past
// its maximum age and used within the idle timeout.
func (s CustomerSession) Live(now time.Time, idle time.Duration) bool {
	return sessionLive(s.EndedAt, s.ExpiresAt, s.LastSeenAt, now, idle)
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

// ThresholdWith is the customer's own line, or line (the policy's default).
func (s CustomerSettings) ThresholdWith(line Credits) Credits {
	if s.LowBalanceThreshold != nil {
		return *s.LowBalanceThreshold
	}
	return line
}

// LowBalanceDays is how close to running out the default warning starts:
// a customer whose credits last fewer days than this at their current pace
// is warned, whatever they bought before (or if they never bought).
const LowBalanceDays = 3

// LowBalance reports whether the portal warns that the balance is low. With
// the customer's own threshold, that decides alone. By default it warns
// below 10% of the last top-up, or when the available credits last fewer
// than LowBalanceDays at perDay, the current daily usage: 43 credits used
// at 90 a day warn even a customer who never topped up. Nothing available
// is not "low" but depleted, which the portal says otherwise.
func LowBalance(s CustomerSettings, lastTopUp, available, perDay Credits) bool {
	return LowBalanceWith(s, lastTopUp/10, available, perDay)
}

// LowBalanceWith is LowBalance with the default line given (the policy's
// Policy.LowBalanceLine of the last top-up) instead of 10% of it.
func LowBalanceWith(s CustomerSettings, line, available, perDay Credits) bool {
	if available <= 0 {
		return false
	}
	if s.LowBalanceThreshold != nil {
		return available <= *s.LowBalanceThreshold
	}
	if available <= line {
		return true
	}
	return perDay > 0 && available < perDay*LowBalanceDays
}

// CustomerCapsInput are what a customer sets for themselves in the portal: the
// daily and monthly caps (nil: no cap) and the low-balance threshold (nil:
// the default, 10% of the last top-up). The overdraft limit is not among
// them: only the product sets it.
type CustomerCapsInput struct {
	DailyCap            *Credits
	MonthlyCap          *Credits
	LowBalanceThreshold *Credits
}

// Validate checks the customer's caps with the rules of Limits.Validate; the
// error's param names the field at fault.
func (sc CustomerCapsInput) Validate() error {
	if err := (SpendCaps{DailyCap: sc.DailyCap, MonthlyCap: sc.MonthlyCap}).Validate(); err != nil {
		return err
	}
	if t := sc.LowBalanceThreshold; t != nil && (*t < 0 || *t > MaxCredits) {
		return Errorf(CodeValidation, "low_balance_threshold must be zero or more (null restores the default)").With("param", "low_balance_threshold")
	}
	return nil
}

// Portal is what the customer portal needs from storage beyond the Ledger.
type Portal interface {
	// CreatePortalSession makes a single-use sign-in link token.
	CreatePortalSession(ctx context.Context, ref, returnURL, flow string, ttl time.Duration) (string, time.Time, error)
	// UsePortalSession consumes a link: not_found, link_used, link_expired.
	UsePortalSession(ctx context.Context, token string) (PortalSignIn, error)
	FindCustomerSettings(ctx context.Context, customerID string) (CustomerSettings, error)
	UpdateCustomerSettings(ctx context.Context, customerID string, s CustomerSettings) error
	// UpdateCustomerCaps saves a customer's caps and low-balance threshold
	// in one transaction and keeps their overdraft limit.
	// customer_not_found, validation_failed.
	UpdateCustomerCaps(ctx context.Context, customerID string, sc CustomerCapsInput) error
	// CustomerSpend is what the customer has spent in the current UTC day and
	// month: the figures their spend caps are checked against (open holds
	// count too; they are in Balance.Held).
	CustomerSpend(ctx context.Context, customerID string) (Spend, error)
	// LastTopUp is the credits of the customer's last purchase (0 if none).
	LastTopUp(ctx context.Context, customerID string) (Credits, error)
	// Subscribe signals after each commit that changes the customer's wallet.
	Subscribe(customerID string) (<-chan struct{}, func())
	// StartCustomerSession stores a new signed-in session and returns its
	// id, shown only here. With replace, the customer's other live sessions
	// end in the same transaction (SessionReplaced): a newly opened sign-in
	// link leaves one session per customer.
	StartCustomerSession(ctx context.Context, s CustomerSession, replace bool) (string, error)
	// FindCustomerSession returns the session with this id, live or not
	// (the caller checks Live with its timeouts): not_found.
	FindCustomerSession(ctx context.Context, id string) (CustomerSession, error)
	// TouchCustomerSession records the customer's activity at at (the idle
	// timer) on a session that has not ended.
	TouchCustomerSession(ctx context.Context, id string, at time.Time) error
	// EndCustomerSession ends one session (sign-out); an unknown or ended
	// session is left as it is.
	EndCustomerSession(ctx context.Context, id string, at time.Time, reason string) error
	// EndCustomerSessions ends every live session of a customer (an
	// operator's revocation) and returns how many it ended:
	// customer_not_found.
	EndCustomerSessions(ctx context.Context, customerRef string, at time.Time, reason string) (int, error)
	// Secret returns a named random secret, created on first use.
	Secret(ctx context.Context, name string, n int) ([]byte, error)
	// FindLots lists every lot of a customer, newest first, including used
	// up, expired and frozen ones; limit 1 to 500 (0: 100). An unknown
	// customer has none.
	FindLots(ctx context.Context, customerID string, limit int) ([]LotView, error)
	// FindUsageFacets returns the features a customer has used and the tags
	// of their recent usage, to offer as filters.
	FindUsageFacets(ctx context.Context, customerID string) (UsageFacets, error)
}

// UsageFacets are what a customer's usage can be filtered by: the features
// they have used and the metadata tags (key -> values seen) their product
// attaches to usage, such as user or project.
type UsageFacets struct {
	Features []string
	Tags     map[string][]string
}
