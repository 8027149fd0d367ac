package views

import (
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// UsageFilter is the usage page's filters as the customer chose them (the
// query parameters, kept as typed so the form shows them back).
type UsageFilter struct {
	Feature  string // feature key
	From, To string // local dates, YYYY-MM-DD, both inclusive
	TagKey   string // metadata key ...
	TagValue string // ... and the value it must have
}

// Active reports whether any filter narrows the history.
func (f UsageFilter) Active() bool {
	return f.Feature != "" || f.From != "" || f.To != "" || f.TagApplied()
}

// TagApplied reports whether the tag filter applies: it needs both a key
// and a value.
func (f UsageFilter) TagApplied() bool { return f.TagKey != "" && f.TagValue != "" }

// Query is the filters as a query string ("?feature=...&cursor=..."), or ""
// when there is nothing to say.
func (f UsageFilter) Query(cursor string) string {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("feature", f.Feature)
	set("from", f.From)
	set("to", f.To)
	set("tag", f.TagKey)
	set("value", f.TagValue)
	set("cursor", cursor)
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// UsageOption is one choice of a select.
type UsageOption struct {
	Value, Label string
}

// UsageRow is one debit with its feature as the price book names it.
type UsageRow struct {
	Entry       billing.Entry
	FeatureName string
	Unit        string // the feature's unit, singular ("token")
}

// UsageData is what the usage page shows.
type UsageData struct {
	Filter    UsageFilter
	Features  []UsageOption // the feature select: price book features, then others used
	TagKeys   []string      // metadata keys seen in recent usage
	TagValues []string      // values seen for the chosen key (suggestions)
	Rows      []UsageRow
	Cursor    string            // this page's cursor ("" on the first page)
	Next      string            // the next page's cursor ("" on the last)
	Errors    map[string]string // filter field -> what is wrong with it
	Today     string            // the customer's today, YYYY-MM-DD (date inputs' max)
	Now       time.Time
}

// usageCSVURL is the export of what the page shows (all pages).
func usageCSVURL(f UsageFilter) string { return "/portal/usage.csv" + f.Query("") }

// usagePageURL is the page with the filters and a cursor.
func usagePageURL(f UsageFilter, cursor string) string { return "/portal/usage" + f.Query(cursor) }

// usageTagURL filters the usage page by one tag.
func usageTagURL(key, value string) string {
	return "/portal/usage" + UsageFilter{TagKey: key, TagValue: value}.Query("")
}

// usageCharged is the credits a debit took (entries carry the signed change).
func usageCharged(e billing.Entry) billing.Credits { return -e.Amount }

// usageQuantity is a quantity with its unit: "1 request", "1,200 tokens",
// "12.5 seconds".
func usageQuantity(f Fmt, q *billing.Quantity, unit string) string {
	if q == nil {
		return ""
	}
	if unit == "" {
		unit = "unit"
	}
	if *q != billing.QuantityOf(1) && !strings.HasSuffix(unit, "s") {
		unit += "s"
	}
	return f.Quantity(*q) + " " + unit
}

// entryQuantity is what a debit metered: its quantity with its unit, or,
// for a feature priced per dimension, each dimension's quantity ("1,200
// input tokens · 350 output tokens").
func entryQuantity(f Fmt, e billing.Entry, unit string) string {
	if len(e.Breakdown) == 0 {
		return usageQuantity(f, e.Quantity, unit)
	}
	parts := make([]string, len(e.Breakdown))
	for i, l := range e.Breakdown {
		parts[i] = f.Quantity(l.Quantity) + " " + strings.ReplaceAll(l.Dimension, "_", " ")
	}
	return strings.Join(parts, " · ")
}

// usageSourceNames are the names of lot sources a customer reads.
var usageSourceNames = map[string]string{
	billing.SourcePurchase:     "Purchased credits",
	billing.SourcePromo:        "Promotional credits",
	billing.SourceSubscription: "Subscription credits",
	billing.SourceAdjustment:   "Adjustment",
}

// usageSourceName names a lot source ("Purchased credits").
func usageSourceName(source string) string {
	if n, ok := usageSourceNames[source]; ok {
		return n
	}
	return source
}

// usageLotName names a lot as its grant did ("Scale pack ($100.00)"), or by
// its source when the grant gave no reason.
func usageLotName(source, reason string) string {
	if reason != "" {
		return reason
	}
	return usageSourceName(source)
}

// usageBurnText explains where part of a debit came from: "from: Promo
// grant · expires 1 Jan"; with several lots each says how much it gave.
func usageBurnText(f Fmt, b billing.BurnView, now time.Time, several bool) string {
	name, tail := usageBurnParts(f, b, now, several)
	return "from: " + name + tail
}

// usageBurnParts are the lot's name and what follows it (" · expires 1
// Jan"), which the page keeps on one line.
func usageBurnParts(f Fmt, b billing.BurnView, now time.Time, several bool) (name, tail string) {
	name = usageLotName(b.Source, b.Reason)
	if b.ExpiresAt != nil {
		if b.ExpiresAt.After(now) {
			tail += " · expires " + f.Date(*b.ExpiresAt)
		} else {
			tail += " · expired " + f.Date(*b.ExpiresAt)
		}
	}
	if several {
		tail += " · " + f.CreditsWord(b.Credits)
	}
	return name, tail
}

// usageCreditsUnit is the word after an amount of credits: " credit" or " credits".
func usageCreditsUnit(c billing.Credits) string {
	if c == billing.CreditsOf(1) {
		return " credit"
	}
	return " credits"
}

// usageUncovered is the part of a debit no lot paid for: it took the
// balance below zero (a hold captured beyond what was left).
func usageUncovered(e billing.Entry) billing.Credits {
	rest := -e.Amount
	for _, b := range e.Burns {
		rest -= b.Credits
	}
	return max(rest, 0)
}

// usageTag is one metadata tag.
type usageTag struct{ Key, Value string }

// usageTags are an entry's tags in key order.
func usageTags(m map[string]string) []usageTag {
	out := make([]usageTag, 0, len(m))
	for k, v := range m {
		out = append(out, usageTag{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// usageFeatureLabel is the label of a feature key among the select's options.
func usageFeatureLabel(d UsageData, key string) string {
	for _, o := range d.Features {
		if o.Value == key {
			return o.Label
		}
	}
	return key
}

// usageSummary says in words what the history shows: "Chat request · 1 Mar
// – 10 Mar 2026 · user: alice".
func usageSummary(f Fmt, d UsageData) string {
	if !d.Filter.Active() {
		return "All usage, newest first"
	}
	var parts []string
	if d.Filter.Feature != "" {
		parts = append(parts, usageFeatureLabel(d, d.Filter.Feature))
	}
	day := func(s string) string {
		t, err := time.ParseInLocation(time.DateOnly, s, f.loc())
		if err != nil {
			return s
		}
		return f.Date(t)
	}
	switch {
	case d.Filter.From != "" && d.Filter.To != "":
		parts = append(parts, day(d.Filter.From)+" – "+day(d.Filter.To))
	case d.Filter.From != "":
		parts = append(parts, "since "+day(d.Filter.From))
	case d.Filter.To != "":
		parts = append(parts, "until "+day(d.Filter.To))
	}
	if d.Filter.TagApplied() {
		parts = append(parts, d.Filter.TagKey+": "+d.Filter.TagValue)
	}
	return strings.Join(parts, " · ")
}

// usageErrorList is the filter errors in the form's order.
func usageErrorList(errs map[string]string) []string {
	var out []string
	for _, k := range []string{"feature", "from", "to", "tag"} {
		if m, ok := errs[k]; ok {
			out = append(out, m)
		}
	}
	return out
}
