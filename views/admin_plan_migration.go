package views

import "github.com/tally-billing/tally/billing"

// AdminMigrationConfirm is the confirmation of a plan migration: its
// impact and the key that makes it once.
type AdminMigrationConfirm struct {
	Impact billing.MigrationImpact
	Key    string
}

// signedMoney is a difference of money with its sign: "+$10.00", "−$5.00",
// "$0.00".
func signedMoney(f Fmt, m billing.Money) string {
	switch {
	case m.Amount > 0:
		return "+" + f.Money(m)
	case m.Amount < 0:
		return "−" + f.Money(billing.Money{Amount: -m.Amount, Currency: m.Currency})
	}
	return f.Money(m)
}

// signedCredits is a difference of credits with its sign.
func signedCredits(f Fmt, c billing.Credits) string {
	switch {
	case c > 0:
		return "+" + f.Credits(c)
	case c < 0:
		return "−" + f.Credits(-c)
	}
	return f.Credits(c)
}

// migrationChange says what moving a version's subscribers changes per
// period, signed: "Change per period: +$10.00, +500 credits", or "No
// change per period" (it read "$0.00 · 0 credits per period", as if they
// would pay nothing).
func migrationChange(f Fmt, revenue billing.Money, credits billing.Credits) string {
	if revenue.Amount == 0 && credits == 0 {
		return "No change per period"
	}
	return "Change per period: " + signedMoney(f, revenue) + ", " + signedCredits(f, credits) + " credits"
}

// migrationSentence says what a migration does, before it is confirmed.
func migrationSentence(f Fmt, im billing.MigrationImpact) string {
	who := f.Int(int64(im.Subscribers)) + " subscribers"
	if im.Subscribers == 1 {
		who = "1 subscriber"
	}
	return "Move " + who + " of " + im.To.Name + " on older versions to price book version " + f.Int(im.Version) +
		" at their next renewal: from then they pay " + f.Money(im.To.Price) + " every " + im.To.Interval + " for " +
		f.Credits(im.To.Credits) + " credits. Nothing changes in their current period, and nothing is charged now."
}
