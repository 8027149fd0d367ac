package payments

import (
	"testing"

	"github.com/tally-billing/tally/billing"
)

func TestGroupCredits(t *testing.T) {
	tests := []struct {
		in   billing.Credits
		want string
	}{
		{0, "0"},
		{billing.CreditsOf(999), "999"},
		{billing.CreditsOf(1000), "1,000"},
		{billing.CreditsOf(12000), "12,000"},
		{billing.CreditsOf(1234567) + 500, "1,234,567.5"},
		{-billing.CreditsOf(1000), "-1,000"},
	}
	for _, tt := range tests {
		if got := groupCredits(tt.in); got != tt.want {
			t.Errorf("groupCredits(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
