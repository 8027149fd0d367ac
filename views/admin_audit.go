package views

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// AuditLine is one readable line of an audit record's change: a field,
// what it was and what it became ("" for none on that side).
type AuditLine struct {
	Label, Before, After string
}

// AuditChange is an audit record's before and after as people read them:
// JSON becomes "Label: value" lines with only what changed (all of it
// when there was nothing before), durations in days or seconds, times in
// the console's format, credits and money as elsewhere. A plain value
// stays one "before → after" (Lines empty). The raw values stay in the CSV.
type AuditChange struct {
	Lines         []AuditLine
	Before, After string
}

// NewAuditChange reads r's change; currency formats a policy's amounts.
func NewAuditChange(f Fmt, r billing.AuditRecord, currency string) AuditChange {
	if r.Source == "entry" {
		return AuditChange{Before: auditCredits(f, r.Before), After: auditCredits(f, r.After)}
	}
	if r.Action == billing.AuditPolicyUpdated {
		if lines, ok := auditPolicy(f, r, currency); ok {
			return AuditChange{Lines: lines}
		}
	}
	b, bok := auditObject(r.Before)
	a, aok := auditObject(r.After)
	if (bok || r.Before == "") && (aok || r.After == "") && (bok || aok) {
		return AuditChange{Lines: auditDiff(f, b, a)}
	}
	return AuditChange{Before: auditPlain(f, r.Before), After: auditPlain(f, r.After)}
}

func auditCredits(f Fmt, v string) string {
	if c, err := billing.ParseCredits(v); err == nil {
		return f.Credits(c)
	}
	return v
}

// auditPolicy lists a policy change with the Policies page's labels.
func auditPolicy(f Fmt, r billing.AuditRecord, currency string) ([]AuditLine, bool) {
	var before, after billing.Policy
	if r.After == "" || json.Unmarshal([]byte(r.After), &after) != nil {
		return nil, false
	}
	first := r.Before == ""
	if !first && json.Unmarshal([]byte(r.Before), &before) != nil {
		return nil, false
	}
	money := func(a int64) string { return f.Money(billing.Money{Amount: a, Currency: strings.ToLower(currency)}) }
	var out []AuditLine
	if first {
		// The first version: every field as it was set (none before).
		for _, ch := range billing.DiffPolicy(billing.Policy{}, after, money) {
			out = append(out, AuditLine{Label: ch.Label, After: ch.After})
		}
		return out, true
	}
	for _, ch := range billing.DiffPolicy(before, after, money) {
		out = append(out, AuditLine{Label: ch.Label, Before: ch.Before, After: ch.After})
	}
	return out, true
}

func auditObject(v string) (map[string]any, bool) {
	if !strings.HasPrefix(strings.TrimSpace(v), "{") {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader([]byte(v)))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil {
		return nil, false
	}
	return m, true
}

// auditDiff is the fields that differ (every field of a created object).
func auditDiff(f Fmt, before, after map[string]any) []AuditLine {
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []AuditLine
	for _, k := range sorted {
		b, inB := before[k]
		a, inA := after[k]
		bs, as := "", ""
		if inB {
			bs = auditValue(f, k, b)
		}
		if inA {
			as = auditValue(f, k, a)
		}
		if before != nil && bs == as {
			continue
		}
		out = append(out, AuditLine{Label: auditLabel(k), Before: bs, After: as})
	}
	return out
}

// auditLabel is a JSON field's name in words: daily_cap → Daily cap.
func auditLabel(k string) string {
	k = strings.ReplaceAll(k, "_", " ")
	if k == "" {
		return k
	}
	return strings.ToUpper(k[:1]) + k[1:]
}

var creditKeys = map[string]bool{"daily_cap": true, "monthly_cap": true, "overdraft_limit": true, "credits": true, "threshold": true,
	"default_overdraft": true, "balance": true}

// auditValue formats one JSON value of field k.
func auditValue(f Fmt, k string, v any) string {
	switch v := v.(type) {
	case nil:
		if strings.HasSuffix(k, "_cap") {
			return "no cap"
		}
		return "none"
	case bool:
		if v {
			return "yes"
		}
		return "no"
	case json.Number:
		if creditKeys[k] || strings.HasSuffix(k, "_cap") {
			if c, err := billing.ParseCredits(v.String()); err == nil {
				return f.Credits(c)
			}
		}
		if n, err := v.Int64(); err == nil {
			if strings.HasSuffix(k, "_ttl") || strings.HasSuffix(k, "_window") || strings.HasSuffix(k, "_expiry") {
				return auditDuration(time.Duration(n))
			}
			return f.Int(n)
		}
		return v.String()
	case string:
		return auditPlain(f, v)
	case []any:
		if len(v) == 0 {
			return "none"
		}
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = auditValue(f, k, x)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		var parts []string
		for _, l := range auditDiff(f, nil, v) {
			parts = append(parts, strings.ToLower(l.Label[:1])+l.Label[1:]+": "+l.After)
		}
		return strings.Join(parts, ", ")
	}
	return ""
}

// auditDuration says a Go duration (nanoseconds in the JSON) in words.
func auditDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "none"
	case d%(24*time.Hour) == 0:
		n := int64(d / (24 * time.Hour))
		return Fmt{}.Int(n) + " " + pluralWord(n, "day")
	case d%time.Hour == 0:
		n := int64(d / time.Hour)
		return Fmt{}.Int(n) + " " + pluralWord(n, "hour")
	case d%time.Minute == 0:
		n := int64(d / time.Minute)
		return Fmt{}.Int(n) + " " + pluralWord(n, "minute")
	}
	n := int64(d / time.Second)
	return Fmt{}.Int(n) + " " + pluralWord(n, "second")
}

var (
	auditTimeRE  = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	auditOnePlRE = regexp.MustCompile(`\b1 subscribers\b`)
)

// auditPlain writes the times in a plain value in the console's format
// and fixes "1 subscribers".
func auditPlain(f Fmt, v string) string {
	v = auditTimeRE.ReplaceAllStringFunc(v, func(s string) string {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return s
		}
		return f.DateTime(t)
	})
	return auditOnePlRE.ReplaceAllString(v, "1 subscriber")
}
