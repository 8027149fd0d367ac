package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Subscriptions: the store's side of billing/plans.go. Every change goes
// through a plan and t.apply (the subscription row, the period row, the
// lot and its rollover rule are written by the applier with the entries).

// Subscription providers.
const (
	ProviderSandbox = "sandbox"
	ProviderStripe  = "stripe"
)

const subCols = `id, customer_id, plan_key, price_version, status, current_period_start, current_period_end, cancel_at_period_end,
	COALESCE(next_plan_key, ''), COALESCE(next_price_version, 0), provider, COALESCE(provider_id, ''), created_at, canceled_at`

func scanSubscription(r rowScanner) (billing.Subscription, error) {
	var s billing.Subscription
	var start, end, created int64
	var canceled sql.NullInt64
	err := r.Scan(&s.ID, &s.Customer, &s.Plan, &s.PriceVersion, &s.Status, &start, &end, &s.CancelAtPeriodEnd,
		&s.NextPlan, &s.NextPriceVersion, &s.Provider, &s.ProviderID, &created, &canceled)
	s.Object = "subscription"
	s.CurrentPeriodStart, s.CurrentPeriodEnd, s.CreatedAt, s.CanceledAt = fromMicros(start), fromMicros(end), fromMicros(created), timePtr(canceled)
	return s, err
}

// saveSubscription writes a subscription's new state (the applier's).
func (t *Tx) saveSubscription(s *billing.Subscription) error {
	_, err := t.exec(`INSERT INTO subscriptions (id, customer_id, plan_key, price_version, status, current_period_start, current_period_end,
		cancel_at_period_end, next_plan_key, next_price_version, provider, provider_id, created_at, canceled_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET plan_key = excluded.plan_key, price_version = excluded.price_version, status = excluded.status,
		current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end,
		cancel_at_period_end = excluded.cancel_at_period_end, next_plan_key = excluded.next_plan_key,
		next_price_version = excluded.next_price_version, provider_id = COALESCE(excluded.provider_id, subscriptions.provider_id),
		canceled_at = excluded.canceled_at, updated_at = excluded.updated_at`,
		s.ID, s.Customer, s.Plan, s.PriceVersion, s.Status, micros(s.CurrentPeriodStart), micros(s.CurrentPeriodEnd), s.CancelAtPeriodEnd,
		nullStr(s.NextPlan), nullInt(s.NextPriceVersion), s.Provider, nullStr(s.ProviderID), micros(s.CreatedAt), nullMicros(s.CanceledAt),
		micros(t.Now))
	return err
}

