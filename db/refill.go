package db

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tally-billing/tally/billing"
)

// refillTrigger loads the auto-refill threshold the writer watches for a
// customer (nil when auto-refill is off or paused).
func (t *Tx) refillTrigger(customerID string) (*billing.Credits, error) {
	var th int64
	err := t.queryRow(`SELECT threshold FROM refill_settings WHERE customer_id = ? AND enabled = 1 AND paused_reason = ''`, customerID).Scan(&th)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := billing.Credits(th)
	return &c, nil
}

// enqueueRefill queues an auto-refill job (a Change's QueueRefill: the
// plan saw available fall below the customer's line). The unique index on
// open jobs makes a second open job impossible.
func (t *Tx) enqueueRefill(customerID string) error {
	// A refill the customer was asked to authenticate a day ago and never
	// did no longer blocks new ones.
	if _, err := t.exec(`UPDATE refill_jobs SET status = 'skipped', last_error = 'authentication not completed within 24 hours', updated_at = ?
		WHERE customer_id = ? AND status = 'requires_action' AND updated_at < ?`, micros(t.Now), customerID, micros(t.Now.Add(-24*time.Hour))); err != nil {
		return err
	}
	res, err := t.exec(`INSERT INTO refill_jobs (id, customer_id, status, next_attempt_at, created_at, updated_at)
		VALUES (?, ?, 'pending', ?, ?, ?) ON CONFLICT DO NOTHING`, newID("rfj", 8), customerID, micros(t.Now), micros(t.Now), micros(t.Now))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		t.AfterCommit(t.w.d.signalRefill)
	}
	return nil
}

// RefillSignal is signalled (coalesced) after a commit that queued a refill
// job, so the runner starts it at once instead of at its next poll.
func (d *DB) RefillSignal() <-chan struct{} { return d.refillCh }

func (d *DB) signalRefill() {
	select {
	case d.refillCh <- struct{}{}:
	default:
	}
}

// FindRefillSettings returns a customer's auto-refill settings (found =
// false when they never set any).
func (d *DB) FindRefillSettings(ctx context.Context, customerID string) (billing.RefillSettings, bool, error) {
	var s billing.RefillSettings
	var maxN, maxAmt sql.NullInt64
	err := d.read.QueryRowContext(ctx, `SELECT enabled, threshold, mode, pack_id, target, max_refills_per_month, max_amount_per_month, failures, paused_reason
		FROM refill_settings WHERE customer_id = ?`, customerID).Scan(&s.Enabled, &s.Threshold, &s.Mode, &s.PackID, &s.Target, &maxN, &maxAmt, &s.Failures, &s.PausedReason)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.RefillSettings{Mode: billing.RefillPack}, false, nil
	}
	if maxN.Valid {
		n := int(maxN.Int64)
		s.MaxRefillsPerMonth = &n
	}
	if maxAmt.Valid {
		s.MaxAmountPerMonth = &maxAmt.Int64
	}
	return s, err == nil, err
}

// SaveRefillSettings stores a customer's auto-refill settings. Saving
// clears a pause and its failure count (the customer has had a look), and
// turning it on with the balance already below the threshold starts a
// refill now.
func (d *DB) SaveRefillSettings(ctx context.Context, customerID string, s billing.RefillSettings) error {
	return d.Write(ctx, func(t *Tx) error {
		var maxN any
		if s.MaxRefillsPerMonth != nil {
			maxN = *s.MaxRefillsPerMonth
		}
		var maxAmt any
		if s.MaxAmountPerMonth != nil {
			maxAmt = *s.MaxAmountPerMonth
		}
		if _, err := t.exec(`INSERT INTO refill_settings (customer_id, enabled, threshold, mode, pack_id, target, max_refills_per_month, max_amount_per_month, failures, paused_reason, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, '', ?)
			ON CONFLICT (customer_id) DO UPDATE SET enabled = excluded.enabled, threshold = excluded.threshold, mode = excluded.mode,
			pack_id = excluded.pack_id, target = excluded.target, max_refills_per_month = excluded.max_refills_per_month,
			max_amount_per_month = excluded.max_amount_per_month, failures = 0, paused_reason = '', updated_at = excluded.updated_at`,
			customerID, s.Enabled, int64(s.Threshold), s.Mode, s.PackID, int64(s.Target), maxN, maxAmt, micros(t.Now)); err != nil {
			return err
		}
		if !s.Enabled {
			// Turning it off cancels a refill that has not started.
			if _, err := t.exec(`UPDATE refill_jobs SET status = 'skipped', last_error = 'auto-refill turned off', updated_at = ? WHERE customer_id = ? AND status = 'pending'`,
				micros(t.Now), customerID); err != nil {
				return err
			}
		}
		w, err := t.loadWallet(customerID)
		if err != nil {
			return err
		}
		w.refillAt = nil
		if s.Enabled {
			th := s.Threshold
			w.refillAt = &th
			if w.Available() < th {
				if err := t.enqueueRefill(customerID); err != nil {
					return err
				}
			}
		}
		return t.saveWallet(w)
	})
}

