package billing

import (
	"bytes"
	"errors"
	"testing"
)

func gpt4o() Feature {
	return Feature{Key: "gpt-4o", Unit: "call", Dimensions: []Dimension{
		{Key: "input_tokens", Unit: "input token", Credits: 2500, UnitSize: 1000},         // 2.5 credits per 1,000
		{Key: "cached_input_tokens", Unit: "cached token", Credits: 1250, UnitSize: 1000}, // 1.25 per 1,000
		{Key: "output_tokens", Unit: "output token", Credits: 10_000, UnitSize: 1000},     // 10 per 1,000
	}}
}

func TestPriceUsagePerDimension(t *testing.T) {
	f := gpt4o()
	cases := []struct {
		name  string
		qs    Quantities
		want  Credits
		lines string
		err   string // error code
		param string
	}{
		{"input and output", Quantities{"output_tokens": QuantityOf(350), "input_tokens": QuantityOf(1200)}, 6500,
			"input_tokens:1200000:3000 output_tokens:350000:3500 ", "", ""},
		{"a zero dimension is listed and costs nothing", Quantities{"input_tokens": QuantityOf(1000), "cached_input_tokens": 0}, 2500,
			"input_tokens:1000000:2500 cached_input_tokens:0:0 ", "", ""},
		// 1 token at 2.5 credits per 1,000 is 2.5 millicredits: each dimension rounds down.
		{"rounding per dimension", Quantities{"input_tokens": QuantityOf(1), "output_tokens": QuantityOf(1)}, 2 + 10,
			"input_tokens:1000:2 output_tokens:1000:10 ", "", ""},
		{"unknown dimension", Quantities{"input_tokens": QuantityOf(1), "images": QuantityOf(1)}, 0, "", CodeInvalidQuantity, "quantities.images"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, lines, err := PriceUsage(f, nil, c.qs)
			if c.err != "" {
				if ErrorCode(err) != c.err {
					t.Fatalf("err %v, want %s", err, c.err)
				}
				if c.param != "" && ErrorParam(err) != c.param {
					t.Fatalf("param %q, want %q", ErrorParam(err), c.param)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s string
			for _, l := range lines {
				s += l.Dimension + ":" + itoa(int64(l.Quantity)) + ":" + itoa(int64(l.Credits)) + " "
			}
			if got != c.want || s != c.lines {
				t.Fatalf("charged %d (%s), want %d (%s)", got, s, c.want, c.lines)
			}
		})
	}
	one := QuantityOf(1)
	// Each dimension within MaxCredits, their sum past it.
	dear := Feature{Key: "dear", Dimensions: []Dimension{{Key: "a", Credits: MaxCredits, UnitSize: 1}, {Key: "b", Credits: MaxCredits, UnitSize: 1}}}
	if _, _, err := PriceUsage(dear, nil, Quantities{"a": one}); err != nil {
		t.Errorf("one dimension at MaxCredits: %v", err)
	}
	if _, _, err := PriceUsage(dear, nil, Quantities{"a": one, "b": one}); ErrorCode(err) != CodeInvalidQuantity {
		t.Errorf("a sum past MaxCredits: %v", err)
	}
	if _, _, err := PriceUsage(f, &one, nil); ErrorCode(err) != CodeInvalidQuantity || ErrorParam(err) != "quantities" {
		t.Errorf("a single quantity for a feature priced per dimension: %v", err)
	}
	plain := Feature{Key: "chat.request", Credits: CreditsOf(1), UnitSize: 1}
	if _, _, err := PriceUsage(plain, nil, Quantities{"x": one}); ErrorCode(err) != CodeInvalidQuantity || ErrorParam(err) != "quantities" {
		t.Errorf("quantities for a feature with one quantity: %v", err)
	}
	if c, lines, err := PriceUsage(plain, &one, nil); err != nil || c != CreditsOf(1) || lines != nil {
		t.Errorf("a single quantity: %v %v %v", c, lines, err)
	}
}

func itoa(v int64) string {
	b := []byte{}
	if v == 0 {
		return "0"
	}
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

func TestUsageRequestQuantityForms(t *testing.T) {
	one := QuantityOf(1)
	cases := []struct {
		name  string
		q     *Quantity
		qs    Quantities
		param string // "" when valid
	}{
		{"quantity", &one, nil, ""},
		{"quantities", nil, Quantities{"input_tokens": one}, ""},
		{"neither", nil, nil, "quantity"},
		{"both", &one, Quantities{"input_tokens": one}, "quantities"},
		{"all zero", nil, Quantities{"input_tokens": 0}, "quantities"},
		{"negative", nil, Quantities{"input_tokens": one, "output_tokens": -1}, "quantities.output_tokens"},
		{"bad key", nil, Quantities{"Input Tokens": one}, "quantities"},
	}
	for _, c := range cases {
		r := UsageRequest{Customer: "c", Feature: "gpt-4o", Quantity: c.q, Quantities: c.qs}
		err := r.Validate()
		if c.param == "" && err != nil || c.param != "" && (ErrorCode(err) != CodeInvalidQuantity || ErrorParam(err) != c.param) {
			t.Errorf("%s: %v (param %q), want param %q", c.name, err, ErrorParam(err), c.param)
		}
	}
}

func TestUsageHashWithQuantities(t *testing.T) {
	one, two := QuantityOf(1), QuantityOf(2)
	a := UsageRequest{Feature: "gpt-4o", Quantities: Quantities{"input_tokens": one, "output_tokens": two}}
	b := UsageRequest{Feature: "gpt-4o", Quantities: Quantities{"output_tokens": two, "input_tokens": one}}
	c := UsageRequest{Feature: "gpt-4o", Quantities: Quantities{"input_tokens": two, "output_tokens": one}}
	if !bytes.Equal(a.Hash("cus"), b.Hash("cus")) {
		t.Error("the same quantities hash differently")
	}
	if bytes.Equal(a.Hash("cus"), c.Hash("cus")) {
		t.Error("other quantities hash the same")
	}
	// A single quantity hashes as before dimensions existed (stored hashes
	// of earlier requests stay valid).
	s := UsageRequest{Feature: "chat.request", Quantity: &one}
	h := newHasher("usage")
	h.str("cus")
	h.str("chat.request")
	h.int(int64(one))
	h.strMap(nil)
	if !bytes.Equal(s.Hash("cus"), h.sum()) {
		t.Error("a single quantity's hash changed")
	}
}

func TestPriceBookDimensions(t *testing.T) {
	valid := PriceBook{Currency: "usd", Features: []Feature{gpt4o()}}
	if err := valid.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := valid.Features[0].Dimensions[0]; d.Name != "input token" || d.UnitSize != 1000 {
		t.Errorf("defaults: %+v", d)
	}
	bad := []func(f *Feature){
		func(f *Feature) { f.Credits = CreditsOf(1) },                          // its own price besides the dimensions
		func(f *Feature) { f.Dimensions[1].Key = "input_tokens" },              // twice
		func(f *Feature) { f.Dimensions[0].Key = "Input" },                     // key
		func(f *Feature) { f.Dimensions[0].Credits = -1 },                      // negative
		func(f *Feature) { f.Dimensions[0].UnitSize = 2_000_000_000 },          // unit size
		func(f *Feature) { f.Dimensions = make([]Dimension, maxDimensions+1) }, // too many
	}
	for i, mut := range bad {
		pb := PriceBook{Currency: "usd", Features: []Feature{gpt4o()}}
		mut(&pb.Features[0])
		if err := pb.Validate(); ErrorCode(err) != CodeValidation {
			t.Errorf("case %d: %v, want validation_failed", i, err)
		}
	}
}

// ErrorParam is the param detail of a billing error ("" when none).
func ErrorParam(err error) string {
	var e *Error
	if errors.As(err, &e) {
		p, _ := e.Details["param"].(string)
		return p
	}
	return ""
}
