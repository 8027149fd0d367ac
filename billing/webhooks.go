package billing

import (
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Error codes of the webhook endpoints API.
const (
	CodeInvalidWebhookURL = "invalid_webhook_url" // not an absolute http(s) URL, or a private address without --webhook-allow-private (422)
	CodeUnknownEventType  = "unknown_event_type"  // an event type that is not in EventTypes (422)
)

// AllEvents subscribes an endpoint to every event type, present and future.
const AllEvents = "*"

// EventWebhookTest is the type of the event "send a test event" delivers.
const EventWebhookTest = "webhook.test"

// WebhookEndpoint is a URL that receives the outbox's events, signed with
// its secret as the Standard Webhooks specification says.
type WebhookEndpoint struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Description    string    `json:"description"`
	EventTypes     []string  `json:"event_types"` // ["*"]: all
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	Secret         string    `json:"-"`
	OldSecret      string    `json:"-"`
	OldSecretUntil time.Time `json:"-"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Secrets are the secrets that sign a delivery at now: the current one and,
// for a day after a rotation, the previous one.
func (e WebhookEndpoint) Secrets(now time.Time) []string {
	out := []string{e.Secret}
	if e.OldSecret != "" && now.Before(e.OldSecretUntil) {
		out = append(out, e.OldSecret)
	}
	return out
}

// Wants reports whether the endpoint subscribes to an event type.
func (e WebhookEndpoint) Wants(typ string) bool {
	return slices.Contains(e.EventTypes, AllEvents) || slices.Contains(e.EventTypes, typ)
}

// WebhookEndpointInput creates or (its set fields) updates an endpoint.
type WebhookEndpointInput struct {
	URL            *string   `json:"url"`
	Description    *string   `json:"description"`
	EventTypes     *[]string `json:"event_types"`
	Enabled        *bool     `json:"enabled"`
	IdempotencyKey string    `json:"idempotency_key"`
}

// Validate checks the fields that are set; create requires url. A private,
// loopback or link-local host is refused unless allowPrivate: an admin key
// must not turn Tally into a way to call the services beside it (SSRF).
// The worker checks the address it dials again, since a name can resolve
// elsewhere later.
func (in *WebhookEndpointInput) Validate(create, allowPrivate bool) error {
	if create && in.URL == nil {
		return Errorf(CodeValidation, "url is required").With("param", "url")
	}
	if in.URL != nil {
		s := strings.TrimSpace(*in.URL)
		in.URL = &s
		if err := ValidWebhookURL(s, allowPrivate); err != nil {
			return err
		}
	}
	if in.Description != nil && len(*in.Description) > 500 {
		return Errorf(CodeValidation, "description may be at most 500 characters").With("param", "description")
	}
	if in.EventTypes != nil {
		types := *in.EventTypes
		if len(types) == 0 {
			return Errorf(CodeValidation, `event_types needs at least one type, or ["*"] for all`).With("param", "event_types")
		}
		for _, t := range types {
			if t != AllEvents && !slices.Contains(EventTypes, t) {
				return Errorf(CodeUnknownEventType, "%q is not an event type (see GET /api/v1/openapi.json or docs/api.md)", t).
					With("param", "event_types").With("event_type", t)
			}
		}
		sorted := slices.Clone(types)
		slices.Sort(sorted)
		sorted = slices.Compact(sorted)
		if slices.Contains(sorted, AllEvents) {
			sorted = []string{AllEvents}
		}
		in.EventTypes = &sorted
	} else if create {
		all := []string{AllEvents}
		in.EventTypes = &all
	}
	return nil
}

// ValidWebhookURL accepts an absolute http or https URL without user
// information, whose host is not a private address unless allowPrivate.
func ValidWebhookURL(s string, allowPrivate bool) error {
	bad := func(why string) error {
		return Errorf(CodeInvalidWebhookURL, "url %s", why).With("param", "url")
	}
	if len(s) > 2048 {
		return bad("may be at most 2048 characters")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return bad("must be an absolute URL such as https://example.com/webhooks/tally")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("must start with https:// or http://")
	}
	if u.User != nil {
		return bad("may not hold a user name or password")
	}
	if u.Fragment != "" {
		return bad("may not have a #fragment")
	}
	if !allowPrivate && PrivateHost(u.Hostname()) {
		return bad("points to a private or loopback address; start Tally with --webhook-allow-private to allow it")
	}
	return nil
}

// PrivateHost reports whether host is localhost or an IP address that is
// not on the public internet (loopback, private, link-local, unspecified).
func PrivateHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && PrivateIP(ip)
}

// PrivateIP reports whether ip is loopback, private, link-local, multicast
// or unspecified.
func PrivateIP(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()
}

// WebhookDelivery is one event on its way to one endpoint.
type WebhookDelivery struct {
	ID          int64            `json:"-"`
	PublicID    string           `json:"id"` // whd_<id>
	EndpointID  string           `json:"endpoint"`
	MessageID   string           `json:"message_id"` // the webhook-id header
	EventType   string           `json:"event_type"`
	Customer    string           `json:"customer,omitempty"`
	Status      string           `json:"status"` // pending, succeeded, failed
	Attempts    int              `json:"attempt_count"`
	NextAttempt *time.Time       `json:"next_attempt_at,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
	History     []WebhookAttempt `json:"attempts"`
	Payload     string           `json:"-"`
	FirstAt     *time.Time       `json:"-"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// WebhookAttempt is one HTTP request of a delivery.
type WebhookAttempt struct {
	At         time.Time `json:"attempted_at"`
	StatusCode int       `json:"status_code"` // 0: no answer (see error)
	LatencyMS  int64     `json:"latency_ms"`
	Response   string    `json:"response"` // the first bytes of the answer
	Error      string    `json:"error,omitempty"`
}

// WebhookJob is a due delivery with the endpoint it goes to.
type WebhookJob struct {
	Delivery WebhookDelivery
	Endpoint WebhookEndpoint
}

// WebhookPayload is the body of an event's webhook: {id, type, created_at,
// data}, data being the event's structured payload plus the customer's id.
// It is computed once, when the event is fanned out, and every attempt
// sends the same bytes.
func WebhookPayload(e Event) ([]byte, error) {
	data := make(map[string]any, len(e.Data)+1)
	for k, v := range e.Data {
		data[k] = v
	}
	if e.Customer != "" {
		data["customer"] = e.Customer
	}
	return json.Marshal(struct {
		ID        string         `json:"id"`
		Type      string         `json:"type"`
		CreatedAt time.Time      `json:"created_at"`
		Data      map[string]any `json:"data"`
	}{e.ID, e.Type, e.CreatedAt.UTC(), data})
}
