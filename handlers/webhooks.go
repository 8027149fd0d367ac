package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// WebhookStore is what the webhook endpoints API needs (*db.DB).
// Its methods return not_found, validation_failed and idempotency_conflict.
type WebhookStore interface {
	CreateWebhookEndpoint(ctx context.Context, in billing.WebhookEndpointInput) (billing.WebhookEndpoint, bool, error)
	FindWebhookEndpoints(ctx context.Context) ([]billing.WebhookEndpoint, error)
	FindWebhookEndpoint(ctx context.Context, id string) (billing.WebhookEndpoint, error)
	UpdateWebhookEndpoint(ctx context.Context, id string, in billing.WebhookEndpointInput) (billing.WebhookEndpoint, error)
	DeleteWebhookEndpoint(ctx context.Context, id string) error
	RotateWebhookSecret(ctx context.Context, id string, overlap time.Duration) (billing.WebhookEndpoint, error)
	FindWebhookDeliveries(ctx context.Context, endpointID string, before int64, limit int) ([]billing.WebhookDelivery, error)
	ResendWebhookEvent(ctx context.Context, endpointID, eventID string) (billing.WebhookDelivery, error)
	CreateTestDelivery(ctx context.Context, endpointID string) (billing.WebhookDelivery, error)
}

// WebhooksConfig wires the webhook endpoints API.
type WebhooksConfig struct {
	Store WebhookStore // nil: no webhook routes
	// AllowPrivate accepts endpoint URLs on loopback and private addresses
	// (--webhook-allow-private; tests and demos).
	AllowPrivate bool
	Wake         func() // tells the worker a delivery is due now (may be nil)
}

// webhookSecretOverlap is how long a rotated-out secret keeps signing.
const webhookSecretOverlap = 24 * time.Hour

func (s *Server) webhookRoutes() {
	if s.cfg.Webhooks.Store == nil {
		return
	}
	// Endpoints receive every customer's events and their secrets sign
	// them: admin keys only.
	admin := s.requireKey(billing.ScopeAdmin)
	g := s.e.Group("/api/v1/webhook-endpoints", admin)
	g.POST("", s.createWebhookEndpoint)
	g.GET("", s.listWebhookEndpoints)
	g.GET("/:id", s.getWebhookEndpoint)
	g.PATCH("/:id", s.updateWebhookEndpoint)
	g.DELETE("/:id", s.deleteWebhookEndpoint)
	g.POST("/:id/rotate-secret", s.rotateWebhookSecret)
	g.GET("/:id/deliveries", s.listWebhookDeliveries)
	g.POST("/:id/resend", s.resendWebhookEvent)
	g.POST("/:id/test", s.testWebhookEndpoint)
}

type webhookEndpointJSON struct {
	Object string `json:"object"`
	billing.WebhookEndpoint
	// Secret is shown when the endpoint is created and when it is rotated,
	// never again.
	Secret string `json:"secret,omitempty"`
	// SecretRotatedUntil: until then the previous secret signs too.
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until,omitempty"`
}

func webhookEndpointView(e billing.WebhookEndpoint, withSecret bool, now time.Time) webhookEndpointJSON {
	v := webhookEndpointJSON{Object: "webhook_endpoint", WebhookEndpoint: e}
	if withSecret {
		v.Secret = e.Secret
	}
	if e.OldSecret != "" && now.Before(e.OldSecretUntil) {
		t := e.OldSecretUntil
		v.PreviousSecretValidUntil = &t
	}
	return v
}

// POST /api/v1/webhook-endpoints
func (s *Server) createWebhookEndpoint(c echo.Context) error {
	var in billing.WebhookEndpointInput
	if err := DecodeJSON(c.Request().Body, &in); err != nil {
		return err
	}
	if err := idempotencyKey(c, &in.IdempotencyKey); err != nil {
		return err
	}
	if err := in.Validate(true, s.cfg.Webhooks.AllowPrivate); err != nil {
		return err
	}
	ep, replayed, err := s.cfg.Webhooks.Store.CreateWebhookEndpoint(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return created(c, replayed, webhookEndpointView(ep, true, s.store.Now()))
}

// GET /api/v1/webhook-endpoints
func (s *Server) listWebhookEndpoints(c echo.Context) error {
	eps, err := s.cfg.Webhooks.Store.FindWebhookEndpoints(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]webhookEndpointJSON, len(eps))
	for i, e := range eps {
		out[i] = webhookEndpointView(e, false, s.store.Now())
	}
	return writeJSON(c, http.StatusOK, newList(out, ""))
}

