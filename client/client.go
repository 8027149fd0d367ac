// Package client is a typed Go client for Tally's metering API: usage
// (single and batch), quotes, holds, balances, portal sign-in links and
// the balance widget's embed tokens.
//
// Every write carries an idempotency key (one is generated when the
// request gives none), and a request that fails on the network or with a
// 5xx answer is sent again with the same key after a back-off, so it is
// applied exactly once however often it is retried. Errors are *Error,
// with Tally's stable error type; on 402 insufficient_credits the error
// carries what is needed and the suggested pack, and TopUpLink makes the
// portal link that sells it.
//
//	tally := client.New("https://billing.example.com", os.Getenv("TALLY_KEY"))
//	req := &client.UsageRequest{Customer: "user_42", Feature: "image.generate", Quantity: client.Units(1)}
//	_, err := tally.Usage(ctx, req)
//	var e *client.Error
//	if errors.As(err, &e) && e.Type == client.InsufficientCredits {
//		link, _ := portalClient.TopUpLink(ctx, e, "user_42", "https://app.example.com/resume")
//		// send the customer to link.URL; back there, Usage(ctx, req) again: same key, charged once
//	}
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Credits are exact to a thousandth of a credit (JSON numbers with at most
// three decimals). Quantity is an amount of a feature's unit, likewise.
type (
	Credits  = billing.Credits
	Quantity = billing.Quantity
)

// CreditsOf is n whole credits; Units is n whole units of a feature.
func CreditsOf(n int64) Credits { return billing.CreditsOf(n) }

// Units is n whole units of a feature.
func Units(n int64) Quantity { return Quantity(billing.CreditsOf(n)) }

// Stable error types the callers most often branch on (Error.Type); the
// full list is the ErrorType of the OpenAPI description.
const (
	InsufficientCredits = "insufficient_credits"
	SpendLimitExceeded  = "spend_limit_exceeded"
	IdempotencyConflict = "idempotency_conflict"
	Unauthorized        = "unauthorized"
	Forbidden           = "forbidden"
	RateLimited         = "rate_limited"
	NetworkError        = "network_error" // the client's own: no answer came
)

// Client calls one Tally server with one API key. Its zero value is not
// usable: make one with New.
type Client struct {
	base    string
	key     string
	http    *http.Client
	retries int           // extra attempts after the first
	backoff time.Duration // the first back-off; doubled each attempt, with jitter
}

// Option changes a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: 30 s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many times a request is sent again after a network
// error or a 5xx answer (default 3; 0: never).
func WithRetries(n int) Option { return func(c *Client) { c.retries = max(n, 0) } }

// WithBackoff sets the first wait before a retry (default 250 ms); each
// next wait doubles, with full jitter, up to 10 s.
func WithBackoff(d time.Duration) Option { return func(c *Client) { c.backoff = d } }

// New makes a client for the Tally at baseURL (such as
// "https://billing.example.com") with an API key (tsk_...).
func New(baseURL, key string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), key: key, http: &http.Client{Timeout: 30 * time.Second},
		retries: 3, backoff: 250 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NewIdempotencyKey makes a key, as the client does for writes that give
// none: 48 bits of Unix milliseconds, then 80 random bits, in hex. Keys made
// later sort later (as a UUIDv7 does), so each lands at the end of Tally's
// key index instead of on a page of its own (docs/api.md, Idempotency).
func NewIdempotencyKey() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	return "idem_" + hex.EncodeToString(b[:])
}

// Error is an error answer of Tally, or NetworkError when none came.
type Error struct {
	Status    int    // HTTP status (0 for NetworkError)
	Type      string // stable: insufficient_credits, validation_failed, ...
	Message   string // for people
	Param     string // the field at fault, when one is
	RequestID string // X-Request-Id, to find the server's log line
	// insufficient_credits (402): what the action needed and the wallet.
	Required, Available, Balance, Held *Credits
	SuggestedPack                      *CreditPack
	RetryAfter                         int            // seconds, on 429 and 503
	IdempotencyKey                     string         // the key the request was sent with
	Details                            map[string]any // every field of the answer's error object
	cause                              error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return "tally: " + e.Message
	}
	return fmt.Sprintf("tally: %d %s: %s", e.Status, e.Type, e.Message)
}

