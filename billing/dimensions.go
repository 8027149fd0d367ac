package billing

import (
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Features with several dimensions, as AI providers price them: one feature
// (gpt-4o) prices input tokens, cached input tokens and output tokens each at
// its own rate. One usage event carries a quantity per dimension and is
// charged as one debit, whose entry keeps the breakdown.

// Dimension is one separately priced quantity of a feature: Credits per
// UnitSize units, as a single-quantity feature is priced.
type Dimension struct {
	Key      string  `json:"key"`
	Name     string  `json:"name,omitempty"`
	Unit     string  `json:"unit"`
	Credits  Credits `json:"credits"`
	UnitSize int64   `json:"unit_size"`
	Cost     *Cost   `json:"cost,omitempty"` // what a million units cost the product (costs.go)
}

// Quantities are a usage event's quantity per dimension key.
type Quantities map[string]Quantity

// DimensionCharge is one line of a debit's breakdown.
type DimensionCharge struct {
	Dimension string   `json:"dimension"`
	Quantity  Quantity `json:"quantity"`
	Credits   Credits  `json:"credits"`
}

// maxDimensions bounds a feature's dimensions (and a request's quantities).
const maxDimensions = 20

var dimensionPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,39}$`)

// validateDimensions checks a feature's dimensions and fills their defaults.
func (f *Feature) validateDimensions(currency string) error {
	if len(f.Dimensions) == 0 {
		return nil
	}
	if len(f.Dimensions) > maxDimensions {
		return Errorf(CodeValidation, "feature %q: at most %d dimensions", f.Key, maxDimensions).With("param", "dimensions")
	}
	if f.Credits != 0 {
		return Errorf(CodeValidation, "feature %q is priced per dimension: leave its own credits at 0 and price each dimension", f.Key).With("param", "credits")
	}
	seen := map[string]bool{}
	for i := range f.Dimensions {
		d := &f.Dimensions[i]
		if !dimensionPattern.MatchString(d.Key) {
			return Errorf(CodeValidation, "feature %q, dimension %d: key %q must be 1-40 lower-case letters, digits or '_'", f.Key, i+1, d.Key).With("param", fieldParam("dimensions", i, "key"))
		}
		if seen[d.Key] {
			return Errorf(CodeValidation, "feature %q: dimension %q appears twice", f.Key, d.Key).With("param", fieldParam("dimensions", i, "key"))
		}
		seen[d.Key] = true
		if d.UnitSize == 0 {
			d.UnitSize = 1
		}
		if d.UnitSize < 0 || d.UnitSize > maxUnitSize {
			return Errorf(CodeValidation, "feature %q, dimension %q: unit_size must be between 1 and 1,000,000,000", f.Key, d.Key).With("param", fieldParam("dimensions", i, "unit_size"))
		}
		if d.Credits < 0 || d.Credits > MaxCredits {
			return Errorf(CodeValidation, "feature %q, dimension %q: credits must be between 0 and %s", f.Key, d.Key, maxCreditsText).With("param", fieldParam("dimensions", i, "credits"))
		}
		if d.Unit == "" {
			d.Unit = strings.ReplaceAll(d.Key, "_", " ")
		}
		if err := d.Cost.validate("feature "+f.Key+", dimension "+d.Key, currency); err != nil {
			return prefixParam(err, fieldParam("dimensions", i, "cost"))
		}
		if d.Name == "" {
			d.Name = d.Unit
		}
	}
	return nil
}

// Dimensional reports whether the feature is priced per dimension.
func (f Feature) Dimensional() bool { return len(f.Dimensions) > 0 }

func (f Feature) dimensionKeys() string {
	keys := make([]string, len(f.Dimensions))
	for i, d := range f.Dimensions {
		keys[i] = d.Key
	}
	return strings.Join(keys, ", ")
}

// checkQuantities checks a request's quantities' shape (the dimensions are
// checked against the price book when the usage is priced).
func checkQuantities(qs Quantities) error {
	if len(qs) > maxDimensions {
		return Errorf(CodeInvalidQuantity, "quantities may name at most %d dimensions", maxDimensions).With("param", "quantities")
	}
	var any bool
	for k, q := range qs {
		if !dimensionPattern.MatchString(k) {
			return Errorf(CodeInvalidQuantity, "quantities: %q is not a dimension key (1-40 lower-case letters, digits or '_')", k).With("param", "quantities")
		}
		if q < 0 {
			return Errorf(CodeInvalidQuantity, "quantities.%s must be zero or more", k).With("param", "quantities."+k)
		}
		if q > MaxQuantity {
			return Errorf(CodeInvalidQuantity, "quantities.%s is too large", k).With("param", "quantities."+k)
		}
		any = any || q > 0
	}
	if !any {
		return Errorf(CodeInvalidQuantity, "quantities must have at least one dimension above zero").With("param", "quantities")
	}
	return nil
}

// checkQuantity checks that a request carries exactly one of quantity and
// quantities, each well formed.
func checkQuantity(q *Quantity, qs Quantities) error {
	switch {
	case q != nil && qs != nil:
		return Errorf(CodeInvalidQuantity, "send either quantity (a feature with one quantity) or quantities (a feature priced per dimension), not both").With("param", "quantities")
	case qs != nil:
		return checkQuantities(qs)
	case q == nil:
		return Errorf(CodeInvalidQuantity, "quantity is required: a positive number of the feature's units (or quantities, per dimension)").With("param", "quantity")
	case *q <= 0:
		return Errorf(CodeInvalidQuantity, "quantity must be more than zero").With("param", "quantity")
	case *q > MaxQuantity:
		return Errorf(CodeInvalidQuantity, "quantity is too large").With("param", "quantity")
	}
	return nil
}

// hashQuantity adds a request's quantity, or its quantities, to a request
// hash. A single quantity hashes as it always did, so stored hashes stay
// valid.
func (h *hasher) quantity(q *Quantity, qs Quantities) {
	if qs == nil {
		h.int(int64(*q))
		return
	}
	h.str("quantities")
	h.int(int64(len(qs)))
	for _, k := range slices.Sorted(maps.Keys(qs)) {
		h.str(k)
		h.int(int64(qs[k]))
	}
}

// PriceUsage prices one usage event of f: a single quantity (Charge), or a
// quantity per dimension, each priced by its own rate and rounded down to
// the millicredit, then summed. The breakdown lists every dimension the
// request named, in the feature's order. Errors: invalid_quantity (the wrong
// form for the feature, an unknown dimension, a charge past MaxCredits).
func PriceUsage(f Feature, q *Quantity, qs Quantities) (Credits, []DimensionCharge, error) {
	if !f.Dimensional() {
		if qs != nil {
			return 0, nil, Errorf(CodeInvalidQuantity, "feature %q has one quantity: send quantity, not quantities", f.Key).With("param", "quantities")
		}
		if q == nil {
			return 0, nil, Errorf(CodeInvalidQuantity, "quantity is required for feature %q", f.Key).With("param", "quantity")
		}
		c, err := Charge(f, *q)
		return c, nil, err
	}
	if qs == nil {
		return 0, nil, Errorf(CodeInvalidQuantity, "feature %q is priced per dimension (%s): send quantities, such as {\"%s\": 1000}",
			f.Key, f.dimensionKeys(), f.Dimensions[0].Key).With("param", "quantities")
	}
	for k := range qs {
		if !slices.ContainsFunc(f.Dimensions, func(d Dimension) bool { return d.Key == k }) {
			return 0, nil, Errorf(CodeInvalidQuantity, "feature %q has no dimension %q; its dimensions are %s", f.Key, k, f.dimensionKeys()).
				With("param", "quantities."+k)
		}
	}
	var total Credits
	var lines []DimensionCharge
	for _, d := range f.Dimensions {
		n, ok := qs[d.Key]
		if !ok {
			continue
		}
		var c Credits
		if n > 0 {
			var err error
			if c, err = Charge(Feature{Key: f.Key, Credits: d.Credits, UnitSize: d.UnitSize}, n); err != nil {
				return 0, nil, err
			}
		}
		total += c // each at most MaxCredits, at most 20 of them: no overflow
		lines = append(lines, DimensionCharge{Dimension: d.Key, Quantity: n, Credits: c})
	}
	if total > MaxCredits {
		return 0, nil, Errorf(CodeInvalidQuantity, "quantities are too large for this feature's prices").With("param", "quantities")
	}
	return total, lines, nil
}
