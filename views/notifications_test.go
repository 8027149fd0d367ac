package views

import (
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Every notification kind has words built from its data, with the numbers
// in them, and none falls back to the generic heading.
func TestNotificationWords(t *testing.T) {
	f := NewFmt("en-US", "")
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		typ         string
		data        map[string]any
		title, text string
	}{
		{billing.EventBalanceLow, map[string]any{"available": 4.5, "threshold": 5}, "Your balance is low", "down to 4.5 credits, at or below your alert line of 5 credits"},
		{billing.EventBalanceDepleted, map[string]any{"available": 0}, "You are out of credits", "reached 0 credits"},
		{billing.EventTopUpSucceeded, map[string]any{"credits": 1000, "amount": 1000, "currency": "usd", "description": "Starter"}, "Receipt: 1,000 credits added", "You paid $10.00 for 1,000 credits (Starter)"},
		{billing.EventAutoRefillSucceeded, map[string]any{"credits": 500, "amount": 500, "currency": "eur"}, "Auto-refill added 500 credits", "charged your card €5.00"},
		{billing.EventGrantExpiring, map[string]any{"credits": 250, "expires_at": "2026-03-17T12:00:00Z"}, "250 credits expire soon", "expire on 17 March 2026"},
		{billing.EventAutoRefillPaused, map[string]any{"failures": 3, "failure_reason": "Your card was declined."}, "Auto-refill is paused", "declined 3 times"},
		{billing.EventAutoRefillActionRequired, map[string]any{"description": "Auto-refill: 1,000 credits"}, "Confirm your auto-refill", "confirm the auto-refill of 1,000 credits"},
		{billing.EventAutoRefillFailed, map[string]any{"failures": 1, "failure_reason": "Insufficient funds."}, "Auto-refill payment declined", "Insufficient funds."},
		{billing.EventSubscriptionCreated, map[string]any{"plan": "pro", "plan_name": "Pro", "credits": 6000, "amount": 4900, "currency": "usd",
			"current_period_start": "2026-03-10T12:00:00Z", "current_period_end": "2026-04-10T12:00:00Z"},
			"Receipt: Pro plan", "You paid $49.00 for the Pro plan: 6,000 credits for 10 March 2026 to 10 April 2026."},
		{billing.EventSubscriptionRenewed, map[string]any{"plan": "starter", "credits": 2000, "amount": 1900, "currency": "usd"},
			"Receipt: starter plan", "You paid $19.00 for the starter plan: 2,000 credits."},
		{billing.EventSubscriptionRenewed, map[string]any{"plan": "team", "plan_name": "Team", "credits": 30000, "amount": 19900, "currency": "usd",
			"period_start": "2026-02-10T00:00:00Z", "period_end": "2026-03-10T00:00:00Z",
			"current_period_start": "2026-03-10T00:00:00Z", "current_period_end": "2026-04-10T00:00:00Z"},
			"Receipt: Team plan", "30,000 credits for 10 February 2026 to 10 March 2026."},
		{billing.EventSubscriptionUpdated, map[string]any{"plan": "pro", "plan_name": "Pro", "change": "upgrade", "credits_granted": 2709,
			"amount_charged": 2032, "currency": "usd"},
			"Receipt: upgrade to Pro", "You paid $20.32 to move to the Pro plan now: 2,709 credits for the rest of this period."},
		{billing.EventInvoicePaymentFailed, map[string]any{"amount": 1900, "currency": "usd", "attempt": 1, "final": false},
			"Your plan's payment failed", "We could not collect your plan's payment of $19.00"},
		{billing.EventInvoicePaymentFailed, map[string]any{"amount": 1900, "currency": "usd", "attempt": 4, "final": true},
			"Your plan has ended", "after several tries"},
	} {
		t.Run(c.typ, func(t *testing.T) {
			n := billing.Notice{ID: 1, Type: c.typ, Data: c.data, CreatedAt: at}
			if billing.NotificationKind(c.typ, c.data) == "" {
				t.Fatalf("%s is no notification", c.typ)
			}
			if got := NotificationTitle(f, n); got != c.title {
				t.Errorf("title %q, want %q", got, c.title)
			}
			if got := NotificationText(f, n); !strings.Contains(got, c.text) {
				t.Errorf("text %q, want it to contain %q", got, c.text)
			}
			if NotificationAction(n) == "" {
				t.Error("no action words")
			}
		})
	}
	// The action's words name where its link goes (handlers' notificationLink).
	for typ, want := range map[string]string{billing.EventGrantExpiring: "See your credits", billing.EventSubscriptionRenewed: "See your plan",
		billing.EventTopUpSucceeded: "See your purchases", billing.EventBalanceLow: "Top up", billing.EventInvoicePaymentFailed: "Update your card"} {
		if got := NotificationAction(billing.Notice{Type: typ, Data: map[string]any{"amount": 1900, "attempt": 1.0, "final": false}}); got != want {
			t.Errorf("%s: action %q, want %q", typ, got, want)
		}
	}
	// A plan that ended after its last attempt has nothing to fix on a card.
	if got := NotificationAction(billing.Notice{Type: billing.EventInvoicePaymentFailed, Data: map[string]any{"final": true}}); got != "See your plan" {
		t.Errorf("a final decline's action %q", got)
	}
	// A refill's later declines are not told again, nor a plan's retries
	// between its first attempt and its last; a free period is no receipt.
	if k := billing.NotificationKind(billing.EventAutoRefillFailed, map[string]any{"failures": 2}); k != "" {
		t.Errorf("a second decline is a %q notification", k)
	}
	if k := billing.NotificationKind(billing.EventInvoicePaymentFailed, map[string]any{"attempt": 2.0, "final": false}); k != "" {
		t.Errorf("a plan's second attempt is a %q notification", k)
	}
	if k := billing.NotificationKind(billing.EventSubscriptionRenewed, map[string]any{"amount": 0.0}); k != "" {
		t.Errorf("a free period is a %q notification", k)
	}
	if k := billing.NotificationKind(billing.EventSubscriptionUpdated, map[string]any{"change": "downgrade", "amount_charged": 0.0}); k != "" {
		t.Errorf("a scheduled downgrade is a %q notification", k)
	}
}
