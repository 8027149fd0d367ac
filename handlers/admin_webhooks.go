package handlers

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// webhookStore is the store of webhook endpoints: the configured one, or
// the main store when it keeps them (*db.DB does), so the console works
// whether or not the delivery worker runs in this process.
func (s *Server) webhookStore() WebhookStore {
	if s.cfg.Webhooks.Store != nil {
		return s.cfg.Webhooks.Store
	}
	ws, _ := s.store.(WebhookStore)
	return ws
}

// registerAdminConsole mounts the console's webhook endpoints and API keys
// pages. Support reads; admins and owners write.
func (s *Server) registerAdminConsole(g *echo.Group, support, admin echo.MiddlewareFunc) {
	if s.webhookStore() != nil {
		g.GET("/webhooks", s.adminWebhooks, support)
		g.POST("/webhooks", s.adminWebhookCreate, admin)
		g.GET("/webhooks/:id", s.adminWebhook, support)
		g.POST("/webhooks/:id", s.adminWebhookUpdate, admin)
		g.POST("/webhooks/:id/rotate", s.adminWebhookRotate, admin)
		g.POST("/webhooks/:id/delete", s.adminWebhookDelete, admin)
		g.POST("/webhooks/:id/test", s.adminWebhookTest, admin)
		g.POST("/webhooks/:id/deliveries/:delivery/resend", s.adminWebhookResend, admin)
	}
	if _, ok := s.store.(adminKeyStore); ok {
		g.GET("/api-keys", s.adminAPIKeys, support)
		g.POST("/api-keys", s.adminAPIKeyCreate, admin)
		g.GET("/api-keys/:id", s.adminAPIKey, support)
		g.POST("/api-keys/:id", s.adminAPIKeyUpdate, admin)
		g.POST("/api-keys/:id/origins", s.adminAPIKeyOrigins, admin)
		g.POST("/api-keys/:id/revoke", s.adminAPIKeyRevoke, admin)
	}
}

// webhookEventGroups are the event types grouped by their first word
// (balance, topup, auto_refill...), for the form's checkboxes.
func webhookEventGroups() []views.EventGroup {
	var out []views.EventGroup
	types := slices.Clone(billing.EventTypes)
	slices.Sort(types)
	for _, t := range types {
		g, _, _ := strings.Cut(t, ".")
		if n := len(out); n > 0 && out[n-1].Name == g {
			out[n-1].Types = append(out[n-1].Types, t)
			continue
		}
		out = append(out, views.EventGroup{Name: g, Types: []string{t}})
	}
	return out
}

// readWebhookForm reads the create and edit form into an input, errors
// beside their fields. create: the URL is read too.
func (s *Server) readWebhookForm(c echo.Context, create bool) (billing.WebhookEndpointInput, views.AdminWebhookForm) {
	f := readForm(c)
	vf := views.AdminWebhookForm{URL: strings.TrimSpace(f.Value("url")), Description: strings.TrimSpace(f.Value("description")),
		All: f.Value("all") == "1", Types: f.Values["event_types"], Enabled: f.Value("enabled") == "1", Key: f.Value("key"), Errors: map[string]string{}}
	var in billing.WebhookEndpointInput
	if create {
		in.URL = &vf.URL
		if vf.URL == "" {
			vf.Errors["url"] = "Enter the URL that receives the events, such as https://example.com/webhooks/tally."
		}
	}
	in.Description = &vf.Description
	types := vf.Types
	if vf.All {
		types = []string{billing.AllEvents}
	}
	if len(types) == 0 {
		vf.Errors["event_types"] = "Choose at least one event type, or all events."
	}
	in.EventTypes = &types
	if !create {
		in.Enabled = &vf.Enabled
	}
	if len(vf.Errors) == 0 {
		if err := in.Validate(create, s.cfg.Webhooks.AllowPrivate); err != nil {
			field := errorParam(err)
			msg := billing.ErrorMessage(err)
			switch billing.ErrorCode(err) {
			case billing.CodeInvalidWebhookURL:
				field, msg = "url", views.WebhookURLErrorText(err)
			case billing.CodeUnknownEventType:
				field = "event_types"
			}
			if field == "" {
				field = "url"
			}
			vf.Errors[field] = msg
		}
	}
	return in, vf
}

// GET /admin/webhooks: every endpoint with its last delivery's status.
func (s *Server) adminWebhooks(c echo.Context) error {
	return s.renderAdminWebhooks(c, http.StatusOK, views.AdminWebhookForm{All: true, Key: confirmKey()})
}