// insertPeriod records a grant of plan credits; its unique keys refuse a
// second grant for the same invoice or period.
func (t *Tx) insertPeriod(customerID string, p *billing.SubscriptionPeriod, lotID int64) error {
	_, err := t.exec(`INSERT INTO subscription_periods (subscription_id, customer_id, kind, period_start, period_end, invoice_id, plan_key,
		price_version, credits, amount, currency, lot_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.Subscription, customerID, p.Kind, micros(p.Start), micros(p.End), p.Invoice, p.Plan, p.PriceVersion, int64(p.Credits),
		p.Amount.Amount, p.Amount.Currency, nullInt(lotID), micros(t.Now))
	return err
}

// closeLot ends a subscription lot's period (the applier's): the carried
// credits get their new expiry, and the rule is closed.
func (t *Tx) closeLot(w *wallet, c billing.LotClose) error {
	carried := int64(0)
	if l, ok := w.lot(c.LotID); ok {
		carried = int64(l.Remaining)
	}
	if c.ExpiresAt != nil && carried > 0 {
		for i := range w.lots {
			if w.lots[i].ID == c.LotID {
				w.lots[i].ExpiresAt = c.ExpiresAt
			}
		}
		if _, err := t.exec(`UPDATE lots SET expires_at = ?, expiring_noticed_at = NULL WHERE id = ?`, micros(*c.ExpiresAt), c.LotID); err != nil {
			return err
		}
	}
	_, err := t.exec(`UPDATE lot_rollovers SET closed_at = ?, carried = ? WHERE lot_id = ? AND closed_at IS NULL`, micros(t.Now), carried, c.LotID)
	return err
}

// lotRule is a subscription lot's open rollover rule, if it has one.
func (t *Tx) lotRule(lotID int64) (*billing.LotRollover, error) {
	var r billing.LotRollover
	var keep int64
	err := t.queryRow(`SELECT subscription_id, policy, max, periods, keep_until FROM lot_rollovers WHERE lot_id = ? AND closed_at IS NULL`, lotID).
		Scan(&r.Subscription, &r.Rollover.Policy, &r.Rollover.Max, &r.Rollover.Periods, &keep)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	r.KeepUntil = fromMicros(keep)
	return &r, err
}

// rolledOver is what w's lots that carried over from an earlier period
// still hold, other than lot except (the working copy's figures).
func (t *Tx) rolledOver(w *wallet, except int64) (billing.Credits, error) {
	rows, err := t.query(`SELECT r.lot_id FROM lot_rollovers r JOIN lots l ON l.id = r.lot_id
		WHERE l.customer_id = ? AND l.remaining > 0 AND r.closed_at IS NOT NULL AND r.carried > 0`, w.customerID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var sum billing.Credits
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return 0, err
		}
		if l, ok := w.lot(id); ok && id != except && l.Live(t.Now) {
			sum += l.Remaining
		}
	}
	return sum, rows.Err()
}

// closePeriodLot ends lot l's period at now: with an open rollover rule,
// billing.PlanPeriodClose (what carries over stays); without, a plain
// expiry. It reports whether it found a rule.
func (t *Tx) closePeriodLot(w *wallet, l billing.Lot, now time.Time) (bool, error) {
	if l.Source != billing.SourceSubscription {
		return false, nil
	}
	rule, err := t.lotRule(l.ID)
	if err != nil || rule == nil {
		return false, err
	}
	rolled, err := t.rolledOver(w, l.ID)
	if err != nil {
		return false, err
	}
	ch := billing.PlanPeriodClose(ptr(t.state(w, w.lots)), l, *rule, rolled, now)
	_, err = t.apply(w, &ch)
	return true, err
}

// closePeriodsDue ends the periods of w's subscription lots that end at or
// before at (the sandbox's clock may be ahead of the real one, which the
// lot sweep follows).
func (t *Tx) closePeriodsDue(w *wallet, at time.Time) error {
	var due []billing.Lot
	for _, l := range w.lots {
		if l.Source == billing.SourceSubscription && l.ExpiresAt != nil && !l.ExpiresAt.After(at) {
			due = append(due, l)
		}
	}
	for _, l := range due {
		closed, err := t.closePeriodLot(w, l, at)
		if err != nil {
			return err
		}
		if !closed {
			if cur, ok := w.lot(l.ID); ok {
				ch := billing.PlanLotExpiry(ptr(t.state(w, w.lots)), cur)
				if _, err := t.apply(w, &ch); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// subscriptionOf is the customer's live subscription, or nil.
func (t *Tx) subscriptionOf(customerID string) (*billing.Subscription, error) {
	s, err := scanSubscription(t.queryRow(`SELECT `+subCols+` FROM subscriptions WHERE customer_id = ? AND status != 'canceled'`, customerID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return &s, err
}

func (t *Tx) subscriptionByID(id string) (billing.Subscription, error) {
	s, err := scanSubscription(t.queryRow(`SELECT `+subCols+` FROM subscriptions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, billing.Errorf(billing.CodeNotFound, "No subscription %s.", id)
	}
	return s, err
}

// planAt is plan key in price book version v.
func (t *Tx) planAt(key string, v int64) (billing.Plan, error) {
	var at int64
	var body []byte
	err := t.queryRow(`SELECT published_at, body FROM price_books WHERE version = ?`, v).Scan(&at, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.Plan{}, billing.Errorf(billing.CodeNotFound, "No price book version %d.", v)
	}
	if err != nil {
		return billing.Plan{}, err
	}
	pb, err := decodePriceBook(v, at, body)
	if err != nil {
		return billing.Plan{}, err
	}
	p, ok := pb.Plan(key)
	if !ok {
		return billing.Plan{}, billing.Errorf(billing.CodeNotFound, "Plan %q is not in price book version %d.", key, v).With("param", "plan")
	}
	return p, nil
}

