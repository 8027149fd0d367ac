package views

import (
	"slices"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// EventGroup is a group of event types (balance.*, topup.*) in a form.
type EventGroup struct {
	Name  string
	Types []string
}

// AdminWebhookForm is the create or edit form of an endpoint.
type AdminWebhookForm struct {
	URL, Description string
	All              bool
	Types            []string
	Enabled          bool
	Key              string // the create form's idempotency key
	Errors           map[string]string
}

// Has reports whether an event type is ticked.
func (f AdminWebhookForm) Has(t string) bool { return slices.Contains(f.Types, t) }

// AdminWebhookRow is an endpoint in the list with its last delivery.
type AdminWebhookRow struct {
	Endpoint billing.WebhookEndpoint
	Last     *billing.WebhookDelivery
}

// AdminWebhooksPage is /admin/webhooks.
type AdminWebhooksPage struct {
	Rows   []AdminWebhookRow
	Form   AdminWebhookForm
	Groups []EventGroup
}

// AdminWebhookPage is /admin/webhooks/{id}.
type AdminWebhookPage struct {
	Endpoint   billing.WebhookEndpoint
	Form       AdminWebhookForm
	Groups     []EventGroup
	Deliveries []billing.WebhookDelivery
	Now        time.Time
}

// AdminSecret shows a secret once, after it is made.
type AdminSecret struct {
	Heading, Intro, Secret, Back, BackLabel string
}

// AdminPortalLink is a new single-use portal sign-in link, shown once to
// the admin who made it.
type AdminPortalLink struct {
	Customer billing.Customer
	URL      string
	Expires  time.Time
	TTL      time.Duration
}

// AdminConfirmAction confirms an action that moves no money (rotate,
// delete, revoke).
type AdminConfirmAction struct {
	Heading, Message, Action, Button, Cancel string
	Danger                                   bool
	// CancelLabel names the way back when "Cancel" would be ambiguous
	// (the action itself cancels something); "" is "Cancel".
	CancelLabel string
	// AskReason adds the mandatory reason field (kept in the audit log),
	// with what was typed and its error.
	AskReason   bool
	Reason      string
	ReasonError string
}

// AdminAPIKeyForm is the create form of an API key, as typed.
type AdminAPIKeyForm struct {
	Name, Scope, DailyCap, MonthlyCap, RateLimit, Origins string
	Nonce                                                 string // one per form: a second post of it makes no second key
	Errors                                                map[string]string
}

// AdminAPIKeyPage is /admin/api-keys/:id: one key and its edit form.
type AdminAPIKeyPage struct {
	Key    billing.APIKey
	Scopes []string
	Form   AdminAPIKeyForm
}

// AdminAPIKeysPage is /admin/api-keys.
type AdminAPIKeysPage struct {
	Keys   []billing.APIKey
	Scopes []string
	Form   AdminAPIKeyForm
	// The origins form that failed: its key, text and error.
	EditKey, EditOrigins, EditError string
}

// scopeHelp says what a key of each scope may do.
func scopeHelp(scope string) string {
	switch scope {
	case billing.ScopeRead:
		return "Balances, usage and the ledger; changes nothing."
	case billing.ScopeMetering:
		return "Read, plus debits, holds and usage events: for app servers."
	case billing.ScopePortal:
		return "Read, plus portal sign-in links and embed tokens, which can spend a saved card."
	case billing.ScopeAdmin:
		return "Everything: grants, refunds, price books, webhook endpoints."
	}
	return ""
}

// ttlText says a short lifetime in words: "5 minutes", "1 hour".
func ttlText(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		n := int64(d / time.Hour)
		return Fmt{}.Int(n) + " " + pluralWord(n, "hour")
	}
	n := int64(d / time.Minute)
	return Fmt{}.Int(n) + " " + pluralWord(n, "minute")
}

// LimitsErrorText says a refused operator limit in words, for beside its
// field (the API's message names JSON fields: "daily_cap may not be larger
// than monthly_cap").
func LimitsErrorText(err error) string {
	msg := billing.ErrorMessage(err)
	switch {
	case strings.Contains(msg, "daily_cap may not be larger than monthly_cap"):
		return "The daily cap can't be more than the monthly cap."
	case strings.HasPrefix(msg, "daily_cap"), strings.HasPrefix(msg, "monthly_cap"):
		return "Enter a cap of zero or more credits, within what a wallet may hold, or leave it empty for no cap."
	case strings.HasPrefix(msg, "overdraft_limit"):
		return "Enter an overdraft limit of zero or more credits, within what a wallet may hold: 0 allows none."
	}
	return msg
}

// WebhookURLErrorText says why an endpoint's URL was refused, in words, for
// beside the URL field (the API's message begins "url must …").
func WebhookURLErrorText(err error) string {
	msg := billing.ErrorMessage(err)
	switch {
	case strings.Contains(msg, "must be an absolute URL"):
		return "Enter the endpoint's full address, starting with https://, such as https://example.com/webhooks/tally."
	case strings.Contains(msg, "must start with https://"):
		return "The address must start with https:// (or http://)."
	case strings.Contains(msg, "at most 2048 characters"):
		return "The address is too long: at most 2,048 characters."
	case strings.Contains(msg, "user name or password"):
		return "Take the user name and password out of the address: Tally signs each delivery with the endpoint's secret instead."
	case strings.Contains(msg, "#fragment"):
		return "Take the #part off the end of the address: it is never sent to a server."
	case strings.Contains(msg, "private or loopback"):
		return "The address points to a private or loopback network. Use a public address, or start Tally with --webhook-allow-private to allow it."
	}
	if rest, ok := strings.CutPrefix(msg, "url "); ok {
		return "The address " + rest + "."
	}
	return msg
}
