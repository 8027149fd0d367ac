package views

import (
	"time"

	"github.com/tally-billing/tally/billing"
)

// PlanPage is the Plan tab: the customer's plan, its credits this period,
// the plans to choose from, and the plan's invoices.
type PlanPage struct {
	Sandbox    bool
	Clock      bool      // demo mode in the sandbox: the test clock's button
	SandboxNow time.Time // the sandbox's clock (subscription dates follow it)
	Sub        *billing.Subscription
	Current    *billing.Plan // the plan Sub pays for
	Next       *billing.Plan // a downgrade waiting for the period's end
	// Pending: the period ended (or the provider moved it on) and the
	// renewal's credits have not arrived: billing.RenewalPending.
	Pending      bool
	PendingSince time.Time // when the period whose renewal is pending ended
	Granted      billing.Credits
	Left         billing.Credits
	RolledOver   billing.Credits
	Choices      []PlanChoice
	Invoices     []PlanInvoice
	// Manage: the customer may cancel or keep the plan here; ChangeHere:
	// change it too (a sandbox subscription). A Stripe subscription is
	// canceled through Stripe; its plan changes are made at Stripe, and
	// Tally follows its events.
	Manage, ChangeHere bool
}

// Used is what the period's plan credits have been used of.
func (p PlanPage) Used() billing.Credits { return max(0, p.Granted-p.Left) }

// UsedPercent is Used as a whole percentage of Granted, for the meter.
func (p PlanPage) UsedPercent() int {
	if p.Granted <= 0 {
		return 0
	}
	return int(min(100, p.Used()*100/p.Granted))
}

// Plan choice kinds: what choosing a plan would do.
const (
	ChoiceSubscribe = "subscribe"
	ChoiceUpgrade   = "upgrade"
	ChoiceDowngrade = "downgrade"
	ChoiceCurrent   = "current"
	ChoiceScheduled = "scheduled" // the downgrade already waiting
)

// PlanChoice is one plan side by side with the others.
type PlanChoice struct {
	Plan billing.Plan
	Kind string
}

// PlanInvoice is a subscription invoice: a receipt's line.
type PlanInvoice struct {
	ID       string
	PlanName string
	Kind     string // renewal or upgrade
	Start    time.Time
	End      time.Time
	Credits  billing.Credits
	Amount   billing.Money
	Paid     time.Time
}

// Plan confirmation actions.
const (
	PlanSubscribe = "subscribe"
	PlanChange    = "change"
	PlanCancel    = "cancel"
	PlanResume    = "resume"
)

// PlanConfirm asks once before a plan change moves money or credits, saying
// exactly what will happen.
type PlanConfirm struct {
	Action  string
	Plan    billing.Plan // the plan chosen (subscribe, change)
	Current *billing.Plan
	Sub     *billing.Subscription
	Quote   *billing.PlanChangeQuote
	Key     string
	// At is when a Stripe plan change is prorated (unix seconds): fixed at
	// the confirmation, so the sentence, Stripe's charge and a retried
	// click all agree.
	At     string
	Stripe bool // subscribing goes on to Stripe's page
	Error  string
}

// PlanConfirmText is the sentence a confirmation shows: "You will get 2,300
// credits now and pay $12.40 today."
func PlanConfirmText(f Fmt, c PlanConfirm) string {
	p := c.Plan
	every := "every " + p.Interval
	switch c.Action {
	case PlanSubscribe:
		if c.Stripe {
			return "You will pay " + f.Money(p.Price) + " on Stripe's secure page, then " + f.Money(p.Price) + " " + every +
				". Your " + f.Credits(p.Credits) + " credits arrive as soon as the payment goes through."
		}
		return "You will get " + f.Credits(p.Credits) + " credits now and pay " + f.Money(p.Price) + " today, then " +
			f.Money(p.Price) + " " + every + " for " + f.Credits(p.Credits) + " credits."
	case PlanChange:
		q := c.Quote
		if q != nil && q.Upgrade {
			return "You will get " + f.Credits(q.CreditsNow) + " credits now and pay " + f.Money(q.AmountNow) + " today. From " +
				f.Date(c.Sub.CurrentPeriodEnd) + ", " + p.Name + " renews at " + f.Money(p.Price) + " " + every + " with " + f.Credits(p.Credits) + " credits."
		}
		return "Nothing changes today. From " + f.Date(c.Sub.CurrentPeriodEnd) + " you will pay " + f.Money(p.Price) + " " + every +
			" for " + f.Credits(p.Credits) + " credits. You keep " + c.Current.Name + " and its credits until then."
	case PlanCancel:
		return "Your plan ends on " + f.Date(c.Sub.CurrentPeriodEnd) + ". Nothing more will be charged; the credits you have stay until they expire, and no new ones arrive."
	case PlanResume:
		return "Your " + c.Current.Name + " plan continues: it renews on " + f.Date(c.Sub.CurrentPeriodEnd) + " at " +
			f.Money(c.Current.Price) + " with " + f.Credits(c.Current.Credits) + " credits."
	}
	return ""
}

// planConfirmTitle is the confirmation's heading.
func planConfirmTitle(c PlanConfirm) string {
	switch c.Action {
	case PlanSubscribe:
		return "Subscribe to " + c.Plan.Name + "?"
	case PlanChange:
		if c.Quote != nil && c.Quote.Upgrade {
			return "Upgrade to " + c.Plan.Name + "?"
		}
		return "Switch to " + c.Plan.Name + "?"
	case PlanCancel:
		return "Cancel your plan?"
	case PlanResume:
		return "Keep your plan?"
	}
	return "Confirm"
}

// planConfirmButton is the confirming button's label.
func planConfirmButton(f Fmt, c PlanConfirm) string {
	switch c.Action {
	case PlanSubscribe:
		if c.Stripe {
			return "Continue to payment"
		}
		return "Subscribe and pay " + f.Money(c.Plan.Price)
	case PlanChange:
		if c.Quote != nil && c.Quote.Upgrade {
			return "Upgrade and pay " + f.Money(c.Quote.AmountNow)
		}
		return "Switch on " + f.Date(c.Sub.CurrentPeriodEnd)
	case PlanCancel:
		return "Cancel plan"
	case PlanResume:
		return "Keep my plan"
	}
	return "Confirm"
}

// rolloverText says what a plan's unused credits do at a period's end.
func rolloverText(f Fmt, p billing.Plan) string {
	life := "for a " + p.Interval
	if p.Rollover.Periods > 1 {
		life = "for " + f.Int(int64(p.Rollover.Periods)) + " " + p.Interval + "s"
	}
	switch p.Rollover.Policy {
	case billing.RolloverAll:
		return "Unused credits roll over " + life
	case billing.RolloverUpTo:
		return "Up to " + f.Credits(p.Rollover.Max) + " unused credits roll over " + life
	}
	return "Unused credits expire at the period's end"
}

// perInterval is "/ month" or "/ year".
func perInterval(p billing.Plan) string { return "/ " + p.Interval }

// planInvoiceTitle names an invoice: "Starter", "Pro upgrade (prorated)".
func planInvoiceTitle(inv PlanInvoice) string {
	if inv.Kind == billing.PeriodUpgrade {
		return inv.PlanName + " upgrade (prorated)"
	}
	return inv.PlanName + " plan"
}

// planRenewing is the plan a pending renewal grants: the change waiting
// for the period's end, else the current plan.
func planRenewing(p PlanPage) billing.Plan {
	if p.Next != nil {
		return *p.Next
	}
	return *p.Current
}