// currentPlan is plan key in the current price book, with its version.
func (t *Tx) currentPlan(key string) (billing.Plan, int64, error) {
	pb, err := t.priceBook()
	if err != nil {
		return billing.Plan{}, 0, err
	}
	p, ok := pb.Plan(key)
	if !ok {
		return billing.Plan{}, 0, billing.Errorf(billing.CodeNotFound, "Plan %q is not in the price book (version %d).", key, pb.Version).
			With("param", "plan")
	}
	return p, pb.Version, nil
}

// periodByInvoice is the subscription a recorded invoice granted credits
// to, if the invoice was recorded.
func (t *Tx) periodByInvoice(invoice string) (string, bool, error) {
	var sub string
	err := t.queryRow(`SELECT subscription_id FROM subscription_periods WHERE invoice_id = ?`, invoice).Scan(&sub)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return sub, err == nil, err
}

// SubscribeInput starts a subscription.
type SubscribeInput struct {
	Customer   string // id or external id
	Plan       string // a plan key of the current price book
	Provider   string // sandbox (default) or stripe
	ProviderID string // Stripe's subscription id
	Invoice    string // the first invoice; the sandbox makes one
	// PriceVersion pins the plan's price book version (a provider's
	// checkout started on it); 0 is the current one.
	PriceVersion int64
	Start, End   time.Time
	Actor        billing.Actor
}

// SubscriptionResult is a subscription after a call, and whether the call
// was a replay (the invoice was recorded already: nothing was written).
type SubscriptionResult struct {
	Subscription billing.Subscription
	Quote        *billing.PlanChangeQuote
	Replayed     bool
}

// StartSubscription starts a subscription on a plan of the current price book and
// grants its first period's credits. The first invoice is the key: the same
// invoice again returns the subscription it started (Replayed). Errors:
// not_found (customer, plan), conflict (a live subscription already),
// validation_failed.
func (d *DB) StartSubscription(ctx context.Context, in SubscribeInput) (SubscriptionResult, error) {
	id, err := d.ResolveCustomer(ctx, in.Customer)
	if err != nil {
		return SubscriptionResult{}, err
	}
	if in.Provider == "" {
		in.Provider = ProviderSandbox
	}
	var out SubscriptionResult
	err = d.Write(ctx, func(t *Tx) (err error) {
		out, err = t.startSubscription(id, in)
		return err
	})
	return out, err
}

func (t *Tx) startSubscription(id string, in SubscribeInput) (out SubscriptionResult, err error) {
	now := t.Now
	if in.Provider == ProviderSandbox {
		if now, err = t.sandboxNow(); err != nil {
			return out, err
		}
	}
	start := in.Start
	if start.IsZero() {
		start = now
	}
	subID := newID("sub", 10)
	if in.Invoice == "" {
		in.Invoice = "sbx_inv_" + subID[4:] + "_0"
	}
	if sid, found, err := t.periodByInvoice(in.Invoice); err != nil {
		return out, err
	} else if found {
		out.Subscription, err = t.subscriptionByID(sid)
		out.Replayed = true
		return out, err
	}
	plan, version, err := t.currentPlan(in.Plan)
	if in.PriceVersion > 0 {
		version = in.PriceVersion
		plan, err = t.planAt(in.Plan, version)
	}
	if err != nil {
		return out, err
	}
	cur, err := t.subscriptionOf(id)
	if err != nil {
		return out, err
	}
	w, err := t.loadWallet(id)
	if err != nil {
		return out, err
	}
	if in.Actor.Kind == "" {
		in.Actor = billing.SystemActor("subscription")
	}
	ch, err := billing.PlanSubscribe(ptr(t.state(w, w.lots)), cur, billing.SubscribeRequest{ID: subID, Plan: plan, PriceVersion: version,
		Provider: in.Provider, ProviderID: in.ProviderID, Invoice: in.Invoice, Start: start, End: in.End, Now: now, Actor: in.Actor})
	if err != nil {
		return out, err
	}
	if _, err := t.apply(w, &ch); err != nil {
		return out, err
	}
	out.Subscription = *ch.Subscription
	return out, nil
}