// GET /api/v1/webhook-endpoints/:id
func (s *Server) getWebhookEndpoint(c echo.Context) error {
	ep, err := s.cfg.Webhooks.Store.FindWebhookEndpoint(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, webhookEndpointView(ep, false, s.store.Now()))
}

// PATCH /api/v1/webhook-endpoints/:id changes the fields given.
func (s *Server) updateWebhookEndpoint(c echo.Context) error {
	var in billing.WebhookEndpointInput
	if err := DecodeJSON(c.Request().Body, &in); err != nil {
		return err
	}
	if in.IdempotencyKey != "" {
		return billing.Errorf(billing.CodeInvalidRequest, "An update needs no idempotency key: it sets fields, so repeating it changes nothing.").With("param", "idempotency_key")
	}
	if err := in.Validate(false, s.cfg.Webhooks.AllowPrivate); err != nil {
		return err
	}
	ep, err := s.cfg.Webhooks.Store.UpdateWebhookEndpoint(c.Request().Context(), c.Param("id"), in)
	if err != nil {
		return err
	}
	if ep.Enabled && s.cfg.Webhooks.Wake != nil {
		s.cfg.Webhooks.Wake() // deliveries that waited while it was disabled
	}
	return writeJSON(c, http.StatusOK, webhookEndpointView(ep, false, s.store.Now()))
}

// DELETE /api/v1/webhook-endpoints/:id
func (s *Server) deleteWebhookEndpoint(c echo.Context) error {
	id := c.Param("id")
	if err := s.cfg.Webhooks.Store.DeleteWebhookEndpoint(c.Request().Context(), id); err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, map[string]any{"object": "webhook_endpoint", "id": id, "deleted": true})
}

// POST /api/v1/webhook-endpoints/:id/rotate-secret answers the new secret;
// the previous one keeps signing for 24 hours.
func (s *Server) rotateWebhookSecret(c echo.Context) error {
	ep, err := s.cfg.Webhooks.Store.RotateWebhookSecret(c.Request().Context(), c.Param("id"), webhookSecretOverlap)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, webhookEndpointView(ep, true, s.store.Now()))
}

// GET /api/v1/webhook-endpoints/:id/deliveries lists deliveries, newest
// first, with their attempts; ?cursor= takes the next page.
func (s *Server) listWebhookDeliveries(c echo.Context) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = 20
	}
	var before int64
	if cur := c.QueryParam("cursor"); cur != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(cur, "whd_"), 10, 64)
		if err != nil || n < 1 {
			return billing.Errorf(billing.CodeInvalidRequest, "cursor must be a next_cursor from an earlier page").With("param", "cursor")
		}
		before = n
	}
	ds, err := s.cfg.Webhooks.Store.FindWebhookDeliveries(c.Request().Context(), c.Param("id"), before, limit+1)
	if err != nil {
		return err
	}
	next := ""
	if len(ds) > limit {
		ds = ds[:limit]
		next = ds[limit-1].PublicID
	}
	type deliveryJSON struct {
		Object string `json:"object"`
		billing.WebhookDelivery
	}
	out := make([]deliveryJSON, len(ds))
	for i, d := range ds {
		out[i] = deliveryJSON{"webhook_delivery", d}
	}
	return writeJSON(c, http.StatusOK, newList(out, next))
}

type resendRequest struct {
	EventID string `json:"event_id"`
}

// POST /api/v1/webhook-endpoints/:id/resend {event_id} sends an event to
// the endpoint again (same webhook-id).
func (s *Server) resendWebhookEvent(c echo.Context) error {
	var req resendRequest
	if err := DecodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if req.EventID == "" {
		return billing.Errorf(billing.CodeValidation, "event_id is required").With("param", "event_id")
	}
	d, err := s.cfg.Webhooks.Store.ResendWebhookEvent(c.Request().Context(), c.Param("id"), req.EventID)
	if err != nil {
		return err
	}
	return s.queued(c, d)
}

// POST /api/v1/webhook-endpoints/:id/test sends a webhook.test event.
func (s *Server) testWebhookEndpoint(c echo.Context) error {
	d, err := s.cfg.Webhooks.Store.CreateTestDelivery(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return s.queued(c, d)
}

func (s *Server) queued(c echo.Context, d billing.WebhookDelivery) error {
	if s.cfg.Webhooks.Wake != nil {
		s.cfg.Webhooks.Wake()
	}
	d.History = nil
	return writeJSON(c, http.StatusAccepted, map[string]any{"object": "webhook_delivery", "id": d.PublicID, "endpoint": d.EndpointID,
		"message_id": d.MessageID, "event_type": d.EventType, "status": d.Status})
}
