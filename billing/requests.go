package billing

import (
	"crypto/sha256"
	"encoding/binary"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// APIKey is a product app's credential as the domain sees it (never the secret).
type APIKey struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Scope     string     `json:"scope"`
	Limits    Limits     `json:"limits"`
	RateLimit int        `json:"rate_limit"` // requests per second; 0 = unlimited
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	// AllowedOrigins are the origins whose pages may show the balance
	// widget with this key's embed tokens (filled by listings only).
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// LastUsedAt is when the key last authenticated a request, to the
	// minute (filled by listings only; nil: never).
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// API key scopes. A key has one; admin includes every other, metering and
// portal each include read, and nothing else includes anything. The portal
// scope is kept apart from metering because a portal sign-in link spends
// the customer's money (top-ups with the saved card, auto-refill, cards):
// the key every app server holds to meter usage must not be able to.
const (
	ScopeAdmin    = "admin"    // everything, including grants, limits, price books and refunds
	ScopeMetering = "metering" // creating customers, usage, holds, plus read
	ScopePortal   = "portal"   // portal sign-in links (POST /portal-sessions), plus read
	ScopeRead     = "read"     // reads only
)

// scopeIncludes lists what each scope may do. portal includes read because
// every customer a portal key can read through the API it could already see
// in the portal, through a sign-in link of its own: leaving read out would
// make the backend that opens the portal (and looks the customer up first)
// hold a second key without protecting anything.
var scopeIncludes = map[string][]string{
	ScopeAdmin:    {ScopeAdmin, ScopeMetering, ScopePortal, ScopeRead},
	ScopeMetering: {ScopeMetering, ScopeRead},
	ScopePortal:   {ScopePortal, ScopeRead},
	ScopeRead:     {ScopeRead},
}

// Scopes lists every scope, most powerful first.
func Scopes() []string { return []string{ScopeAdmin, ScopeMetering, ScopePortal, ScopeRead} }

// ValidScope reports whether s is a scope.
func ValidScope(s string) bool { _, ok := scopeIncludes[s]; return ok }

// Allows reports whether a key of scope have may do what needs requires.
func Allows(have, needs string) bool { return slices.Contains(scopeIncludes[have], needs) }

// CheckOrigins refuses allowed origins on a key of a scope that never mints
// the balance widget's embed tokens (only portal and admin keys do): such
// origins would never be used, and suggest the key does something it
// cannot.
func CheckOrigins(scope string, origins []string) error {
	if len(origins) > 0 && !Allows(scope, ScopePortal) {
		return Errorf(CodeValidation, "Only portal and admin keys mint the balance widget's tokens, so only they list allowed origins; a %s key never uses them.", scope).
			With("param", "allowed_origins")
	}
	return nil
}

// CustomerInput creates a customer.
type CustomerInput struct {
	ExternalID string `json:"external_id"`
	Email      string `json:"email"`
	Name       string `json:"name"`
}

// Validate checks and normalises a new customer.
func (in *CustomerInput) Validate() error {
	in.Email = strings.TrimSpace(in.Email)
	in.Name = strings.TrimSpace(in.Name)
	if strings.TrimSpace(in.ExternalID) == "" {
		return Errorf(CodeValidation, "external_id is required: your product's id for this customer").With("param", "external_id")
	}
	// Not trimmed: customers are found by their external_id exactly, so a
	// customer created as "spaced" from "  spaced  " could not be found by
	// the id the product sent.
	if strings.TrimSpace(in.ExternalID) != in.ExternalID {
		return Errorf(CodeValidation, "external_id may not start or end with spaces: requests find the customer by it exactly").With("param", "external_id")
	}
	if err := checkText("external_id", in.ExternalID, 255); err != nil {
		return err
	}
	if strings.HasPrefix(in.ExternalID, "cus_") {
		return Errorf(CodeValidation, "external_id may not start with cus_ (Tally's own ids do)").With("param", "external_id")
	}
	if in.Email != "" {
		if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > 254 {
			return Errorf(CodeValidation, "email %q is not a valid address", in.Email).With("param", "email")
		}
	}
	return checkText("name", in.Name, 200)
}

// CustomerUpdate changes a customer's e-mail (where receipts and notices
// go) and name; a field left out (nil) stays as it is, "" clears it.
type CustomerUpdate struct {
	Email *string `json:"email"`
	Name  *string `json:"name"`
}

// Validate checks and normalises an update as CustomerInput does.
func (u *CustomerUpdate) Validate() error {
	if u.Email == nil && u.Name == nil {
		return Errorf(CodeValidation, "send email, name or both: the fields to change").With("param", "email")
	}
	in := CustomerInput{ExternalID: "x"}
	if u.Email != nil {
		in.Email = *u.Email
	}
	if u.Name != nil {
		in.Name = *u.Name
	}
	if err := in.Validate(); err != nil {
		return err
	}
	if u.Email != nil {
		u.Email = &in.Email
	}
	if u.Name != nil {
		u.Name = &in.Name
	}
	return nil
}

// checkText bounds a text field in characters, as the docs and OpenAPI's
// maxLength count (it counted bytes: 200 accented letters were "too
// long" for a 200-character name), and refuses control characters.
func checkText(param, s string, max int) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return Errorf(CodeValidation, "%s must be valid text of at most %d characters", param, max).With("param", param)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return Errorf(CodeValidation, "%s may not contain control characters", param).With("param", param)
		}
	}
	return nil
}

