package billing

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
