package billing

// SuggestTopUpPack is the pack the portal suggests a customer buy, the
// same on the overview and on the one-press top-up page: the one that
// covers the larger of what a request needs now (shortfall: required less
// available, 0 when none is waiting) and the forecast's top-up (what lasts
// until the forecast's date at the current pace, Forecast.TopUp), by
// SuggestPack's rule.
func SuggestTopUpPack(packs []CreditPack, shortfall, forecastTopUp Credits, lastPackID string) (CreditPack, bool) {
	return SuggestPack(packs, max(shortfall, forecastTopUp, 0), lastPackID)
}

// SuggestPack is the one credit pack to offer a customer who is short of
// credits by shortfall (0 when unknown): the pack they bought last when it
// covers the shortfall, else the smallest pack that does, else the largest
// pack. ok is false when there are no packs.
func SuggestPack(packs []CreditPack, shortfall Credits, lastPackID string) (CreditPack, bool) {
	if len(packs) == 0 {
		return CreditPack{}, false
	}
	for _, p := range packs {
		if p.ID == lastPackID && p.ID != "" && p.Credits >= shortfall {
			return p, true
		}
	}
	var best, largest *CreditPack
	for i := range packs {
		p := &packs[i]
		if largest == nil || p.Credits > largest.Credits {
			largest = p
		}
		if p.Credits >= shortfall && (best == nil || p.Credits < best.Credits) {
			best = p
		}
	}
	if best == nil {
		best = largest
	}
	return *best, true
}
