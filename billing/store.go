package billing

import (
	"context"
	"time"
)

// EntryFilter selects ledger entries. Usage listings set Type to debit.
type EntryFilter struct {
	Customer string // Tally id
	Type     string
	Feature  string
	From, To *time.Time // created_at in [From, To)
	TagKey   string     // metadata key that must equal TagValue
	TagValue string
	Limit    int
	Cursor   string // next_cursor of the previous page
}

// CustomerFilter selects customers for listing.
type CustomerFilter struct {
	Limit  int
	Cursor string // the last id of the previous page
}

// UsageDay is one day of one feature's usage (from the rollups).
type UsageDay struct {
	Day      string
	Feature  string
	Credits  Credits
	Quantity Quantity
	Events   int64
}

// Ledger is the store of wallets. Every write is atomic and durable when it
// returns; rejected writes change nothing. Errors are *Error with the codes
// listed on each method; anything else is internal.
type Ledger interface {
	// CreateCustomer creates a customer or returns the existing one with the
	// same external_id (created = false). validation_failed.
	CreateCustomer(ctx context.Context, in CustomerInput) (c Customer, created bool, err error)
	// UpdateCustomer changes a customer's e-mail and name. customer_not_found, validation_failed.
	UpdateCustomer(ctx context.Context, ref string, u CustomerUpdate) (Customer, error)
	// ResolveCustomer maps a cus_ id or external_id to Tally's id. customer_not_found.
	ResolveCustomer(ctx context.Context, ref string) (string, error)
	FindCustomer(ctx context.Context, ref string) (Customer, error)
	FindCustomers(ctx context.Context, f CustomerFilter) ([]Customer, bool, error)
	// SetLimits replaces the operator's limits (spend caps, overdraft limit). customer_not_found, validation_failed.
	SetLimits(ctx context.Context, ref string, lim Limits) (Customer, error)
	Balance(ctx context.Context, ref string) (Balance, error)
	// Debit meters usage. customer_not_found, unknown_feature, invalid_quantity,
	// insufficient_credits, spend_limit_exceeded, idempotency_conflict.
	Debit(ctx context.Context, req UsageRequest) (Debit, error)
	DebitMany(ctx context.Context, reqs []UsageRequest) ([]Debit, []error)
	// Grant adds a lot. customer_not_found, validation_failed, idempotency_conflict.
	Grant(ctx context.Context, req GrantRequest) (Grant, error)
	// Adjust corrects a balance by hand, either way. customer_not_found,
	// validation_failed, insufficient_credits, idempotency_conflict.
	Adjust(ctx context.Context, req AdjustmentRequest) (Entry, bool, error)
	// CreateHold reserves credits. insufficient_credits, spend_limit_exceeded, idempotency_conflict.
	CreateHold(ctx context.Context, req HoldRequest) (Hold, error)
	// CaptureHold records usage against a hold. hold_not_found, hold_not_active.
	CaptureHold(ctx context.Context, holdID string, req CaptureRequest, key *APIKey) (Hold, error)
	// ReleaseHold ends a hold without a charge. hold_not_found, hold_not_active.
	ReleaseHold(ctx context.Context, holdID string, key *APIKey) (Hold, error)
	FindHold(ctx context.Context, holdID string) (Hold, error)
	Quote(ctx context.Context, ref, feature string, q *Quantity, qs Quantities, key *APIKey) (Quote, error)
	FindEntries(ctx context.Context, f EntryFilter) ([]Entry, string, error)
	FindUsageDays(ctx context.Context, customerID, from, to string) ([]UsageDay, error)
}

// PriceBooks stores price book versions.
type PriceBooks interface {
	// CurrentPriceBook returns the version in effect now (the latest
	// EffectiveAt at or before now), or nil when none is.
	CurrentPriceBook(ctx context.Context) (*PriceBook, error)
	// PublishPriceBook stores a new version, in effect now or at
	// pb.EffectiveAt when that is later. validation_failed.
	PublishPriceBook(ctx context.Context, pb PriceBook) (PriceBook, bool, error)
	PriceBookVersion(ctx context.Context, version int64) (*PriceBook, error)
	ListPriceBooks(ctx context.Context) ([]PriceBook, error)
}

// APIKeys verifies product apps' keys.
type APIKeys interface {
	// Authenticate returns the live key with this secret. unauthorized.
	Authenticate(ctx context.Context, secret string) (*APIKey, error)
}