// RenewInput is a paid invoice for one period of a subscription, named by
// Tally's id or the provider's.
type RenewInput struct {
	Subscription string // sub_... (Tally's) or the provider's id
	Invoice      string
	Start, End   time.Time
	Amount       billing.Money
	Actor        billing.Actor
	// CloseAt closes the periods that end by then before granting (zero:
	// Start). A free period given before the current one ends sets it to
	// now, so the current period's credits live on to their own end.
	CloseAt time.Time
}

// RenewSubscription grants a paid period's credits exactly once per
// invoice and per period: a replayed invoice, or another invoice for a
// period already granted, writes nothing (Replayed). The subscription's
// plan for the period is its pending downgrade when the period is the next
// one, else its plan at its price book version. The previous period's lots
// are closed first (rollover), so a renewal that runs before the expiry
// sweep loses nothing. Errors: not_found, conflict (canceled).
func (d *DB) RenewSubscription(ctx context.Context, in RenewInput) (SubscriptionResult, error) {
	var out SubscriptionResult
	err := d.Write(ctx, func(t *Tx) error {
		var err error
		out, err = t.renew(in)
		return err
	})
	return out, err
}

func (t *Tx) findSubscription(ref string) (billing.Subscription, error) {
	s, err := scanSubscription(t.queryRow(`SELECT `+subCols+` FROM subscriptions WHERE id = ? OR provider_id = ? ORDER BY id LIMIT 1`, ref, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return s, billing.Errorf(billing.CodeNotFound, "No subscription %s.", ref)
	}
	return s, err
}

func (t *Tx) renew(in RenewInput) (SubscriptionResult, error) {
	sub, err := t.findSubscription(in.Subscription)
	if err != nil {
		return SubscriptionResult{}, err
	}
	if _, found, err := t.periodByInvoice(in.Invoice); err != nil || found {
		return SubscriptionResult{Subscription: sub, Replayed: found}, err
	}
	start := in.Start.UTC().Truncate(time.Microsecond)
	var n int
	if err := t.queryRow(`SELECT COUNT(*) FROM subscription_periods WHERE subscription_id = ? AND kind = 'renewal' AND period_start = ?`,
		sub.ID, micros(start)).Scan(&n); err != nil {
		return SubscriptionResult{}, err
	}
	if n > 0 {
		return SubscriptionResult{Subscription: sub, Replayed: true}, nil
	}
	key, version := sub.Plan, sub.PriceVersion
	if sub.NextPlan != "" && !start.Before(sub.CurrentPeriodEnd) {
		key, version = sub.NextPlan, sub.NextPriceVersion
	}
	plan, err := t.planAt(key, version)
	if err != nil {
		return SubscriptionResult{}, err
	}
	if in.Amount.Currency == "" {
		in.Amount = plan.Price
	}
	w, err := t.loadWallet(sub.Customer)
	if err != nil {
		return SubscriptionResult{}, err
	}
	closeAt := in.CloseAt
	if closeAt.IsZero() || closeAt.After(start) {
		closeAt = start
	}
	if err := t.closePeriodsDue(w, closeAt); err != nil {
		return SubscriptionResult{}, err
	}
	end := in.End
	if end.IsZero() {
		end = plan.PeriodEnd(start)
	}
	if in.Actor.Kind == "" {
		in.Actor = billing.SystemActor("subscription")
	}
	ch, err := billing.PlanRenewal(ptr(t.state(w, w.lots)), sub, billing.RenewalRequest{Plan: plan, PriceVersion: version, Invoice: in.Invoice,
		Start: start, End: end, Amount: in.Amount, Now: t.Now, Actor: in.Actor})
	if err != nil {
		return SubscriptionResult{}, err
	}
	if _, err := t.apply(w, &ch); err != nil {
		return SubscriptionResult{}, err
	}
	return SubscriptionResult{Subscription: *ch.Subscription}, nil
}

// FindSubscription returns the customer's live subscription, or its last
// one when none is live; nil when it never subscribed.
func (d *DB) FindSubscription(ctx context.Context, customer string) (*billing.Subscription, error) {
	id, err := d.ResolveCustomer(ctx, customer)
	if err != nil {
		return nil, err
	}
	s, err := scanSubscription(d.read.QueryRowContext(ctx, `SELECT `+subCols+` FROM subscriptions WHERE customer_id = ?
		ORDER BY status = 'canceled', created_at DESC LIMIT 1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return &s, err
}

// liveSubscription runs fn on the customer's live subscription (not_found
// without one) with its wallet, inside a write.
func (d *DB) liveSubscription(ctx context.Context, customer string, fn func(t *Tx, w *wallet, sub billing.Subscription) error) error {
	id, err := d.ResolveCustomer(ctx, customer)
	if err != nil {
		return err
	}
	return d.Write(ctx, func(t *Tx) error {
		sub, err := t.subscriptionOf(id)
		if err != nil {
			return err
		}
		if sub == nil {
			return billing.Errorf(billing.CodeNotFound, "This customer has no subscription.")
		}
		w, err := t.loadWallet(id)
		if err != nil {
			return err
		}
		return fn(t, w, *sub)
	})
}

// subNow is the clock of sub's provider: the sandbox's test clock, or now.
func (t *Tx) subNow(sub billing.Subscription) (time.Time, error) {
	if sub.Provider == ProviderSandbox {
		return t.sandboxNow()
	}
	return t.Now, nil
}

// ChangePlan moves the customer's subscription to plan key of the current
// price book (billing.PlanChangePlan): an upgrade now, with the prorated
// credits granted at once and the prorated amount invoiced (the sandbox
// records it paid); a downgrade at the period's end. dry returns the quote
// and writes nothing (the portal's preview). Errors: not_found, conflict.
func (d *DB) ChangePlan(ctx context.Context, customer, key string, dry bool, actor billing.Actor) (SubscriptionResult, error) {
	var out SubscriptionResult
	errDry := errors.New("dry run")
	err := d.liveSubscription(ctx, customer, func(t *Tx, w *wallet, sub billing.Subscription) error {
		now, err := t.subNow(sub)
		if err != nil {
			return err
		}
		from, err := t.planAt(sub.Plan, sub.PriceVersion)
		if err != nil {
			return err
		}
		to, version, err := t.currentPlan(key)
		if err != nil {
			return err
		}
		invoice := "sbx_inv_" + sub.ID[4:] + "_up_" + strconv.FormatInt(micros(now), 36)
		ch, q, err := billing.PlanChangePlan(ptr(t.state(w, w.lots)), sub, billing.ChangePlanRequest{From: from, To: to, PriceVersion: version,
			Invoice: invoice, Now: now, Actor: actor})
		if err != nil {
			return err
		}
		out.Quote = &q
		if dry {
			out.Subscription = *ch.Subscription
			return errDry
		}
		if _, err := t.apply(w, &ch); err != nil {
			return err
		}
		out.Subscription = *ch.Subscription
		return nil
	})
	if errors.Is(err, errDry) {
		err = nil
	}
	return out, err
}

// CancelSubscription ends the customer's subscription at its period's end
// (atPeriodEnd) or now. Errors: not_found, conflict.
func (d *DB) CancelSubscription(ctx context.Context, customer string, atPeriodEnd bool, actor billing.Actor) (billing.Subscription, error) {
	var out billing.Subscription
	err := d.liveSubscription(ctx, customer, func(t *Tx, w *wallet, sub billing.Subscription) error {
		now, err := t.subNow(sub)
		if err != nil {
			return err
		}
		ch, err := billing.PlanCancel(ptr(t.state(w, w.lots)), sub, atPeriodEnd, now, actor)
		if err != nil {
			return err
		}
		out = *ch.Subscription
		_, err = t.apply(w, &ch)
		return err
	})
	return out, err
}

// ResumeSubscription takes back a scheduled cancellation or downgrade.
// Errors: not_found, conflict.
func (d *DB) ResumeSubscription(ctx context.Context, customer string, actor billing.Actor) (billing.Subscription, error) {
	var out billing.Subscription
	err := d.liveSubscription(ctx, customer, func(t *Tx, w *wallet, sub billing.Subscription) error {
		ch, err := billing.PlanResume(ptr(t.state(w, w.lots)), sub, actor)
		if err != nil {
			return err
		}
		out = *ch.Subscription
		_, err = t.apply(w, &ch)
		return err
	})
	return out, err
}

// InvoiceFailedInput is a failed payment of a subscription's invoice.
type InvoiceFailedInput struct {
	Subscription string // Tally's id or the provider's
	Invoice      string
	Amount       billing.Money
	Attempt      int
	Final        bool // the provider gave up: the subscription ends
}

// SubscriptionPaymentFailed marks the subscription past due (its credits
// stop renewing) and writes invoice.payment_failed for the dunning notices;
// a final failure cancels it. An invoice already paid is left alone.
func (d *DB) SubscriptionPaymentFailed(ctx context.Context, in InvoiceFailedInput) (billing.Subscription, error) {
	var out billing.Subscription
	err := d.Write(ctx, func(t *Tx) (err error) {
		out, err = t.paymentFailed(in)
		return err
	})
	return out, err
}

func (t *Tx) paymentFailed(in InvoiceFailedInput) (billing.Subscription, error) {
	sub, err := t.findSubscription(in.Subscription)
	if err != nil {
		return sub, err
	}
	if _, paid, err := t.periodByInvoice(in.Invoice); err != nil || paid || sub.Status == billing.SubCanceled {
		return sub, err
	}
	w, err := t.loadWallet(sub.Customer)
	if err != nil {
		return sub, err
	}
	ch := billing.PlanPaymentFailed(ptr(t.state(w, w.lots)), sub, in.Invoice, in.Amount, in.Attempt, in.Final, t.Now)
	_, err = t.apply(w, &ch)
	return *ch.Subscription, err
}

// sandboxNow is the sandbox's test clock: the real time plus how far
// `tally sandbox advance` moved it.
func (t *Tx) sandboxNow() (time.Time, error) {
	var off int64
	err := t.queryRow(`SELECT offset_us FROM sandbox_clock WHERE id = 1`).Scan(&off)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, err
	}
	return t.Now.Add(time.Duration(off) * time.Microsecond), nil
}

// SandboxNow returns the sandbox's test clock.
func (d *DB) SandboxNow(ctx context.Context) (time.Time, error) {
	var off int64
	err := d.read.QueryRowContext(ctx, `SELECT offset_us FROM sandbox_clock WHERE id = 1`).Scan(&off)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, err
	}
	return d.now().Add(time.Duration(off) * time.Microsecond), nil
}

// AdvanceResult is what advancing the sandbox's clock did.
type AdvanceResult struct {
	Now      time.Time `json:"now"`
	Renewed  int       `json:"renewed"`
	Canceled int       `json:"canceled"`
}

// maxRenewalsPerAdvance bounds one advance's renewals per subscription (a
// century of months).
const maxRenewalsPerAdvance = 1200

// AdvanceSandbox moves the sandbox's test clock on by by and lives through
// what it passes: every sandbox subscription whose period ended renews (its
// invoice paid; the invoice id is the period's, so advancing twice or from
// two processes renews once), or ends when its cancellation was due; a
// pending downgrade takes effect. by may be zero: then it only catches up.
func (d *DB) AdvanceSandbox(ctx context.Context, by time.Duration) (AdvanceResult, error) {
	if by < 0 {
		return AdvanceResult{}, billing.Errorf(billing.CodeValidation, "the sandbox clock only moves forward")
	}
	var out AdvanceResult
	err := d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO sandbox_clock (id, offset_us) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET offset_us = sandbox_clock.offset_us + excluded.offset_us`, by.Microseconds())
		if err != nil {
			return err
		}
		out.Now, err = t.sandboxNow()
		return err
	})
	if err != nil {
		return out, err
	}
	for range maxRenewalsPerAdvance {
		var ids []string
		rows, err := d.read.QueryContext(ctx, `SELECT id FROM subscriptions WHERE status != 'canceled' AND provider = ? AND current_period_end <= ?
			ORDER BY current_period_end LIMIT 100`, ProviderSandbox, micros(out.Now))
		if err != nil {
			return out, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return out, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return out, err
		}
		if len(ids) == 0 {
			return out, nil
		}
		for _, id := range ids {
			err := d.Write(ctx, func(t *Tx) error {
				renewed, canceled, err := t.sandboxPeriodEnd(id, out.Now)
				if renewed {
					out.Renewed++
				}
				if canceled {
					out.Canceled++
				}
				return err
			})
			if err != nil {
				return out, err
			}
		}
	}
	return out, fmt.Errorf("db: sandbox advance: more than %d renewals", maxRenewalsPerAdvance)
}

