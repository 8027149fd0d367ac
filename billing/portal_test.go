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

func TestSuggestPack(t *testing.T) {
	packs := []CreditPack{
		{ID: "growth", Credits: CreditsOf(5500)},
		{ID: "starter", Credits: CreditsOf(1000)},
		{ID: "scale", Credits: CreditsOf(12000)},
	}
	for _, tc := range []struct {
		name      string
		shortfall Credits
		last      string
		want      string
	}{
		{"smallest that covers", CreditsOf(8), "", "starter"},
		{"smallest that covers a larger need", CreditsOf(1001), "", "growth"},
		{"exactly a pack", CreditsOf(5500), "", "growth"},
		{"the one bought last, when it covers", CreditsOf(8), "scale", "scale"},
		{"not the one bought last when it falls short", CreditsOf(6000), "growth", "scale"},
		{"nothing covers: the largest", CreditsOf(20000), "", "scale"},
		{"need unknown: the smallest", 0, "", "starter"},
		{"need unknown: the one bought last", 0, "growth", "growth"},
		{"a pack no longer sold", CreditsOf(8), "gone", "starter"},
	} {
		got, ok := SuggestPack(packs, tc.shortfall, tc.last)
		if !ok || got.ID != tc.want {
			t.Errorf("%s: SuggestPack = %q, want %q", tc.name, got.ID, tc.want)
		}
	}
	if _, ok := SuggestPack(nil, 0, ""); ok {
		t.Error("a suggestion without packs")
	}
}
