package billing

import "testing"

// A monthly amount ceiling below one refill's price would make the runner
// skip every refill (RefillAmountCap): Validate refuses it, beside the
// ceiling, with the price and the ceiling for the message.
func TestRefillSettingsCeilingBelowOneRefill(t *testing.T) {
	usd := func(a int64) Money { return Money{Amount: a, Currency: "usd"} }
	pb := &PriceBook{Currency: "usd", Packs: []CreditPack{
		{ID: "starter", Credits: CreditsOf(1000), Price: usd(10_00)},
		{ID: "scale", Credits: CreditsOf(12000), Price: usd(100_00)},
	}}
	pol := DefaultPaymentPolicy
	ptr := func(a int64) *int64 { return &a }
	for _, tt := range []struct {
		name      string
		set       RefillSettings
		wantPrice int64 // 0: accepted
	}{
		{"pack above the ceiling", RefillSettings{Threshold: CreditsOf(100), Mode: RefillPack, PackID: "starter", MaxAmountPerMonth: ptr(5_00)}, 10_00},
		{"pack equal to the ceiling", RefillSettings{Threshold: CreditsOf(100), Mode: RefillPack, PackID: "starter", MaxAmountPerMonth: ptr(10_00)}, 0},
		{"no ceiling", RefillSettings{Threshold: CreditsOf(100), Mode: RefillPack, PackID: "scale"}, 0},
		// 2,000 − 500 = 1,500 credits at the base rate ($10 a 1,000): $15.00.
		{"target above the ceiling", RefillSettings{Threshold: CreditsOf(500), Mode: RefillTarget, Target: CreditsOf(2000), MaxAmountPerMonth: ptr(14_99)}, 15_00},
		{"target within the ceiling", RefillSettings{Threshold: CreditsOf(500), Mode: RefillTarget, Target: CreditsOf(2000), MaxAmountPerMonth: ptr(15_00)}, 0},
		// A small difference still costs the custom minimum ($5.00).
		{"target at the custom minimum", RefillSettings{Threshold: CreditsOf(500), Mode: RefillTarget, Target: CreditsOf(600), MaxAmountPerMonth: ptr(4_00)}, 5_00},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.set.Validate(pb, pol)
			if tt.wantPrice == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Code != CodeValidation || e.Details["param"] != "max_amount_per_month" {
				t.Fatalf("Validate = %v, want validation_failed on max_amount_per_month", err)
			}
			if p, _ := e.Details["refill_price"].(Money); p != usd(tt.wantPrice) {
				t.Errorf("refill_price %v, want %d", e.Details["refill_price"], tt.wantPrice)
			}
			if c, _ := e.Details["ceiling"].(Money); c != usd(*tt.set.MaxAmountPerMonth) {
				t.Errorf("ceiling %v", e.Details["ceiling"])
			}
		})
	}
}
