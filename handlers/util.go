package handlers

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

// list is the shape of every paginated answer.
type list[T any] struct {
	Object     string `json:"object"`
	Data       []T    `json:"data"`
	HasMore    bool   `json:"has_more"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func newList[T any](data []T, next string) list[T] {
	if data == nil {
		data = []T{}
	}
	return list[T]{Object: "list", Data: data, HasMore: next != "", NextCursor: next}
}

// idempotencyKey merges the Idempotency-Key header into the body's
// idempotency_key; both may be given only if they agree.
func idempotencyKey(c echo.Context, body *string) error {
	hs := c.Request().Header.Values("Idempotency-Key")
	switch {
	case len(hs) == 0:
		return nil
	case len(hs) > 1:
		return billing.Errorf(billing.CodeInvalidRequest, "Send one Idempotency-Key header, not %d.", len(hs)).With("param", "idempotency_key")
	case strings.TrimSpace(hs[0]) == "":
		return errEmptyKey()
	}
	h := hs[0]
	if *body != "" && *body != h {
		return billing.Errorf(billing.CodeInvalidRequest, "The Idempotency-Key header and the idempotency_key field differ.").With("param", "idempotency_key")
	}
	*body = h
	return nil
}

// created answers 201 with v, marking replays of an idempotent request.
func created(c echo.Context, replayed bool, v any) error {
	if replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return writeJSON(c, http.StatusCreated, v)
}

func queryLimit(c echo.Context) (int, error) {
	s := c.QueryParam("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100 {
		return 0, billing.Errorf(billing.CodeInvalidRequest, "limit must be a whole number from 1 to 100").With("param", "limit")
	}
	return n, nil
}

// queryTime parses a from/to parameter: RFC 3339 or a UTC date (YYYY-MM-DD).
func queryTime(c echo.Context, name string) (*time.Time, error) {
	s := c.QueryParam(name)
	if s == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return &t, nil
		}
	}
	return nil, billing.Errorf(billing.CodeInvalidRequest, "%s must be an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)", name).With("param", name)
}

// writeJSON answers v as JSON with a Content-Length (encoded first, not
// streamed), so clients and proxies always know the size of an answer.
func writeJSON(c echo.Context, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
	return c.JSONBlob(status, b)
}