func (s *Server) renderAdminWebhooks(c echo.Context, status int, form views.AdminWebhookForm) error {
	ctx := c.Request().Context()
	ws := s.webhookStore()
	eps, err := ws.FindWebhookEndpoints(ctx)
	if err != nil {
		return err
	}
	d := views.AdminWebhooksPage{Form: form, Groups: webhookEventGroups()}
	for _, e := range eps {
		row := views.AdminWebhookRow{Endpoint: e}
		last, err := ws.FindWebhookDeliveries(ctx, e.ID, 0, 1)
		if err != nil {
			return err
		}
		if len(last) == 1 {
			row.Last = &last[0]
		}
		d.Rows = append(d.Rows, row)
	}
	return render(c, status, views.AdminWebhooksView(s.adminShell(c, "Webhooks", "webhooks"), d))
}

// POST /admin/webhooks creates an endpoint and shows its secret, once.
// The form's key makes a second post (a reload) find the same endpoint,
// whose secret is then not shown again.
func (s *Server) adminWebhookCreate(c echo.Context) error {
	in, vf := s.readWebhookForm(c, true)
	if vf.Key == "" || len(vf.Key) > 100 {
		vf.Key = confirmKey()
	}
	if len(vf.Errors) > 0 {
		return s.renderAdminWebhooks(c, http.StatusUnprocessableEntity, vf)
	}
	in.IdempotencyKey = vf.Key
	ep, replayed, err := s.webhookStore().CreateWebhookEndpoint(s.audited(c, billing.AuditWebhookCreated, "", "", "", ""), in)
	if err != nil {
		if billing.ErrorCode(err) == billing.CodeIdempotencyConflict {
			vf.Key = confirmKey()
			vf.Errors["url"] = "This form was sent already with other values. Check the list, then send it again."
			return s.renderAdminWebhooks(c, http.StatusUnprocessableEntity, vf)
		}
		return err
	}
	if replayed {
		return adminFlashTo(c, "info", "This endpoint was created already: its secret was shown once. Rotate it for a new one.", "/admin/webhooks/"+ep.ID)
	}
	return render(c, http.StatusOK, views.AdminSecretView(s.adminShell(c, "Endpoint created", "webhooks"), views.AdminSecret{
		Heading: "Endpoint created", Intro: "Deliveries to " + ep.URL + " are signed with this secret. Give it to the receiver to verify the webhook-signature header.",
		Secret: ep.Secret, Back: "/admin/webhooks/" + ep.ID, BackLabel: "Go to the endpoint"}))
}

// GET /admin/webhooks/:id: the endpoint, its settings and its deliveries
// with every attempt.
func (s *Server) adminWebhook(c echo.Context) error {
	return s.renderAdminWebhook(c, http.StatusOK, nil)
}

