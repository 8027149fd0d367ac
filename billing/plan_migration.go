package billing

import "time"

// Migrating subscribers to a new version of their plan: an admin moves
// every subscriber of plan key on an older price book version to the
// current one. Nothing changes mid-period: each subscriber's next renewal
// bills the new price and grants the new credits (the subscription's
// NextPlan is the same key at the new version; PlanRenewal and PlanSync
// bring it in).

// AuditPlanMigrated is the audit action of a migration (before: the
// versions migrated from; after: the version and how many subscribers).
const AuditPlanMigrated = "plan.migrated"

// MigrationGroup is the subscribers of one older version of a plan and what
// a migration changes for each of them, per period: the price and the
// credits, old and new, and the differences for the whole group.
type MigrationGroup struct {
	Version     int64 `json:"version"`
	Subscribers int   `json:"subscribers"`
	Old         Plan  `json:"old"`
	// Revenue and Credits are the group's difference per period (new minus
	// old, times the subscribers).
	Revenue Money   `json:"revenue"`
	Credits Credits `json:"credits"`
}

// MigrationImpact is what migrating plan To (at Version) would do: per older
// version, and in all (per month for the revenue, as MRR is). Skipped are
// subscribers a migration leaves alone: ending at the period's end, or
// with a change to another plan waiting.
type MigrationImpact struct {
	Plan        string           `json:"plan"`
	To          Plan             `json:"to"`
	Version     int64            `json:"version"`
	Groups      []MigrationGroup `json:"groups"`
	Subscribers int              `json:"subscribers"`
	Skipped     int              `json:"skipped"`
	MRR         Money            `json:"mrr"`     // the change of monthly recurring revenue
	Credits     Credits          `json:"credits"` // the change of credits granted per period, in all
}

// MigrationCandidate is one subscriber a migration may move, at its
// version's plan.
type MigrationCandidate struct {
	Sub  Subscription
	Plan Plan
}

// Migratable says whether a migration to version moves sub: a live
// subscription of the plan on another version that is not ending and has
// no change to another plan (or already this one) waiting.
func Migratable(sub Subscription, key string, version int64) bool {
	return sub.Status != SubCanceled && sub.Plan == key && sub.PriceVersion != version && !sub.CancelAtPeriodEnd && sub.NextPlan == ""
}

// NewMigrationImpact sums the candidates into the impact of migrating them
// to plan to at version. Candidates whose interval or currency differ from
// the new version's are refused (validation_failed): their periods and
// prices do not compare, and they change plan instead.
func NewMigrationImpact(to Plan, version int64, cands []MigrationCandidate) (MigrationImpact, error) {
	im := MigrationImpact{Plan: to.Key, To: to, Version: version, MRR: Money{Currency: to.Price.Currency}}
	index := map[int64]int{}
	for _, c := range cands {
		if !Migratable(c.Sub, to.Key, version) {
			if c.Sub.Plan == to.Key && c.Sub.PriceVersion != version && c.Sub.Status != SubCanceled &&
				!(c.Sub.NextPlan == to.Key && c.Sub.NextPriceVersion == version) {
				im.Skipped++
			}
			continue
		}
		if c.Plan.Interval != to.Interval || c.Plan.Price.Currency != to.Price.Currency {
			return im, Errorf(CodeValidation, "Version %d of %s is billed in %s every %s, the new one in %s every %s: move those subscribers by changing their plan.",
				c.Sub.PriceVersion, to.Name, c.Plan.Price.Currency, c.Plan.Interval, to.Price.Currency, to.Interval)
		}
		i, ok := index[c.Sub.PriceVersion]
		if !ok {
			i = len(im.Groups)
			index[c.Sub.PriceVersion] = i
			im.Groups = append(im.Groups, MigrationGroup{Version: c.Sub.PriceVersion, Old: c.Plan, Revenue: Money{Currency: to.Price.Currency}})
		}
		g := &im.Groups[i]
		g.Subscribers++
		g.Revenue.Amount += to.Price.Amount - c.Plan.Price.Amount
		g.Credits += to.Credits - c.Plan.Credits
		im.Subscribers++
		im.Credits += to.Credits - c.Plan.Credits
	}
	for _, g := range im.Groups {
		im.MRR.Amount += g.Revenue.Amount
	}
	if to.Interval == IntervalYear {
		im.MRR.Amount /= 12
	}
	return im, nil
}

// PlanMigrate schedules sub's move to plan to at version for its next
// renewal: nothing changes this period. subscription.updated (change
// "migration") tells the customer when and what. A subscription that
// Migratable refuses is a conflict.
func PlanMigrate(s *WalletState, sub Subscription, to Plan, version int64, actor Actor) (Change, error) {
	if !Migratable(sub, to.Key, version) {
		return Change{}, Errorf(CodeConflict, "Subscription %s cannot be migrated: it is ending, changing plan, or on version %d already.", sub.ID, version)
	}
	ch := start(s, actor)
	next := sub
	next.NextPlan, next.NextPriceVersion = to.Key, version
	ch.Subscription = &next
	ch.Events = append(ch.Events, NewEvent{Type: EventSubscriptionUpdated, Customer: s.Customer, Data: subData(&next, map[string]any{
		"change": "migration", "effective_at": sub.CurrentPeriodEnd.UTC().Truncate(time.Microsecond), "next_price_version": version,
		"next_amount": to.Price.Amount, "currency": to.Price.Currency, "next_credits": to.Credits})})
	return ch, nil
}

// Migrating says sub's waiting change is a migration to a new version of
// its own plan (an admin's, PlanMigrate), not a change of plan.
func (s Subscription) Migrating() bool {
	return s.NextPlan != "" && s.NextPlan == s.Plan
}
