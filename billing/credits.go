// Package billing holds Tally's domain: credits and money as integers, the
// price book and its math, the order in which debits burn lots, spend limits,
// and the error codes every layer speaks. It imports no SQL, HTTP or Stripe
// code; the db and payments packages implement the interfaces it declares.
package billing

import (
	"bytes"
	"strconv"
	"strings"
)

// Credits is an amount of credits in millicredits: 1 credit = 1,000.
// It is the only type a balance is ever kept in. No float touches it.
type Credits int64

// Milli is the number of millicredits in one credit.
const Milli = 1000

// MaxCredits bounds any single amount Tally accepts (one trillion credits), so
// that sums of many amounts stay far from int64 overflow.
const MaxCredits Credits = 1_000_000_000_000 * Milli

// CreditsOf returns n whole credits.
func CreditsOf(n int64) Credits { return Credits(n * Milli) }

// String formats c as a decimal number of credits with up to three decimals
// and no trailing zeros: 2500 -> "2.5", -1 -> "-0.001", 0 -> "0".
func (c Credits) String() string { return formatMilli(int64(c)) }

// MarshalJSON writes c as a JSON number of credits (e.g. 2.5).
func (c Credits) MarshalJSON() ([]byte, error) { return []byte(formatMilli(int64(c))), nil }

// UnmarshalJSON reads a JSON number of credits with at most three decimals,
// exactly, without going through float64.
func (c *Credits) UnmarshalJSON(b []byte) error {
	v, err := parseMilliJSON(b, "credits")
	if err != nil {
		return err
	}
	*c = Credits(v)
	return nil
}

// ParseCredits parses a decimal string of credits ("2.5", "1000", "0.001").
func ParseCredits(s string) (Credits, error) {
	v, err := ParseMilli(s)
	if err != nil {
		return 0, err
	}
	return Credits(v), nil
}

// Quantity is an amount of a feature's unit in thousandths (1 image = 1,000;
// 1.5 seconds = 1,500), so fractional units such as seconds stay exact.
type Quantity int64

// MaxQuantity bounds a single usage quantity (one trillion units).
const MaxQuantity Quantity = 1_000_000_000_000 * Milli

// QuantityOf returns n whole units.
func QuantityOf(n int64) Quantity { return Quantity(n * Milli) }

// String formats q like Credits: "1234", "1.5".
func (q Quantity) String() string { return formatMilli(int64(q)) }

// MarshalJSON writes q as a JSON number.
func (q Quantity) MarshalJSON() ([]byte, error) { return []byte(formatMilli(int64(q))), nil }

// UnmarshalJSON reads a JSON number with at most three decimals, exactly.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	v, err := parseMilliJSON(b, "quantity")
	if err != nil {
		return err
	}
	*q = Quantity(v)
	return nil
}

// ParseQuantity parses a decimal string of units.
func ParseQuantity(s string) (Quantity, error) {
	v, err := ParseMilli(s)
	if err != nil {
		return 0, err
	}
	return Quantity(v), nil
}

func parseMilliJSON(b []byte, field string) (int64, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] == '"' || bytes.Equal(b, []byte("null")) {
		return 0, Errorf(CodeInvalidRequest, "%s must be a number, such as 2.5", field)
	}
	v, err := ParseMilli(string(b))
	if err != nil {
		return 0, Errorf(CodeInvalidRequest, "%s: %s", field, err.(*Error).Message)
	}
	return v, nil
}

// ParseMilli parses a decimal number with at most three decimals into
// thousandths. It accepts JSON number syntax (including exponents such as
// 1e3 or 2.5E-1 as long as the result has at most three decimals) and rejects
// everything else, including values beyond one trillion.
func ParseMilli(s string) (int64, error) {
	bad := func(msg string) (int64, error) { return 0, Errorf(CodeInvalidRequest, "%s", msg) }
	if s == "" {
		return bad("not a number")
	}
	neg := false
	i := 0
	if s[0] == '-' {
		neg = true
		i++
	}
	// Integer part: digits, no leading zeros (JSON rules).
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[start:i]
	if intPart == "" || (len(intPart) > 1 && intPart[0] == '0') {
		return bad("not a number")
	}
	frac := ""
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[fs:i]
		if frac == "" {
			return bad("not a number")
		}
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		es := i
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if ds == i || i-ds > 3 {
			return bad("not a number")
		}
		e, _ := strconv.Atoi(s[es:i])
		exp = e
	}
	if i != len(s) {
		return bad("not a number")
	}
	// digits = intPart+frac, with the decimal point len(frac)-exp places from the right.
	digits := strings.TrimLeft(intPart+frac, "0")
	scale := len(frac) - exp // number of decimals in digits
	// Drop trailing zeros that sit right of the decimal point.
	for scale > 0 && len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		scale--
	}
	if digits == "" {
		return 0, nil
	}
	if scale > 3 {
		return bad("at most three decimals are allowed")
	}
	// Shift to thousandths.
	zeros := 3 - scale
	if len(digits)+zeros > 16 { // > 10^15 thousandths, i.e. beyond a trillion
		return bad("too large: at most 1,000,000,000,000")
	}
	v, err := strconv.ParseInt(digits+strings.Repeat("0", zeros), 10, 64)
	if err != nil || v > int64(MaxCredits) {
		return bad("too large: at most 1,000,000,000,000")
	}
	if neg {
		v = -v
	}
	return v, nil
}

func formatMilli(v int64) string {
	var buf [24]byte
	b := buf[:0]
	u := uint64(v)
	if v < 0 {
		b = append(b, '-')
		u = uint64(-v)
	}
	b = strconv.AppendUint(b, u/Milli, 10)
	if f := u % Milli; f != 0 {
		b = append(b, '.')
		d := [3]byte{byte('0' + f/100), byte('0' + f/10%10), byte('0' + f%10)}
		n := 3
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	return string(b)
}

// Money is an amount in the currency's minor unit (cents for USD).
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"` // ISO 4217, lower case as Stripe writes it: "usd"
}
