package billing

import (
	"math"
	"math/big"
	"strings"
	"testing"
)

// demoPriceBook is a copy of the price book cmd/tally's demo publishes
// (DemoPriceBook lives in package main, which tests here cannot import).
func demoPriceBook() PriceBook {
	return PriceBook{
		Currency: "usd",
		Features: []Feature{
			{Key: "chat.request", Name: "Chat request", Unit: "request", Credits: CreditsOf(1), UnitSize: 1},
			{Key: "image.generate", Name: "Image generation", Unit: "image", Credits: CreditsOf(5), UnitSize: 1},
			{Key: "document.analyze", Name: "Document analysis", Unit: "document", Credits: CreditsOf(10), UnitSize: 1},
			{Key: "gpt-4o.tokens", Name: "GPT-4o tokens", Unit: "token", Credits: 2500, UnitSize: 1000},
			{Key: "audio.transcribe", Name: "Audio transcription", Unit: "second", Credits: 20, UnitSize: 1},
		},
		Packs: []CreditPack{
			{ID: "pack_1000", Name: "Starter", Credits: CreditsOf(1000), Price: Money{Amount: 10_00, Currency: "usd"}},
			{ID: "pack_5500", Name: "Growth", Credits: CreditsOf(5500), Price: Money{Amount: 50_00, Currency: "usd"}},
			{ID: "pack_12000", Name: "Scale", Credits: CreditsOf(12000), Price: Money{Amount: 100_00, Currency: "usd"}},
		},
	}
}

func TestCharge(t *testing.T) {
	pb := demoPriceBook()
	feature := func(key string) Feature {
		f, ok := pb.Feature(key)
		if !ok {
			t.Fatalf("demo price book has no %s", key)
		}
		return f
	}
	for _, tc := range []struct {
		name     string
		feature  Feature
		quantity string
		want     string
	}{
		{"chat request", feature("chat.request"), "1", "1"},
		{"three chat requests", feature("chat.request"), "3", "3"},
		{"image", feature("image.generate"), "1", "5"},
		{"document", feature("document.analyze"), "1", "10"},
		{"one token rounds down", feature("gpt-4o.tokens"), "1", "0.002"},
		{"thousand tokens", feature("gpt-4o.tokens"), "1000", "2.5"},
		{"1234 tokens", feature("gpt-4o.tokens"), "1234", "3.085"},
		{"999 tokens", feature("gpt-4o.tokens"), "999", "2.497"},
		{"a million tokens", feature("gpt-4o.tokens"), "1000000", "2500"},
		{"a second and a half", feature("audio.transcribe"), "1.5", "0.03"},
		{"a thousandth of a second rounds to zero", feature("audio.transcribe"), "0.001", "0"},
		{"free feature", Feature{Key: "free", Credits: 0, UnitSize: 1}, "1000", "0"},
		{"unit size zero means one", Feature{Key: "x", Credits: 1500}, "2", "3"},
		{"largest charge", Feature{Key: "x", Credits: MaxCredits, UnitSize: 1}, "1", "1000000000000"},
		{"largest quantity", Feature{Key: "x", Credits: 1, UnitSize: 1000}, "1000000000000", "1000000"},
		{"largest unit size", Feature{Key: "x", Credits: MaxCredits, UnitSize: 1_000_000_000}, "1", "1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Charge(tc.feature, mustParseQuantity(t, tc.quantity))
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if want := mustParseCredits(t, tc.want); got != want {
				t.Fatalf("Charge(%s, %s) = %s, want %s", tc.feature.Key, tc.quantity, got, want)
			}
		})
	}
}

