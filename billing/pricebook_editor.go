package billing

import (
	"errors"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The admin console's price-book editor: field errors from the publish
// validation, and the impact of a draft on the last 30 days of usage.

// fieldParam names a field of a list item as Validate's errors do:
// "features[2].credits", or the item itself ("features[2]").
func fieldParam(list string, i int, field string) string {
	p := list + "[" + strconv.Itoa(i) + "]"
	if field != "" {
		p += "." + field
	}
	return p
}

// prefixParam puts prefix before the param an error names (or makes prefix
// its param), so a feature's dimension error reads
// "features[2].dimensions[0].credits".
func prefixParam(err error, prefix string) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	p, _ := e.Details["param"].(string)
	switch {
	case p == "":
		p = prefix
	case prefix != "":
		p = prefix + "." + p
	}
	return e.With("param", p)
}

// validate checks a custom top-up range and rate.
func (c *CustomTopUp) validate(currency string) error {
	if c == nil {
		return nil
	}
	cur := strings.ToUpper(currency)
	if c.Min <= 0 {
		return Errorf(CodeValidation, "custom top-up: the smallest amount must be more than zero (in minor units of %s)", cur).With("param", "custom_top_up.min")
	}
	if c.Max < c.Min || c.Max > maxPackPrice {
		return Errorf(CodeValidation, "custom top-up: the largest amount must be at least the smallest and at most 10,000,000,000 minor units").With("param", "custom_top_up.max")
	}
	if c.CreditsPerUnit < 0 || c.CreditsPerUnit > MaxCredits {
		return Errorf(CodeValidation, "custom top-up: credits per unit of %s must be zero (the smallest pack's rate) or more, at most %s", cur, maxCreditsText).With("param", "custom_top_up.credits_per_unit")
	}
	return nil
}

// FieldErrors runs the publish validation (Validate) on pb and returns every
// error it finds, keyed by the field it concerns ("features[2].credits",
// "packs[0].price", "plans[1]", "" for the book as a whole), so an editor
// can show them all at once beside their fields. Validate stops at the
// first error; FieldErrors validates each feature, pack and plan on its own
// (in a copy), then the whole book. Empty when pb would publish.
func (pb PriceBook) FieldErrors() map[string]string {
	out := map[string]string{}
	add := func(err error, list string, i int) {
		if err == nil {
			return
		}
		p := errorParamOf(err)
		// The copy held the item at index 0: give it back its index.
		if list != "" {
			zero := fieldParam(list, 0, "")
			if strings.HasPrefix(p, zero) {
				p = fieldParam(list, i, "") + strings.TrimPrefix(p, zero)
			} else {
				p = fieldParam(list, i, "")
			}
		}
		if _, ok := out[p]; !ok {
			out[p] = ErrorMessage(err)
		}
	}
	probe := Feature{Key: "probe", Credits: Milli}
	cur := pb.Currency
	{
		c := PriceBook{Currency: cur, Features: []Feature{probe}, CustomTopUp: cloneCustom(pb.CustomTopUp)}
		err := c.Validate()
		add(err, "", 0)
		if errorParamOf(err) == "currency" {
			cur = "usd" // the parts are checked in a currency that is one
		}
	}
	// each validates n items of a list alone (alone(i) is a book holding
	// item i as the list's only one) and finds keys given twice.
	each := func(list, word, keyField string, n int, alone func(i int) PriceBook, key func(i int) string) {
		seen := map[string]int{}
		for i := range n {
			c := alone(i)
			c.Currency = cur
			add(c.Validate(), list, i)
			k := key(i)
			if j, dup := seen[k]; dup && k != "" {
				add(Errorf(CodeValidation, "%s %q appears twice (also %s %d)", word, k, word, j+1).With("param", fieldParam(list, 0, keyField)), list, i)
			}
			seen[k] = i
		}
	}
	each("features", "feature", "key", len(pb.Features),
		func(i int) PriceBook { return PriceBook{Features: []Feature{cloneFeature(pb.Features[i])}} },
		func(i int) string { return pb.Features[i].Key })
	each("packs", "pack", "id", len(pb.Packs),
		func(i int) PriceBook { return PriceBook{Features: []Feature{probe}, Packs: []CreditPack{pb.Packs[i]}} },
		func(i int) string { return pb.Packs[i].ID })
	each("plans", "plan", "", len(pb.Plans),
		func(i int) PriceBook { return PriceBook{Features: []Feature{probe}, Plans: []Plan{pb.Plans[i]}} },
		func(i int) string { return pb.Plans[i].Key })
	if len(out) == 0 {
		// Whatever the parts alone did not show (no feature at all...).
		c := pb.Clone()
		if err := c.Validate(); err != nil {
			p := errorParamOf(err)
			out[p] = ErrorMessage(err)
		}
	}
	return out
}

func errorParamOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		p, _ := e.Details["param"].(string)
		return p
	}
	return ""
}

func cloneCustom(c *CustomTopUp) *CustomTopUp {
	if c == nil {
		return nil
	}
	v := *c
	return &v
}

func cloneFeature(f Feature) Feature {
	f.Dimensions = append([]Dimension(nil), f.Dimensions...)
	for i := range f.Dimensions {
		if d := f.Dimensions[i].Cost; d != nil {
			v := *d
			f.Dimensions[i].Cost = &v
		}
	}
	if f.Cost != nil {
		v := *f.Cost
		f.Cost = &v
	}
	return f
}

// Clone is a deep copy of pb (Validate fills defaults in place).
func (pb PriceBook) Clone() PriceBook {
	out := pb
	out.Features = make([]Feature, len(pb.Features))
	for i, f := range pb.Features {
		out.Features[i] = cloneFeature(f)
	}
	out.Packs = append([]CreditPack(nil), pb.Packs...)
	for i := range out.Packs {
		if a := out.Packs[i].Active; a != nil {
			v := *a
			out.Packs[i].Active = &v
		}
	}
	out.Plans = append([]Plan(nil), pb.Plans...)
	for i := range out.Plans {
		if p := out.Plans[i].Priority; p != nil {
			v := *p
			out.Plans[i].Priority = &v
		}
	}
	out.CustomTopUp = cloneCustom(pb.CustomTopUp)
	if pb.EffectiveAt != nil {
		t := *pb.EffectiveAt
		out.EffectiveAt = &t
	}
	return out
}

// UsageTotal is a customer's usage of a feature over a period, as the
// ledger's usage entries (debits and captures) add up: the sum of the
// single quantities, and of each dimension's quantities.
type UsageTotal struct {
	Customer   string
	Feature    string
	Events     int64
	Quantity   Quantity   // single-quantity events' units, in thousandths
	Quantities Quantities // per dimension, over the dimensional events
	Charged    Credits    // what the events were charged, at their versions
}

// FeatureImpact is one feature's usage priced by two price books.
type FeatureImpact struct {
	Feature   string
	Name      string
	Events    int64
	Customers int
	Current   Credits
	Draft     Credits
	// Unpriced says why some of the usage has no price in the draft: the
	// feature is gone ("removed"), or a dimension ("dimension input_tokens
	// removed"), or it changed from one quantity to dimensions; such usage
	// would be refused under the draft and counts 0 in it.
	Unpriced string
}

// Delta is Draft - Current.
func (f FeatureImpact) Delta() Credits { return f.Draft - f.Current }

// CustomerImpact is one customer's usage priced by two price books.
type CustomerImpact struct {
	Customer string
	Events   int64
	Current  Credits
	Draft    Credits
}

// Delta is Draft - Current.
func (c CustomerImpact) Delta() Credits { return c.Draft - c.Current }

// Impact is what a period's usage would have cost under a draft price
// book versus the current one, per feature and for the customers it
// changes most.
type Impact struct {
	Since, Until time.Time
	Events       int64
	Customers    int // with usage in the period
	Current      Credits
	Draft        Credits
	Features     []FeatureImpact  // by the size of the change, largest first
	Top          []CustomerImpact // the most affected customers, largest change first
	// Changed counts the customers whose cost changes.
	Changed int
}

// Delta is Draft - Current.
func (im Impact) Delta() Credits { return im.Draft - im.Current }

