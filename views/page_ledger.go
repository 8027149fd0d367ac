package views

import (
	"fmt"
	"net/url"
	"time"

	"github.com/a-h/templ"
	"github.com/tally-billing/tally/billing"
)

// LedgerData is what the credits & history page shows.
type LedgerData struct {
	Type      string // the history's type filter ("" for every type)
	Rows      []LedgerRow
	Cursor    string            // this page's cursor ("" on the first page)
	Next      string            // the next page's cursor ("" on the last)
	Reminders []billing.LotView // lots expiring within billing.ExpiringWindow, soonest first
	Lots      []billing.LotView // lots with credits left, in the order debits use them
	PastLots  []billing.LotView // used up, expired or frozen lots, newest first
	Balance   billing.Balance
	Now       time.Time
}

// LedgerRow is one entry, with its feature's name for debits and its lot
// for grants (to say when the credits expire).
type LedgerRow struct {
	Entry       billing.Entry
	FeatureName string
	Unit        string
	Lot         *billing.LotView
}

// LedgerTypes are the history's type filters, in the order shown. Holds
// and their releases show in "All" only: they move no credits.
var LedgerTypes = []UsageOption{
	{"", "All"},
	{billing.EntryGrant, "Credits added"},
	{billing.EntryDebit, "Usage"},
	{billing.EntryExpiry, "Expired"},
	{billing.EntryRefund, "Refunds"},
	{billing.EntryAdjustment, "Adjustments"},
}

