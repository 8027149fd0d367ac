package views

import (
	"slices"
	"strconv"
	"time"

	"github.com/tally-billing/tally/billing"
)

// DashboardPage is what the overview shows: the balance, the forecast
// (rates, when the credits run out, the top-up that lasts), reminders of
// credits about to expire and the usage chart.
type DashboardPage struct {
	Now      time.Time
	Balance  billing.Balance
	Forecast billing.Forecast
	Expiring []DashboardExpiry
	Chart    DashboardChart
	TopUp    *TopUpPanel // one-click top-up, when payments are set up
	Refill   *RefillStatus
	Cards    int // saved cards
	// Suggested is the pack that covers the forecast's top-up (the
	// smallest that does, or the one bought last): the overview names it
	// rather than an amount no pack sells.
	Suggested *billing.CreditPack
	// RenewalPending: the plan's period ended and its renewal's credits
	// have not arrived (the provider has not confirmed the payment yet);
	// the forecast counts no renewal meanwhile.
	RenewalPending bool
}

// RefillStatus is auto-refill as the overview sums it up.
type RefillStatus struct {
	Settings billing.RefillSettings
	Set      bool   // the customer saved settings once
	Pack     string // "Starter" (pack mode)
	Failing  bool   // its last attempt was declined
	Waiting  bool   // a refill waits for the customer to confirm it with their bank
}

// DashboardExpiry reminds the customer of a lot that expires within 30 days.
type DashboardExpiry struct {
	At      time.Time
	Credits billing.Credits
	Reason  string
	Unused  billing.Credits // at the current pace, what of it expires unused
}

// NewDashboardPage puts the overview together.
func NewDashboardPage(now time.Time, b billing.Balance, fc billing.Forecast, chart DashboardChart) DashboardPage {
	d := DashboardPage{Now: now, Balance: b, Forecast: fc, Chart: chart}
	p := fc.Primary()
	for _, l := range b.ExpiringSoon {
		if l.ExpiresAt == nil || l.Remaining <= 0 {
			continue
		}
		d.Expiring = append(d.Expiring, DashboardExpiry{At: *l.ExpiresAt, Credits: l.Remaining, Reason: l.Reason, Unused: p.LostFrom(l.Lot.ID)})
	}
	slices.SortStableFunc(d.Expiring, func(a, b DashboardExpiry) int { return a.At.Compare(b.At) })
	return d
}

// DashboardTopUpUntil is the date the overview's top-up suggestion is for:
// the end of next month in the customer's time zone (the first instant of
// the month after it).
func DashboardTopUpUntil(f Fmt, now time.Time) time.Time {
	t := now.In(f.loc())
	return time.Date(t.Year(), t.Month()+2, 1, 0, 0, 0, 0, f.loc())
}

// dashboardOutlook is the state the hero and the sentences are in.
type dashboardOutlook int

const (
	outlookDepleted dashboardOutlook = iota // nothing available
	outlookNoUsage                          // nothing used in 30 days
	outlookUntil                            // runs out on a date
	outlookRange                            // runs out between two dates (or a date and "more than a year")
	outlookBeyond                           // lasts more than a year
)

func (d DashboardPage) outlook(f Fmt) dashboardOutlook {
	fc := d.Forecast
	switch p := fc.Primary(); {
	case p.Outlook == billing.OutlookDepleted:
		return outlookDepleted
	case p.Outlook == billing.OutlookNoUsage:
		return outlookNoUsage
	case fc.Range() && !(fc.Latest().Outlook == billing.OutlookRunsOut && f.Date(fc.Earliest().RunsOut) == f.Date(fc.Latest().RunsOut)):
		return outlookRange
	case p.Outlook == billing.OutlookBeyond:
		return outlookBeyond
	}
	return outlookUntil
}

// lostNote is what the projection counts as expiring unused.
func (d DashboardPage) lost() (at time.Time, first, later billing.Credits) {
	return d.Forecast.Primary().LossSplit()
}

// projectionExpiryText is the balance card's note on credits the forecast
// loses to expiry: the first expiry's figure, the one its reminder under
// "Expiring soon" gives, then what later expiries lose.
func projectionExpiryText(f Fmt, at time.Time, first, later billing.Credits) string {
	s := "This counts about " + f.CreditsWord(dashboardRound(first)) + " that expire on " + f.Date(at) + " before you would use them"
	if later > 0 {
		s += ", and about " + f.Credits(dashboardRound(later)) + " more that expire later"
	}
	return s + "."
}

// dashboardRound rounds an estimate (a rate, a projected loss, a chart
// total) for reading: whole credits from 10, tenths from 1, exact below.
// Balances and amounts that are facts are never rounded.
func dashboardRound(c billing.Credits) billing.Credits {
	switch {
	case c >= billing.CreditsOf(10):
		return (c + billing.Milli/2) / billing.Milli * billing.Milli
	case c >= billing.CreditsOf(1):
		return (c + 50) / 100 * 100
	}
	return c
}

// dashboardDays is the number of calendar days (in the customer's time
// zone) from now to t: 0 today, 1 tomorrow.
func dashboardDays(f Fmt, now, t time.Time) int64 {
	day := func(x time.Time) time.Time {
		x = x.In(f.loc())
		return time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC)
	}
	return int64(day(t).Sub(day(now)) / (24 * time.Hour))
}

// dashboardIn is "today", "tomorrow" or "in 14 days".
func dashboardIn(f Fmt, now, t time.Time) string {
	switch n := dashboardDays(f, now, t); {
	case n <= 0:
		return "today"
	case n == 1:
		return "tomorrow"
	default:
		return "in " + f.Int(n) + " days"
	}
}

// dashboardLastDay is the last day before until, for "last until 31 Dec"
// when until is midnight on 1 Jan.
func dashboardLastDay(until time.Time) time.Time { return until.Add(-time.Nanosecond) }

// dashboardSplit splits a formatted amount into its whole part and its
// decimals (with the separator), so the hero can set the decimals smaller:
// "28,682" and ".448".
func dashboardSplit(f Fmt, c billing.Credits) (string, string) {
	full := f.Credits(c)
	whole := f.Credits(c / billing.Milli * billing.Milli)
	if c%billing.Milli == 0 || len(whole) >= len(full) || full[:len(whole)] != whole {
		return full, ""
	}
	return whole, full[len(whole):]
}

// firstDays names a short history: "your first day", "your first 3 days".
func firstDays(n int) string {
	if n <= 1 {
		return "your first day"
	}
	return "your first " + strconv.Itoa(n) + " days"
}

// shortHistory: usage began less than 7 days ago, so the 7-day and the
// 30-day averages are one and the same average over the days since.
func shortHistory(fc billing.Forecast) bool {
	return fc.Week.DaysSinceStart() > 0 && fc.Month.DaysSinceStart() > 0
}

// dayWindow names an average's span: "20-day".
func dayWindow(n int) string { return strconv.Itoa(n) + "-day" }