// CheckIdempotencyKey validates a client-chosen idempotency key.
func CheckIdempotencyKey(k string) error {
	if len(k) > 255 {
		return Errorf(CodeInvalidRequest, "idempotency_key must be at most 255 characters").With("param", "idempotency_key")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return Errorf(CodeInvalidRequest, "idempotency_key must be printable ASCII without spaces").With("param", "idempotency_key")
		}
	}
	return nil
}

// UsageRequest meters one action: quantity units of feature for customer.
type UsageRequest struct {
	Customer       string            `json:"customer"`
	Feature        string            `json:"feature"`
	Quantity       *Quantity         `json:"quantity"`
	Quantities     Quantities        `json:"quantities,omitempty"` // instead of quantity, for a feature priced per dimension
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`

	APIKey *APIKey `json:"-"` // who asks; its caps apply
}

// Validate checks a usage request's shape (the feature is checked against
// the price book when it is priced).
func (r *UsageRequest) Validate() error {
	if r.Customer == "" {
		return Errorf(CodeValidation, "customer is required").With("param", "customer")
	}
	if r.Feature == "" {
		return Errorf(CodeUnknownFeature, "feature is required").With("param", "feature")
	}
	if err := checkQuantity(r.Quantity, r.Quantities); err != nil {
		return err
	}
	if err := CheckIdempotencyKey(r.IdempotencyKey); err != nil {
		return err
	}
	return CheckMetadata(r.Metadata)
}

// CheckMetadata bounds the tags a product attaches to usage (user, project...).
func CheckMetadata(m map[string]string) error {
	if len(m) > 20 {
		return Errorf(CodeValidation, "metadata may have at most 20 keys").With("param", "metadata")
	}
	for k, v := range m {
		if k == "" || utf8.RuneCountInString(k) > 40 {
			return Errorf(CodeValidation, "metadata keys must be 1-40 characters").With("param", "metadata")
		}
		if err := checkText("metadata."+k, v, 500); err != nil {
			return err
		}
		if err := checkText("metadata key", k, 40); err != nil {
			return err
		}
	}
	return nil
}

// Hash identifies the request for idempotency (call it after Validate): the
// same key with a request of another hash is a conflict. customerID is the resolved Tally id, so naming
// the customer by id or by external_id is the same request.
func (r *UsageRequest) Hash(customerID string) []byte {
	h := newHasher("usage")
	h.str(customerID)
	h.str(r.Feature)
	h.quantity(r.Quantity, r.Quantities)
	h.strMap(r.Metadata)
	return h.sum()
}

// Debit is the result of metering one action.
type Debit struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	Customer       string            `json:"customer"`
	Feature        string            `json:"feature"`
	Quantity       Quantity          `json:"quantity"`            // 0 for a feature priced per dimension
	Breakdown      []DimensionCharge `json:"breakdown,omitempty"` // per dimension, for a feature priced per dimension
	CreditsCharged Credits           `json:"credits_charged"`
	BalanceAfter   Credits           `json:"balance_after"`
	PriceVersion   int64             `json:"price_version"`
	HoldID         string            `json:"hold,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`

	Replayed bool `json:"-"`
}

