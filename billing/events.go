package billing

import (
	"strings"
	"time"
)

// Events: every change to a wallet names what happened, as data. The store
// writes them to its outbox in the same transaction as the change, each
// with a database-wide increasing sequence number; consumers (the portal's
// notices and live balance, outbound webhooks, e-mail) read them from a
// cursor they keep, and resume after a restart. Payloads are structured,
// never prose: customer-facing wording is rendered from them by views and
// mail templates.
const (
	EventBalanceLow               = "balance.low"       // available fell to or below the low-balance threshold
	EventBalanceDepleted          = "balance.depleted"  // available fell to zero or below
	EventBalanceRecovered         = "balance.recovered" // available rose above the threshold again
	EventTopUpSucceeded           = "topup.succeeded"
	EventTopUpFailed              = "topup.failed"
	EventAutoRefillSucceeded      = "autorefill.succeeded"
	EventAutoRefillFailed         = "autorefill.failed"
	EventAutoRefillPaused         = "autorefill.paused"
	EventAutoRefillActionRequired = "autorefill.action_required"
	EventGrantCreated             = "grant.created"
	EventGrantExpiring            = "grant.expiring" // 7 days before a lot expires, once
	EventGrantExpired             = "grant.expired"
	EventSpendLimitReached        = "spend_limit.reached" // a debit took spend to a cap
	EventHoldExpired              = "hold.expired"
	EventRefundSucceeded          = "refund.succeeded"
	EventDisputeOpened            = "dispute.opened"
	EventAdjustmentCreated        = "adjustment.created" // a manual correction, either sign
)

// GrantExpiringNotice is how long before a lot's expiry grant.expiring fires.
const GrantExpiringNotice = 7 * 24 * time.Hour

// EventTypes lists every event type, for validation (webhook subscriptions)
// and documentation.
var EventTypes = []string{
	EventBalanceLow, EventBalanceDepleted, EventBalanceRecovered,
	EventTopUpSucceeded, EventTopUpFailed,
	EventAutoRefillSucceeded, EventAutoRefillFailed, EventAutoRefillPaused, EventAutoRefillActionRequired,
	EventGrantCreated, EventGrantExpiring, EventGrantExpired, EventAdjustmentCreated,
	EventSpendLimitReached, EventHoldExpired, EventRefundSucceeded, EventDisputeOpened,
}

// Actor kinds: who caused a change.
const (
	ActorAPIKey   = "api_key"  // a product app, by its API key id
	ActorCustomer = "customer" // a customer in the portal, by customer id
	ActorAdmin    = "admin"    // a staff member (the admin console), by admin id
	ActorSystem   = "system"   // a job: expiry, auto-refill, a payment provider's event, the CLI
)

// Actor is who caused a change. It is stored with the entries and events a
// change writes, so an audit log reads straight from the ledger.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// String is the stored form, "kind:id" ("api_key:key_ab12", "system:expiry").
func (a Actor) String() string {
	if a.Kind == "" {
		return ""
	}
	return a.Kind + ":" + a.ID
}

// ParseActor reads the stored form back.
func ParseActor(s string) Actor {
	kind, id, _ := strings.Cut(s, ":")
	return Actor{Kind: kind, ID: id}
}

// KeyActor is the actor of an API key (the zero Actor for nil).
func KeyActor(k *APIKey) Actor {
	if k == nil {
		return Actor{}
	}
	return Actor{Kind: ActorAPIKey, ID: k.ID}
}

// SystemActor is a job of Tally's own: "expiry", "auto_refill", "stripe"...
func SystemActor(job string) Actor { return Actor{Kind: ActorSystem, ID: job} }

// CustomerActor is a customer acting in the portal.
func CustomerActor(customerID string) Actor { return Actor{Kind: ActorCustomer, ID: customerID} }

// Event is one thing that happened, as consumers read it from the outbox.
type Event struct {
	Seq       int64          `json:"seq"`
	ID        string         `json:"id"` // evt_<seq>: stable, for webhook ids
	Type      string         `json:"type"`
	Customer  string         `json:"customer,omitempty"`
	Data      map[string]any `json:"data"`
	Actor     Actor          `json:"actor"`
	CreatedAt time.Time      `json:"created_at"`
}

// NewEvent is an event a plan decides; the store gives it its sequence
// number, id and time when it writes it.
type NewEvent struct {
	Type     string
	Customer string
	Data     map[string]any
	Entry    int // 1-based index of the change's entry it is about (0: none); the store adds its id as "entry"
}

// BalanceEvents are the threshold events of a change of the available
// credits from before to after, given the low-balance threshold: each fires
// once per crossing, never on every change below the line. A fall to zero
// or below is balance.depleted (and balance.low too, when it also crosses a
// positive threshold); a rise from at or below the threshold to above it is
// balance.recovered, but only after a balance.low or balance.depleted
// (announcedLow): a new customer's first grant recovers from nothing.
func BalanceEvents(customerID string, before, after, threshold Credits, announcedLow bool) []NewEvent {
	data := func() map[string]any {
		return map[string]any{"available": after, "previous_available": before, "threshold": threshold}
	}
	var out []NewEvent
	switch {
	case after < before:
		if threshold > 0 && before > threshold && after <= threshold {
			out = append(out, NewEvent{Type: EventBalanceLow, Customer: customerID, Data: data()})
		}
		if before > 0 && after <= 0 {
			out = append(out, NewEvent{Type: EventBalanceDepleted, Customer: customerID, Data: data()})
		}
	case after > before:
		line := max(threshold, 0)
		if announcedLow && before <= line && after > line {
			out = append(out, NewEvent{Type: EventBalanceRecovered, Customer: customerID, Data: data()})
		}
	}
	return out
}

// CapsReached are the spend_limit.reached events of an accepted charge: one
// for each cap the charge took spend to or past (it was under before).
func CapsReached(customerID string, uses []CapUse, charge Credits) []NewEvent {
	var out []NewEvent
	for _, u := range uses {
		for _, c := range []struct {
			period string
			cap    *Credits
			spent  Credits
		}{{"daily", u.Caps.DailyCap, u.Spent.Day}, {"monthly", u.Caps.MonthlyCap, u.Spent.Month}} {
			if c.cap != nil && c.spent < *c.cap && c.spent+charge >= *c.cap {
				out = append(out, NewEvent{Type: EventSpendLimitReached, Customer: customerID,
					Data: map[string]any{"scope": u.Scope, "limit_type": c.period, "limit": *c.cap, "spent": c.spent + charge}})
			}
		}
	}
	return out
}

// MayRecover reports whether a change of the available credits from before
// to after crosses the low-balance line upwards: only then does
// BalanceEvents need to know whether a low balance was announced.
func MayRecover(before, after, threshold Credits) bool {
	line := max(threshold, 0)
	return before <= line && after > line
}

// LowAnnounced reports whether the last threshold event of a customer, of
// types in seq order, says the balance is low (balance.low or
// balance.depleted, not since followed by balance.recovered).
func LowAnnounced(types []string) bool {
	for i := len(types) - 1; i >= 0; i-- {
		switch types[i] {
		case EventBalanceLow, EventBalanceDepleted:
			return true
		case EventBalanceRecovered:
			return false
		}
	}
	return false
}