// ledgerURL is the history with a type filter and a cursor.
func ledgerURL(typ, cursor string) string {
	v := url.Values{}
	if typ != "" {
		v.Set("type", typ)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	if len(v) == 0 {
		return "/portal/ledger"
	}
	return "/portal/ledger?" + v.Encode()
}

// ledgerUsageURL shows a debit among the usage of its feature on its day.
func ledgerUsageURL(f Fmt, e billing.Entry) string {
	day := e.CreatedAt.In(f.loc()).Format(time.DateOnly)
	return usagePageURL(UsageFilter{Feature: e.Feature, From: day, To: day}, "")
}

// ledgerKind is the short label of an entry's type ("Top-up", "Usage").
func ledgerKind(e billing.Entry) string {
	switch e.Type {
	case billing.EntryGrant:
		if e.Source == billing.SourcePurchase {
			return "Top-up"
		}
		return "Grant"
	case billing.EntryDebit:
		return "Usage"
	case billing.EntryHold:
		return "Reserved"
	case billing.EntryHoldRelease:
		return "Released"
	case billing.EntryExpiry:
		return "Expired"
	case billing.EntryRefund:
		return "Refund"
	case billing.EntryAdjustment:
		return "Adjustment"
	}
	return e.Type
}

// ledgerKindClass colours an entry's type label.
func ledgerKindClass(e billing.Entry) string {
	switch e.Type {
	case billing.EntryGrant:
		return "bg-green-50 text-green-700 ring-green-600/20"
	case billing.EntryDebit:
		return "bg-gray-50 text-gray-600 ring-gray-500/20"
	case billing.EntryExpiry:
		return "bg-amber-50 text-amber-800 ring-amber-600/20"
	case billing.EntryRefund:
		return "bg-red-50 text-red-700 ring-red-600/20"
	case billing.EntryAdjustment:
		return "bg-blue-50 text-blue-700 ring-blue-600/20"
	}
	return "bg-white text-gray-500 ring-gray-300"
}

// ledgerTitle says what an entry was: the lot, the feature, the reason.
func ledgerTitle(r LedgerRow) string {
	e := r.Entry
	switch e.Type {
	case billing.EntryGrant:
		return usageLotName(e.Source, e.Reason)
	case billing.EntryDebit:
		return r.FeatureName
	case billing.EntryHold:
		return "Credits reserved for a call in progress"
	case billing.EntryHoldRelease:
		return "Reserved credits released"
	case billing.EntryExpiry:
		if len(e.Burns) > 0 {
			return usageLotName(e.Burns[0].Source, e.Burns[0].Reason) + " expired"
		}
		return "Credits expired"
	case billing.EntryRefund:
		if e.Reason != "" {
			return "Refund: " + e.Reason
		}
		return "Purchase refunded"
	case billing.EntryAdjustment:
		if e.Reason != "" {
			return e.Reason
		}
		return "Balance adjustment"
	}
	return e.Type
}

// ledgerDetails are the secondary lines under an entry's title.
func ledgerDetails(f Fmt, r LedgerRow, now time.Time) []string {
	e := r.Entry
	var out []string
	switch e.Type {
	case billing.EntryGrant:
		s := usageSourceName(e.Source)
		if r.Lot != nil {
			s += " · " + ledgerExpiry(f, r.Lot.ExpiresAt, now)
		}
		out = append(out, s)
	case billing.EntryDebit:
		s := entryQuantity(f, e, r.Unit)
		if len(e.Burns) == 1 {
			return []string{s + " · " + usageBurnText(f, e.Burns[0], now, false)}
		}
		out = append(out, s)
	case billing.EntryHold:
		out = append(out, f.CreditsWord(e.HeldDelta)+" set aside; only what the call uses is charged")
	case billing.EntryHoldRelease:
		out = append(out, f.CreditsWord(-e.HeldDelta)+" available again")
	case billing.EntryAdjustment:
		out = append(out, "Manual adjustment")
	}
	if e.Type != billing.EntryExpiry || len(e.Burns) > 1 {
		for _, b := range e.Burns {
			out = append(out, usageBurnText(f, b, now, len(e.Burns) > 1))
		}
	}
	return out
}

// ledgerExpiry says when a lot's credits expire.
func ledgerExpiry(f Fmt, at *time.Time, now time.Time) string {
	switch {
	case at == nil:
		return "never expires"
	case at.After(now):
		return "expires " + f.Date(*at)
	}
	return "expired " + f.Date(*at)
}

// ledgerAmount is an entry's change to the balance, signed: "+12,000",
// "−2.5"; reservations, which change no balance, show nothing.
func ledgerAmount(f Fmt, e billing.Entry) string {
	switch {
	case e.Amount > 0:
		return "+" + f.Credits(e.Amount)
	case e.Amount < 0:
		return f.Credits(e.Amount)
	}
	return "—"
}

// ledgerSubtle reports whether an entry is bookkeeping (a reservation) shown quietly.
func ledgerSubtle(e billing.Entry) bool {
	return e.Type == billing.EntryHold || e.Type == billing.EntryHoldRelease
}

// ledgerReminder is "500 credits expire on 1 Jan".
func ledgerReminder(f Fmt, l billing.LotView) string {
	verb := " expire on "
	if l.Remaining == billing.CreditsOf(1) {
		verb = " expires on "
	}
	return f.CreditsWord(l.Remaining) + verb + f.Date(*l.ExpiresAt)
}

// ledgerDaysLeft is "in 3 days", "today", "tomorrow".
func ledgerDaysLeft(f Fmt, at, now time.Time) string {
	loc := f.loc()
	y1, m1, d1 := now.In(loc).Date()
	y2, m2, d2 := at.In(loc).Date()
	days := int(time.Date(y2, m2, d2, 0, 0, 0, 0, time.UTC).Sub(time.Date(y1, m1, d1, 0, 0, 0, 0, time.UTC)).Hours() / 24)
	switch {
	case days <= 0:
		return "today"
	case days == 1:
		return "tomorrow"
	}
	return fmt.Sprintf("in %d days", days)
}

// ledgerPercent is how much of a lot is left, 0 to 100.
func ledgerPercent(l billing.LotView) int {
	if l.Amount <= 0 {
		return 0
	}
	p := int(int64(l.Remaining) * 100 / int64(l.Amount))
	if p == 0 && l.Remaining > 0 {
		p = 1 // a sliver, not an empty bar
	}
	return p
}

// ledgerBarStyle sizes a progress bar.
func ledgerBarStyle(pct int) templ.SafeCSS {
	return templ.SafeCSS(fmt.Sprintf("width: %d%%", pct))
}

// ledgerLotState names what became of a lot that is no longer live.
func ledgerLotState(l billing.LotView, now time.Time) string {
	switch {
	case l.Frozen:
		return "Frozen"
	case l.ExpiresAt != nil && !l.ExpiresAt.After(now):
		return "Expired"
	case l.Remaining == 0:
		return "Used up"
	}
	return "Active"
}

// ledgerRefundable is "Refundable until 9 Apr" while that is ahead, else "".
func ledgerRefundable(f Fmt, l billing.LotView, now time.Time) string {
	if l.RefundableUntil == nil || !l.RefundableUntil.After(now) {
		return ""
	}
	return "Refundable until " + f.Date(*l.RefundableUntil)
}

// ledgerTypeID names a type filter in ids ("all" for every type).
func ledgerTypeID(typ string) string {
	if typ == "" {
		return "all"
	}
	return typ
}

// ledgerExpiringSoon reports whether a live lot's credits expire within
// billing.ExpiringWindow (the reminders' window).
func ledgerExpiringSoon(l billing.LotView, now time.Time) bool {
	return l.Live(now) && l.ExpiresAt != nil && l.ExpiresAt.Sub(now) <= billing.ExpiringWindow
}