// GrantRequest adds credits to a customer as a new lot.
type GrantRequest struct {
	Customer        string     `json:"customer"`
	Credits         Credits    `json:"credits"`
	Source          string     `json:"source"`
	Reason          string     `json:"reason"`
	Priority        *int       `json:"priority,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	RefundableUntil *time.Time `json:"refundable_until,omitempty"`
	IdempotencyKey  string     `json:"idempotency_key,omitempty"`

	Actor Actor `json:"-"` // who grants (stored with the entry and its events)
}

// Validate checks a grant's shape. The expiry is checked against the clock
// separately (CheckExpiry), after a retry has had the chance to replay.
func (r *GrantRequest) Validate() error {
	if r.Customer == "" {
		return Errorf(CodeValidation, "customer is required").With("param", "customer")
	}
	if r.Credits <= 0 || r.Credits > MaxCredits {
		return Errorf(CodeValidation, "credits must be more than zero").With("param", "credits")
	}
	if r.Source == "" {
		return Errorf(CodeValidation, "source is required: purchase, promo, subscription or adjustment").With("param", "source")
	}
	if !ValidSource(r.Source) {
		return Errorf(CodeValidation, "source %q is not one of purchase, promo, subscription, adjustment", r.Source).With("param", "source")
	}
	if err := checkText("reason", r.Reason, 500); err != nil {
		return err
	}
	if r.Priority != nil && (*r.Priority < 0 || *r.Priority > 1000) {
		return Errorf(CodeValidation, "priority must be between 0 and 1000 (lower burns first)").With("param", "priority")
	}
	return CheckIdempotencyKey(r.IdempotencyKey)
}

// CheckExpiry refuses a grant that would expire at or before now.
func (r *GrantRequest) CheckExpiry(now time.Time) error {
	if r.ExpiresAt != nil && !r.ExpiresAt.After(now) {
		return Errorf(CodeValidation, "expires_at must be in the future").With("param", "expires_at")
	}
	return nil
}

// EffectivePriority is the grant's priority, or its source's default.
func (r *GrantRequest) EffectivePriority() int {
	if r.Priority != nil {
		return *r.Priority
	}
	return DefaultPriority[r.Source]
}

// Hash identifies the grant for idempotency.
func (r *GrantRequest) Hash(customerID string) []byte {
	h := newHasher("grant")
	h.str(customerID)
	h.int(int64(r.Credits))
	h.str(r.Source)
	h.str(r.Reason)
	h.int(int64(r.EffectivePriority()))
	h.time(r.ExpiresAt)
	h.time(r.RefundableUntil)
	return h.sum()
}

// Grant is the result of a grant: the entry and the lot it created.
type Grant struct {
	ID           string    `json:"id"`
	Object       string    `json:"object"`
	Customer     string    `json:"customer"`
	Credits      Credits   `json:"credits"`
	BalanceAfter Credits   `json:"balance_after"`
	Lot          LotView   `json:"lot"`
	CreatedAt    time.Time `json:"created_at"`

	Replayed bool `json:"-"`
}

// LotView is a lot as the API shows it.
type LotView struct {
	ID string `json:"id"`
	Lot
}

// HoldRequest reserves credits for a call whose cost is known only at the end.
type HoldRequest struct {
	Customer       string  `json:"customer"`
	Credits        Credits `json:"credits"`
	TTLSeconds     int64   `json:"ttl_seconds"`
	IdempotencyKey string  `json:"idempotency_key,omitempty"`

	APIKey *APIKey `json:"-"`
}

// Hold limits.
const (
	DefaultHoldTTL = 10 * time.Minute
	MaxHoldTTL     = 24 * time.Hour
)

// Validate checks a hold request and fills the default TTL.
func (r *HoldRequest) Validate() error {
	if r.Customer == "" {
		return Errorf(CodeValidation, "customer is required").With("param", "customer")
	}
	if r.Credits <= 0 || r.Credits > MaxCredits {
		return Errorf(CodeValidation, "credits must be more than zero").With("param", "credits")
	}
	if r.TTLSeconds == 0 {
		r.TTLSeconds = int64(DefaultHoldTTL / time.Second)
	}
	if r.TTLSeconds < 1 || r.TTLSeconds > int64(MaxHoldTTL/time.Second) {
		return Errorf(CodeValidation, "ttl_seconds must be between 1 and 86400").With("param", "ttl_seconds")
	}
	return CheckIdempotencyKey(r.IdempotencyKey)
}

// Hash identifies the hold request for idempotency.
func (r *HoldRequest) Hash(customerID string) []byte {
	h := newHasher("hold")
	h.str(customerID)
	h.int(int64(r.Credits))
	h.int(r.TTLSeconds)
	return h.sum()
}

// CaptureRequest records a held call's actual usage.
type CaptureRequest struct {
	Feature        string            `json:"feature"`
	Quantity       *Quantity         `json:"quantity"`
	Quantities     Quantities        `json:"quantities,omitempty"` // instead of quantity, for a feature priced per dimension
	Metadata       map[string]string `json:"metadata,omitempty"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
}