// Unwrap is the network error of a NetworkError.
func (e *Error) Unwrap() error { return e.cause }

// CreditPack is a pack of credits the price book sells.
type CreditPack struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Credits Credits `json:"credits"`
	Price   Money   `json:"price"`
}

// Money is an amount in minor units (cents) of a currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// TopUpLink makes the portal link that sells what a 402 needed: the
// focused top-up (flow top_up) with the error's required credits, back to
// returnURL after paying. c must hold a portal or admin key. After the
// customer comes back, retry the refused request with the same
// idempotency key. Errors other than insufficient_credits are refused.
func (c *Client) TopUpLink(ctx context.Context, e *Error, customer, returnURL string) (*PortalSession, error) {
	if e == nil || e.Type != InsufficientCredits {
		return nil, errors.New("tally: TopUpLink needs an insufficient_credits error")
	}
	return c.CreatePortalSession(ctx, PortalSessionRequest{Customer: customer, ReturnURL: returnURL, Flow: "top_up", Required: e.Required})
}

// do sends a request, again after network errors and 5xx answers (the
// body, with its idempotency key, unchanged), and decodes the answer into
// out.
func (c *Client) do(ctx context.Context, method, path string, body any, idemKey string, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, path, raw, idemKey, out)
		var e *Error
		if err == nil || !errors.As(err, &e) || attempt >= c.retries || !retryable(e) || ctx.Err() != nil {
			return err
		}
		wait := c.backoff * time.Duration(math.Pow(2, float64(attempt)))
		wait = min(wait, 10*time.Second)
		wait = time.Duration(mrand.Int64N(int64(wait) + 1)) // full jitter
		if e.RetryAfter > 0 {
			wait = max(wait, time.Duration(e.RetryAfter)*time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retryable: no answer, or a 5xx one (the write did not happen, or
// happened and replays under its key), or a 409 conflict (the same key is
// in flight in another process).
func retryable(e *Error) bool {
	return e.Status == 0 || e.Status >= 500 || e.Type == "conflict"
}

func (c *Client) once(ctx context.Context, method, path string, raw []byte, idemKey string, out any) error {
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tally-go-client")
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &Error{Type: NetworkError, Message: err.Error(), IdempotencyKey: idemKey, cause: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return &Error{Type: NetworkError, Message: "reading the answer: " + err.Error(), IdempotencyKey: idemKey, cause: err}
	}
	if res.StatusCode >= 300 {
		return decodeError(res, data, idemKey)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("tally: decoding the answer of %s %s: %w", method, path, err)
	}
	return nil
}

func decodeError(res *http.Response, data []byte, idemKey string) *Error {
	e := &Error{Status: res.StatusCode, Type: "http_" + strconv.Itoa(res.StatusCode), Message: http.StatusText(res.StatusCode),
		RequestID: res.Header.Get("X-Request-Id"), IdempotencyKey: idemKey}
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error != nil {
		var d struct {
			Type          string      `json:"type"`
			Message       string      `json:"message"`
			Param         string      `json:"param"`
			Required      *Credits    `json:"required"`
			Available     *Credits    `json:"available"`
			Balance       *Credits    `json:"balance"`
			Held          *Credits    `json:"held"`
			SuggestedPack *CreditPack `json:"suggested_pack"`
			RetryAfter    int         `json:"retry_after"`
		}
		if json.Unmarshal(body.Error, &d) == nil && d.Type != "" {
			e.Type, e.Message, e.Param = d.Type, d.Message, d.Param
			e.Required, e.Available, e.Balance, e.Held, e.SuggestedPack, e.RetryAfter = d.Required, d.Available, d.Balance, d.Held, d.SuggestedPack, d.RetryAfter
		}
		json.Unmarshal(body.Error, &e.Details)
	}
	if e.RetryAfter == 0 {
		e.RetryAfter, _ = strconv.Atoi(res.Header.Get("Retry-After"))
	}
	return e
}

// UsageRequest meters one action. IdempotencyKey: one is generated when
// empty (and set here, for the caller to retry with later).
type UsageRequest struct {
	Customer string   `json:"customer"` // cus_ id or your external_id
	Feature  string   `json:"feature"`
	Quantity Quantity `json:"quantity,omitempty"`
	// Quantities, instead of Quantity, for a feature priced per dimension:
	// {"input_tokens": client.Units(1200), "output_tokens": client.Units(350)}.
	Quantities     map[string]Quantity `json:"quantities,omitempty"`
	IdempotencyKey string              `json:"idempotency_key,omitempty"`
	Metadata       map[string]string   `json:"metadata,omitempty"`
}

// Debit is one charge of usage.
type Debit struct {
	ID             string            `json:"id"`
	Customer       string            `json:"customer"`
	Feature        string            `json:"feature"`
	Quantity       Quantity          `json:"quantity"`
	Breakdown      []DimensionCharge `json:"breakdown,omitempty"` // per dimension, for a feature priced so
	CreditsCharged Credits           `json:"credits_charged"`
	BalanceAfter   Credits           `json:"balance_after"`
	PriceVersion   int64             `json:"price_version"`
	Hold           string            `json:"hold,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
}

// Usage meters one action (POST /api/v1/usage). On 402 the *Error says
// what was needed; retry with req.IdempotencyKey after a top-up.
func (c *Client) Usage(ctx context.Context, req *UsageRequest) (*Debit, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var d Debit
	if err := c.do(ctx, http.MethodPost, "/api/v1/usage", req, req.IdempotencyKey, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// BatchItem is the outcome of one event of a batch.
type BatchItem struct {
	Status   int    `json:"status"`
	Replayed bool   `json:"replayed"`
	Debit    *Debit `json:"debit"`
	Error    *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// UsageBatch meters up to 1,000 actions (POST /api/v1/usage/batch); each
// gets an idempotency key if it has none, so a retried batch charges each
// once. The answer has one item per event, in order.
func (c *Client) UsageBatch(ctx context.Context, events []UsageRequest) ([]BatchItem, error) {
	for i := range events {
		if events[i].IdempotencyKey == "" {
			events[i].IdempotencyKey = NewIdempotencyKey()
		}
	}
	var out struct {
		Data []BatchItem `json:"data"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/usage/batch", map[string]any{"events": events}, "", &out)
	return out.Data, err
}

// DimensionCharge is one line of a debit's breakdown.
type DimensionCharge = billing.DimensionCharge

// Quote is what an action would cost and whether it is affordable now.
type Quote struct {
	Customer     string            `json:"customer"`
	Feature      string            `json:"feature"`
	Quantity     Quantity          `json:"quantity"`
	Breakdown    []DimensionCharge `json:"breakdown,omitempty"`
	Credits      Credits           `json:"credits"`
	PriceVersion int64             `json:"price_version"`
	Available    Credits           `json:"available"`
	Affordable   bool              `json:"affordable"`
	Reason       string            `json:"reason,omitempty"`
}

// Quote prices an action without charging (GET /api/v1/quote).
func (c *Client) Quote(ctx context.Context, customer, feature string, quantity Quantity) (*Quote, error) {
	q := url.Values{"customer": {customer}, "feature": {feature}, "quantity": {quantity.String()}}
	var out Quote
	if err := c.do(ctx, http.MethodGet, "/api/v1/quote?"+q.Encode(), nil, "", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// HoldRequest reserves credits for a long call.
type HoldRequest struct {
	Customer       string  `json:"customer"`
	Credits        Credits `json:"credits"`
	TTLSeconds     int     `json:"ttl_seconds,omitempty"`
	IdempotencyKey string  `json:"idempotency_key,omitempty"`
}

// CaptureRequest charges a hold's actual usage.
type CaptureRequest struct {
	Feature        string              `json:"feature"`
	Quantity       Quantity            `json:"quantity,omitempty"`
	Quantities     map[string]Quantity `json:"quantities,omitempty"` // instead of Quantity, per dimension
	Metadata       map[string]string   `json:"metadata,omitempty"`
	IdempotencyKey string              `json:"idempotency_key,omitempty"`
}

// Hold is a reservation of credits.
type Hold struct {
	ID             string     `json:"id"`
	Customer       string     `json:"customer"`
	Credits        Credits    `json:"credits"`
	Status         string     `json:"status"` // active, captured, released, expired
	ExpiresAt      time.Time  `json:"expires_at"`
	CreatedAt      time.Time  `json:"created_at"`
	ClosedAt       *time.Time `json:"closed_at"`
	CreditsCharged *Credits   `json:"credits_charged,omitempty"`
	Debit          *Debit     `json:"debit,omitempty"`
}

// CreateHold reserves credits (POST /api/v1/holds).
func (c *Client) CreateHold(ctx context.Context, req *HoldRequest) (*Hold, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var h Hold
	if err := c.do(ctx, http.MethodPost, "/api/v1/holds", req, req.IdempotencyKey, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// CaptureHold charges the actual usage and releases the rest.
func (c *Client) CaptureHold(ctx context.Context, id string, req *CaptureRequest) (*Hold, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewIdempotencyKey()
	}
	var h Hold
	if err := c.do(ctx, http.MethodPost, "/api/v1/holds/"+url.PathEscape(id)+"/capture", req, req.IdempotencyKey, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// ReleaseHold ends a hold without a charge (releasing twice is harmless).
func (c *Client) ReleaseHold(ctx context.Context, id string) (*Hold, error) {
	var h Hold
	if err := c.do(ctx, http.MethodPost, "/api/v1/holds/"+url.PathEscape(id)+"/release", struct{}{}, "", &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Balance is a customer's credits.
type Balance struct {
	Customer       string    `json:"customer"`
	Balance        Credits   `json:"balance"`
	Available      Credits   `json:"available"`
	Held           Credits   `json:"held"`
	OverdraftLimit Credits   `json:"overdraft_limit"`
	AsOf           time.Time `json:"as_of"`
}

// Balance reads a customer's balance (GET /api/v1/customers/{id}/balance).
func (c *Client) Balance(ctx context.Context, customer string) (*Balance, error) {
	var b Balance
	if err := c.do(ctx, http.MethodGet, "/api/v1/customers/"+url.PathEscape(customer)+"/balance", nil, "", &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// PortalSessionRequest asks for a portal sign-in link.
type PortalSessionRequest struct {
	Customer  string   `json:"customer"`
	ReturnURL string   `json:"return_url"`
	Flow      string   `json:"flow,omitempty"`     // "" or "top_up"
	Required  *Credits `json:"required,omitempty"` // a 402's required
}

// PortalSession is a single-use, five-minute sign-in link.
type PortalSession struct {
	Customer  string    `json:"customer"`
	URL       string    `json:"url"`
	ReturnURL string    `json:"return_url"`
	Flow      string    `json:"flow"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreatePortalSession makes a sign-in link (portal or admin key).
func (c *Client) CreatePortalSession(ctx context.Context, req PortalSessionRequest) (*PortalSession, error) {
	var s PortalSession
	if err := c.do(ctx, http.MethodPost, "/api/v1/portal-sessions", req, "", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// EmbedToken is a 15-minute token for the balance widget.
type EmbedToken struct {
	Token     string    `json:"token"`
	Customer  string    `json:"customer"`
	Origin    string    `json:"origin"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateEmbedToken mints a widget token for a customer and one of the
// key's allowed origins (portal or admin key).
func (c *Client) CreateEmbedToken(ctx context.Context, customer, origin string) (*EmbedToken, error) {
	var t EmbedToken
	if err := c.do(ctx, http.MethodPost, "/api/v1/embed-tokens", map[string]string{"customer": customer, "origin": origin}, "", &t); err != nil {
		return nil, err
	}
	return &t, nil
}
