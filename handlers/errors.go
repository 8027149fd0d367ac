package handlers

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// statusOf maps each error code to its HTTP status.
var statusOf = map[string]int{
	billing.CodeInvalidRequest:      http.StatusBadRequest,
	billing.CodeUnauthorized:        http.StatusUnauthorized,
	billing.CodeForbidden:           http.StatusForbidden,
	billing.CodeNotFound:            http.StatusNotFound,
	billing.CodeCustomerNotFound:    http.StatusNotFound,
	billing.CodeHoldNotFound:        http.StatusNotFound,
	billing.CodeIdempotencyConflict: http.StatusConflict,
	billing.CodeHoldNotActive:       http.StatusConflict,
	billing.CodeConflict:            http.StatusConflict,
	billing.CodeInsufficientCredits: http.StatusPaymentRequired,
	billing.CodeRequestTooLarge:     http.StatusRequestEntityTooLarge,
	billing.CodeUnknownFeature:      http.StatusUnprocessableEntity,
	billing.CodeInvalidQuantity:     http.StatusUnprocessableEntity,
	billing.CodeValidation:          http.StatusUnprocessableEntity,
	billing.CodeOutOfRange:          http.StatusUnprocessableEntity,
	billing.CodeSpendLimitExceeded:  http.StatusTooManyRequests,
	billing.CodeAccountFrozen:       http.StatusForbidden,
	billing.CodeRateLimited:         http.StatusTooManyRequests,
	billing.CodeTooManyStreams:      http.StatusTooManyRequests,
	billing.CodeStorageUnavailable:  http.StatusServiceUnavailable,
	billing.CodeUnavailable:         http.StatusServiceUnavailable,
	billing.CodeInternal:            http.StatusInternalServerError,
	codeMethodNotAllowed:            http.StatusMethodNotAllowed,
	billing.CodeCardDeclined:        http.StatusPaymentRequired,
	billing.CodeNoPaymentMethod:     http.StatusUnprocessableEntity,
	billing.CodeRefundWindowClosed:  http.StatusUnprocessableEntity,
	billing.CodeNothingToRefund:     http.StatusUnprocessableEntity,
	billing.CodePaymentProvider:     http.StatusBadGateway,
	billing.CodeLinkUsed:            http.StatusGone,
	billing.CodeLinkExpired:         http.StatusGone,
	billing.CodeInvalidWebhookURL:   http.StatusUnprocessableEntity,
	billing.CodeUnknownEventType:    http.StatusUnprocessableEntity,
	billing.CodeEmbedTokenInvalid:   http.StatusUnauthorized,
	billing.CodeEmbedTokenExpired:   http.StatusUnauthorized,
	billing.CodeEmbedTokenRevoked:   http.StatusUnauthorized,
	billing.CodeEmbedWrongCustomer:  http.StatusForbidden,
	billing.CodeEmbedWrongOrigin:    http.StatusForbidden,
	billing.CodeOriginNotAllowed:    http.StatusForbidden,
}

const codeMethodNotAllowed = "method_not_allowed"

// Status returns the HTTP status for err.
func Status(err error) int {
	if s, ok := statusOf[billing.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorBody is the one JSON shape of every API error:
// {"error": {"type": "...", "message": "...", ...details}}.
func errorBody(err error) map[string]any {
	e := map[string]any{"type": billing.ErrorCode(err), "message": billing.ErrorMessage(err)}
	var be *billing.Error
	if errors.As(err, &be) {
		for k, v := range be.Details {
			if k != "type" && k != "message" {
				e[k] = v
			}
		}
	}
	return map[string]any{"error": e}
}

// asDomainError turns Echo's own errors (no route, wrong method, body too
// large) into billing errors, so everything leaves through one shape.
func asDomainError(err error) error {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return billing.Errorf(billing.CodeRequestTooLarge, "The request body is larger than %d bytes.", mbe.Limit)
		}
		return err
	}
	switch he.Code {
	case http.StatusNotFound:
		return billing.Errorf(billing.CodeNotFound, "No such endpoint. See GET /api/v1/openapi.json for the API.")
	case http.StatusMethodNotAllowed:
		return billing.Errorf(codeMethodNotAllowed, "This endpoint does not take that method.")
	case http.StatusRequestEntityTooLarge:
		return billing.Errorf(billing.CodeRequestTooLarge, "The request body is too large.")
	case http.StatusUnauthorized:
		return billing.Errorf(billing.CodeUnauthorized, "Authentication required.")
	case http.StatusForbidden:
		// Echo's CSRF middleware refuses cross-site form posts this way.
		return billing.Errorf(billing.CodeForbidden, "This request came from another site and was refused. Reload the page and try again.")
	case http.StatusServiceUnavailable:
		return billing.Errorf(billing.CodeUnavailable, "Unavailable; retry shortly.")
	case http.StatusBadRequest:
		return billing.Errorf(billing.CodeInvalidRequest, "Bad request.")
	}
	if he.Code >= 500 {
		return err
	}
	return billing.Errorf(billing.CodeInvalidRequest, "%v", he.Message)
}

// errorHandler is Echo's one HTTPErrorHandler: it maps the error to a
// status and answers JSON. Only internal errors are logged (with the request
// id), and their details never reach the client.
func errorHandler(log *slog.Logger, page func(c echo.Context, status int, err error) error) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		err = asDomainError(err)
		status := Status(err)
		switch billing.ErrorCode(err) {
		case billing.CodeInternal:
			log.Error("internal error", "err", err, "method", c.Request().Method, "path", c.Path(),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		case billing.CodeStorageUnavailable:
			log.Warn("storage unavailable", "err", err, "method", c.Request().Method, "path", c.Path(),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		}
		if be := (*billing.Error)(nil); errors.As(err, &be) {
			if ra, ok := be.Details["retry_after"]; ok {
				c.Response().Header().Set("Retry-After", toString(ra))
			}
		}
		var werr error
		if page != nil && !isAPI(c) {
			werr = page(c, status, err)
		} else if c.Request().Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = writeJSON(c, status, errorBody(err))
		}
		if werr != nil {
			log.Error("writing error response", "err", werr)
		}
	}
}

func isAPI(c echo.Context) bool {
	p := c.Request().URL.Path
	// The event stream has no page to show an error on: it answers JSON.
	return strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/webhooks/") || p == "/healthz" || p == "/readyz" || p == "/metrics" ||
		p == "/portal/events"
}
