package billing

import (
	"fmt"
	"slices"
	"strconv"
)

// Customer notifications: the events a customer is told about, by e-mail
// (when SMTP is configured and they have not turned that kind off) and in
// the portal's notifications list. Each event type belongs to one kind,
// the unit a customer switches on or off.
const (
	NotifyLowBalance = "low_balance" // balance.low
	NotifyDepleted   = "depleted"    // balance.depleted
	NotifyAutoRefill = "auto_refill" // autorefill.failed, .paused, .action_required
	NotifyReceipt    = "receipt"     // topup.succeeded, autorefill.succeeded
	NotifyExpiring   = "expiring"    // grant.expiring (7 days before)
	// NotifyPlan: a plan's payments (subscription.created, .renewed and an
	// upgrade's subscription.updated, a receipt each) and its declined
	// payments (invoice.payment_failed, the first attempt and the last).
	NotifyPlan = "plan"
)

// NotificationKinds lists the kinds in the order the settings page shows them.
var NotificationKinds = []string{NotifyLowBalance, NotifyDepleted, NotifyAutoRefill, NotifyReceipt, NotifyPlan, NotifyExpiring}

// NotificationTypes are the event types NotificationKind may accept.
var NotificationTypes = []string{EventBalanceLow, EventBalanceDepleted, EventAutoRefillFailed, EventAutoRefillPaused,
	EventAutoRefillActionRequired, EventTopUpSucceeded, EventAutoRefillSucceeded, EventGrantExpiring,
	EventSubscriptionCreated, EventSubscriptionRenewed, EventSubscriptionUpdated, EventInvoicePaymentFailed}

// NotificationKind is the kind of notification an event is, or "" when the
// customer is not told about it. A declined auto-refill is told once (its
// first failure, as the portal's notices), not on every retry; a plan's
// declined payment at its first attempt and when the provider gives up; a
// plan period is a receipt only when it was paid for (a free period is not).
func NotificationKind(typ string, data map[string]any) string {
	switch typ {
	case EventBalanceLow:
		return NotifyLowBalance
	case EventBalanceDepleted:
		return NotifyDepleted
	case EventAutoRefillFailed:
		if IsNotice(typ, data) {
			return NotifyAutoRefill
		}
	case EventAutoRefillPaused, EventAutoRefillActionRequired:
		return NotifyAutoRefill
	case EventTopUpSucceeded, EventAutoRefillSucceeded:
		return NotifyReceipt
	case EventGrantExpiring:
		return NotifyExpiring
	case EventSubscriptionCreated, EventSubscriptionRenewed:
		if a, err := strconv.ParseInt(fmt.Sprint(data["amount"]), 10, 64); err == nil && a > 0 {
			return NotifyPlan
		}
	case EventSubscriptionUpdated:
		// An upgrade charged now (a downgrade or a resume charges nothing).
		if a, err := strconv.ParseInt(fmt.Sprint(data["amount_charged"]), 10, 64); err == nil && a > 0 && data["change"] == "upgrade" {
			return NotifyPlan
		}
	case EventInvoicePaymentFailed:
		if fmt.Sprint(data["attempt"]) == "1" || fmt.Sprint(data["final"]) == "true" {
			return NotifyPlan
		}
	}
	return ""
}

// ValidNotificationKind reports whether k is one of NotificationKinds.
func ValidNotificationKind(k string) bool { return slices.Contains(NotificationKinds, k) }
