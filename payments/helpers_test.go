package payments

import (
	"errors"
	"testing"

	"github.com/tally-billing/tally/billing"
)

// wantCode fails unless err is a *billing.Error with code.
func wantCode(t *testing.T, err error, code string) *billing.Error {
	t.Helper()
	var be *billing.Error
	if !errors.As(err, &be) {
		t.Fatalf("error = %v (%T), want a *billing.Error with code %s", err, err, code)
	}
	if be.Code != code {
		t.Fatalf("error code = %s (%v), want %s", be.Code, err, code)
	}
	return be
}

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestWithQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://t.example/cards", "https://t.example/cards?session_id=X"},
		{"https://t.example/cards?from=portal", "https://t.example/cards?from=portal&session_id=X"},
		{"https://t.example/cards?", "https://t.example/cards?session_id=X"},
		{"https://t.example/cards#done", "https://t.example/cards?session_id=X#done"},
	}
	for _, tt := range tests {
		if got := withQuery(tt.in, "session_id", "X"); got != tt.want {
			t.Errorf("withQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCustomerMessage(t *testing.T) {
	tests := []struct {
		name, typ, code, decline, msg, want string
	}{
		{"card error keeps Stripe's message", "card_error", "card_declined", "insufficient_funds", "Your card has insufficient funds.", "Your card has insufficient funds."},
		{"decline code without message", "", "card_declined", "expired_card", "", "Your card has expired."},
		{"stolen card is a plain decline", "", "card_declined", "stolen_card", "", msgDeclined},
		{"code without message", "", "authentication_required", "", "", msgAuthRequired},
		{"technical message of another type is not shown", "invalid_request_error", "parameter_missing", "", "Missing required param: amount.", msgNotCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := customerMessage(tt.typ, tt.code, tt.decline, tt.msg); got != tt.want {
				t.Errorf("customerMessage = %q, want %q", got, tt.want)
			}
		})
	}
}
