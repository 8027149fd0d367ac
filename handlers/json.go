package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// MaxBody is the largest request body Tally reads (1 MiB); larger is a 413.
const MaxBody = 1 << 20

// limitBody caps every request body, so no handler can be made to read more.
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > MaxBody {
			return billing.Errorf(billing.CodeRequestTooLarge, "The request body is larger than %d bytes.", MaxBody)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxBody)
		return next(c)
	}
}

// DecodeJSON reads one JSON object from body into v, strictly: unknown
// fields, trailing data and numbers with more than three decimals are
// rejected with invalid_request; a body over the limit with request_too_large.
func DecodeJSON(body io.Reader, v any) error {
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return billing.Errorf(billing.CodeRequestTooLarge, "The request body is larger than %d bytes.", mbe.Limit)
		}
		return billing.Errorf(billing.CodeInvalidRequest, "Could not read the request body.")
	}
	return decodeBytes(data, v)
}

func decodeBytes(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return billing.Errorf(billing.CodeInvalidRequest, "The request body is empty; send a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON: unexpected data after the object.")
	}
	return nil
}

func jsonError(err error) error {
	var be *billing.Error
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &be):
		return be
	case errors.As(err, &syn):
		return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON at byte %d: %s.", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return billing.Errorf(billing.CodeInvalidRequest, "The request body must be a JSON object.")
		}
		return billing.Errorf(billing.CodeInvalidRequest, "%s must be %s, not %s.", field, jsonKind(typ.Type.Kind().String()), typ.Value).With("param", field)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON: the body ends too early.")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f, _ = strconv.Unquote(f)
		return billing.Errorf(billing.CodeInvalidRequest, "Unknown field %q.", f).With("param", f)
	}
	return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON: %s.", strings.TrimPrefix(msg, "json: "))
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	}
	return "of another type"
}

func toString(v any) string { return fmt.Sprint(v) }
