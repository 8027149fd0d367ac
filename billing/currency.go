package billing

// MinorUnits is the number of decimals of a currency's minor unit, as
// Stripe counts them: 2 for usd (cents), 0 for jpy, 3 for kwd. Amounts in
// Money are in these units; people type and read them with these decimals.
func MinorUnits(currency string) int {
	switch currency {
	case "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf":
		return 0
	case "bhd", "jod", "kwd", "omr", "tnd":
		return 3
	}
	return 2
}