// sandboxPeriodEnd ends one sandbox subscription's period (due at now):
// the cancellation, or the renewal with its invoice paid.
func (t *Tx) sandboxPeriodEnd(id string, now time.Time) (renewed, canceled bool, err error) {
	sub, err := t.subscriptionByID(id)
	if err != nil || sub.Status == billing.SubCanceled || sub.CurrentPeriodEnd.After(now) {
		return false, false, err
	}
	w, err := t.loadWallet(sub.Customer)
	if err != nil {
		return false, false, err
	}
	if sub.CancelAtPeriodEnd {
		if err := t.closePeriodsDue(w, sub.CurrentPeriodEnd); err != nil {
			return false, false, err
		}
		ch, err := billing.PlanCancel(ptr(t.state(w, w.lots)), sub, false, sub.CurrentPeriodEnd, billing.SystemActor("subscription"))
		if err != nil {
			return false, false, err
		}
		_, err = t.apply(w, &ch)
		return false, true, err
	}
	start := sub.CurrentPeriodEnd
	_, err = t.renew(RenewInput{Subscription: sub.ID, Invoice: "sbx_inv_" + sub.ID[4:] + "_" + strconv.FormatInt(micros(start), 36), Start: start})
	return err == nil, false, err
}

// SubscriptionInvoice is a grant of plan credits and what it charged: a
// receipt's line.
type SubscriptionInvoice struct {
	ID           string          `json:"id"`
	Subscription string          `json:"subscription"`
	Kind         string          `json:"kind"`
	Plan         string          `json:"plan"`
	PeriodStart  time.Time       `json:"period_start"`
	PeriodEnd    time.Time       `json:"period_end"`
	Credits      billing.Credits `json:"credits"`
	Amount       billing.Money   `json:"amount"`
	CreatedAt    time.Time       `json:"created_at"`
}