// DeltaBps is the change in basis points of the current cost (0 when the
// current cost is 0).
func (im Impact) DeltaBps() int64 { return changeBps(im.Current, im.Draft) }

// changeBps is (draft - current) / current in basis points, rounded toward
// zero; 0 when current is 0.
func changeBps(current, draft Credits) int64 {
	if current == 0 {
		return 0
	}
	r := new(big.Int).Mul(big.NewInt(int64(draft-current)), big.NewInt(10_000))
	return r.Quo(r, big.NewInt(int64(current))).Int64()
}

// ChangeBps is the feature's change in basis points of its current cost.
func (f FeatureImpact) ChangeBps() int64 { return changeBps(f.Current, f.Draft) }

// ChangeBps is the customer's change in basis points of their current cost.
func (c CustomerImpact) ChangeBps() int64 { return changeBps(c.Current, c.Draft) }

// PreviewImpact prices usage (a period's totals per customer and feature)
// with current and with draft, and sums the difference per feature and per
// customer; top is how many customers to keep (the largest changes, either
// way). Totals are priced as one quantity each (Charge's rule, rounded
// down once rather than per event), so the two sides compare like for
// like; usage a book cannot price (a feature or dimension it lacks) counts
// 0 on that side. Pure: the store reads the totals (db.UsageTotals).
func PreviewImpact(usage []UsageTotal, current, draft *PriceBook, top int) Impact {
	var im Impact
	feats := map[string]*FeatureImpact{}
	custs := map[string]*CustomerImpact{}
	featCusts := map[string]map[string]bool{}
	for _, u := range usage {
		fi := feats[u.Feature]
		if fi == nil {
			fi = &FeatureImpact{Feature: u.Feature, Name: u.Feature}
			if f, ok := draft.Feature(u.Feature); ok {
				fi.Name = f.Name
			} else if f, ok := current.Feature(u.Feature); ok {
				fi.Name = f.Name
			}
			feats[u.Feature] = fi
			featCusts[u.Feature] = map[string]bool{}
		}
		cur, _ := priceTotal(current, u)
		dr, why := priceTotal(draft, u)
		if why != "" && fi.Unpriced == "" {
			fi.Unpriced = why
		}
		fi.Events += u.Events
		fi.Current = addSat(fi.Current, cur)
		fi.Draft = addSat(fi.Draft, dr)
		featCusts[u.Feature][u.Customer] = true
		ci := custs[u.Customer]
		if ci == nil {
			ci = &CustomerImpact{Customer: u.Customer}
			custs[u.Customer] = ci
		}
		ci.Events += u.Events
		ci.Current = addSat(ci.Current, cur)
		ci.Draft = addSat(ci.Draft, dr)
		im.Events += u.Events
		im.Current = addSat(im.Current, cur)
		im.Draft = addSat(im.Draft, dr)
	}
	for k, fi := range feats {
		fi.Customers = len(featCusts[k])
		im.Features = append(im.Features, *fi)
	}
	sort.Slice(im.Features, func(i, j int) bool {
		a, b := absC(im.Features[i].Delta()), absC(im.Features[j].Delta())
		if a != b {
			return a > b
		}
		return im.Features[i].Feature < im.Features[j].Feature
	})
	im.Customers = len(custs)
	all := make([]CustomerImpact, 0, len(custs))
	for _, ci := range custs {
		if ci.Delta() != 0 {
			im.Changed++
			all = append(all, *ci)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := absC(all[i].Delta()), absC(all[j].Delta())
		if a != b {
			return a > b
		}
		return all[i].Customer < all[j].Customer
	})
	if len(all) > top {
		all = all[:top]
	}
	im.Top = all
	return im
}

func absC(c Credits) Credits {
	if c < 0 {
		return -c
	}
	return c
}

// addSat adds without overflowing (a preview sums months of usage).
func addSat(a, b Credits) Credits {
	s := a + b
	if b > 0 && s < a {
		return Credits(1<<63 - 1)
	}
	if b < 0 && s > a {
		return -Credits(1<<63 - 1)
	}
	return s
}

