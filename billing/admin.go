package billing

import (
	"context"
	"strings"
	"time"
)

// Admin roles: what a member of the product's staff may do in the admin
// console.
const (
	RoleOwner   = "owner"   // everything, and manages admins (sign out everywhere)
	RoleAdmin   = "admin"   // billing actions: grants, deductions, limits
	RoleSupport = "support" // reads everything, writes nothing; may open a customer's portal read-only
)

// Roles lists the admin roles, most powerful first.
func Roles() []string { return []string{RoleOwner, RoleAdmin, RoleSupport} }

// ValidRole reports whether role is an admin role.
func ValidRole(role string) bool {
	return role == RoleOwner || role == RoleAdmin || role == RoleSupport
}

// RoleAtLeast reports whether role has at least the rights of min
// (owner > admin > support).
func RoleAtLeast(role, min string) bool {
	rank := map[string]int{RoleSupport: 1, RoleAdmin: 2, RoleOwner: 3}
	return rank[role] > 0 && rank[role] >= rank[min]
}

// CodeAccountFrozen refuses debits and new holds of a customer an admin
// froze (403). Captures of holds opened before the freeze still record
// their usage: the work was authorised then.
const CodeAccountFrozen = "account_frozen"

// ErrAccountFrozen is the refusal of a frozen account's debit or hold.
func ErrAccountFrozen() *Error {
	return Errorf(CodeAccountFrozen, "This customer's account is frozen: debits and holds are refused until an admin unfreezes it.")
}

// Freeze is an admin's freeze of a customer's account.
type Freeze struct {
	At     time.Time
	By     Actor
	Reason string
}

// AdminActor is a staff member acting in the admin console, by admin id.
func AdminActor(adminID string) Actor { return Actor{Kind: ActorAdmin, ID: adminID} }

// AdminUser is a member of the product's staff.
type AdminUser struct {
	ID         string
	Email      string
	Role       string
	CreatedAt  time.Time
	DisabledAt *time.Time // set while disabled: no sign-in, no session (see admin_staff.go)
}

// AdminSession is an admin signed in to the console in one browser: the
// same mechanism as CustomerSession (a random id in the cookie, its hash
// stored, ended for every copy of the cookie at once).
type AdminSession struct {
	AdminID    string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	EndedAt    *time.Time
	EndReason  string
}

// Live reports whether the session still signs its admin in at now.
func (s AdminSession) Live(now time.Time, idle time.Duration) bool {
	return sessionLive(s.EndedAt, s.ExpiresAt, s.LastSeenAt, now, idle)
}

// sessionLive is the rule of every server-side session: not ended, younger
// than its maximum age and used within the idle timeout.
func sessionLive(ended *time.Time, expires, lastSeen, now time.Time, idle time.Duration) bool {
	return ended == nil && now.Before(expires) && now.Sub(lastSeen) <= idle
}

// CheckAdminEmail normalises and checks an admin's e-mail address.
func CheckAdminEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	at := strings.IndexByte(email, '@')
	if at < 1 || at == len(email)-1 || len(email) > 254 || strings.ContainsAny(email, " \t\r\n<>") {
		return "", Errorf(CodeValidation, "Enter an e-mail address like name@example.com.").With("param", "email")
	}
	return email, nil
}

// MinAdminPassword is the shortest admin password accepted.
const MinAdminPassword = 12

// CheckAdminPassword refuses a password too short to protect the console
// (bcrypt reads at most 72 bytes, so longer ones are refused too rather
// than silently cut).
func CheckAdminPassword(pw string) error {
	if len(pw) < MinAdminPassword {
		return Errorf(CodeValidation, "The password needs at least %d characters.", MinAdminPassword).With("param", "password")
	}
	if len(pw) > 72 {
		return Errorf(CodeValidation, "The password can be at most 72 bytes long.").With("param", "password")
	}
	return nil
}

