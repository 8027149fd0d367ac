package forms

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
)

var (
	german = Locale{Decimal: ",", Group: "."}
	french = Locale{Decimal: ",", Group: "\u202f"}
)

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		decimals int
		loc      Locale
		want     int64
		kind     AmountKind // when refused
		refused  bool
	}{
		{name: "whole", in: "25", decimals: 2, want: 2500},
		{name: "two decimals", in: "25.50", decimals: 2, want: 2550},
		{name: "one decimal", in: "25.5", decimals: 2, want: 2550},
		{name: "grouped with decimals", in: "1,000.50", decimals: 2, want: 100050},
		{name: "grouped millions", in: "1,000,000", decimals: 3, want: 1_000_000_000},
		{name: "grouped by spaces", in: "1 000 000", decimals: 0, want: 1_000_000},
		{name: "grouped by a narrow no-break space", in: "12\u202f500", decimals: 0, want: 12500},
		{name: "grouped by apostrophes", in: "1'000.5", decimals: 3, want: 1_000_500},
		{name: "surrounding spaces", in: "  42 ", decimals: 0, want: 42},
		{name: "leading zeros", in: "0050", decimals: 3, want: 50_000},
		{name: "decimals only", in: ".5", decimals: 3, want: 500},
		{name: "trailing decimal point", in: "5.", decimals: 2, want: 500},
		{name: "zero", in: "0", decimals: 2, want: 0},
		{name: "millicredit", in: "0.001", decimals: 3, want: 1},
		{name: "English dot with three decimals is a decimal", in: "1.000", decimals: 3, want: 1000},
		{name: "European style in English is still clear", in: "1.000,50", decimals: 2, want: 100050},
		{name: "yen", in: "1,000", decimals: 0, want: 1000},
		{name: "dinars", in: "2.125", decimals: 3, want: 2125},

		{name: "German decimal comma", in: "1,5", decimals: 3, loc: german, want: 1500},
		{name: "German grouping", in: "1.000", decimals: 3, loc: german, want: 1_000_000},
		{name: "German grouping and decimals", in: "1.234,5", decimals: 3, loc: german, want: 1_234_500},
		{name: "English style in German is still clear", in: "1,000.50", decimals: 2, loc: german, want: 100050},
		{name: "French", in: "1 000,5", decimals: 3, loc: french, want: 1_000_500},
		{name: "French with a dot decimal", in: "1.5", decimals: 3, loc: french, want: 1500},

		{name: "comma decimal in English", in: "1,5", decimals: 3, refused: true, kind: Ambiguous},
		{name: "comma and two digits in English", in: "10,50", decimals: 2, refused: true, kind: Ambiguous},
		{name: "German grouping of two digits", in: "1.50", decimals: 2, loc: german, refused: true, kind: Ambiguous},
		{name: "French dot and three digits", in: "1.000", decimals: 3, loc: french, refused: true, kind: Ambiguous},
		{name: "long head before a group", in: "1000,000", decimals: 3, refused: true, kind: Ambiguous},
		{name: "exponent", in: "1e3", decimals: 2, refused: true, kind: NotANumber},
		{name: "hex", in: "0x10", decimals: 0, refused: true, kind: NotANumber},
		{name: "plus", in: "+5", decimals: 2, refused: true, kind: Sign},
		{name: "minus", in: "-1", decimals: 2, refused: true, kind: Negative},
		{name: "real minus", in: "−5", decimals: 2, refused: true, kind: Negative},
		{name: "minus zero", in: "-0", decimals: 2, refused: true, kind: Negative},
		{name: "spaces only", in: "  ", decimals: 2, refused: true, kind: Empty},
		{name: "empty", in: "", decimals: 2, refused: true, kind: Empty},
		{name: "words", in: "lots", decimals: 3, refused: true, kind: NotANumber},
		{name: "two decimal points", in: "1.2.3.4", decimals: 3, refused: true, kind: NotANumber},
		{name: "separators in a row", in: "1..5", decimals: 3, refused: true, kind: NotANumber},
		{name: "bad grouping", in: "1,00,000", decimals: 3, refused: true, kind: NotANumber},
		{name: "mixed grouping", in: "1,000 000", decimals: 3, refused: true, kind: NotANumber},
		{name: "a lone point", in: ".", decimals: 3, refused: true, kind: NotANumber},
		{name: "a leading comma in English", in: ",5", decimals: 3, refused: true, kind: NotANumber},
		{name: "a trailing comma in English", in: "5,", decimals: 3, refused: true, kind: NotANumber},
		{name: "a trailing space group", in: "5 ", decimals: 0, want: 5},
		{name: "cents of a yen", in: "10.5", decimals: 0, refused: true, kind: TooManyDecimals},
		{name: "three decimals of a dollar", in: "10.505", decimals: 2, refused: true, kind: TooManyDecimals},
		{name: "four decimals of a credit", in: "1.2345", decimals: 3, refused: true, kind: TooManyDecimals},
		{name: "too many digits", in: "99999999999999999999", decimals: 0, refused: true, kind: TooLarge},
		{name: "full-width digits", in: "１２", decimals: 0, refused: true, kind: NotANumber},
		{name: "a currency sign is not stripped here", in: "$5", decimals: 2, refused: true, kind: NotANumber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := tc.loc
			if loc.Decimal == "" {
				loc = English
			}
			got, err := ParseAmount(tc.in, tc.decimals, loc)
			if tc.refused {
				var ae *AmountError
				if !errors.As(err, &ae) {
					t.Fatalf("ParseAmount(%q) = %d, %v; want refused (%d)", tc.in, got, err, tc.kind)
				}
				if ae.Kind != tc.kind {
					t.Fatalf("ParseAmount(%q): %v (kind %d), want kind %d", tc.in, err, ae.Kind, tc.kind)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseAmount(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormErrorsAllAtOnce(t *testing.T) {
	f := New(url.Values{
		"threshold":   {"1,5"},
		"target":      {""},
		"cap":         {"-3"},
		"max_amount":  {"1e3"},
		"amount":      {"$1,000.50"},
		"refills":     {"2.5"},
		"yen":         {"¥1,200"},
		"fils":        {"12.3456"},
		"plus":        {"+5"},
		"blank":       {"   "},
		"ok_credits":  {"12.5"},
		"eur_trailed": {"25 €"},
	}, English)
	f.Credits("threshold", Opts{Required: "Enter a threshold."})
	f.Credits("target", Opts{Required: "Enter the balance to refill to."})
	f.Credits("cap", Opts{Negative: "A cap can't be negative."})
	f.Money("max_amount", "usd", Opts{})
	amt := f.Money("amount", "usd", Opts{Required: "Enter an amount."})
	f.Whole("refills", Opts{})
	yen := f.Money("yen", "jpy", Opts{})
	f.Money("fils", "kwd", Opts{})
	f.Credits("plus", Opts{})
	if blank := f.Credits("blank", Opts{}); blank != nil {
		t.Errorf("an optional field of spaces is %v, want nil (empty)", *blank)
	}
	ok := f.Credits("ok_credits", Opts{Required: "x"})
	eur := f.Money("eur_trailed", "eur", Opts{})
	want := map[string]string{
		"threshold":  `Type 1.5 or 15: we can't tell which "1,5" means.`,
		"target":     "Enter the balance to refill to.",
		"cap":        "A cap can't be negative.",
		"max_amount": "Enter an amount, such as 25.50.",
		"refills":    "Enter a whole number, such as 3.",
		"fils":       "Use at most three decimals, such as 25.500.",
		"plus":       "Type the number without a + sign, such as 1,000.",
	}
	for k, w := range want {
		if got := f.Errors[k]; got != w {
			t.Errorf("error of %s: %q, want %q", k, got, w)
		}
	}
	if len(f.Errors) != len(want) {
		t.Errorf("errors %v, want exactly %v", f.Errors, want)
	}
	if f.Valid() {
		t.Error("Valid() with errors")
	}
	if amt == nil || *amt != 100050 || yen == nil || *yen != 1200 || ok == nil || *ok != billing.Credits(12500) || eur == nil || *eur != 2500 {
		t.Errorf("amount %v yen %v credits %v eur %v", amt, yen, ok, eur)
	}
	// The first error of a field stays.
	f.Fail("threshold", "second")
	if !strings.HasPrefix(f.Errors["threshold"], "Type 1.5") {
		t.Errorf("a later error replaced the first: %q", f.Errors["threshold"])
	}
}

func TestFormMessagesInTheReadersWay(t *testing.T) {
	f := New(url.Values{"a": {"1.50"}, "b": {"x"}, "c": {"2000000000000"}}, german)
	f.Credits("a", Opts{})
	f.Credits("b", Opts{})
	f.Credits("c", Opts{})
	for k, w := range map[string]string{
		"a": `Type 1,50 or 150: we can't tell which "1.50" means.`,
		"b": "Enter a number of credits, such as 1.000 or 12,5.",
		"c": "That is more than the largest amount accepted (1.000.000.000.000 credits).",
	} {
		if got := f.Errors[k]; got != w {
			t.Errorf("%s: %q, want %q", k, got, w)
		}
	}
}

// FuzzParseAmount: whatever is typed, the parser never panics, never reads
// a sign, an exponent or hex digits as a number, never reads a lone English
// comma that is not followed by three digits (unless another separator
// makes it a decimal comma: "1 000,5"), and what it accepts, written
// back the locale's way, reads the same.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"25", "1,000.50", "1,5", "1e3", "0x10", "+5", "  ", "-1", "1.000,5", "1 000", "'", ".5", "5.", "１", "1,00,000", "99999999999999999999"} {
		f.Add(s, uint8(2), false)
		f.Add(s, uint8(3), true)
	}
	f.Fuzz(func(t *testing.T, in string, dec uint8, de bool) {
		decimals := int(dec % 4)
		loc := English
		if de {
			loc = german
		}
		v, err := ParseAmount(in, decimals, loc)
		if err != nil {
			var ae *AmountError
			if !errors.As(err, &ae) {
				t.Fatalf("%q: error %T", in, err)
			}
			return
		}
		if v < 0 {
			t.Fatalf("%q read as %d", in, v)
		}
		if strings.ContainsAny(in, "+-−eExX") {
			t.Fatalf("%q read as %d", in, v)
		}
		if !de && strings.Count(in, ",") == 1 && !strings.ContainsAny(in, ". '’\t\u00a0\u202f\u2009") {
			_, after, _ := strings.Cut(in, ",")
			digits := 0
			for _, r := range after {
				if r < '0' || r > '9' {
					break
				}
				digits++
			}
			if digits != 3 {
				t.Fatalf("%q (English) read as %d: a comma not followed by three digits", in, v)
			}
		}
		// Written back with the locale's separators, it reads the same.
		s := itoa(v)
		for len(s) <= decimals {
			s = "0" + s
		}
		whole, frac := s[:len(s)-decimals], s[len(s)-decimals:]
		out := loc.group(whole)
		if frac != "" {
			out += loc.Decimal + frac
		}
		if back, err := ParseAmount(out, decimals, loc); err != nil || back != v {
			t.Fatalf("%q read as %d, written %q, read back %d, %v", in, v, out, back, err)
		}
	})
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}
