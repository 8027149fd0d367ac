package billing

import "testing"

func TestLowBalance(t *testing.T) {
	own := CreditsOf(500)
	for _, tc := range []struct {
		name                    string
		set                     CustomerSettings
		last, available, perDay Credits
		want                    bool
	}{
		{"never topped up, runs out today", CustomerSettings{}, 0, CreditsOf(43), CreditsOf(90), true},
		{"never topped up, lasts a week", CustomerSettings{}, 0, CreditsOf(700), CreditsOf(100), false},
		{"never topped up, no usage", CustomerSettings{}, 0, CreditsOf(1), 0, false},
		{"just under three days", CustomerSettings{}, 0, CreditsOf(299), CreditsOf(100), true},
		{"exactly three days", CustomerSettings{}, 0, CreditsOf(300), CreditsOf(100), false},
		{"under 10% of the last top-up", CustomerSettings{}, CreditsOf(12000), CreditsOf(1000), CreditsOf(10), true},
		{"above 10%, slow usage", CustomerSettings{}, CreditsOf(12000), CreditsOf(1300), CreditsOf(10), false},
		{"own threshold decides alone: above it", CustomerSettings{LowBalanceThreshold: &own}, 0, CreditsOf(501), CreditsOf(1000), false},
		{"own threshold decides alone: at it", CustomerSettings{LowBalanceThreshold: &own}, 0, CreditsOf(500), 0, true},
		{"nothing left is depleted, not low", CustomerSettings{}, CreditsOf(1000), 0, CreditsOf(10), false},
	} {
		if got := LowBalance(tc.set, tc.last, tc.available, tc.perDay); got != tc.want {
			t.Errorf("%s: LowBalance = %v, want %v", tc.name, got, tc.want)
		}
	}
}
