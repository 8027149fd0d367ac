package forms

import (
	"strings"
	"unicode/utf8"

	"github.com/tally-billing/tally/billing"
)

// Locale is how a reader writes numbers: the decimal separator and the
// thousands separator of their language ("." and "," in English, "," and
// "." in German, "," and a space in French).
type Locale struct {
	Decimal string
	Group   string
}

// English writes 1,000.50.
var English = Locale{Decimal: ".", Group: ","}

// AmountKind says what is wrong with a typed amount.
type AmountKind int

// What can be wrong with a typed amount.
const (
	NotANumber      AmountKind = iota // letters, exponents, hex, stray or misplaced separators
	Empty                             // nothing but spaces
	Negative                          // a minus sign
	Sign                              // a plus sign
	Ambiguous                         // "1,5" in English: 1.5 or 15? Refused, never guessed
	TooManyDecimals                   // more decimals than the unit has
	TooLarge                          // more digits than any amount has
)

// AmountError is why a typed amount was refused. For Ambiguous, AsDecimal
// and AsWhole are the two readings written so that they are not ("1.5",
// "15"), for the message to offer.
type AmountError struct {
	Kind               AmountKind
	AsDecimal, AsWhole string
}

func (e *AmountError) Error() string {
	switch e.Kind {
	case Empty:
		return "empty"
	case Negative:
		return "negative"
	case Sign:
		return "plus sign"
	case Ambiguous:
		return "ambiguous: " + e.AsDecimal + " or " + e.AsWhole
	case TooManyDecimals:
		return "too many decimals"
	case TooLarge:
		return "too large"
	}
	return "not a number"
}

// maxDigits bounds the digits of a value (whole and decimals together), so
// it fits an int64 with room to spare.
const maxDigits = 18

