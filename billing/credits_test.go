package billing

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// parseAccepts are decimal strings ParseMilli takes, with their value in
// thousandths.
var parseAccepts = []struct {
	in   string
	want int64
}{
	{"1", 1000},
	{"2.5", 2500},
	{"0.001", 1},
	{"1e3", 1_000_000},
	{"2.5E-1", 250},
	{"-0.5", -500},
	{"1.500", 1500},
	{"0", 0},
	{"-0", 0},
	{"0.000", 0},
	{"1234", 1_234_000},
	{"1E+2", 100_000},
	{"0.5e1", 5000},
	{"10e-4", 1},
	{"1.0000", 1000},
	{"0.000000000000000000000000001e27", 1000},
	{"1e12", int64(MaxCredits)},
	{"1000000000000", int64(MaxCredits)},
	{"-1000000000000", -int64(MaxCredits)},
	{"999999999999.999", int64(MaxCredits) - 1},
}

// parseRejects are strings ParseMilli refuses with invalid_request.
var parseRejects = []struct {
	name string
	in   string
}{
	{"empty", ""},
	{"leading zero", "01"},
	{"negative leading zero", "-01"},
	{"double zero", "00"},
	{"trailing point", "1."},
	{"leading point", ".5"},
	{"four decimals", "1.0001"},
	{"exponent leaves four decimals", "1e-4"},
	{"letters", "abc"},
	{"huge exponent", "1e999"},
	{"plus sign", "+1"},
	{"NaN", "NaN"},
	{"Infinity", "Infinity"},
	{"leading space", " 1"},
	{"trailing space", "1 "},
	{"just minus", "-"},
	{"double minus", "--1"},
	{"empty exponent", "1e"},
	{"signed empty exponent", "1e+"},
	{"four-digit exponent", "1e0003"},
	{"hex", "0x10"},
	{"underscore", "1_000"},
	{"comma", "1,5"},
	{"two points", "1.2.3"},
	{"quoted", `"1"`},
	{"a trillion and a thousandth", "1000000000000.001"},
	{"a trillion and one", "1000000000001"},
	{"1e13", "1e13"},
	{"minus 1e13", "-1e13"},
	{"beyond int64", "99999999999999999999"},
}

func TestParseMilli(t *testing.T) {
	parsers := []struct {
		name  string
		parse func(string) (int64, error)
	}{
		{"ParseMilli", ParseMilli},
		{"ParseCredits", func(s string) (int64, error) { c, err := ParseCredits(s); return int64(c), err }},
		{"ParseQuantity", func(s string) (int64, error) { q, err := ParseQuantity(s); return int64(q), err }},
	}
	for _, p := range parsers {
		t.Run(p.name, func(t *testing.T) {
			for _, tc := range parseAccepts {
				t.Run("accepts "+tc.in, func(t *testing.T) {
					got, err := p.parse(tc.in)
					if err != nil {
						t.Fatalf("%s(%q): %v", p.name, tc.in, err)
					}
					if got != tc.want {
						t.Fatalf("%s(%q) = %d, want %d", p.name, tc.in, got, tc.want)
					}
				})
			}
			for _, tc := range parseRejects {
				t.Run("rejects "+tc.name, func(t *testing.T) {
					got, err := p.parse(tc.in)
					wantCode(t, err, CodeInvalidRequest)
					if got != 0 {
						t.Fatalf("%s(%q) = %d with an error, want 0", p.name, tc.in, got)
					}
				})
			}
		})
	}
}

func TestCreditsString(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Credits
		want string
	}{
		{"two and a half", 2500, "2.5"},
		{"one millicredit", 1, "0.001"},
		{"negative", -1500, "-1.5"},
		{"negative millicredit", -1, "-0.001"},
		{"zero", 0, "0"},
		{"thousand", 1_000_000, "1000"},
		{"hundredths", 10, "0.01"},
		{"tenths", 100, "0.1"},
		{"inner zero", 1010, "1.01"},
		{"all three decimals", 3085, "3.085"},
		{"max", MaxCredits, "1000000000000"},
		{"int64 max", math.MaxInt64, "9223372036854775.807"},
		{"int64 min", math.MinInt64, "-9223372036854775.808"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.String(); got != tc.want {
				t.Errorf("Credits(%d).String() = %q, want %q", int64(tc.c), got, tc.want)
			}
			b, err := tc.c.MarshalJSON()
			if err != nil || string(b) != tc.want {
				t.Errorf("Credits(%d).MarshalJSON() = %q, %v, want %q", int64(tc.c), b, err, tc.want)
			}
			if got := Quantity(tc.c).String(); got != tc.want {
				t.Errorf("Quantity(%d).String() = %q, want %q", int64(tc.c), got, tc.want)
			}
			if !json.Valid(b) {
				t.Errorf("MarshalJSON wrote invalid JSON %q", b)
			}
			if tc.c < -MaxCredits || tc.c > MaxCredits {
				return // outside what Tally accepts, so it does not parse back
			}
			back, err := ParseCredits(tc.want)
			if err != nil || back != tc.c {
				t.Errorf("ParseCredits(%q) = %d, %v, want %d", tc.want, back, err, tc.c)
			}
		})
	}
}

