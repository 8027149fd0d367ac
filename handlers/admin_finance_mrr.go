package handlers

import (
	"context"
	"time"

	"github.com/tally-billing/tally/billing"
)

// mrrStore is what the finance view's MRR history needs from storage
// (*db.DB).
type mrrStore interface {
	MRRPeriods(ctx context.Context, since time.Time) ([]billing.MRRPeriod, error)
}

// mrrMonths is how many month ends the MRR history shows.
const mrrMonths = 12

// mrrHistory is the MRR at each of the last 12 month ends (the current
// month's as of now), from the subscription periods granted; nil when the
// store keeps no subscriptions.
func (s *Server) mrrHistory(ctx context.Context) ([]billing.MRRPoint, error) {
	ms, ok := s.store.(mrrStore)
	if !ok {
		return nil, nil
	}
	at := billing.MonthEnds(s.store.Now(), mrrMonths)
	periods, err := ms.MRRPeriods(ctx, at[0])
	if err != nil {
		return nil, err
	}
	return billing.MRRHistory(periods, at), nil
}