// ParseAmount reads a non-negative amount a person typed, with at most
// decimals decimals, into an integer count of 10^-decimals: "12.5" with 3
// decimals is 12500 (millicredits), "$25.50" with 2 is 2550 (cents, once
// the currency's symbol is removed). No float is involved.
//
// Digits may be grouped in threes by the locale's thousands separator, by
// spaces or by apostrophes. With both "." and "," present the last one is
// the decimal separator ("1,000.50", "1.000,50"). With one of them once,
// the locale decides: the decimal separator is one; the thousands separator
// followed by three digits groups ("1,000" in English), and followed by any
// other count is refused as Ambiguous ("1,5" in English: 1.5 or 15?), never
// read as either. A separator that is neither the locale's decimal nor its
// grouping ("." where people write "1 000,5") is a decimal separator
// unless three digits follow, which is again Ambiguous.
//
// Refused: empty or spaces only (Empty), "-1" (Negative), "+5" (Sign),
// "1e3", "0x10", "1,00,000", "1..5" (NotANumber), more decimals than
// allowed (TooManyDecimals), more than 18 significant digits (TooLarge).
func ParseAmount(raw string, decimals int, loc Locale) (int64, error) {
	if loc.Decimal == "" {
		loc = English
	}
	s := strings.TrimSpace(strings.Map(func(r rune) rune {
		if isSpace(r) {
			return ' '
		}
		return r
	}, raw))
	if s == "" {
		return 0, &AmountError{Kind: Empty}
	}
	switch r, _ := utf8.DecodeRuneInString(s); r {
	case '-', '−', '–':
		return 0, &AmountError{Kind: Negative}
	case '+':
		return 0, &AmountError{Kind: Sign}
	}
	// Split into digit runs and the single separators between them.
	var runs []string // digit runs; runs[i+1] follows seps[i]
	var seps []rune
	cur := strings.Builder{}
	lead := false // a separator before any digit (".5")
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			cur.WriteRune(r)
		case r == '.' || r == ',' || r == ' ' || r == '\'' || r == '’':
			if cur.Len() == 0 {
				if i != 0 {
					return 0, &AmountError{Kind: NotANumber} // two separators in a row
				}
				lead = true
			}
			runs = append(runs, cur.String())
			cur.Reset()
			seps = append(seps, r)
		default:
			return 0, &AmountError{Kind: NotANumber}
		}
	}
	runs = append(runs, cur.String())
	trail := runs[len(runs)-1] == "" && len(seps) > 0

	whole, frac := strings.Join(runs, ""), ""
	hasFrac := false
	if len(seps) > 0 {
		last := seps[len(seps)-1]
		others := seps[:len(seps)-1]
		decimal := false
		switch {
		case last == ' ' || last == '\'' || last == '’':
			// only ever grouping
		case containsRune(others, last):
			// "1,000,000": the repeated one groups
		case len(others) > 0:
			decimal = true // "1,000.50", "1 000,5"
		case string(last) == loc.Decimal:
			decimal = true
		case string(last) == loc.Group || len(runs[1]) == 3:
			// The thousands separator not followed by a group of three
			// ("1,5" in English), or a foreign separator followed by three
			// digits ("1.000" where people write 1 000,5): either reading
			// could be meant.
			if string(last) == loc.Group && len(runs[1]) == 3 && !lead && len(runs[0]) <= 3 {
				break // "1,000": grouped
			}
			if lead || trail {
				return 0, &AmountError{Kind: NotANumber}
			}
			return 0, &AmountError{Kind: Ambiguous,
				AsDecimal: trimZeros(runs[0]) + loc.Decimal + runs[1],
				AsWhole:   trimZeros(runs[0] + runs[1])}
		default:
			decimal = true // "1.5" where people write 1 000,5
		}
		if decimal && (trail || lead) && string(last) != loc.Decimal {
			return 0, &AmountError{Kind: NotANumber} // "5," in English: only the locale's own point may stand alone
		}
		groups := runs
		if decimal {
			groups, frac, hasFrac = runs[:len(runs)-1], runs[len(runs)-1], true
			seps = others
		}
		if len(seps) > 0 {
			// Grouping: one separator throughout, "1" to "999" first, then threes.
			for _, r := range seps {
				if r != seps[0] {
					return 0, &AmountError{Kind: NotANumber}
				}
			}
			if len(groups[0]) == 0 || len(groups[0]) > 3 {
				return 0, &AmountError{Kind: NotANumber}
			}
			for _, g := range groups[1:] {
				if len(g) != 3 {
					return 0, &AmountError{Kind: NotANumber}
				}
			}
		} else if trail && !hasFrac {
			return 0, &AmountError{Kind: NotANumber}
		}
		whole = strings.Join(groups, "")
	}
	if whole == "" && frac == "" {
		return 0, &AmountError{Kind: NotANumber} // "." alone
	}
	if hasFrac && frac == "" && whole == "" {
		return 0, &AmountError{Kind: NotANumber}
	}
	if len(frac) > decimals {
		return 0, &AmountError{Kind: TooManyDecimals}
	}
	whole = trimZeros(whole)
	if len(whole)+decimals > maxDigits {
		return 0, &AmountError{Kind: TooLarge}
	}
	var v int64
	for _, r := range whole + frac + strings.Repeat("0", decimals-len(frac)) {
		v = v*10 + int64(r-'0')
	}
	return v, nil
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\u00a0' || r == '\u202f' || r == '\u2009' || r == '\t'
}

func containsRune(rs []rune, r rune) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// trimZeros drops leading zeros, keeping one digit.
func trimZeros(s string) string {
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return s
}

// group writes a whole number with the locale's thousands separator.
func (l Locale) group(digits string) string {
	digits, frac, hasFrac := strings.Cut(digits, ".")
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteString(l.Group)
		}
		b.WriteRune(r)
	}
	if hasFrac {
		b.WriteString(l.Decimal + frac)
	}
	return b.String()
}

// number writes whole and decimals with the locale's separators.
func (l Locale) number(whole, frac string) string { return l.group(whole) + l.Decimal + frac }

// MoneyExample is the amount of money the form's messages give as an
// example ("25.50"), for a form's own "Enter an amount, such as …" to
// give the same one.
func (l Locale) MoneyExample(currency string) string { return l.example(kindMoney, currency) }

// example is an amount to show in a message, written the reader's way.
func (l Locale) example(k kind, currency string) string {
	switch {
	case k == kindCredits:
		return l.group("1000")
	case k == kindWhole:
		return "3"
	}
	if d := billing.MinorUnits(currency); d > 0 {
		return l.number("25", "5"+strings.Repeat("0", d-1))
	}
	return l.group("2500")
}