func TestCreditsOf(t *testing.T) {
	if got := CreditsOf(3); got != 3000 {
		t.Errorf("CreditsOf(3) = %d, want 3000", got)
	}
	if got := QuantityOf(2); got != 2000 {
		t.Errorf("QuantityOf(2) = %d, want 2000", got)
	}
}

func TestCreditsJSONRoundTrip(t *testing.T) {
	type doc struct {
		Credits  Credits   `json:"credits"`
		Quantity Quantity  `json:"quantity"`
		Cap      *Credits  `json:"cap"`
		Q        *Quantity `json:"q"`
	}
	for _, tc := range []struct {
		name string
		json string
		want doc
	}{
		{"plain", `{"credits":2.5,"quantity":1234,"cap":null,"q":null}`, doc{Credits: 2500, Quantity: 1_234_000}},
		{"millicredit", `{"credits":0.001,"quantity":0.001,"cap":0,"q":1.5}`, doc{Credits: 1, Quantity: 1, Cap: new(Credits(0)), Q: new(Quantity(1500))}},
		{"negative", `{"credits":-1.5,"quantity":0,"cap":1000,"q":null}`, doc{Credits: -1500, Cap: new(Credits(1_000_000))}},
		{"max", `{"credits":1000000000000,"quantity":1000000000000,"cap":null,"q":null}`, doc{Credits: MaxCredits, Quantity: MaxQuantity}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got doc
			if err := json.Unmarshal([]byte(tc.json), &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if got.Credits != tc.want.Credits || got.Quantity != tc.want.Quantity ||
				!equalPtr(got.Cap, tc.want.Cap) || !equalPtr(got.Q, tc.want.Q) {
				t.Fatalf("Unmarshal(%s) = %+v, want %+v", tc.json, got, tc.want)
			}
			out, err := json.Marshal(got)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(out) != tc.json {
				t.Fatalf("Marshal = %s, want %s", out, tc.json)
			}
		})
	}
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func TestCreditsUnmarshalJSONRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"string", `"2.5"`},
		{"empty string", `""`},
		{"null", `null`},
		{"bool", `true`},
		{"array", `[1]`},
		{"object", `{}`},
		{"four decimals", `2.5001`},
		{"huge", `1e999`},
		{"beyond a trillion", `1000000000001`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Credits
			wantCode(t, c.UnmarshalJSON([]byte(tc.in)), CodeInvalidRequest)
			var q Quantity
			wantCode(t, q.UnmarshalJSON([]byte(tc.in)), CodeInvalidRequest)

			// Through encoding/json the error keeps its code, also for
			// null in a non-pointer field (a missing amount is not zero).
			var d struct {
				Credits Credits `json:"credits"`
			}
			wantCode(t, json.Unmarshal([]byte(`{"credits":`+tc.in+`}`), &d), CodeInvalidRequest)
			if d.Credits != 0 {
				t.Errorf("a rejected value left Credits = %d", d.Credits)
			}
		})
	}
	t.Run("empty input", func(t *testing.T) {
		var c Credits
		wantCode(t, c.UnmarshalJSON(nil), CodeInvalidRequest)
	})
	t.Run("message names the field", func(t *testing.T) {
		var q Quantity
		err := q.UnmarshalJSON([]byte(`"1"`))
		if !strings.Contains(ErrorMessage(err), "quantity") {
			t.Errorf("message %q does not name quantity", ErrorMessage(err))
		}
		err = q.UnmarshalJSON([]byte(`1.0001`))
		if !strings.Contains(ErrorMessage(err), "quantity") || !strings.Contains(ErrorMessage(err), "decimals") {
			t.Errorf("message %q does not name quantity and decimals", ErrorMessage(err))
		}
		// Too large says what the largest accepted value is.
		for _, in := range []string{`1000000000000.001`, `99999999999999999999`, `1e13`} {
			err = q.UnmarshalJSON([]byte(in))
			if m := ErrorMessage(err); !strings.Contains(m, "quantity") || !strings.Contains(m, "at most 1,000,000,000,000") {
				t.Errorf("%s: message %q does not name quantity and its bound", in, m)
			}
		}
	})
}