// ListSubscriptionInvoices returns the customer's subscription invoices,
// newest first.
func (d *DB) ListSubscriptionInvoices(ctx context.Context, customerID string, limit int) ([]SubscriptionInvoice, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT invoice_id, subscription_id, kind, plan_key, period_start, period_end, credits, amount, currency, created_at
		FROM subscription_periods WHERE customer_id = ? ORDER BY id DESC LIMIT ?`, customerID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SubscriptionInvoice{}
	for rows.Next() {
		var v SubscriptionInvoice
		var start, end, created int64
		if err := rows.Scan(&v.ID, &v.Subscription, &v.Kind, &v.Plan, &start, &end, &v.Credits, &v.Amount.Amount, &v.Amount.Currency, &created); err != nil {
			return nil, err
		}
		v.PeriodStart, v.PeriodEnd, v.CreatedAt = fromMicros(start), fromMicros(end), fromMicros(created)
		out = append(out, v)
	}
	return out, rows.Err()
}

// PlanUsage is a subscriber's credits for the current period: what the
// period granted (renewal and upgrades), what is left of it, and the
// rolled-over credits apart.
type PlanUsage struct {
	Granted, Left, RolledOver billing.Credits
}

// SubscriptionCredits returns the plan credits of sub's current period and
// the rolled-over credits still alive.
func (d *DB) SubscriptionCredits(ctx context.Context, sub billing.Subscription) (PlanUsage, error) {
	var u PlanUsage
	now := micros(d.now())
	err := d.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(l.amount), 0), COALESCE(SUM(CASE WHEN l.frozen = 0 THEN l.remaining END), 0)
		FROM subscription_periods p JOIN lots l ON l.id = p.lot_id
		WHERE p.subscription_id = ? AND p.period_end = ?`, sub.ID, micros(sub.CurrentPeriodEnd)).Scan(&u.Granted, &u.Left)
	if err != nil {
		return u, err
	}
	err = d.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(l.remaining), 0) FROM lot_rollovers r JOIN lots l ON l.id = r.lot_id
		WHERE l.customer_id = ? AND r.closed_at IS NOT NULL AND l.remaining > 0 AND l.frozen = 0 AND (l.expires_at IS NULL OR l.expires_at > ?)`,
		sub.Customer, now).Scan(&u.RolledOver)
	return u, err
}

// PlanSubscribers is one plan's live subscribers and what they bring in a
// month (MRR: a yearly plan's price / 12, rounded down), per currency.
type PlanSubscribers struct {
	Plan        string        `json:"plan"`
	Subscribers int           `json:"subscribers"`
	MRR         billing.Money `json:"mrr"`
}

// SubscribersPerPlan counts live (active or past due) subscriptions by plan
// key, with their monthly recurring revenue at the versions they pay for.
// For the admin console's plans and finance views.
func (d *DB) SubscribersPerPlan(ctx context.Context) ([]PlanSubscribers, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT plan_key, price_version, COUNT(*) FROM subscriptions WHERE status != 'canceled'
		GROUP BY plan_key, price_version ORDER BY plan_key, price_version`)
	if err != nil {
		return nil, err
	}
	type group struct {
		key     string
		version int64
		n       int
	}
	var groups []group
	for rows.Next() {
		var g group
		if err := rows.Scan(&g.key, &g.version, &g.n); err != nil {
			rows.Close()
			return nil, err
		}
		groups = append(groups, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []PlanSubscribers
	for _, g := range groups {
		pb, err := d.PriceBookVersion(ctx, g.version)
		if err != nil {
			return nil, err
		}
		p, _ := pb.Plan(g.key)
		monthly := p.Price.Amount * int64(g.n)
		if p.Interval == billing.IntervalYear {
			monthly /= 12
		}
		if n := len(out); n > 0 && out[n-1].Plan == g.key && out[n-1].MRR.Currency == p.Price.Currency {
			out[n-1].Subscribers += g.n
			out[n-1].MRR.Amount += monthly
			continue
		}
		out = append(out, PlanSubscribers{Plan: g.key, Subscribers: g.n, MRR: billing.Money{Amount: monthly, Currency: p.Price.Currency}})
	}
	return out, nil
}

// GrantFreePeriod gives the customer's live subscription its next period
// free: the period's credits now (the plan's, at its version), the period
// moved on, an invoice of zero recorded; a sandbox renewal of that period
// later grants nothing more. For the admin console (a goodwill gesture);
// a Stripe subscription's next invoice is Stripe's to waive. Errors:
// not_found, conflict (canceled).
func (d *DB) GrantFreePeriod(ctx context.Context, customer string, actor billing.Actor) (SubscriptionResult, error) {
	var out SubscriptionResult
	err := d.liveSubscription(ctx, customer, func(t *Tx, _ *wallet, sub billing.Subscription) error {
		plan, err := t.planAt(sub.Plan, sub.PriceVersion)
		if err != nil {
			return err
		}
		now, err := t.subNow(sub)
		if err != nil {
			return err
		}
		start := sub.CurrentPeriodEnd
		out, err = t.renew(RenewInput{Subscription: sub.ID, Invoice: "free_" + sub.ID[4:] + "_" + strconv.FormatInt(micros(start), 36),
			Start: start, Amount: billing.Money{Currency: plan.Price.Currency}, Actor: actor, CloseAt: now})
		return err
	})
	return out, err
}