// priceTotal prices a usage total with pb: Credits * quantity / unit size
// per dimension, rounded down, in big integers (a month's quantity may be
// beyond what one event may carry). why says what could not be priced.
func priceTotal(pb *PriceBook, u UsageTotal) (Credits, string) {
	f, ok := pb.Feature(u.Feature)
	if !ok {
		return 0, "not in the price book: this usage would be refused"
	}
	var total Credits
	why := ""
	if u.Quantity > 0 {
		if f.Dimensional() {
			why = "now priced per dimension: single-quantity usage would be refused"
		} else {
			total = addSat(total, mulPrice(f.Credits, f.UnitSize, int64(u.Quantity)))
		}
	}
	keys := make([]string, 0, len(u.Quantities))
	for k := range u.Quantities {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q := u.Quantities[k]
		if q <= 0 {
			continue
		}
		d, ok := f.dimension(k)
		if !ok {
			if why == "" {
				if f.Dimensional() {
					why = "dimension " + k + " is not priced: this usage would be refused"
				} else {
					why = "no longer priced per dimension: this usage would be refused"
				}
			}
			continue
		}
		total = addSat(total, mulPrice(d.Credits, d.UnitSize, int64(q)))
	}
	return total, why
}

// dimension returns the feature's dimension with the given key.
func (f Feature) dimension(key string) (Dimension, bool) {
	for _, d := range f.Dimensions {
		if d.Key == key {
			return d, true
		}
	}
	return Dimension{}, false
}

// mulPrice is credits * q / (unit * 1000), rounded down, saturating.
func mulPrice(credits Credits, unit, q int64) Credits {
	if unit <= 0 {
		unit = 1
	}
	r := new(big.Int).Mul(big.NewInt(int64(credits)), big.NewInt(q))
	r.Quo(r, new(big.Int).Mul(big.NewInt(unit), big.NewInt(Milli)))
	if !r.IsInt64() {
		return Credits(1<<63 - 1)
	}
	return Credits(r.Int64())
}

// ParseCostPerMillion reads a cost per million units as typed ("2.5",
// "0.075"): at most 6 decimals, exactly. validation_failed.
func ParseCostPerMillion(s string) (int64, error) { return parseMicros(strings.TrimSpace(s)) }

// PerMillion writes the cost per million units as a plain decimal ("2.5").
func (c Cost) PerMillion() string {
	r := new(big.Rat).SetFrac64(c.Micros, 1_000_000)
	return strings.TrimRight(strings.TrimRight(r.FloatString(6), "0"), ".")
}

// Audit actions of the price-book editor (the record's After names the
// version and when it takes effect).
const (
	AuditPriceBookPublished  = "price_book.published"
	AuditPriceBookScheduled  = "price_book.scheduled"
	AuditPriceBookRolledBack = "price_book.rolled_back"
	// A scheduled version cancelled before it took effect.
	AuditPriceBookCancelled = "price_book.cancelled"
	// The draft's changes: saved from the editor (or started), imported
	// from a file (a price book, or provider costs), discarded.
	AuditPriceBookDraftSaved     = "price_book.draft_saved"
	AuditPriceBookDraftImported  = "price_book.draft_imported"
	AuditPriceBookDraftDiscarded = "price_book.draft_discarded"
)

// ParseMarginPercent reads a margin typed as a percentage with at most two
// decimals ("60", "62.5", "60%") as basis points, from 0 to 99.99%.
// validation_failed.
func ParseMarginPercent(s string) (int64, error) {
	s = strings.TrimSpace(s)
	r, ok := new(big.Rat).SetString(strings.TrimSpace(strings.TrimSuffix(s, "%")))
	if s == "" || !ok || len(s) > 20 {
		return 0, Errorf(CodeValidation, "Enter a margin in percent, such as 60 or 62.5.").With("param", "margin")
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() || r.Sign() < 0 || r.Num().Int64() >= 10_000 {
		return 0, Errorf(CodeValidation, "A margin is from 0 to 99.99%%, with at most two decimals.").With("param", "margin")
	}
	return r.Num().Int64(), nil
}