func TestChargeRefuses(t *testing.T) {
	chat := Feature{Key: "chat.request", Credits: CreditsOf(1), UnitSize: 1}
	for _, tc := range []struct {
		name    string
		feature Feature
		q       Quantity
		code    string
	}{
		{"zero quantity", chat, 0, CodeInvalidQuantity},
		{"negative quantity", chat, -1, CodeInvalidQuantity},
		{"minimum int64 quantity", chat, math.MinInt64, CodeInvalidQuantity},
		{"quantity beyond the maximum", chat, MaxQuantity + 1, CodeInvalidQuantity},
		{"charge beyond MaxCredits", Feature{Key: "x", Credits: MaxCredits, UnitSize: 1}, QuantityOf(2), CodeInvalidQuantity},
		{"a thousandth of a unit beyond MaxCredits", Feature{Key: "x", Credits: MaxCredits, UnitSize: 1}, 1001, CodeInvalidQuantity},
		// 9,999,900,001 credits x 100.001 units = 1e12 credits + 0.001 exactly.
		{"exactly one millicredit beyond MaxCredits", Feature{Key: "x", Credits: 9_999_900_001_000, UnitSize: 1}, 100_001, CodeInvalidQuantity},
		{"128-bit product overflows 64-bit quotient", Feature{Key: "x", Credits: MaxCredits, UnitSize: 1}, MaxQuantity, CodeInvalidQuantity},
		{"price beyond int64 range of products", Feature{Key: "x", Credits: math.MaxInt64, UnitSize: 1}, MaxQuantity, CodeInvalidQuantity},
		{"negative price", Feature{Key: "x", Credits: -1, UnitSize: 1}, QuantityOf(1), CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Charge(tc.feature, tc.q)
			wantCode(t, err, tc.code)
			if got != 0 {
				t.Fatalf("Charge returned %s with an error", got)
			}
		})
	}
}

// TestChargeHugeUnitSize prices a feature whose unit size times 1,000 would
// not fit in 64 bits: Charge refuses unit sizes beyond what Validate allows
// rather than wrap its divisor (found by FuzzCharge: UnitSize 2^61+1 used to
// divide by 1,000 and charge 1 credit instead of 0).
func TestChargeHugeUnitSize(t *testing.T) {
	for _, unit := range []int64{1<<61 + 1, maxUnitSize + 1, -5} {
		f := Feature{Key: "x", Credits: CreditsOf(1), UnitSize: unit}
		got, err := Charge(f, QuantityOf(1))
		if err == nil || got != 0 {
			t.Fatalf("Charge(unit size %d) = %s, %v, want a refusal", unit, got, err)
		}
	}
}

// FuzzCharge checks Charge against exact big-integer arithmetic: for any
// price, unit size and quantity it never panics, never goes negative, rounds
// down exactly (result*unit*1000 <= price*q < (result+1)*unit*1000), refuses
// only charges beyond MaxCredits, and never charges less for more.
func FuzzCharge(f *testing.F) {
	f.Add(int64(1000), int64(1), int64(1000))
	f.Add(int64(2500), int64(1000), int64(1000))
	f.Add(int64(2500), int64(1000), int64(1_234_000))
	f.Add(int64(20), int64(1), int64(1500))
	f.Add(int64(0), int64(1), int64(1))
	f.Add(int64(MaxCredits), int64(1), int64(MaxQuantity))
	f.Add(int64(MaxCredits), int64(1_000_000_000), int64(1))
	f.Add(int64(9_999_900_001_000), int64(1), int64(100_001))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(MaxQuantity))
	f.Add(int64(1), int64(0), int64(-1))
	f.Add(int64(-5), int64(-5), int64(5))
	f.Fuzz(func(t *testing.T, price, unit, q int64) {
		feat := Feature{Key: "f", Credits: Credits(price), UnitSize: unit}
		got, err := Charge(feat, Quantity(q))

		switch {
		case q <= 0 || Quantity(q) > MaxQuantity:
			if ErrorCode(err) != CodeInvalidQuantity {
				t.Fatalf("Charge(q=%d) = %d, %v, want invalid_quantity", q, got, err)
			}
			return
		case price < 0:
			if err == nil {
				t.Fatalf("Charge(price=%d) = %d, want an error", price, got)
			}
			return
		case unit < 0:
			// Validate refuses these; Charge must only not panic or go negative.
			if err == nil && got < 0 {
				t.Fatalf("Charge(unit=%d) = %d", unit, got)
			}
			return
		}
		eff := unit
		if eff == 0 {
			eff = 1 // Validate's default
		}
		if eff < 0 || eff > maxUnitSize {
			if err == nil {
				t.Fatalf("Charge(unit=%d) accepted an out-of-range unit size", unit)
			}
			return
		}

		num := new(big.Int).Mul(big.NewInt(price), big.NewInt(q))
		den := new(big.Int).Mul(big.NewInt(eff), big.NewInt(Milli))
		exact := new(big.Int).Quo(num, den)
		if exact.Cmp(big.NewInt(int64(MaxCredits))) > 0 {
			if ErrorCode(err) != CodeInvalidQuantity {
				t.Fatalf("Charge(%d per %d, q=%d) = %d, %v; exact %s is beyond MaxCredits, want invalid_quantity", price, eff, q, got, err, exact)
			}
			return
		}
		if err != nil {
			t.Fatalf("Charge(%d per %d, q=%d) refused a charge of %s: %v", price, eff, q, exact, err)
		}
		if got < 0 {
			t.Fatalf("Charge(%d per %d, q=%d) = %d < 0", price, eff, q, got)
		}
		lo := new(big.Int).Mul(big.NewInt(int64(got)), den)
		hi := new(big.Int).Mul(big.NewInt(int64(got)+1), den)
		if lo.Cmp(num) > 0 || num.Cmp(hi) >= 0 {
			t.Fatalf("Charge(%d per %d, q=%d) = %d, not the floor of %s/%s", price, eff, q, got, num, den)
		}

		if Quantity(q) < MaxQuantity {
			next, err := Charge(feat, Quantity(q+1))
			if err == nil && next < got {
				t.Fatalf("Charge(q=%d) = %d but Charge(q=%d) = %d: more usage cost less", q, got, q+1, next)
			}
		}
		if q > 1 {
			prev, err := Charge(feat, Quantity(q-1))
			if err != nil || prev > got {
				t.Fatalf("Charge(q=%d) = %d but Charge(q=%d) = %d, %v", q, got, q-1, prev, err)
			}
		}
	})
}

