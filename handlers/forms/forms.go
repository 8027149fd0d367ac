// Package forms reads what people type into the portal's forms: one parser
// for amounts (credits and money, in the reader's way of writing numbers),
// and errors kept per field so a form shows everything that is wrong at
// once, beside the fields at fault. (miniflux's ui/form plays this part.)
package forms

import (
	"net/url"
	"strings"

	"github.com/tally-billing/tally/billing"
)

// Form is one submitted form: the values as typed (to show them again) and
// an error per field.
type Form struct {
	Values url.Values
	Locale Locale
	Errors map[string]string
}

// New reads a submitted form in the reader's locale.
func New(values url.Values, loc Locale) *Form {
	if loc.Decimal == "" {
		loc = English
	}
	return &Form{Values: values, Locale: loc, Errors: map[string]string{}}
}

// Value is what was typed in a field, as typed.
func (f *Form) Value(name string) string { return f.Values.Get(name) }

// Fail records an error for a field; the first one a field gets is kept
// (it is the most basic: a field that is not a number is not also "too
// large").
func (f *Form) Fail(name, msg string) {
	if _, ok := f.Errors[name]; !ok {
		f.Errors[name] = msg
	}
}

// Failed reports whether the field has an error.
func (f *Form) Failed(name string) bool { _, ok := f.Errors[name]; return ok }

// Valid reports whether no field has an error.
func (f *Form) Valid() bool { return len(f.Errors) == 0 }

// Opts say how a field words what is wrong with it.
type Opts struct {
	// Required is the message for an empty field; "" makes the field
	// optional (empty is nil).
	Required string
	// Negative is the message for a negative amount ("A cap can't be
	// negative..."); "" gives a plain one.
	Negative string
}

// MaxMoney bounds a typed amount of money (minor units): far above any
// top-up, far below an overflow.
const MaxMoney = 1_000_000_000_00

// maxWhole bounds a typed whole number (a count of refills).
const maxWhole = 1_000_000_000

// Credits reads an amount of credits (at most three decimals, the
// millicredit). nil when the field is empty and optional, or wrong (then
// the form has the field's error).
func (f *Form) Credits(name string, o Opts) *billing.Credits {
	v, ok := f.amount(name, 3, o, kindCredits, "")
	if !ok {
		return nil
	}
	if v > int64(billing.MaxCredits) {
		f.Fail(name, "That is more than the largest amount accepted ("+f.Locale.group(billing.MaxCredits.String())+" credits).")
		return nil
	}
	c := billing.Credits(v)
	return &c
}

// Money reads an amount of money in a currency, in its minor units (cents
// for usd; yen have none, dinars three). A symbol or code of that currency
// before or after the number is allowed ("$25", "25 USD").
func (f *Form) Money(name, currency string, o Opts) *int64 {
	v, ok := f.amount(name, billing.MinorUnits(currency), o, kindMoney, currency)
	if !ok {
		return nil
	}
	if v > MaxMoney {
		f.Fail(name, "That amount is too large.")
		return nil
	}
	return &v
}

// Whole reads a whole number (a count), grouped or not.
func (f *Form) Whole(name string, o Opts) *int {
	v, ok := f.amount(name, 0, o, kindWhole, "")
	if !ok {
		return nil
	}
	if v > maxWhole {
		f.Fail(name, "That number is too large.")
		return nil
	}
	n := int(v)
	return &n
}

type kind int

const (
	kindCredits kind = iota
	kindMoney
	kindWhole
)

// amount parses a field and words its error.
func (f *Form) amount(name string, decimals int, o Opts, k kind, currency string) (int64, bool) {
	raw := f.Value(name)
	if k == kindMoney {
		raw = stripCurrency(raw, currency)
	}
	v, err := ParseAmount(raw, decimals, f.Locale)
	if err == nil {
		return v, true
	}
	e := err.(*AmountError)
	loc := f.Locale
	switch e.Kind {
	case Empty:
		if o.Required != "" {
			f.Fail(name, o.Required)
		}
	case Negative:
		if o.Negative != "" {
			f.Fail(name, o.Negative)
		} else {
			f.Fail(name, "Enter an amount of zero or more, without a minus sign.")
		}
	case Sign:
		f.Fail(name, "Type the number without a + sign, such as "+loc.example(k, currency)+".")
	case Ambiguous:
		f.Fail(name, "Type "+e.AsDecimal+" or "+e.AsWhole+`: we can't tell which "`+strings.TrimSpace(raw)+`" means.`)
	case TooManyDecimals:
		switch {
		case decimals == 0 && k == kindWhole:
			f.Fail(name, "Enter a whole number, such as 3.")
		case decimals == 0:
			f.Fail(name, "Enter a whole amount, without decimals, such as "+loc.group("500")+".")
		case k == kindCredits:
			f.Fail(name, "Use at most three decimals: "+loc.number("0", "001")+" is the smallest amount of credits.")
		default:
			f.Fail(name, "Use at most "+decimalsWord(decimals)+" decimals, such as "+loc.example(k, currency)+".")
		}
	case TooLarge:
		f.Fail(name, "That number is too large.")
	default:
		switch k {
		case kindCredits:
			f.Fail(name, "Enter a number of credits, such as "+loc.group("1000")+" or "+loc.number("12", "5")+".")
		case kindMoney:
			f.Fail(name, "Enter an amount, such as "+loc.example(k, currency)+".")
		default:
			f.Fail(name, "Enter a whole number, such as 3.")
		}
	}
	return 0, false
}

func decimalsWord(n int) string {
	switch n {
	case 1:
		return "one"
	case 2:
		return "two"
	case 3:
		return "three"
	}
	return "more"
}

// stripCurrency removes one symbol or code of the currency typed before or
// after the number ("$25", "25 $", "USD 25"). Any other letter stays and
// makes the amount not a number.
func stripCurrency(raw, currency string) string {
	s := strings.TrimSpace(raw)
	marks := []string{strings.ToUpper(currency), currency}
	switch currency {
	case "usd":
		marks = append(marks, "US$", "$")
	case "eur":
		marks = append(marks, "€")
	case "gbp":
		marks = append(marks, "£")
	case "jpy":
		marks = append(marks, "¥", "円")
	}
	for _, m := range marks {
		if m == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(s, m); ok {
			return strings.TrimSpace(rest)
		}
		if rest, ok := strings.CutSuffix(s, m); ok {
			return strings.TrimSpace(rest)
		}
	}
	return s
}
