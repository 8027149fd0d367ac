package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
)

func TestWebhookEndpointsAPI(t *testing.T) {
	p := newPayAPI(t)
	const path = "/api/v1/webhook-endpoints"

	t.Run("validation", func(t *testing.T) {
		for _, c := range []struct {
			name, body, typ, param string
		}{
			{"no url", `{}`, billing.CodeValidation, "url"},
			{"not a url", `{"url": "hooks"}`, billing.CodeInvalidWebhookURL, "url"},
			{"ftp", `{"url": "ftp://example.com/hook"}`, billing.CodeInvalidWebhookURL, "url"},
			{"file", `{"url": "file:///etc/passwd"}`, billing.CodeInvalidWebhookURL, "url"},
			{"user info", `{"url": "https://a:b@example.com/hook"}`, billing.CodeInvalidWebhookURL, "url"},
			{"loopback without the flag", `{"url": "http://127.0.0.1:9/hook"}`, billing.CodeInvalidWebhookURL, "url"},
			{"localhost without the flag", `{"url": "http://localhost/hook"}`, billing.CodeInvalidWebhookURL, "url"},
			{"private without the flag", `{"url": "http://10.1.2.3/hook"}`, billing.CodeInvalidWebhookURL, "url"},
			{"metadata address", `{"url": "http://169.254.169.254/latest"}`, billing.CodeInvalidWebhookURL, "url"},
			{"unknown event type", `{"url": "https://example.com/hook", "event_types": ["balance.low", "balance.lowish"]}`, billing.CodeUnknownEventType, "event_types"},
			{"no event types", `{"url": "https://example.com/hook", "event_types": []}`, billing.CodeValidation, "event_types"},
			{"unknown field", `{"url": "https://example.com/hook", "secret": "whsec_x"}`, billing.CodeInvalidRequest, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				e := p.do(http.MethodPost, path, p.Admin, c.body).wantError(t, statusFor(c.typ), c.typ)
				if c.param != "" && e["param"] != c.param {
					t.Errorf("param %v, want %s", e["param"], c.param)
				}
			})
		}
		if n := p.sqlCount(t, `SELECT COUNT(*) FROM webhook_endpoints`); n != 0 {
			t.Fatalf("refused requests wrote %d endpoints", n)
		}
	})

	var id, secret string
	t.Run("create shows the secret once", func(t *testing.T) {
		res := p.do(http.MethodPost, path, p.Admin, `{"url": "https://example.com/hook", "event_types": ["balance.low", "balance.depleted", "balance.low"], "description": "alerts"}`,
			"Idempotency-Key", "create-1").want(t, http.StatusCreated)
		id, _ = res.Body["id"].(string)
		secret, _ = res.Body["secret"].(string)
		if !strings.HasPrefix(id, "we_") || !strings.HasPrefix(secret, "whsec_") || res.Body["enabled"] != true {
			t.Fatalf("created %s", res.Raw)
		}
		if got := res.Body["event_types"].([]any); len(got) != 2 {
			t.Errorf("event types not deduplicated: %v", got)
		}
		replay := p.do(http.MethodPost, path, p.Admin, `{"url": "https://example.com/hook", "event_types": ["balance.low", "balance.depleted", "balance.low"], "description": "alerts"}`,
			"Idempotency-Key", "create-1").want(t, http.StatusCreated)
		if replay.Body["id"] != id || replay.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay made another endpoint: %s", replay.Raw)
		}
		p.do(http.MethodPost, path, p.Admin, `{"url": "https://example.com/other"}`, "Idempotency-Key", "create-1").
			wantError(t, http.StatusConflict, billing.CodeIdempotencyConflict)
		got := p.do(http.MethodGet, path+"/"+id, p.Admin, nil).want(t, http.StatusOK)
		if strings.Contains(string(got.Raw), "whsec_") {
			t.Errorf("GET shows the secret: %s", got.Raw)
		}
		list := p.do(http.MethodGet, path, p.Admin, nil).want(t, http.StatusOK)
		if strings.Contains(string(list.Raw), "whsec_") || len(list.Body["data"].([]any)) != 1 {
			t.Errorf("list: %s", list.Raw)
		}
	})

	t.Run("update", func(t *testing.T) {
		res := p.do(http.MethodPatch, path+"/"+id, p.Admin, `{"enabled": false, "event_types": ["*", "topup.succeeded"]}`).want(t, http.StatusOK)
		if res.Body["enabled"] != false || len(res.Body["event_types"].([]any)) != 1 || res.Body["url"] != "https://example.com/hook" {
			t.Errorf("update: %s", res.Raw)
		}
		p.do(http.MethodPatch, path+"/"+id, p.Admin, `{"url": "gopher://example.com"}`).wantError(t, http.StatusUnprocessableEntity, billing.CodeInvalidWebhookURL)
		p.do(http.MethodPatch, path+"/we_nope", p.Admin, `{"enabled": true}`).wantError(t, http.StatusNotFound, billing.CodeNotFound)
	})

	t.Run("rotate", func(t *testing.T) {
		res := p.do(http.MethodPost, path+"/"+id+"/rotate-secret", p.Admin, nil).want(t, http.StatusOK)
		if s, _ := res.Body["secret"].(string); !strings.HasPrefix(s, "whsec_") || s == secret || res.Body["previous_secret_valid_until"] == nil {
			t.Errorf("rotate: %s", res.Raw)
		}
	})

	t.Run("test, resend and deliveries", func(t *testing.T) {
		res := p.do(http.MethodPost, path+"/"+id+"/test", p.Admin, nil).want(t, http.StatusAccepted)
		if res.Body["event_type"] != billing.EventWebhookTest {
			t.Errorf("test: %s", res.Raw)
		}
		p.do(http.MethodPost, path+"/"+id+"/resend", p.Admin, `{"event_id": "evt_999999"}`).wantError(t, http.StatusNotFound, billing.CodeNotFound)
		p.do(http.MethodPost, path+"/"+id+"/resend", p.Admin, `{"event_id": "nope"}`).wantError(t, http.StatusUnprocessableEntity, billing.CodeValidation)
		list := p.do(http.MethodGet, path+"/"+id+"/deliveries", p.Admin, nil).want(t, http.StatusOK)
		if d := list.Body["data"].([]any); len(d) != 1 || d[0].(map[string]any)["status"] != "pending" {
			t.Errorf("deliveries: %s", list.Raw)
		}
	})

	t.Run("delete", func(t *testing.T) {
		p.do(http.MethodDelete, path+"/"+id, p.Admin, nil).want(t, http.StatusOK)
		p.do(http.MethodGet, path+"/"+id, p.Admin, nil).wantError(t, http.StatusNotFound, billing.CodeNotFound)
		if n := p.sqlCount(t, `SELECT COUNT(*) FROM webhook_deliveries`); n != 0 {
			t.Errorf("%d deliveries left", n)
		}
	})
}

func statusFor(typ string) int {
	switch typ {
	case billing.CodeInvalidRequest:
		return http.StatusBadRequest
	default:
		return http.StatusUnprocessableEntity
	}
}