func TestPriceBookValidate(t *testing.T) {
	t.Run("demo book passes", func(t *testing.T) {
		pb := demoPriceBook()
		if err := pb.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	})
	t.Run("fills defaults", func(t *testing.T) {
		pb := PriceBook{
			Currency: " USD ",
			Features: []Feature{{Key: "chat.request", Credits: CreditsOf(1)}},
			Packs:    []CreditPack{{ID: "pack_1", Credits: CreditsOf(100), Price: Money{Amount: 100}}},
		}
		if err := pb.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		f := pb.Features[0]
		if pb.Currency != "usd" || f.UnitSize != 1 || f.Name != "chat.request" || f.Unit != "unit" {
			t.Errorf("defaults not filled: currency %q, feature %+v", pb.Currency, f)
		}
		p := pb.Packs[0]
		if p.Price.Currency != "usd" || p.Name != "100 credits" {
			t.Errorf("pack defaults not filled: %+v", p)
		}
	})
	t.Run("empty currency means usd", func(t *testing.T) {
		pb := PriceBook{Features: []Feature{{Key: "a", Credits: 1}}}
		if err := pb.Validate(); err != nil || pb.Currency != "usd" {
			t.Fatalf("Validate = %v, currency %q", err, pb.Currency)
		}
	})
	t.Run("longest key passes", func(t *testing.T) {
		pb := PriceBook{Features: []Feature{{Key: strings.Repeat("a", 64), Credits: 1}}}
		if err := pb.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	})

	for _, tc := range []struct {
		name   string
		modify func(pb *PriceBook)
	}{
		{"no features", func(pb *PriceBook) { pb.Features = nil }},
		{"duplicate feature key", func(pb *PriceBook) { pb.Features = append(pb.Features, pb.Features[0]) }},
		{"duplicate pack id", func(pb *PriceBook) { pb.Packs = append(pb.Packs, pb.Packs[1]) }},
		{"empty key", func(pb *PriceBook) { pb.Features[0].Key = "" }},
		{"upper-case key", func(pb *PriceBook) { pb.Features[0].Key = "Chat.request" }},
		{"key with space", func(pb *PriceBook) { pb.Features[0].Key = "chat request" }},
		{"key starting with a dot", func(pb *PriceBook) { pb.Features[0].Key = ".chat" }},
		{"key of 65 characters", func(pb *PriceBook) { pb.Features[0].Key = strings.Repeat("a", 65) }},
		{"key with newline", func(pb *PriceBook) { pb.Features[0].Key = "chat\n" }},
		{"bad pack id", func(pb *PriceBook) { pb.Packs[0].ID = "Pack 1" }},
		{"negative credits", func(pb *PriceBook) { pb.Features[1].Credits = -1 }},
		{"credits beyond the maximum", func(pb *PriceBook) { pb.Features[1].Credits = MaxCredits + 1 }},
		{"negative unit size", func(pb *PriceBook) { pb.Features[3].UnitSize = -1000 }},
		{"unit size beyond a billion", func(pb *PriceBook) { pb.Features[3].UnitSize = 1_000_000_001 }},
		{"zero pack price", func(pb *PriceBook) { pb.Packs[0].Price.Amount = 0 }},
		{"negative pack price", func(pb *PriceBook) { pb.Packs[0].Price.Amount = -1000 }},
		{"pack price beyond the maximum", func(pb *PriceBook) { pb.Packs[0].Price.Amount = 100_000_000_01 }},
		{"zero pack credits", func(pb *PriceBook) { pb.Packs[0].Credits = 0 }},
		{"negative pack credits", func(pb *PriceBook) { pb.Packs[0].Credits = -1 }},
		{"two-letter currency", func(pb *PriceBook) { pb.Currency = "us" }},
		{"currency with a digit", func(pb *PriceBook) { pb.Currency = "us1" }},
		{"currency symbol", func(pb *PriceBook) { pb.Currency = "€" }},
		{"three letters that are no currency", func(pb *PriceBook) { pb.Currency = "xyz" }},
		{"four-letter currency", func(pb *PriceBook) { pb.Currency = "usdt" }},
		{"bad pack currency", func(pb *PriceBook) { pb.Packs[2].Price.Currency = "dollars" }},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			pb := demoPriceBook()
			tc.modify(&pb)
			wantCode(t, pb.Validate(), CodeValidation)
		})
	}
}

