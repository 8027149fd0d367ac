package views

import (
	"time"

	"github.com/tally-billing/tally/billing"
)

// AdminShell is the frame of an admin console page.
type AdminShell struct {
	Title       string
	Assets      AssetURLs
	CSRF        string
	Fmt         Fmt
	ProductName string
	Demo        bool
	Nav         string       // active section: customers, audit, admins
	Admin       *AdminHeader // nil on the sign-in page
	Flash       *Flash
}

// AdminHeader is the signed-in admin.
type AdminHeader struct {
	ID, Email, Role string
}

// CanWrite reports whether the admin may change anything (support may not).
func (h *AdminHeader) CanWrite() bool {
	return h != nil && billing.RoleAtLeast(h.Role, billing.RoleAdmin)
}

// IsOwner reports whether the admin is an owner.
func (h *AdminHeader) IsOwner() bool { return h != nil && h.Role == billing.RoleOwner }

// AdminSignInForm is the sign-in page's state.
type AdminSignInForm struct {
	Email  string
	Next   string
	Error  string // the whole form's (wrong password, throttled)
	Info   string
	Errors map[string]string
}

// AdminCustomerList is /admin/customers.
type AdminCustomerList struct {
	Query  string
	Rows   []billing.AdminCustomerRow
	Cursor string
	Next   string
}

// AdminCustomerPage is /admin/customers/{id}.
type AdminCustomerPage struct {
	Customer  billing.Customer
	Balance   billing.Balance
	Ledger    LedgerData
	Purchases []Purchase
	Flags     []billing.CustomerFlag
	Freeze    *billing.Freeze // nil: not frozen
	// FreezeBy names who froze the account: a staff member by e-mail.
	FreezeBy string
	Usage    []billing.UsageDay // the last 30 days, one line per feature (Day empty)
	// FeatureNames names the features of Usage (key -> name) as the current
	// price book does.
	FeatureNames map[string]string
	Refill       *billing.RefillSettings // nil: never set up
	Notices      []billing.Notice
	Settings     billing.CustomerSettings
	// LowBalancePercent is the policy's default low-balance line.
	LowBalancePercent int
	// Holds are the customer's open holds (Release, for admins).
	Holds []AdminHold
	// PromoExpiry is the policy's default expiry of a grant (0: never).
	PromoExpiry time.Duration
	Forms       AdminForms
	// Subscription is the customer's plan (nil: never subscribed).
	Subscription *AdminSubscription
}

// AdminForms are the customer page's action forms: the values as typed
// and the errors beside their fields, per form ("grant", "deduct", "limits").
type AdminForms struct {
	Open   string // the form that failed (its <details> opens)
	Values map[string]string
	Errors map[string]string
}

// Value is a typed value of the open form.
func (f AdminForms) Value(form, key string) string {
	if f.Open != form {
		return ""
	}
	return f.Values[key]
}

// Err is an error of the open form's field.
func (f AdminForms) Err(form, key string) string {
	if f.Open != form {
		return ""
	}
	return f.Errors[key]
}

// AdminConfirm is the confirmation step before a money change.
type AdminConfirm struct {
	Customer billing.Customer
	Action   string // grant, deduct
	Action2  string // the button's words: "Grant 500 credits"
	Credits  billing.Credits
	Before   billing.Credits
	After    billing.Credits
	Expires  *time.Time
	Reason   string
	Fields   map[string]string // hidden fields to post again
}

// AdminFinancePage is /admin/finance.
type AdminFinancePage struct {
	By         string // day or month
	Now        billing.FinanceNow
	Rows       []billing.FinanceDay
	Sources    []string
	Currencies []string
	// MRR is as of now (its period's row shows it); TopUpsThisMonth is
	// the current month's top-up revenue so far, per currency.
	MRR             FinanceMRR
	TopUpsThisMonth map[string]int64
	// MRRHistory is the MRR at each of the last 12 month ends, oldest
	// first, the current month's as of now (billing.MRRHistory).
	MRRHistory []billing.MRRPoint
}

// AdminAuditPage is /admin/audit.
type AdminAuditPage struct {
	Filter  billing.AuditFilter
	Records []billing.AuditRecord
	Next    string
	Actions []string
	Admins  map[string]string // admin id -> e-mail, to name them
	Keys    map[string]string // API key id -> its name
	// Customers names the customers the page shows (id -> name), as the
	// record's customer and as an actor in the portal.
	Customers map[string]string
	// Currency formats the policy's amounts in its changes.
	Currency string
}
