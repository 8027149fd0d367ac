package billing

import (
	"math/bits"
	"regexp"
	"strings"
	"time"
)

// Feature is one billable action in a price book: Credits per UnitSize units.
// chat.request costs 1 credit per 1 request; gpt-4o.tokens 2.5 credits per
// 1,000 tokens.
type Feature struct {
	Key         string  `json:"key"`
	Name        string  `json:"name"`
	Unit        string  `json:"unit"`
	Credits     Credits `json:"credits"`
	UnitSize    int64   `json:"unit_size"`
	Description string  `json:"description,omitempty"`
	// Dimensions price a feature per quantity kind (input and output
	// tokens...); a feature with dimensions has no Credits of its own and is
	// metered with quantities (dimensions.go).
	Dimensions []Dimension `json:"dimensions,omitempty"`
	// Cost is what a million units cost the product, for the margin
	// (costs.go); a feature priced per dimension keeps it per dimension.
	Cost *Cost `json:"cost,omitempty"`
}

// CreditPack is a bundle of credits sold at a fixed price ($10 -> 1,000 credits).
type CreditPack struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Credits Credits `json:"credits"`
	Price   Money   `json:"price"`
	// Bonus credits come on top of Credits with each purchase ("1,000 +
	// 100 bonus"); the price per credit (margins, custom amounts) counts
	// Credits only.
	Bonus Credits `json:"bonus_credits,omitempty"`
	// Active false takes a pack off sale (it stays in the price book, so
	// auto-refills set up with it keep working); nil is active.
	Active *bool `json:"active,omitempty"`
}

// IsActive reports whether the pack is on sale.
func (p CreditPack) IsActive() bool { return p.Active == nil || *p.Active }

// Total is what a purchase of the pack grants: its credits and bonus.
func (p CreditPack) Total() Credits { return p.Credits + p.Bonus }

// CustomTopUp is how a price book prices custom top-up amounts: the range a
// customer may type (minor units) and how many credits one major unit of
// the currency buys. Without it the payment policy's range applies and the
// smallest pack's rate prices custom amounts.
type CustomTopUp struct {
	Min int64 `json:"min"`
	Max int64 `json:"max"`
	// CreditsPerUnit is what 1.00 of the currency buys (100 credits per
	// dollar); 0 prices custom amounts at the smallest pack's rate.
	CreditsPerUnit Credits `json:"credits_per_unit,omitempty"`
}

// PriceBook is one immutable version of what things cost. Publishing makes a
// new version; every debit records the version it was priced with.
type PriceBook struct {
	Version     int64        `json:"version"`
	PublishedAt time.Time    `json:"published_at"`
	Currency    string       `json:"currency"`
	Features    []Feature    `json:"features"`
	Packs       []CreditPack `json:"packs"`
	Plans       []Plan       `json:"plans,omitempty"` // subscription plans (plans.go)
	// CustomTopUp prices custom top-up amounts (nil: the payment policy's
	// range at the smallest pack's rate).
	CustomTopUp *CustomTopUp `json:"custom_top_up,omitempty"`
	// EffectiveAt is when the version takes effect: its publication, or a
	// later time it was scheduled for. Debits are priced with the version
	// whose EffectiveAt is the latest at or before their time.
	EffectiveAt *time.Time `json:"effective_at,omitempty"`
	// PublishedBy is who published it ("admin:adm_..."; "" for the CLI
	// and the API).
	PublishedBy string `json:"published_by,omitempty"`
	// CancelledAt is set on a scheduled version an admin cancelled before
	// it took effect (CancelledBy says who): it is never in effect.
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
	CancelledBy string     `json:"cancelled_by,omitempty"`
}

// ActivePacks are the packs on sale, in the price book's order.
func (pb *PriceBook) ActivePacks() []CreditPack {
	if pb == nil {
		return nil
	}
	out := make([]CreditPack, 0, len(pb.Packs))
	for _, p := range pb.Packs {
		if p.IsActive() {
			out = append(out, p)
		}
	}
	return out
}

// Feature returns the feature with the given key.
func (pb *PriceBook) Feature(key string) (Feature, bool) {
	if pb == nil {
		return Feature{}, false
	}
	for _, f := range pb.Features {
		if f.Key == key {
			return f, true
		}
	}
	return Feature{}, false
}

// Pack returns the credit pack with the given id.
func (pb *PriceBook) Pack(id string) (CreditPack, bool) {
	if pb == nil {
		return CreditPack{}, false
	}
	for _, p := range pb.Packs {
		if p.ID == id {
			return p, true
		}
	}
	return CreditPack{}, false
}

// maxUnitSize bounds a feature's unit size, so unit_size*1000 fits in 64 bits.
const maxUnitSize = 1_000_000_000

// maxPackPrice bounds a pack's price in minor units (100,000,000.00), far
// from overflow in any sum of prices.
const maxPackPrice = 100_000_000_00

// maxCreditsText is MaxCredits as the messages write it.
const maxCreditsText = "1,000,000,000,000"

