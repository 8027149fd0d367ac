package billing

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorCode(t *testing.T) {
	e := Errorf(CodeNotFound, "no %s", "thing")
	for _, tc := range []struct {
		name    string
		err     error
		code    string
		message string
	}{
		{"billing error", e, CodeNotFound, "no thing"},
		{"wrapped billing error", fmt.Errorf("loading: %w", e), CodeNotFound, "no thing"},
		{"any other error is internal", errors.New("disk on fire"), CodeInternal, "An internal error occurred."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorCode(tc.err); got != tc.code {
				t.Errorf("ErrorCode = %q, want %q", got, tc.code)
			}
			if got := ErrorMessage(tc.err); got != tc.message {
				t.Errorf("ErrorMessage = %q, want %q", got, tc.message)
			}
		})
	}
	if got := e.Error(); got != "not_found: no thing" {
		t.Errorf("Error() = %q", got)
	}
}

func TestErrorWithCopies(t *testing.T) {
	base := Errorf(CodeValidation, "bad").With("param", "a")
	derived := base.With("param", "b").With("extra", 1)
	if base.Details["param"] != "a" || len(base.Details) != 1 {
		t.Fatalf("With changed the original: %v", base.Details)
	}
	if derived.Details["param"] != "b" || derived.Details["extra"] != 1 || derived.Code != CodeValidation {
		t.Fatalf("derived error %+v", derived)
	}
}
