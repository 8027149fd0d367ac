package billing

import "time"

// Provider subscription metadata: when a price change Tally made at the
// provider takes effect. A downgrade or a migration changes the provider's
// price at once but bills it from the next invoice, so Tally keeps the plan
// until the period's end (PlanSync).
const (
	MetaEffective      = "tally_effective"
	EffectiveNow       = "now"
	EffectivePeriodEnd = "period_end"
)

// RenewalPending says whether sub's renewal is under way but its credits
// have not arrived: the period ended (by now) and the provider's paid
// invoice has not come, or the provider moved the period on before it.
// renewed says whether the current period's credits were granted. A
// subscription ending at the period's end, past due or canceled renews
// nothing, so nothing is pending.
//
// Meanwhile the ended period's credits have expired as designed (what the
// rollover policy keeps lives on) and the new period's arrive with the
// invoice, whenever it comes: the forecast must not count a renewal date
// that has passed, nor skip the one that is due.
func RenewalPending(sub *Subscription, renewed bool, now time.Time) bool {
	if sub == nil || sub.Status != SubActive {
		return false
	}
	if !sub.CurrentPeriodEnd.After(now) {
		return !sub.CancelAtPeriodEnd
	}
	return !renewed
}
