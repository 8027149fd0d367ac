package billing

import (
	"errors"
	"math/big"
	"regexp"
	"testing"
)

// wantCode fails t unless err is an *Error with the given code.
func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %s", code)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v, want *Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

// mustParseCredits parses a test literal such as "2.5".
func mustParseCredits(t testing.TB, s string) Credits {
	t.Helper()
	c, err := ParseCredits(s)
	if err != nil {
		t.Fatalf("ParseCredits(%q): %v", s, err)
	}
	return c
}

// mustParseQuantity parses a test literal such as "1.5".
func mustParseQuantity(t testing.TB, s string) Quantity {
	t.Helper()
	q, err := ParseQuantity(s)
	if err != nil {
		t.Fatalf("ParseQuantity(%q): %v", s, err)
	}
	return q
}

// jsonNumber is JSON's number grammar with an exponent of at most three
// digits, the one limit ParseMilli adds to it.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,3})?$`)

// refMilli is the reference ParseMilli checks against: exact rational
// arithmetic with math/big. It reports whether s is a JSON number that is a
// whole number of thousandths no larger than a trillion in size.
func refMilli(s string) (int64, bool) {
	if !jsonNumber.MatchString(s) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(Milli, 1))
	if !r.IsInt() {
		return 0, false
	}
	n := r.Num()
	if n.CmpAbs(big.NewInt(int64(MaxCredits))) > 0 {
		return 0, false
	}
	return n.Int64(), true
}

// canonicalMilli is what formatMilli writes: no leading zeros, at most three
// decimals, no trailing zeros, no negative zero.
var canonicalMilli = regexp.MustCompile(`^(0|-?[1-9][0-9]*|-?(0|[1-9][0-9]*)\.[0-9]{0,2}[1-9])$`)