// Audit actions recorded by the admin console (money changes are ledger
// entries, whose type is their action).
const (
	AuditSignIn          = "admin.signed_in"
	AuditSignOut         = "admin.signed_out"
	AuditSignOutAll      = "admin.sessions_revoked"
	AuditAdminCreated    = "admin.created"
	AuditLimitsSet       = "customer.limits_set"
	AuditPortalViewed    = "customer.portal_viewed"
	AuditPortalLinkSent  = "customer.portal_link_created"
	AuditDisputeCleared  = "customer.dispute_cleared"
	AuditCustomerFrozen  = "customer.frozen"
	AuditCustomerUnfroze = "customer.unfrozen"
)

// AuditRecord is one line of the audit log: an admin action, or a money
// change read from the ledger (Source "entry").
type AuditRecord struct {
	ID       string // aud_<n> or ent_<n>
	Source   string // "admin" or "entry"
	At       time.Time
	Actor    Actor
	Action   string // an Audit* action, or "ledger.<entry type>"
	Customer string
	Reason   string
	Before   string // JSON or a balance; "" for none
	After    string
}

// AuditFilter selects audit records, newest first.
type AuditFilter struct {
	Actor    string // kind:id, or a kind alone ("admin")
	Customer string // Tally id
	Action   string
	Limit    int
	Cursor   string
}

// Admins is the store of the admin console: staff, their sessions and
// the audit log. Errors: validation_failed, not_found, conflict (an e-mail
// already taken), unauthorized (a wrong password).
type Admins interface {
	CreateAdmin(ctx context.Context, email, password, role string) (AdminUser, error)
	// AuthenticateAdmin checks an e-mail and password. unauthorized.
	AuthenticateAdmin(ctx context.Context, email, password string) (AdminUser, error)
	FindAdmin(ctx context.Context, id string) (AdminUser, error)
	FindAdmins(ctx context.Context) ([]AdminUser, error)
	StartAdminSession(ctx context.Context, s AdminSession) (string, error)
	FindAdminSession(ctx context.Context, id string) (AdminSession, error)
	TouchAdminSession(ctx context.Context, id string, at time.Time) error
	EndAdminSession(ctx context.Context, id string, at time.Time, reason string) error
	// EndAdminSessions ends every live session of an admin; returns how many.
	EndAdminSessions(ctx context.Context, adminID string, at time.Time, reason string) (int, error)
	// RecordAudit appends an admin action to the audit log.
	RecordAudit(ctx context.Context, r AuditRecord) error
	// FindAudit reads the audit log: admin actions and ledger entries.
	FindAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, string, error)
}

// AdminCustomerFilter selects customers for the admin console's list,
// newest first. Query matches an id or external id exactly, or a part of
// an e-mail address, a name or an external id.
type AdminCustomerFilter struct {
	Query  string
	Limit  int
	Cursor string
}

// AdminCustomerRow is one line of the admin console's customer list.
type AdminCustomerRow struct {
	Customer     Customer
	Balance      Credits
	LastActivity *time.Time // the newest ledger entry; nil: none yet
	Low          bool       // the last threshold event said low or depleted
	AutoRefill   string     // "", "on", "paused"
	Flags        int        // open flags (disputes)
	Frozen       bool       // an admin froze the account
}

// CustomerFlag marks a customer for an admin to look at (a disputed payment).
type CustomerFlag struct {
	ID        int64
	Reason    string
	CreatedAt time.Time
	ClearedAt *time.Time
	ClearedBy string // actor, kind:id
}

// AdminReads are the admin console's reads of customers.
type AdminReads interface {
	FindAdminCustomers(ctx context.Context, f AdminCustomerFilter) ([]AdminCustomerRow, string, error)
	FindCustomerFlags(ctx context.Context, customerID string) ([]CustomerFlag, error)
	// ClearCustomerFlag clears an open flag and records it. not_found.
	ClearCustomerFlag(ctx context.Context, customerID string, flagID int64, actor Actor, reason string) error
	// SetFrozen freezes or unfreezes an account and records it. conflict.
	SetFrozen(ctx context.Context, customerID string, frozen bool, actor Actor, reason string) error
	// FindFreeze is the account's freeze, nil when it is not frozen.
	FindFreeze(ctx context.Context, customerID string) (*Freeze, error)
}
