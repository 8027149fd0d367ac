package billing

import (
	"errors"
	"fmt"
)

// Error codes. They are part of the public API (the JSON error "type") and
// never change meaning once published. HTTP status mapping lives in handlers.
const (
	CodeInvalidRequest      = "invalid_request"      // malformed JSON, wrong types, too many decimals (400)
	CodeUnauthorized        = "unauthorized"         // missing, unknown or revoked API key (401)
	CodeForbidden           = "forbidden"            // the key's scope does not allow this (403)
	CodeNotFound            = "not_found"            // no such route or object (404)
	CodeCustomerNotFound    = "customer_not_found"   // no customer with that id or external_id (404)
	CodeHoldNotFound        = "hold_not_found"       // no such hold (404)
	CodeIdempotencyConflict = "idempotency_conflict" // key reused with a different request (409)
	CodeHoldNotActive       = "hold_not_active"      // hold already captured, released or expired (409)
	CodeConflict            = "conflict"             // the object changed underneath the request (409)
	CodeInsufficientCredits = "insufficient_credits" // not enough available credits (402)
	CodeRequestTooLarge     = "request_too_large"    // body over the limit (413)
	CodeUnknownFeature      = "unknown_feature"      // feature not in the current price book (422)
	CodeInvalidQuantity     = "invalid_quantity"     // zero or negative quantity (422)
	CodeValidation          = "validation_failed"    // a field is out of range or missing (422)
	CodeOutOfRange          = "out_of_range"         // a sum would pass what a wallet may hold (422)
	CodeSpendLimitExceeded  = "spend_limit_exceeded" // a daily or monthly cap would be passed (429)
	CodeRateLimited         = "rate_limited"         // the API key's request rate, or the failed authentications of an address, exceeded (429)
	CodeTooManyStreams      = "too_many_streams"     // a session, or the server, has as many live balance streams open as allowed (429)
	CodeStorageUnavailable  = "storage_unavailable"  // database read-only, disk full or locked (503)
	CodeUnavailable         = "unavailable"          // shutting down (503)
	CodeInternal            = "internal"             // a bug; details are logged, not returned (500)
)

// Error is the one error type that crosses layers. Message is safe to show to
// API clients; Details carries machine-readable fields (balance, required...).
type Error struct {
	Code    string
	Message string
	Details map[string]any
	// Cause is the underlying failure, for logs only: never sent to clients.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Message + " (" + e.Cause.Error() + ")"
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// With returns a copy of e with one more detail field.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Details = make(map[string]any, len(e.Details)+1)
	for k, v := range e.Details {
		c.Details[k] = v
	}
	c.Details[key] = value
	return &c
}

// ErrorCode returns the code of err, or CodeInternal when err is not an
// *Error (any unexpected error is a bug until proven otherwise).
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred."
}
