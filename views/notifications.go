package views

import (
	"strconv"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The words of customer notifications (billing.NotificationKind): the
// e-mails and the portal's notifications list say the same, rendered here
// from the event's structured data. Auto-refill events reuse the notices'
// wording (NoticeTitle, NoticeText).

// NotificationTitle is a notification's heading, also the e-mail's subject.
func NotificationTitle(f Fmt, n billing.Notice) string {
	switch n.Type {
	case billing.EventBalanceLow:
		return "Your balance is low"
	case billing.EventBalanceDepleted:
		return "You are out of credits"
	case billing.EventTopUpSucceeded:
		return "Receipt: " + f.CreditsWord(noticeCredits(n, "credits")) + " added"
	case billing.EventAutoRefillSucceeded:
		return "Auto-refill added " + f.CreditsWord(noticeCredits(n, "credits"))
	case billing.EventGrantExpiring:
		return f.CreditsWord(noticeCredits(n, "credits")) + " expire soon"
	case billing.EventSubscriptionCreated, billing.EventSubscriptionRenewed:
		return "Receipt: " + notificationPlanName(n) + " plan"
	case billing.EventSubscriptionUpdated:
		return "Receipt: upgrade to " + notificationPlanName(n)
	}
	return NoticeTitle(n)
}

// notificationPlanName is the plan a subscription event is about, by name
// (by key for an event from before names were recorded).
func notificationPlanName(n billing.Notice) string {
	if name := noticeStr(n, "plan_name"); name != "" {
		return name
	}
	return noticeStr(n, "plan")
}

// NotificationText is a notification's sentence: what happened and what to do.
func NotificationText(f Fmt, n billing.Notice) string {
	switch n.Type {
	case billing.EventBalanceLow:
		return "Your balance is down to " + f.CreditsWord(noticeCredits(n, "available")) + ", at or below your alert line of " +
			f.CreditsWord(noticeCredits(n, "threshold")) + ". Top up so your work is not interrupted."
	case billing.EventBalanceDepleted:
		return "Your balance reached " + f.CreditsWord(noticeCredits(n, "available")) +
			". Requests that cost credits are refused until you top up."
	case billing.EventTopUpSucceeded, billing.EventAutoRefillSucceeded:
		paid := f.Money(billing.Money{Amount: noticeInt(n, "amount"), Currency: noticeStr(n, "currency")})
		by := "You paid "
		if n.Type == billing.EventAutoRefillSucceeded {
			by = "Auto-refill charged your card "
		}
		text := by + paid + " for " + f.CreditsWord(noticeCredits(n, "credits"))
		if d := noticeStr(n, "description"); d != "" {
			text += " (" + d + ")"
		}
		return text + ". Thank you."
	case billing.EventGrantExpiring:
		text := f.CreditsWord(noticeCredits(n, "credits")) + " of your balance"
		if at, err := time.Parse(time.RFC3339Nano, noticeStr(n, "expires_at")); err == nil {
			text += " expire on " + f.LongDate(at) + "."
		} else {
			text += " expire in 7 days."
		}
		return text + " Credits that expire cannot be used or refunded; they are used first."
	case billing.EventSubscriptionCreated, billing.EventSubscriptionRenewed:
		paid := f.Money(billing.Money{Amount: noticeInt(n, "amount"), Currency: noticeStr(n, "currency")})
		text := "You paid " + paid + " for the " + notificationPlanName(n) + " plan: " + f.CreditsWord(noticeCredits(n, "credits"))
		// The period paid for (a renewal names it: a late invoice's is not
		// the current one), else the current period (a new subscription).
		from, to := "period_start", "period_end"
		if noticeStr(n, from) == "" {
			from, to = "current_period_start", "current_period_end"
		}
		start, err1 := time.Parse(time.RFC3339Nano, noticeStr(n, from))
		end, err2 := time.Parse(time.RFC3339Nano, noticeStr(n, to))
		if err1 == nil && err2 == nil {
			text += " for " + f.LongDate(start) + " to " + f.LongDate(end)
		}
		return text + ". Thank you."
	case billing.EventSubscriptionUpdated:
		paid := f.Money(billing.Money{Amount: noticeInt(n, "amount_charged"), Currency: noticeStr(n, "currency")})
		return "You paid " + paid + " to move to the " + notificationPlanName(n) + " plan now: " +
			f.CreditsWord(noticeCredits(n, "credits_granted")) + " for the rest of this period. Thank you."
	}
	return NoticeText(f, n)
}

// NotificationAction is the words of the link that acts on a notification.
func NotificationAction(n billing.Notice) string {
	if PlanPaymentToFix(n) {
		return "Update your card"
	}
	switch billing.NotificationKind(n.Type, n.Data) {
	case billing.NotifyLowBalance, billing.NotifyDepleted:
		return "Top up"
	case billing.NotifyAutoRefill:
		return "Review auto-refill"
	case billing.NotifyReceipt:
		return "See your purchases"
	case billing.NotifyPlan:
		return "See your plan"
	case billing.NotifyExpiring:
		return "See your credits"
	}
	return "Open billing"
}

// PlanPaymentToFix reports a plan's declined payment that will be tried
// again: the customer's move is a working card (on Billing), not the plan.
func PlanPaymentToFix(n billing.Notice) bool {
	return n.Type == billing.EventInvoicePaymentFailed && noticeStr(n, "final") != "true"
}

// noticeCredits is a data field holding credits (a JSON number of
// credits, as billing.Credits writes it), 0 when absent.
func noticeCredits(n billing.Notice, key string) billing.Credits {
	c, _ := billing.ParseCredits(noticeStr(n, key))
	return c
}

// noticeInt is a data field holding a whole number (minor units), 0 when
// absent.
func noticeInt(n billing.Notice, key string) int64 {
	v, _ := strconv.ParseInt(noticeStr(n, key), 10, 64)
	return v
}

// NotificationKindLabel names a kind on the settings page.
func NotificationKindLabel(kind string) (label, hint string) {
	switch kind {
	case billing.NotifyLowBalance:
		return "Low balance", "When your balance falls to your alert line."
	case billing.NotifyDepleted:
		return "Out of credits", "When your balance reaches zero."
	case billing.NotifyAutoRefill:
		return "Auto-refill problems", "A declined card, a paused auto-refill, or a payment to confirm."
	case billing.NotifyReceipt:
		return "Receipts", "After each top-up and auto-refill."
	case billing.NotifyPlan:
		return "Plan payments", "A receipt for each period of your plan and each upgrade, and a warning if a payment is declined."
	case billing.NotifyExpiring:
		return "Expiring credits", "7 days before credits expire."
	}
	return kind, ""
}