// Validate checks a capture request.
func (r *CaptureRequest) Validate() error {
	u := UsageRequest{Customer: "-", Feature: r.Feature, Quantity: r.Quantity, Quantities: r.Quantities, Metadata: r.Metadata, IdempotencyKey: r.IdempotencyKey}
	return u.Validate()
}

// Hash identifies the capture for idempotency.
func (r *CaptureRequest) Hash(holdID string) []byte {
	h := newHasher("capture")
	h.str(holdID)
	h.str(r.Feature)
	h.quantity(r.Quantity, r.Quantities)
	h.strMap(r.Metadata)
	return h.sum()
}

// Hold states.
const (
	HoldActive   = "active"
	HoldCaptured = "captured"
	HoldReleased = "released"
	HoldExpired  = "expired"
)

// Hold is a reservation of credits.
type Hold struct {
	ID             string     `json:"id"`
	Object         string     `json:"object"`
	Customer       string     `json:"customer"`
	Credits        Credits    `json:"credits"`
	Status         string     `json:"status"`
	ExpiresAt      time.Time  `json:"expires_at"`
	CreatedAt      time.Time  `json:"created_at"`
	ClosedAt       *time.Time `json:"closed_at"`
	CreditsCharged *Credits   `json:"credits_charged,omitempty"`
	Debit          *Debit     `json:"debit,omitempty"`

	Replayed bool `json:"-"`
}

// hasher builds a request hash from length-prefixed fields, so that no two
// different requests can produce the same byte stream.
type hasher struct{ b []byte }

func newHasher(kind string) *hasher { h := &hasher{}; h.str(kind); return h }

func (h *hasher) str(s string) {
	h.b = binary.AppendUvarint(h.b, uint64(len(s)))
	h.b = append(h.b, s...)
}
func (h *hasher) int(v int64) { h.b = binary.AppendVarint(h.b, v) }
func (h *hasher) time(t *time.Time) {
	if t == nil {
		h.int(-1 << 62)
		return
	}
	h.int(t.UnixMicro())
}
func (h *hasher) strMap(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h.int(int64(len(keys)))
	for _, k := range keys {
		h.str(k)
		h.str(m[k])
	}
}
func (h *hasher) sum() []byte { s := sha256.Sum256(h.b); return s[:16] }

// Balance is a customer's credits as the API reports them.
type Balance struct {
	Object          string    `json:"object"`
	Customer        string    `json:"customer"`
	Balance         Credits   `json:"balance"`
	Available       Credits   `json:"available"`
	Held            Credits   `json:"held"`
	OverdraftLimit  Credits   `json:"overdraft_limit"`
	Lots            []LotView `json:"lots"`
	ExpiringSoon    []LotView `json:"expiring_soon"`
	ExpiringCredits Credits   `json:"expiring_soon_credits"`
	AsOf            time.Time `json:"as_of"`
}

