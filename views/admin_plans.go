package views

import (
	"time"

	"github.com/tally-billing/tally/billing"
)

// AdminPlansPage is /admin/plans: the current price book's plans with
// their live subscribers and what they bring in a month.
type AdminPlansPage struct {
	Version int64          // the current price book's
	Plans   []AdminPlanRow // the current price book's, in its order
	// Retired are plans no longer in the current price book that still
	// have subscribers (on the version they subscribed to).
	Retired []AdminPlanRow
	MRR     []billing.Money // all plans, per currency
}

// AdminPlanRow is one plan and its live subscribers.
type AdminPlanRow struct {
	Plan        billing.Plan
	Subscribers int
	MRR         []billing.Money // per currency (a plan's versions may differ)
}

// AdminPlanSubscribers is /admin/plans/{key}: the plan and its live
// subscribers, whose period ends soonest first.
type AdminPlanSubscribers struct {
	Row     AdminPlanRow
	Retired bool // not in the current price book
	Rows    []AdminSubscriberRow
	More    bool // more than the page shows
	// Migration is the impact of moving subscribers on older versions to
	// the current one (nil: none to show); MigrationNote says why they
	// cannot be (another interval or currency).
	Migration     *billing.MigrationImpact
	MigrationNote string
}

// AdminSubscriberRow is one subscriber of a plan.
type AdminSubscriberRow struct {
	Customer          billing.Customer // ID, ExternalID, Name, Email
	Status            string
	PeriodEnd         time.Time
	PriceVersion      int64
	CancelAtPeriodEnd bool
	// MovesTo is the version of this plan the subscriber moves to at the
	// period's end (a migration); 0 for none.
	MovesTo int64
}

// AdminSubscription is the customer page's subscription panel.
type AdminSubscription struct {
	Sub        billing.Subscription
	Plan       billing.Plan // at the subscriber's version
	Granted    billing.Credits
	Left       billing.Credits
	RolledOver billing.Credits
	// Live: active or past due (a free period may be granted).
	Live bool
	// Ahead: the subscription's period has not started yet (a free period
	// was given: the current one's credits are still in their lot).
	Ahead bool
	// FreePlan is the plan a free period would be on (a pending
	// downgrade's, or the plan's); NextEnd is when that period would end.
	FreePlan billing.Plan
	NextEnd  time.Time
}

// AdminFreePeriodConfirm is the confirmation of a free period.
type AdminFreePeriodConfirm struct {
	Customer billing.Customer
	Sub      AdminSubscription
	Reason   string
	Before   billing.Credits // the balance now
	Fields   map[string]string
}

// FinanceMRR is the monthly recurring revenue now, per currency, and the
// finance period it belongs to ("2026-04-10" or "2026-04"): the store
// keeps no history of it, so earlier periods show none.
type FinanceMRR struct {
	Period      string
	Amounts     map[string]int64
	Subscribers int
}
