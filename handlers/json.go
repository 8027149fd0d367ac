package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// MaxBody is the largest request body Tally reads (1 MiB); larger is a 413.
const MaxBody = 1 << 20

// MaxUpload is the largest file the admin console's imports take (16 MiB):
// LiteLLM's model_prices_and_context_window.json alone is over 1 MiB.
const MaxUpload = 16 << 20

// uploadPrefix is where the console's file imports live; only there may a
// body be larger than MaxBody. The body is read only by the import
// handlers, after the admin session and CSRF checks.
const uploadPrefix = "/admin/price-book/draft/import"

// limitBody caps every request body, so no handler can be made to read more.
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		limit := int64(MaxBody)
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, uploadPrefix) {
			limit = MaxUpload
		}
		if r.ContentLength > limit {
			return billing.Errorf(billing.CodeRequestTooLarge, "The request body is larger than %d bytes.", limit)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		return next(c)
	}
}

// DecodeJSON reads one JSON object from body into v, strictly, as
// docs/api.md promises: a duplicate name, a name that matches a field only
// when case is ignored ("QUANTITY"), an unknown field, a value of the wrong
// type, trailing data, invalid UTF-8 and numbers with more than three
// decimals are all rejected with invalid_request naming the field (param);
// a body over the limit with request_too_large.
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

// decodeOptions are encoding/json/v2's semantics (go-json-experiment):
// duplicate names are an error and names match case-sensitively (v1 let the
// last duplicate win and matched "Quantity" to quantity, so one body could
// mean two things), plus unknown names rejected. They are spelled out so a
// change of the library's defaults cannot loosen them.
var decodeOptions = json.JoinOptions(
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
	json.MatchCaseInsensitiveNames(false),
	json.RejectUnknownMembers(true),
)

// keyedOptions add emptyKey. It doubles the cost of decoding, so it runs
// only when a request decoded without a key names "idempotency_key"
// somewhere (an empty key, or a metadata tag of that name).
var keyedOptions = json.JoinOptions(decodeOptions, json.WithUnmarshalers(json.UnmarshalFromFunc(emptyKey)))

var keyName = []byte(`"idempotency_key"`)

// keyed is a request with an idempotency key.
type keyed interface{ Key() string }

// emptyKey refuses "idempotency_key": "", in a request or a batch's event.
// Read as no key, it made a client whose key variable was empty lose its
// retries' safety without a word.
func emptyKey(dec *jsontext.Decoder, v *string) error {
	if dec.PeekKind() != '"' || dec.StackPointer().LastToken() != "idempotency_key" {
		return json.SkipFunc
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.String() == "" {
		return errEmptyKey()
	}
	*v = tok.String()
	return nil
}

func errEmptyKey() error {
	return billing.Errorf(billing.CodeInvalidRequest,
		"idempotency_key is empty: send a key of 1 to 255 characters (a UUID, for example), or leave it out for no key.").
		With("param", "idempotency_key")
}

func decodeBytes(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return billing.Errorf(billing.CodeInvalidRequest, "The request body is empty; send a JSON object.")
	}
	if err := json.Unmarshal(data, v, decodeOptions); err != nil {
		return jsonError(err, data)
	}
	if k, ok := v.(keyed); ok && k.Key() == "" && bytes.Contains(data, keyName) {
		if err := json.Unmarshal(data, v, keyedOptions); err != nil {
			return jsonError(err, data)
		}
	}
	return nil
}

// jsonError turns a decoding error into an invalid_request that says what
// is wrong and, when a field is at fault, names it (message and param).
func jsonError(err error, data []byte) error {
	var be *billing.Error
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &be):
		// A type's own UnmarshalJSON (credits, quantities) said why.
		if errors.As(err, &sem) && be.Details["param"] == nil {
			if field := fieldPath(sem.JSONPointer); field != "" {
				return be.With("param", field)
			}
		}
		return be
	case errors.As(err, &syn):
		field := fieldPath(syn.JSONPointer)
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return billing.Errorf(billing.CodeInvalidRequest, "Duplicate field %q: each field may appear only once.", field).With("param", field)
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON: the body ends too early.")
		case strings.Contains(syn.Err.Error(), "after top-level value"):
			return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON: unexpected data after the object.")
		}
		return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON at byte %d: %s.", syn.ByteOffset, syn.Err)
	case errors.As(err, &sem):
		field := fieldPath(sem.JSONPointer)
		if errors.Is(sem.Err, json.ErrUnknownName) {
			return billing.Errorf(billing.CodeInvalidRequest, "Unknown field %q.", field).With("param", field)
		}
		if field == "" {
			return billing.Errorf(billing.CodeInvalidRequest, "The request body must be a JSON object.")
		}
		return typeError(field, sem, data)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON: the body ends too early.")
	}
	return billing.Errorf(billing.CodeInvalidRequest, "Malformed JSON: %s.", strings.TrimPrefix(err.Error(), "json: "))
}

// typeError says what a field must be and what it got: "ttl_seconds must be
// a whole number, not 1.5".
func typeError(field string, sem *json.SemanticError, data []byte) error {
	want := "of another type"
	t := sem.GoType
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil {
		want = jsonKind(t)
	}
	got := ""
	switch sem.JSONKind {
	case '"', '0':
		got = string(sem.JSONValue)
		if got == "" && sem.ByteOffset >= 0 && sem.ByteOffset < int64(len(data)) {
			// The value the error is about starts at ByteOffset.
			if v, err := jsontext.NewDecoder(bytes.NewReader(data[sem.ByteOffset:])).ReadValue(); err == nil {
				got = string(v)
			}
		}
		if len(got) > 40 {
			got = got[:37] + "..."
		}
	case 't':
		got = "true"
	case 'f':
		got = "false"
	case 'n':
		got = "null"
	case '{':
		got = "an object"
	case '[':
		got = "an array"
	}
	if errors.Is(sem.Err, strconv.ErrRange) && sem.JSONKind == '0' {
		return billing.Errorf(billing.CodeInvalidRequest, "%s is out of range: %s.", field, got).With("param", field)
	}
	if got == "" {
		return billing.Errorf(billing.CodeInvalidRequest, "%s must be %s.", field, want).With("param", field)
	}
	return billing.Errorf(billing.CodeInvalidRequest, "%s must be %s, not %s.", field, want, got).With("param", field)
}

var timeType = reflect.TypeFor[time.Time]()

func jsonKind(t reflect.Type) string {
	if t == timeType {
		return "a time in RFC 3339 format, such as 2026-01-31T12:00:00Z"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "of another type"
}

// fieldPath writes a JSON pointer as the field it names: "/quantity" is
// quantity, "/features/1/credits" is features[1].credits.
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.ParseUint(tok, 10, 64); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

func toString(v any) string { return fmt.Sprint(v) }
