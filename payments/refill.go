package payments

import (
	"context"
	"fmt"
	"time"

	"github.com/tally-billing/tally/billing"
)

// RunRefills runs auto-refill jobs until ctx ends: at once when a debit
// queues one (the store's signal), when a retry falls due, and every poll
// interval in case another process queued one. Jobs a crash left running
// are picked up again first.
func (s *Service) RunRefills(ctx context.Context, poll time.Duration) {
	if poll <= 0 {
		poll = 5 * time.Second
	}
	if n, err := s.Store.RecoverRefillJobs(ctx); err != nil {
		s.log().Warn("auto-refill: recovering jobs", "err", err)
	} else if n > 0 {
		s.log().Info("auto-refill: resuming jobs interrupted by a restart", "jobs", n)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Store.RefillSignal():
		case <-timer.C:
		}
		for ctx.Err() == nil {
			job, ok, err := s.Store.ClaimRefillJob(ctx)
			if err != nil {
				s.log().Warn("auto-refill: claiming a job", "err", err)
				break
			}
			if !ok {
				break
			}
			s.runRefill(ctx, job)
		}
		wait := poll
		if next, err := s.Store.NextRefillAt(ctx); err == nil && !next.IsZero() {
			wait = min(wait, max(time.Until(next), 10*time.Millisecond))
		}
		timer.Reset(wait)
	}
}

// RunRefillsOnce runs every due job now (tests, and the CLI).
func (s *Service) RunRefillsOnce(ctx context.Context) (int, error) {
	n := 0
	for {
		job, ok, err := s.Store.ClaimRefillJob(ctx)
		if err != nil || !ok {
			return n, err
		}
		s.runRefill(ctx, job)
		n++
	}
}

func (s *Service) outcome(result string) {
	if s.OnRefill != nil {
		s.OnRefill(result)
	}
}

// runRefill buys what the customer's settings say, within the monthly
// ceiling, with their default card, off-session.
func (s *Service) runRefill(ctx context.Context, job billing.RefillJob) {
	log := s.log().With("job", job.ID, "customer", job.CustomerID)
	set, found, err := s.Store.FindRefillSettings(ctx, job.CustomerID)
	if err != nil {
		s.retryLater(ctx, job, err)
		return
	}
	if !found || !set.Enabled || set.PausedReason != "" {
		s.Store.SkipRefillJob(ctx, job, "auto-refill is off or paused", "", nil)
		s.outcome("skipped")
		return
	}
	req := billing.TopUpRequest{Key: fmt.Sprintf("refill:%s:%d", job.ID, job.Attempts), Origin: billing.OriginAutoRefill, OffSession: true,
		ReturnURL: s.ReturnURL}
	switch set.Mode {
	case billing.RefillPack:
		req.PackID = set.PackID
	default:
		b, err := s.Store.Balance(ctx, job.CustomerID)
		if err != nil {
			s.retryLater(ctx, job, err)
			return
		}
		need, ok := billing.RefillCredits(set.Target, b.Available)
		if !ok {
			s.Store.SkipRefillJob(ctx, job, "the balance is already at the target", "", nil)
			s.outcome("skipped")
			return
		}
		req.Credits = need
	}
	credits, price, desc, err := s.Quote(ctx, req)
	if err != nil {
		s.Store.SkipRefillJob(ctx, job, err.Error(), billing.RefillSkipNoPrice, map[string]any{"detail": billing.ErrorMessage(err)})
		s.outcome("skipped")
		return
	}
	count, spent, err := s.Store.RefillMonth(ctx, job.CustomerID, s.now())
	if err != nil {
		s.retryLater(ctx, job, err)
		return
	}
	pol := s.policy(ctx)
	if most, ok := billing.RefillCountCap(set, pol); ok && count >= most {
		s.Store.SkipRefillJob(ctx, job, "monthly refill count reached", billing.RefillSkipMonthlyCount, map[string]any{"limit": most})
		s.outcome("ceiling")
		return
	}
	if most, ok := billing.RefillAmountCap(set, pol); ok && spent+price.Amount > most {
		s.Store.SkipRefillJob(ctx, job, "monthly refill amount reached", billing.RefillSkipMonthlyAmount,
			map[string]any{"limit": most, "currency": price.Currency})
		s.outcome("ceiling")
		return
	}
	card, ok, err := s.DefaultCard(ctx, job.CustomerID)
	if err != nil {
		s.retryLater(ctx, job, err)
		return
	}
	if !ok {
		s.Store.SkipRefillJob(ctx, job, "no saved card", billing.RefillSkipNoCard, nil)
		s.outcome("no_card")
		return
	}
	tu, _, err := s.Store.CreateTopUp(ctx, billing.TopUp{Customer: job.CustomerID, Origin: billing.OriginAutoRefill, PackID: req.PackID,
		Description: "Auto-refill: " + desc, Credits: credits, Price: price, Provider: s.Provider.Name(), CardBrand: card.Brand, CardLast4: card.Last4},
		req.Key, card.ID)
	if err != nil {
		s.retryLater(ctx, job, err)
		return
	}
	// Linking is idempotent: after a restart the same attempt finds its top-up.
	if err := s.Store.AttachRefillTopUp(ctx, job, tu.ID); err != nil {
		s.retryLater(ctx, job, err)
		return
	}
	if tu.Status != billing.TopUpPending {
		// This attempt was already charged before a restart; its outcome
		// settled the job (or will, by webhook).
		s.outcome(tu.Status)
		return
	}
	tu, err = s.charge(ctx, tu, card, req)
	if err != nil {
		s.retryLater(ctx, job, err)
		return
	}
	log.Info("auto-refill", "top_up", tu.ID, "status", tu.Status, "credits", tu.Credits.String())
	s.outcome(tu.Status)
}

// retryLater puts a job back after a failure that was not a decline (the
// provider or the database was unavailable): it is retried in a minute,
// nothing is counted against the customer's card.
func (s *Service) retryLater(ctx context.Context, job billing.RefillJob, cause error) {
	s.log().Warn("auto-refill: will retry", "job", job.ID, "err", cause)
	s.outcome("retry")
	if err := s.Store.RetryRefillJobLater(context.WithoutCancel(ctx), job, time.Minute, billing.ErrorMessage(cause)); err != nil {
		s.log().Error("auto-refill: could not reschedule", "job", job.ID, "err", err)
	}
}