var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,63}$`)

// Validate checks a price book before it is published and fills defaults
// (unit size 1, lower-case currency). It returns validation_failed errors that
// name the offending entry.
func (pb *PriceBook) Validate() error {
	pb.Currency = strings.ToLower(strings.TrimSpace(pb.Currency))
	if pb.Currency == "" {
		pb.Currency = "usd"
	}
	if !isCurrency(pb.Currency) {
		return Errorf(CodeValidation, "currency %q is not an ISO 4217 code such as usd", pb.Currency).With("param", "currency")
	}
	if len(pb.Features) == 0 {
		return Errorf(CodeValidation, "a price book needs at least one feature").With("param", "features")
	}
	seen := map[string]bool{}
	for i := range pb.Features {
		f := &pb.Features[i]
		if !keyPattern.MatchString(f.Key) {
			return Errorf(CodeValidation, "feature %d: key %q must be 1-64 lower-case letters, digits, '.', '_', ':' or '-'", i+1, f.Key).With("param", fieldParam("features", i, "key"))
		}
		if seen[f.Key] {
			return Errorf(CodeValidation, "feature %q appears twice", f.Key).With("param", fieldParam("features", i, "key"))
		}
		seen[f.Key] = true
		if f.UnitSize == 0 {
			f.UnitSize = 1
		}
		if f.UnitSize < 0 || f.UnitSize > maxUnitSize {
			return Errorf(CodeValidation, "feature %q: unit_size must be between 1 and 1,000,000,000", f.Key).With("param", fieldParam("features", i, "unit_size"))
		}
		if f.Credits < 0 {
			return Errorf(CodeValidation, "feature %q: credits must be zero or more", f.Key).With("param", fieldParam("features", i, "credits"))
		}
		if f.Credits > MaxCredits {
			return Errorf(CodeValidation, "feature %q: credits must be at most %s", f.Key, maxCreditsText).With("param", fieldParam("features", i, "credits"))
		}
		if f.Name == "" {
			f.Name = f.Key
		}
		if f.Unit == "" {
			f.Unit = "unit"
		}
		if err := f.validateDimensions(pb.Currency); err != nil {
			return prefixParam(err, fieldParam("features", i, ""))
		}
		if err := f.Cost.validate("feature "+f.Key, pb.Currency); err != nil {
			return prefixParam(err, fieldParam("features", i, "cost"))
		}
	}
	seen = map[string]bool{}
	for i := range pb.Packs {
		p := &pb.Packs[i]
		if !keyPattern.MatchString(p.ID) {
			return Errorf(CodeValidation, "pack %d: id %q must be 1-64 lower-case letters, digits, '.', '_', ':' or '-'", i+1, p.ID).With("param", fieldParam("packs", i, "id"))
		}
		if seen[p.ID] {
			return Errorf(CodeValidation, "pack %q appears twice", p.ID).With("param", fieldParam("packs", i, "id"))
		}
		seen[p.ID] = true
		if p.Credits <= 0 {
			return Errorf(CodeValidation, "pack %q: credits must be more than zero", p.ID).With("param", fieldParam("packs", i, "credits"))
		}
		if p.Credits > MaxCredits {
			return Errorf(CodeValidation, "pack %q: credits must be at most %s", p.ID, maxCreditsText).With("param", fieldParam("packs", i, "credits"))
		}
		p.Price.Currency = strings.ToLower(strings.TrimSpace(p.Price.Currency))
		if p.Price.Currency == "" {
			p.Price.Currency = pb.Currency
		}
		if p.Price.Currency != pb.Currency {
			return Errorf(CodeValidation, "pack %q: priced in %s, but the price book is in %s", p.ID, p.Price.Currency, pb.Currency).With("param", fieldParam("packs", i, "price"))
		}
		if p.Price.Amount <= 0 {
			return Errorf(CodeValidation, "pack %q: price must be more than zero (in minor units: 1000 is $10.00)", p.ID).With("param", fieldParam("packs", i, "price"))
		}
		if p.Price.Amount > maxPackPrice {
			return Errorf(CodeValidation, "pack %q: price must be at most 10,000,000,000 in minor units (100,000,000.00 %s)", p.ID, strings.ToUpper(p.Price.Currency)).With("param", fieldParam("packs", i, "price"))
		}
		if p.Bonus < 0 || p.Bonus > MaxCredits-p.Credits {
			return Errorf(CodeValidation, "pack %q: bonus credits must be zero or more, and with the credits at most %s", p.ID, maxCreditsText).With("param", fieldParam("packs", i, "bonus_credits"))
		}
		if p.Name == "" {
			p.Name = p.Credits.String() + " credits"
		}
	}
	if err := pb.CustomTopUp.validate(pb.Currency); err != nil {
		return err
	}
	return pb.validatePlans()
}

func isCurrency(s string) bool { return iso4217[s] }

// Charge prices quantity units of f: Credits * quantity / UnitSize, rounded
// down to the millicredit (the customer's favour). Quantity is in thousandths
// of a unit, so the exact result is credits_milli * q_milli / (unit_size*1000).
// The product is computed in 128 bits; a charge beyond MaxCredits is refused.
func Charge(f Feature, q Quantity) (Credits, error) {
	if q <= 0 {
		return 0, Errorf(CodeInvalidQuantity, "quantity must be more than zero")
	}
	if q > MaxQuantity {
		return 0, Errorf(CodeInvalidQuantity, "quantity is too large")
	}
	if f.Credits < 0 {
		return 0, Errorf(CodeInternal, "negative price")
	}
	unit := f.UnitSize
	if unit == 0 {
		unit = 1
	}
	if unit < 0 || unit > maxUnitSize {
		return 0, Errorf(CodeInternal, "unit size %d is out of range", unit)
	}
	hi, lo := bits.Mul64(uint64(f.Credits), uint64(q))
	div := uint64(unit) * Milli
	if hi >= div {
		return 0, Errorf(CodeInvalidQuantity, "quantity is too large for this feature's price")
	}
	c, _ := bits.Div64(hi, lo, div)
	if c > uint64(MaxCredits) {
		return 0, Errorf(CodeInvalidQuantity, "quantity is too large for this feature's price")
	}
	return Credits(c), nil
}