func (s *Server) renderAdminWebhook(c echo.Context, status int, form *views.AdminWebhookForm) error {
	ctx := c.Request().Context()
	ws := s.webhookStore()
	ep, err := ws.FindWebhookEndpoint(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if form == nil {
		form = &views.AdminWebhookForm{Description: ep.Description, Enabled: ep.Enabled, All: slices.Contains(ep.EventTypes, billing.AllEvents),
			Types: ep.EventTypes}
	}
	d := views.AdminWebhookPage{Endpoint: ep, Form: *form, Groups: webhookEventGroups(), Now: s.store.Now()}
	if d.Deliveries, err = ws.FindWebhookDeliveries(ctx, ep.ID, 0, 50); err != nil {
		return err
	}
	return render(c, status, views.AdminWebhookView(s.adminShell(c, ep.URL, "webhooks"), d))
}

// POST /admin/webhooks/:id: event types, description, enabled.
func (s *Server) adminWebhookUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	ws := s.webhookStore()
	before, err := ws.FindWebhookEndpoint(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	in, vf := s.readWebhookForm(c, false)
	if len(vf.Errors) > 0 {
		return s.renderAdminWebhook(c, http.StatusUnprocessableEntity, &vf)
	}
	ep, err := ws.UpdateWebhookEndpoint(s.audited(c, billing.AuditWebhookUpdated, "", "", "", ""), before.ID, in)
	if err != nil {
		return err
	}
	if ep.Enabled && s.cfg.Webhooks.Wake != nil {
		s.cfg.Webhooks.Wake()
	}
	return adminFlashTo(c, "success", "Endpoint saved.", "/admin/webhooks/"+ep.ID)
}

// POST /admin/webhooks/:id/rotate: after a confirmation, a new secret,
// shown once; the previous one keeps signing for a day.
func (s *Server) adminWebhookRotate(c echo.Context) error {
	ctx := c.Request().Context()
	ws := s.webhookStore()
	ep, err := ws.FindWebhookEndpoint(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if c.FormValue("confirm") != "1" {
		return render(c, http.StatusOK, views.AdminConfirmActionView(s.adminShell(c, "Rotate the secret", "webhooks"), views.AdminConfirmAction{
			Heading: "Rotate the signing secret?", Message: "A new secret signs deliveries to " + ep.URL + " from now on. The current one keeps signing beside it for 24 hours, so the receiver has a day to switch.",
			Action: "/admin/webhooks/" + ep.ID + "/rotate", Button: "Rotate secret", Cancel: "/admin/webhooks/" + ep.ID}))
	}
	ep, err = ws.RotateWebhookSecret(s.audited(c, billing.AuditWebhookSecretRotated, "", "", "", ""), ep.ID, webhookSecretOverlap)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AdminSecretView(s.adminShell(c, "Secret rotated", "webhooks"), views.AdminSecret{
		Heading: "Secret rotated", Intro: "The new secret for " + ep.URL + ". The previous one keeps signing until " + s.adminShell(c, "", "").Fmt.DateTime(ep.OldSecretUntil) + ".",
		Secret: ep.Secret, Back: "/admin/webhooks/" + ep.ID, BackLabel: "Back to the endpoint"}))
}

// POST /admin/webhooks/:id/delete: after a confirmation.
func (s *Server) adminWebhookDelete(c echo.Context) error {
	ctx := c.Request().Context()
	ws := s.webhookStore()
	ep, err := ws.FindWebhookEndpoint(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if c.FormValue("confirm") != "1" {
		return render(c, http.StatusOK, views.AdminConfirmActionView(s.adminShell(c, "Delete the endpoint", "webhooks"), views.AdminConfirmAction{
			Heading: "Delete this endpoint?", Message: ep.URL + " stops receiving events at once, pending deliveries included. This can't be undone.",
			Action: "/admin/webhooks/" + ep.ID + "/delete", Button: "Delete endpoint", Cancel: "/admin/webhooks/" + ep.ID, Danger: true}))
	}
	if err := ws.DeleteWebhookEndpoint(s.audited(c, billing.AuditWebhookDeleted, "", "", "", ""), ep.ID); err != nil {
		return err
	}
	return adminFlashTo(c, "success", "Endpoint "+ep.URL+" deleted.", "/admin/webhooks")
}

// POST /admin/webhooks/:id/test queues a webhook.test event.
func (s *Server) adminWebhookTest(c echo.Context) error {
	d, err := s.webhookStore().CreateTestDelivery(s.audited(c, billing.AuditWebhookTested, "", "", "", ""), c.Param("id"))
	if err != nil {
		return err
	}
	if s.cfg.Webhooks.Wake != nil {
		s.cfg.Webhooks.Wake()
	}
	return adminFlashTo(c, "success", "Test event queued ("+d.PublicID+"): its attempts appear below.", "/admin/webhooks/"+d.EndpointID)
}

// POST /admin/webhooks/:id/deliveries/:delivery/resend sends a delivery's
// event again (the same webhook-id).
func (s *Server) adminWebhookResend(c echo.Context) error {
	ctx := c.Request().Context()
	ws := s.webhookStore()
	ep, err := ws.FindWebhookEndpoint(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	// The delivery's message id is its event's id (evt_<seq>).
	msg := c.FormValue("event")
	d, err := ws.ResendWebhookEvent(s.audited(c, billing.AuditWebhookResent, "", "", "", ""), ep.ID, msg)
	if err != nil {
		switch billing.ErrorCode(err) {
		case billing.CodeValidation, billing.CodeNotFound:
			return adminFlashTo(c, "error", "This delivery can't be sent again: "+billing.ErrorMessage(err), "/admin/webhooks/"+ep.ID)
		}
		return err
	}
	if s.cfg.Webhooks.Wake != nil {
		s.cfg.Webhooks.Wake()
	}
	return adminFlashTo(c, "success", "Delivery "+d.PublicID+" ("+d.EventType+") queued again.", "/admin/webhooks/"+ep.ID)
}
