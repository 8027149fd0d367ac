package views

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The audit log's Before → After reads as the rest of the console does:
// no JSON, nanoseconds, ISO times, "1 subscribers".
func TestAuditChangeReadable(t *testing.T) {
	f := NewFmt("en-US", "UTC")
	day := int64(24 * time.Hour)
	show := func(c AuditChange) string {
		if len(c.Lines) == 0 {
			return c.Before + " → " + c.After
		}
		var out []string
		for _, l := range c.Lines {
			switch {
			case l.Before != "" && l.After != "":
				out = append(out, l.Label+": "+l.Before+" → "+l.After)
			case l.After != "":
				out = append(out, l.Label+": "+l.After)
			default:
				out = append(out, l.Label+": "+l.Before+" → removed")
			}
		}
		return strings.Join(out, "; ")
	}
	for _, tc := range []struct {
		name string
		r    billing.AuditRecord
		want string
	}{
		{"limits", billing.AuditRecord{Action: billing.AuditLimitsSet,
			Before: `{"daily_cap":null,"monthly_cap":null,"overdraft_limit":0}`, After: `{"daily_cap":50,"monthly_cap":null,"overdraft_limit":12.5}`},
			"Daily cap: no cap → 50; Overdraft limit: 0 → 12.5"},
		{"policy", billing.AuditRecord{Action: billing.AuditPolicyUpdated,
			Before: `{"refund_window":` + itoa(30*day) + `,"hold_ttl":600000000000,"custom_min":500,"custom_max":50000}`,
			After:  `{"refund_window":` + itoa(14*day) + `,"hold_ttl":120000000000,"custom_min":500,"custom_max":50000}`},
			"Refund window: 30 days → 14 days; Default hold lifetime: 600 s → 120 s"},
		{"api key created", billing.AuditRecord{Action: billing.AuditAPIKeyCreated,
			After: `{"name":"prod","scope":"metering","rate_limit":null,"origins":[]}`},
			"Name: prod; Origins: none; Rate limit: none; Scope: metering"},
		{"portal link", billing.AuditRecord{Action: billing.AuditPortalLinkSent, After: "2026-12-03T10:18:34Z"}, " → 3 Dec, 10:18"},
		{"published", billing.AuditRecord{Action: billing.AuditPriceBookPublished, Before: "v1", After: "v3 effective 2026-12-03T10:16:02Z"},
			"v1 → v3 effective 3 Dec, 10:16"},
		{"migrated", billing.AuditRecord{Action: billing.AuditPlanMigrated, Before: "starter v1, v2", After: "starter v4: 1 subscribers from their next renewal"},
			"starter v1, v2 → starter v4: 1 subscriber from their next renewal"},
		{"entry", billing.AuditRecord{Source: "entry", Action: "ledger.grant", Before: "1000", After: "2500.5"}, "1,000 → 2,500.5"},
	} {
		if got := show(NewAuditChange(f, tc.r, "usd")); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The console writes a negative percentage with the true minus, as its
// credits and money ("−1,350" beside "-6.9%" before), and counts live
// subscriptions and migration changes in words.
func TestConsoleSignsAndPlurals(t *testing.T) {
	f := NewFmt("en-US", "UTC")
	for bps, want := range map[int64]string{-690: "−6.9%", 1250: "+12.5%"} {
		if got := bpsText(bps); got != want {
			t.Errorf("bpsText(%d) = %q, want %q", bps, got, want)
		}
	}
	if got := PercentText(-1660); got != "−16.6%" {
		t.Errorf("PercentText(-1660) = %q", got)
	}
	if got := pluralWord(1, "live subscription"); got != "live subscription" {
		t.Errorf("%q", got)
	}
	if got := migrationChange(f, billing.Money{Currency: "usd"}, 0); got != "No change per period" {
		t.Errorf("no change: %q", got)
	}
	if got := migrationChange(f, billing.Money{Amount: -500, Currency: "usd"}, billing.CreditsOf(1000)); got != "Change per period: −$5.00, +1,000 credits" {
		t.Errorf("change: %q", got)
	}
}