// A refused price book says what is wrong with the value it got: a price
// far too large is not "must be more than zero".
func TestPriceBookValidateMessages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(pb *PriceBook)
		want   string
	}{
		{"pack price of MaxInt64", func(pb *PriceBook) { pb.Packs[0].Price.Amount = math.MaxInt64 },
			"pack \"pack_1000\": price must be at most 10,000,000,000 in minor units (100,000,000.00 USD)"},
		{"pack price one above the maximum", func(pb *PriceBook) { pb.Packs[0].Price.Amount = 100_000_000_01 },
			"pack \"pack_1000\": price must be at most 10,000,000,000 in minor units (100,000,000.00 USD)"},
		{"zero pack price", func(pb *PriceBook) { pb.Packs[0].Price.Amount = 0 },
			"pack \"pack_1000\": price must be more than zero (in minor units: 1000 is $10.00)"},
		{"negative pack price", func(pb *PriceBook) { pb.Packs[0].Price.Amount = math.MinInt64 },
			"pack \"pack_1000\": price must be more than zero (in minor units: 1000 is $10.00)"},
		{"pack credits beyond the maximum", func(pb *PriceBook) { pb.Packs[0].Credits = MaxCredits + 1 },
			"pack \"pack_1000\": credits must be at most 1,000,000,000,000"},
		{"zero pack credits", func(pb *PriceBook) { pb.Packs[0].Credits = 0 },
			"pack \"pack_1000\": credits must be more than zero"},
		{"feature credits beyond the maximum", func(pb *PriceBook) { pb.Features[1].Credits = MaxCredits + 1 },
			"feature \"image.generate\": credits must be at most 1,000,000,000,000"},
		{"negative feature credits", func(pb *PriceBook) { pb.Features[1].Credits = -1 },
			"feature \"image.generate\": credits must be zero or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := demoPriceBook()
			tc.modify(&pb)
			err := pb.Validate()
			wantCode(t, err, CodeValidation)
			if got := ErrorMessage(err); got != tc.want {
				t.Fatalf("message %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPriceBookLookups(t *testing.T) {
	pb := demoPriceBook()
	if f, ok := pb.Feature("gpt-4o.tokens"); !ok || f.UnitSize != 1000 {
		t.Errorf("Feature(gpt-4o.tokens) = %+v, %v", f, ok)
	}
	if _, ok := pb.Feature("nope"); ok {
		t.Error("Feature(nope) found something")
	}
	if p, ok := pb.Pack("pack_5500"); !ok || p.Credits != CreditsOf(5500) {
		t.Errorf("Pack(pack_5500) = %+v, %v", p, ok)
	}
	var none *PriceBook
	if _, ok := none.Feature("chat.request"); ok {
		t.Error("nil price book has a feature")
	}
	if _, ok := none.Pack("pack_1000"); ok {
		t.Error("nil price book has a pack")
	}
}
