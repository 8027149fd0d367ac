package billing

import "testing"

func TestMinorUnits(t *testing.T) {
	for cur, want := range map[string]int{"usd": 2, "eur": 2, "jpy": 0, "krw": 0, "kwd": 3, "bhd": 3, "xyz": 2} {
		if got := MinorUnits(cur); got != want {
			t.Errorf("MinorUnits(%q) = %d, want %d", cur, got, want)
		}
	}
}