// RefillMonth is what auto-refill has bought this calendar month (UTC).
func (d *DB) RefillMonth(ctx context.Context, customerID string, now time.Time) (count int, amount int64, err error) {
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	err = d.read.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM top_ups
		WHERE customer_id = ? AND origin = 'auto_refill' AND status IN ('succeeded', 'refunded') AND created_at >= ?`, customerID, micros(start)).Scan(&count, &amount)
	return count, amount, err
}

// RecoverRefillJobs puts jobs a crash left running back in the queue. Their
// next attempt uses the same idempotency key, so a charge the crash
// interrupted is not made twice.
func (d *DB) RecoverRefillJobs(ctx context.Context) (int, error) {
	var n int64
	err := d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`UPDATE refill_jobs SET status = 'pending', updated_at = ? WHERE status = 'running'`, micros(t.Now))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// ClaimRefillJob takes the next due job and marks it running (ok = false
// when none is due).
func (d *DB) ClaimRefillJob(ctx context.Context) (job billing.RefillJob, ok bool, err error) {
	err = d.Write(ctx, func(t *Tx) error {
		// PostgreSQL: another instance's claim in flight holds its job's
		// row; this one takes the next (SKIP LOCKED), so a job runs once.
		err := t.queryRow(`SELECT id, customer_id, attempts FROM refill_jobs WHERE status = 'pending' AND next_attempt_at <= ?
			ORDER BY next_attempt_at LIMIT 1`+d.sql("", " FOR UPDATE SKIP LOCKED"), micros(t.Now)).Scan(&job.ID, &job.CustomerID, &job.Attempts)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		ok = true
		_, err = t.exec(`UPDATE refill_jobs SET status = 'running', updated_at = ? WHERE id = ? AND status = 'pending'`, micros(t.Now), job.ID)
		return err
	})
	return job, ok, err
}

// NextRefillAt is when the next pending job is due (zero when none is).
func (d *DB) NextRefillAt(ctx context.Context) (time.Time, error) {
	var at sql.NullInt64
	err := d.read.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM refill_jobs WHERE status = 'pending'`).Scan(&at)
	if err != nil || !at.Valid {
		return time.Time{}, err
	}
	return fromMicros(at.Int64), nil
}

// SkipRefillJob ends a job without charging. reason, when not empty, is why
// the customer should hear about it (billing.RefillSkip*): an
// autorefill.failed event with the reason and data, which the portal shows
// as a notice; an empty reason (auto-refill turned off, the balance already
// at its target) tells nobody.
func (d *DB) SkipRefillJob(ctx context.Context, job billing.RefillJob, why, reason string, data map[string]any) error {
	return d.Write(ctx, func(t *Tx) error {
		if _, err := t.exec(`UPDATE refill_jobs SET status = 'skipped', last_error = ?, updated_at = ? WHERE id = ?`, why, micros(t.Now), job.ID); err != nil {
			return err
		}
		if reason == "" {
			return nil
		}
		ev := billing.NewEvent{Type: billing.EventAutoRefillFailed, Customer: job.CustomerID, Data: map[string]any{"job": job.ID, "reason": reason}}
		for k, v := range data {
			ev.Data[k] = v
		}
		t.touch(job.CustomerID)
		return t.emit(billing.SystemActor("auto_refill"), ev)
	})
}