// FuzzParseMilli checks ParseMilli against exact rational arithmetic: it
// never panics, accepts exactly the JSON numbers that are whole thousandths
// within a trillion, and what it accepts formats back and reparses to the
// same value.
func FuzzParseMilli(f *testing.F) {
	for _, tc := range parseAccepts {
		f.Add(tc.in)
	}
	for _, tc := range parseRejects {
		f.Add(tc.in)
	}
	f.Add("-0.001")
	f.Add("123456789012.345")
	f.Add("1e-999")
	f.Add("0e999")
	f.Add("9223372036854775807")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseMilli(s)
		ref, refOK := refMilli(s)
		if err != nil {
			if ErrorCode(err) != CodeInvalidRequest {
				t.Fatalf("ParseMilli(%q) error %v, want invalid_request", s, err)
			}
			if refOK {
				t.Fatalf("ParseMilli(%q) rejected %d thousandths: %v", s, ref, err)
			}
			return
		}
		if !refOK {
			t.Fatalf("ParseMilli(%q) = %d, but it is not a number of at most three decimals within a trillion", s, v)
		}
		if v != ref {
			t.Fatalf("ParseMilli(%q) = %d, want %d", s, v, ref)
		}
		out := formatMilli(v)
		if !canonicalMilli.MatchString(out) {
			t.Fatalf("formatMilli(%d) = %q, not canonical", v, out)
		}
		back, err := ParseMilli(out)
		if err != nil || back != v {
			t.Fatalf("ParseMilli(formatMilli(%d) = %q) = %d, %v", v, out, back, err)
		}
	})
}

// FuzzCreditsJSON feeds arbitrary bytes to Credits.UnmarshalJSON: it never
// panics, refuses with invalid_request, agrees with encoding/json, and what
// it accepts is an exact JSON number that round-trips through MarshalJSON.
func FuzzCreditsJSON(f *testing.F) {
	for _, s := range []string{`2.5`, `0.001`, `-1.5`, `0`, `1000`, `1e3`, `2.5E-1`, `1.500`,
		`"2.5"`, `null`, `true`, `[]`, `{}`, ` 7 `, `1.0001`, `1e999`, `01`, ``, `-`, `1e12`, `1e13`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Credits
		err := c.UnmarshalJSON(b)

		// encoding/json hands UnmarshalJSON one valid JSON value; on such
		// input the two must agree.
		var viaJSON struct {
			C Credits `json:"c"`
		}
		jsonErr := json.Unmarshal(append(append([]byte(`{"c":`), b...), '}'), &viaJSON)
		if jsonErr == nil && (err != nil || viaJSON.C != c) {
			t.Fatalf("encoding/json took %q as %d, UnmarshalJSON as %d, %v", b, viaJSON.C, c, err)
		}

		if err != nil {
			if ErrorCode(err) != CodeInvalidRequest {
				t.Fatalf("UnmarshalJSON(%q) error %v, want invalid_request", b, err)
			}
			if c != 0 {
				t.Fatalf("UnmarshalJSON(%q) failed but set %d", b, c)
			}
			return
		}
		ref, ok := refMilli(string(bytes.TrimSpace(b)))
		if !ok || Credits(ref) != c {
			t.Fatalf("UnmarshalJSON(%q) = %d, reference %d (ok=%v)", b, c, ref, ok)
		}
		out, err := c.MarshalJSON()
		if err != nil || !json.Valid(out) {
			t.Fatalf("MarshalJSON(%d) = %q, %v", c, out, err)
		}
		var back Credits
		if err := back.UnmarshalJSON(out); err != nil || back != c {
			t.Fatalf("round trip of %d through %q = %d, %v", c, out, back, err)
		}
		var q Quantity
		if err := q.UnmarshalJSON(b); err != nil || int64(q) != int64(c) {
			t.Fatalf("Quantity.UnmarshalJSON(%q) = %d, %v; Credits took it as %d", b, q, err, c)
		}
	})
}