// ExpiringWindow is how far ahead the balance lists expiring lots.
const ExpiringWindow = 30 * 24 * time.Hour

// Entry is one ledger entry as the API shows it.
type Entry struct {
	ID           string            `json:"id"`
	Object       string            `json:"object"`
	Customer     string            `json:"customer"`
	Type         string            `json:"type"`
	Amount       Credits           `json:"amount"`
	HeldDelta    Credits           `json:"held_delta"`
	BalanceAfter Credits           `json:"balance_after"`
	Feature      string            `json:"feature,omitempty"`
	Quantity     *Quantity         `json:"quantity,omitempty"`
	Breakdown    []DimensionCharge `json:"breakdown,omitempty"` // a debit priced per dimension
	PriceVersion int64             `json:"price_version,omitempty"`
	Lot          string            `json:"lot,omitempty"`
	Hold         string            `json:"hold,omitempty"`
	Source       string            `json:"source,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Burns        []BurnView        `json:"burns,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
}

// BurnView says which lot part of an entry came from, so each debit explains
// itself ("from: Promo grant, expires 1 Jan").
type BurnView struct {
	Lot       string     `json:"lot"`
	Credits   Credits    `json:"credits"`
	Source    string     `json:"source"`
	Reason    string     `json:"reason,omitempty"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Quote is what an action would cost now, without writing anything.
type Quote struct {
	Object       string            `json:"object"`
	Customer     string            `json:"customer"`
	Feature      string            `json:"feature"`
	Quantity     Quantity          `json:"quantity"`
	Breakdown    []DimensionCharge `json:"breakdown,omitempty"`
	Credits      Credits           `json:"credits"`
	PriceVersion int64             `json:"price_version"`
	Available    Credits           `json:"available"`
	Affordable   bool              `json:"affordable"`
	Reason       string            `json:"reason,omitempty"` // why not: insufficient_credits or spend_limit_exceeded
}

// AdjustmentRequest is an admin's manual correction: positive credits add a
// lot (source adjustment), negative credits take credits from the lots in
// burn order. The reason is required: it is what the customer sees.
type AdjustmentRequest struct {
	Customer       string  `json:"customer"`
	Credits        Credits `json:"credits"`
	Reason         string  `json:"reason"`
	IdempotencyKey string  `json:"idempotency_key,omitempty"`

	Actor Actor `json:"-"` // who makes it (stored with the entry and its events)
}

// Validate checks an adjustment.
func (r *AdjustmentRequest) Validate() error {
	if r.Customer == "" {
		return Errorf(CodeValidation, "customer is required").With("param", "customer")
	}
	if r.Credits == 0 || r.Credits > MaxCredits || r.Credits < -MaxCredits {
		return Errorf(CodeValidation, "credits must be a non-zero amount: positive adds credits, negative removes them").With("param", "credits")
	}
	if strings.TrimSpace(r.Reason) == "" {
		// Only spaces read as an empty reason in the customer's ledger.
		return Errorf(CodeValidation, "reason is required: say why the balance changes").With("param", "reason")
	}
	if err := checkText("reason", r.Reason, 500); err != nil {
		return err
	}
	return CheckIdempotencyKey(r.IdempotencyKey)
}

// Hash identifies the adjustment for idempotency (after Validate).
func (r *AdjustmentRequest) Hash(customerID string) []byte {
	h := newHasher("adjustment")
	h.str(customerID)
	h.int(int64(r.Credits))
	h.str(r.Reason)
	return h.sum()
}

// Key is the request's idempotency key ("" for none): the API's decoder
// asks it to tell a key left out from one sent empty.
func (r *UsageRequest) Key() string { return r.IdempotencyKey }

// Key is the request's idempotency key.
func (r *GrantRequest) Key() string { return r.IdempotencyKey }

// Key is the request's idempotency key.
func (r *HoldRequest) Key() string { return r.IdempotencyKey }

// Key is the request's idempotency key.
func (r *CaptureRequest) Key() string { return r.IdempotencyKey }

// Key is the request's idempotency key.
func (r *AdjustmentRequest) Key() string { return r.IdempotencyKey }
