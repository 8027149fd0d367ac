package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// POST /api/v1/holds reserves credits for a streaming call.
func (s *Server) createHold(c echo.Context) error {
	var req billing.HoldRequest
	if err := DecodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if err := idempotencyKey(c, &req.IdempotencyKey); err != nil {
		return err
	}
	req.APIKey = apiKey(c)
	h, err := s.ledger.CreateHold(c.Request().Context(), req)
	if err != nil {
		return s.offerTopUp(c.Request().Context(), req.Customer, err)
	}
	return created(c, h.Replayed, h)
}

func (s *Server) getHold(c echo.Context) error {
	h, err := s.ledger.FindHold(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, h)
}

// POST /api/v1/holds/:id/capture records the actual usage and releases the rest.
func (s *Server) captureHold(c echo.Context) error {
	var req billing.CaptureRequest
	if err := DecodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if err := idempotencyKey(c, &req.IdempotencyKey); err != nil {
		return err
	}
	h, err := s.ledger.CaptureHold(c.Request().Context(), c.Param("id"), req, apiKey(c))
	if err != nil {
		return err
	}
	if h.Debit != nil && !h.Replayed {
		s.metrics.debited(*h.Debit)
	}
	if h.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return writeJSON(c, http.StatusOK, h)
}

// POST /api/v1/holds/:id/release ends the hold without a charge.
func (s *Server) releaseHold(c echo.Context) error {
	h, err := s.ledger.ReleaseHold(c.Request().Context(), c.Param("id"), apiKey(c))
	if err != nil {
		return err
	}
	if h.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return writeJSON(c, http.StatusOK, h)
}
