package views

import (
	"strconv"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// AdminPriceBookPage is /admin/price-book: the version in effect, the
// versions scheduled after it, every version, and the draft.
type AdminPriceBookPage struct {
	Current   *billing.PriceBook
	Scheduled []billing.PriceBook // effective later, soonest first
	History   []AdminVersionRow   // every version, newest first
	Draft     *AdminDraftSummary  // nil: no draft
}

// AdminVersionRow is one version in the history.
type AdminVersionRow struct {
	Book      billing.PriceBook
	By        string // who published it: an admin's e-mail, or "CLI or API"
	Current   bool   // in effect now
	Scheduled bool   // takes effect later
}

// AdminDraftSummary is the draft as the overview shows it.
type AdminDraftSummary struct {
	BaseVersion int64
	Features    int
	Packs       int
	Plans       int
	By          string
	At          time.Time
}

// PBForm is the draft editor's form: every field as typed, so a refused
// save shows what was typed with the errors beside the fields. Field
// names follow the price book's validation params ("features[0].credits").
type PBForm struct {
	Rev      int64
	Base     int64
	Currency string
	Features []PBFeature
	Packs    []PBPack
	Custom   PBCustom
	Plans    []PBPlan
	Errors   map[string]string
	// Margins are the margins of each priced cost at each pack's credit
	// price, keyed by the feature's or dimension's field prefix
	// ("features[0]", "features[1].dimensions[0]").
	Margins map[string][]PBMargin
	// Packs on sale, for the margin's column heads.
	MarginPacks []billing.CreditPack
	ReadOnly    bool
	Saved       bool  // the form shows the stored draft (no unsaved changes)
	Current     int64 // the version in effect (the draft may be from an older one)
	// ImportValues re-show the provider-cost import's fields after an error.
	ImportValues map[string]string
}

// PBFeature is a feature row.
type PBFeature struct {
	Key, Name, Unit, Credits, UnitSize, Cost, Description string
	Dims                                                  []PBDim
}

// PBDim is a dimension row of a feature.
type PBDim struct {
	Key, Name, Unit, Credits, UnitSize, Cost string
}

// PBPack is a credit pack row.
type PBPack struct {
	ID, Name, Price, Credits, Bonus string
	Active                          bool
}

// PBCustom is the custom top-up range and rate.
type PBCustom struct {
	Min, Max, Rate string
}

// PBPlan is a subscription plan row.
type PBPlan struct {
	Key, Name, Interval, Price, Credits, Rollover, RolloverMax, RolloverPeriods, Priority string
	Packs                                                                                 bool
}

// PBMargin is one margin: at a pack's credit price.
type PBMargin struct {
	Pack string
	Text string // "62.5%", or "–" when nothing compares
	Low  bool   // below zero: the price is below cost
}

// Field names of the editor's form.
func pbF(i int, field string) string { return "features[" + strconv.Itoa(i) + "]." + field }
func pbD(i, j int, field string) string {
	return "features[" + strconv.Itoa(i) + "].dimensions[" + strconv.Itoa(j) + "]." + field
}
func pbP(i int, field string) string  { return "packs[" + strconv.Itoa(i) + "]." + field }
func pbPl(i int, field string) string { return "plans[" + strconv.Itoa(i) + "]." + field }
func pbRow(list string, i int) string { return list + "[" + strconv.Itoa(i) + "]" }

// PBFieldID is a field's element id (names with brackets make poor ids).
func PBFieldID(name string) string {
	b := []byte("pb-")
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '[', ']', '.':
			if b[len(b)-1] != '-' {
				b = append(b, '-')
			}
		default:
			b = append(b, c)
		}
	}
	for len(b) > 0 && b[len(b)-1] == '-' {
		b = b[:len(b)-1]
	}
	return string(b)
}

// AdminImpactPage is the impact preview: the last 30 days of usage priced
// by the draft and by the version in effect.
type AdminImpactPage struct {
	Impact    billing.Impact
	Current   int64 // the version in effect
	Names     map[string]billing.Customer
	Confirm   *AdminPublishConfirm // the publish step, when confirming
	Candidate string               // "the draft" or "version 3"
	// Pending are versions scheduled to take effect later: each replaces
	// whatever is in effect at its time, this one too.
	Pending []billing.PriceBook
}

// AdminPublishConfirm is the publish (or roll back) confirmation.
type AdminPublishConfirm struct {
	Action  string // URL the confirmed form posts to
	Verb    string // "Publish" or "Roll back"
	Rev     int64  // the draft revision confirmed
	When    string // "now" or "later"
	At      string // the time typed (UTC, 2006-01-02T15:04)
	Reason  string
	Errors  map[string]string
	Version int64 // for a rollback: the version copied
}

// CustomerLabel is a customer's name for the impact table.
func (p AdminImpactPage) CustomerLabel(id string) string {
	if c, ok := p.Names[id]; ok {
		return adminCustomerName(c)
	}
	return id
}

// bpsText writes a change in basis points as a signed percentage.
func bpsText(bps int64) string {
	if bps > 0 {
		return "+" + PercentText(bps)
	}
	return PercentText(bps)
}

// PercentText is a percentage in basis points, "62.5%", with the true
// minus sign the console writes everywhere ("−6.9%", not "-6.9%").
func PercentText(bps int64) string {
	t := billing.MarginText(bps)
	if rest, ok := strings.CutPrefix(t, "-"); ok {
		return "−" + rest
	}
	return t
}

// utcText writes a time in UTC to the minute: "3 Dec 2026 09:00 UTC".
func utcText(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04") + " UTC" }

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// featurePriceText is a feature's price: "2.5 credits per 1,000 tokens",
// or one line per dimension.
func featurePriceText(f Fmt, ft billing.Feature) []string {
	per := func(c billing.Credits, size int64, unit string) string {
		if size <= 1 {
			return f.CreditsWord(c) + " per " + unit
		}
		return f.CreditsWord(c) + " per " + f.Int(size) + " " + unit + "s"
	}
	if !ft.Dimensional() {
		return []string{per(ft.Credits, ft.UnitSize, ft.Unit)}
	}
	var out []string
	for _, d := range ft.Dimensions {
		out = append(out, per(d.Credits, d.UnitSize, d.Unit))
	}
	return out
}

// pluralWord is word, with an s unless n is 1 ("event", "events").
func pluralWord(n int64, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// plural is "1 feature", "2 features".
func plural(n int, word string) string {
	return strconv.Itoa(n) + " " + pluralWord(int64(n), word)
}
