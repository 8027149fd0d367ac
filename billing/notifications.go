package billing

import "slices"

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
)

// NotificationKinds lists the kinds in the order the settings page shows them.
var NotificationKinds = []string{NotifyLowBalance, NotifyDepleted, NotifyAutoRefill, NotifyReceipt, NotifyExpiring}

// NotificationTypes are the event types NotificationKind may accept.
var NotificationTypes = []string{EventBalanceLow, EventBalanceDepleted, EventAutoRefillFailed, EventAutoRefillPaused,
	EventAutoRefillActionRequired, EventTopUpSucceeded, EventAutoRefillSucceeded, EventGrantExpiring}

// NotificationKind is the kind of notification an event is, or "" when the
// customer is not told about it. A declined auto-refill is told once (its
// first failure, as the portal's notices), not on every retry.
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
	}
	return ""
}

// ValidNotificationKind reports whether k is one of NotificationKinds.
func ValidNotificationKind(k string) bool { return slices.Contains(NotificationKinds, k) }