// RetryRefillJobLater puts a job back for a provider outage: no failure is
// counted and the customer is not told (nothing was declined).
func (d *DB) RetryRefillJobLater(ctx context.Context, job billing.RefillJob, after time.Duration, why string) error {
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE refill_jobs SET status = 'pending', next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?`,
			micros(t.Now.Add(after)), why, micros(t.Now), job.ID)
		return err
	})
}

// AttachRefillTopUp links the top-up a job bought to the job.
func (d *DB) AttachRefillTopUp(ctx context.Context, job billing.RefillJob, topUpID string) error {
	return d.Write(ctx, func(t *Tx) error {
		if _, err := t.exec(`UPDATE top_ups SET refill_job_id = ? WHERE id = ?`, job.ID, topUpID); err != nil {
			return err
		}
		_, err := t.exec(`UPDATE refill_jobs SET top_up_id = ?, updated_at = ? WHERE id = ?`, topUpID, micros(t.Now), job.ID)
		return err
	})
}

// settleRefillJob moves an auto-refill job along with its top-up's payment,
// whether the answer came from the charge itself or later from a webhook
// (or the sandbox's authentication page). It acts only when the top-up's
// state changes, so a replayed answer counts nothing twice.
func (t *Tx) settleRefillJob(before billing.TopUp, p billing.Payment) error {
	if before.Origin != billing.OriginAutoRefill {
		return nil
	}
	var jobID string
	var attempts int
	err := t.queryRow(`SELECT j.id, j.attempts FROM refill_jobs j JOIN top_ups tu ON tu.refill_job_id = j.id WHERE tu.id = ?`, before.ID).Scan(&jobID, &attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var failures int
	if err := t.queryRow(`SELECT failures FROM refill_settings WHERE customer_id = ?`, before.Customer).Scan(&failures); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	out, ok := billing.PlanRefillOutcome(billing.RefillAttempt{TopUp: before, Attempts: attempts, Failures: failures, Now: t.Now}, p)
	if !ok {
		return nil
	}
	now := micros(t.Now)
	actor := billing.SystemActor("auto_refill")
	if err := t.emit(actor, out.Events...); err != nil {
		return err
	}
	if _, err := t.exec(`UPDATE refill_settings SET failures = ? WHERE customer_id = ?`, out.Failures, before.Customer); err != nil {
		return err
	}
	switch out.JobStatus {
	case "succeeded":
		if _, err := t.exec(`UPDATE refill_jobs SET status = 'succeeded', last_error = '', updated_at = ? WHERE id = ?`, now, jobID); err != nil {
			return err
		}
		// A refill that went through answers the notices about refills that
		// did not (billing.ResolvedBy): they would only mislead now.
		return nil
	case "requires_action":
		if _, err := t.exec(`UPDATE refill_jobs SET status = 'requires_action', updated_at = ? WHERE id = ?`, now, jobID); err != nil {
			return err
		}
		t.touch(before.Customer) // its notice is the event's (billing.IsNotice)
		return nil
	case "failed":
		if _, err := t.exec(`UPDATE refill_settings SET paused_reason = ? WHERE customer_id = ?`, out.Pause, before.Customer); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE refill_jobs SET status = 'failed', attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ?`, out.Reason, now, jobID); err != nil {
			return err
		}
		w, err := t.loadWallet(before.Customer)
		if err != nil {
			return err
		}
		w.refillAt = nil // paused: the writer stops watching its line
		if err := t.saveWallet(w); err != nil {
			return err
		}
		return nil
	}
	if _, err := t.exec(`UPDATE refill_jobs SET status = 'pending', attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?`,
		micros(out.NextAttemptAt), out.Reason, now, jobID); err != nil {
		return err
	}
	t.touch(before.Customer)
	return nil
}
