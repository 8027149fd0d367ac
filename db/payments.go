package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tally-billing/tally/billing"
)

// ProviderCustomer returns the customer's id at the payment provider, or "".
func (d *DB) ProviderCustomer(ctx context.Context, customerID, provider string) (string, error) {
	var id string
	err := d.read.QueryRowContext(ctx, `SELECT provider_customer_id FROM payment_customers WHERE customer_id = ? AND provider = ?`, customerID, provider).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// SaveProviderCustomer remembers the customer's id at the provider.
func (d *DB) SaveProviderCustomer(ctx context.Context, customerID, provider, providerID string) error {
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO payment_customers (customer_id, provider, provider_customer_id, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (customer_id) DO UPDATE SET provider = excluded.provider, provider_customer_id = excluded.provider_customer_id`,
			customerID, provider, providerID, micros(t.Now))
		return err
	})
}

// CustomerByProviderID finds the Tally customer of a provider customer id.
func (d *DB) CustomerByProviderID(ctx context.Context, provider, providerID string) (string, error) {
	var id string
	err := d.read.QueryRowContext(ctx, `SELECT customer_id FROM payment_customers WHERE provider = ? AND provider_customer_id = ?`, provider, providerID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", billing.Errorf(billing.CodeCustomerNotFound, "No customer with provider id %q.", providerID)
	}
	return id, err
}

// SaveCard stores a card the customer added (again: harmless, and a card
// the customer removed comes back). The first card becomes the default. A
// card row belongs to one customer (UNIQUE (provider, provider_id)): a
// provider card already saved for another customer is a conflict, and that
// customer's row is neither returned nor changed. A provider never gives one
// card to two customers (a Stripe payment method is attached to one
// customer and cannot move), so a second customer saving it is a forged or
// crossed setup, not a card they own.
func (d *DB) SaveCard(ctx context.Context, customerID, provider string, c billing.Card) (billing.Card, error) {
	var out billing.Card
	err := d.Write(ctx, func(t *Tx) (err error) {
		out, err = t.saveCard(customerID, provider, c)
		return err
	})
	return out, err
}

func (t *Tx) saveCard(customerID, provider string, c billing.Card) (billing.Card, error) {
	var existing, owner string
	err := t.queryRow(`SELECT id, customer_id FROM payment_methods WHERE provider = ? AND provider_id = ?`, provider, c.ProviderID).Scan(&existing, &owner)
	if err == nil {
		if owner != customerID {
			return billing.Card{}, errCardOfAnotherCustomer()
		}
		if _, err := t.exec(`UPDATE payment_methods SET removed_at = NULL WHERE id = ? AND customer_id = ?`, existing, customerID); err != nil {
			return c, err
		}
		return t.card(existing)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return c, err
	}
	var n int
	if err := t.queryRow(`SELECT COUNT(*) FROM payment_methods WHERE customer_id = ? AND removed_at IS NULL`, customerID).Scan(&n); err != nil {
		return c, err
	}
	c.ID, c.Default = newID("card", 8), n == 0
	_, err = t.exec(`INSERT INTO payment_methods (id, customer_id, provider, provider_id, brand, last4, exp_month, exp_year, is_default, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, customerID, provider, c.ProviderID, c.Brand, c.Last4, c.ExpMonth, c.ExpYear, c.Default, micros(t.Now))
	t.touch(customerID)
	return c, err
}

func errCardOfAnotherCustomer() error {
	return billing.Errorf(billing.CodeConflict, "This card is saved to another account; add the card again to save it here.")
}

const cardCols = `id, provider_id, brand, last4, exp_month, exp_year, is_default`

func scanCard(r rowScanner) (billing.Card, error) {
	var c billing.Card
	err := r.Scan(&c.ID, &c.ProviderID, &c.Brand, &c.Last4, &c.ExpMonth, &c.ExpYear, &c.Default)
	return c, err
}

func (t *Tx) card(id string) (billing.Card, error) {
	return scanCard(t.queryRow(`SELECT `+cardCols+` FROM payment_methods WHERE id = ?`, id))
}

// FindCards lists the customer's saved cards at a provider, the default
// first (cards saved with the sandbox never show once Stripe is set up).
func (d *DB) FindCards(ctx context.Context, customerID, provider string) ([]billing.Card, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+cardCols+` FROM payment_methods WHERE customer_id = ? AND provider = ? AND removed_at IS NULL
		ORDER BY is_default DESC, created_at`, customerID, provider)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.Card
	for rows.Next() {
		c, err := scanCard(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetDefaultCard makes one of the customer's cards the default.
func (d *DB) SetDefaultCard(ctx context.Context, customerID, cardID string) (billing.Card, error) {
	var out billing.Card
	err := d.Write(ctx, func(t *Tx) error {
		c, err := t.customerCard(customerID, cardID)
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE payment_methods SET is_default = CASE WHEN id = ? THEN 1 ELSE 0 END WHERE customer_id = ? AND removed_at IS NULL`, cardID, customerID); err != nil {
			return err
		}
		c.Default, out = true, c
		return nil
	})
	return out, err
}

// RemoveCard removes a customer's card; if it was the default, the next
// card becomes the default.
func (d *DB) RemoveCard(ctx context.Context, customerID, cardID string) (billing.Card, error) {
	var out billing.Card
	err := d.Write(ctx, func(t *Tx) error {
		c, err := t.customerCard(customerID, cardID)
		if err != nil {
			return err
		}
		out = c
		if _, err := t.exec(`UPDATE payment_methods SET removed_at = ?, is_default = 0 WHERE id = ?`, micros(t.Now), cardID); err != nil {
			return err
		}
		if c.Default {
			_, err = t.exec(`UPDATE payment_methods SET is_default = 1 WHERE id = (SELECT id FROM payment_methods
				WHERE customer_id = ? AND removed_at IS NULL ORDER BY created_at DESC LIMIT 1)`, customerID)
		}
		return err
	})
	return out, err
}

// customerCard finds a live card of this customer: another customer's card
// id is "not found", never someone else's card.
func (t *Tx) customerCard(customerID, cardID string) (billing.Card, error) {
	c, err := scanCard(t.queryRow(`SELECT `+cardCols+` FROM payment_methods WHERE id = ? AND customer_id = ? AND removed_at IS NULL`, cardID, customerID))
	if errors.Is(err, sql.ErrNoRows) {
		return c, billing.Errorf(billing.CodeNotFound, "No such card.")
	}
	return c, err
}

const topUpCols = `t.id, t.customer_id, t.origin, t.pack_id, t.description, t.credits, t.amount, t.currency, t.status, t.provider,
	t.provider_payment_id, t.card_brand, t.card_last4, t.failure_reason, t.next_action_url, t.receipt_url, t.lot_id,
	t.refunded_credits, t.refunded_amount, t.created_at, t.updated_at, l.refundable_until, l.expires_at`

func scanTopUp(r rowScanner) (billing.TopUp, error) {
	var tu billing.TopUp
	var pid sql.NullString
	var lot, refundable, expires sql.NullInt64
	var created, updated int64
	err := r.Scan(&tu.ID, &tu.Customer, &tu.Origin, &tu.PackID, &tu.Description, &tu.Credits, &tu.Price.Amount, &tu.Price.Currency,
		&tu.Status, &tu.Provider, &pid, &tu.CardBrand, &tu.CardLast4, &tu.FailureReason, &tu.NextActionURL, &tu.ReceiptURL, &lot,
		&tu.RefundedCredits, &tu.RefundedAmount, &created, &updated, &refundable, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return tu, billing.Errorf(billing.CodeNotFound, "No such top-up.")
	}
	tu.Object, tu.PaymentID, tu.CreatedAt, tu.UpdatedAt = "top_up", pid.String, fromMicros(created), fromMicros(updated)
	if lot.Valid {
		tu.Lot = LotID(lot.Int64)
	}
	tu.RefundableUntil, tu.ExpiresAt = timePtr(refundable), timePtr(expires)
	return tu, err
}

const topUpFrom = ` FROM top_ups t LEFT JOIN lots l ON l.id = t.lot_id `

func (t *Tx) topUp(id string) (billing.TopUp, error) {
	return scanTopUp(t.queryRow(`SELECT `+topUpCols+topUpFrom+`WHERE t.id = ?`, id))
}

// FindTopUp returns a top-up.
func (d *DB) FindTopUp(ctx context.Context, id string) (billing.TopUp, error) {
	return scanTopUp(d.read.QueryRowContext(ctx, `SELECT `+topUpCols+topUpFrom+`WHERE t.id = ?`, id))
}

// FindTopUpByPayment returns the top-up a provider's payment paid.
// Errors: not_found.
func (d *DB) FindTopUpByPayment(ctx context.Context, paymentID string) (billing.TopUp, error) {
	return scanTopUp(d.read.QueryRowContext(ctx, `SELECT `+topUpCols+topUpFrom+`WHERE t.provider_payment_id = ?`, paymentID))
}

// FindTopUps lists a customer's top-ups, newest first.
func (d *DB) FindTopUps(ctx context.Context, customerID string, limit int) ([]billing.TopUp, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+topUpCols+topUpFrom+`WHERE t.customer_id = ? ORDER BY t.created_at DESC, t.id LIMIT ?`, customerID, clampLimit(limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.TopUp
	for rows.Next() {
		tu, err := scanTopUp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, tu)
	}
	return out, rows.Err()
}

// CreateTopUp records a purchase before its card is charged. The key is the
// click (or refill attempt) that asked for it: the same key returns the
// existing top-up (created = false), so a double click charges once.
func (d *DB) CreateTopUp(ctx context.Context, in billing.TopUp, key, paymentMethodID string) (billing.TopUp, bool, error) {
	var out billing.TopUp
	created := false
	err := d.Write(ctx, func(t *Tx) error {
		var id string
		err := t.queryRow(`SELECT id FROM top_ups WHERE idempotency_key = ?`, key).Scan(&id)
		if err == nil {
			out, err = t.topUp(id)
			out.Replayed = true
			if err == nil && out.Customer != in.Customer {
				return idempotencyConflict(key)
			}
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := t.insertTopUp(&in, key, paymentMethodID); err != nil {
			return err
		}
		created = true
		out, err = t.topUp(in.ID)
		return err
	})
	return out, created, err
}

// insertTopUp writes a new top-up, pending until its payment is recorded,
// and sets its id and status.
func (t *Tx) insertTopUp(in *billing.TopUp, key, paymentMethodID string) error {
	in.ID, in.Status = newID("top", 10), billing.TopUpPending
	_, err := t.exec(`INSERT INTO top_ups (id, customer_id, origin, pack_id, description, credits, amount, currency, status, provider,
		idempotency_key, payment_method_id, card_brand, card_last4, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, in.ID, in.Customer, in.Origin, in.PackID, in.Description,
		int64(in.Credits), in.Price.Amount, in.Price.Currency, in.Status, in.Provider, key, nullStr(paymentMethodID),
		in.CardBrand, in.CardLast4, micros(t.Now), micros(t.Now))
	return err
}

// RecordPayment stores what the provider said about a top-up's payment. A
// success grants the credits, exactly once, in the same transaction:
// whichever comes first (this answer or the webhook) grants; the other
// finds the top-up already succeeded and changes nothing.
func (d *DB) RecordPayment(ctx context.Context, topUpID string, p billing.Payment, pol billing.PaymentPolicy) (billing.TopUp, error) {
	var out billing.TopUp
	err := d.Write(ctx, func(t *Tx) (err error) {
		out, err = t.recordPayment(topUpID, p, pol)
		return err
	})
	return out, err
}

func (t *Tx) recordPayment(topUpID string, p billing.Payment, pol billing.PaymentPolicy) (billing.TopUp, error) {
	tu, err := t.topUp(topUpID)
	if err != nil {
		return tu, err
	}
	if tu.Status == billing.TopUpSucceeded || tu.Status == billing.TopUpRefunded {
		return tu, nil // already final: a late or replayed answer changes nothing
	}
	if p.ProviderID != "" {
		if _, err := t.exec(`UPDATE top_ups SET provider_payment_id = ? WHERE id = ? AND provider_payment_id IS NULL`, p.ProviderID, topUpID); err != nil {
			return tu, err
		}
	}
	brand, last4 := tu.CardBrand, tu.CardLast4
	if p.Card != nil && p.Card.Last4 != "" {
		brand, last4 = p.Card.Brand, p.Card.Last4
	}
	switch p.Status {
	case billing.PaymentSucceeded:
		if err := t.grantTopUp(&tu, pol); err != nil {
			return tu, err
		}
		typ := billing.EventTopUpSucceeded
		if tu.Origin == billing.OriginAutoRefill {
			typ = billing.EventAutoRefillSucceeded
		}
		if err := t.emit(topUpActor(&tu), billing.TopUpEvent(typ, &tu, nil)); err != nil {
			return tu, err
		}
		_, err = t.exec(`UPDATE top_ups SET status = 'succeeded', receipt_url = ?, card_brand = ?, card_last4 = ?, failure_reason = '',
			next_action_url = '', updated_at = ? WHERE id = ?`, p.ReceiptURL, brand, last4, micros(t.Now), topUpID)
	case billing.PaymentRequiresAction:
		_, err = t.exec(`UPDATE top_ups SET status = 'requires_action', next_action_url = ?, updated_at = ? WHERE id = ? AND status IN ('pending', 'requires_action', 'failed')`,
			p.NextActionURL, micros(t.Now), topUpID)
	case billing.PaymentFailed:
		reason := p.FailureReason
		if reason == "" {
			reason = "The payment failed."
		}
		_, err = t.exec(`UPDATE top_ups SET status = 'failed', failure_reason = ?, next_action_url = '', updated_at = ? WHERE id = ? AND status != 'succeeded'`,
			reason, micros(t.Now), topUpID)
		if err == nil && tu.Status != billing.TopUpFailed && tu.Origin != billing.OriginAutoRefill {
			// Auto-refill's failures are its own events (settleRefillJob).
			err = t.emit(topUpActor(&tu), billing.TopUpEvent(billing.EventTopUpFailed, &tu, map[string]any{"failure_reason": reason}))
		}
	default: // processing: wait for the webhook
		_, err = t.exec(`UPDATE top_ups SET updated_at = ? WHERE id = ?`, micros(t.Now), topUpID)
	}
	if err != nil {
		return tu, err
	}
	if err := t.settleRefillJob(tu, p); err != nil {
		return tu, err
	}
	t.touch(tu.Customer)
	return t.topUp(topUpID)
}

// grantTopUp grants a paid top-up's credits as a purchase lot.
func (t *Tx) grantTopUp(tu *billing.TopUp, pol billing.PaymentPolicy) error {
	req := billing.GrantRequest{Customer: tu.Customer, Credits: tu.Credits, Source: billing.SourcePurchase,
		Reason: tu.Description, IdempotencyKey: "top_up:" + tu.ID, Actor: topUpActor(tu)}
	if pol.RefundWindow > 0 {
		r := t.Now.Add(pol.RefundWindow)
		req.RefundableUntil = &r
	}
	if pol.PurchaseExpiry > 0 {
		e := t.Now.Add(pol.PurchaseExpiry)
		req.ExpiresAt = &e
	}
	g, err := t.grant(tu.Customer, &req)
	if err != nil {
		return err
	}
	entryID, err := parseRowID("ent", g.ID)
	if err != nil {
		return err
	}
	lotID, err := parseRowID("lot", g.Lot.ID)
	if err != nil {
		return err
	}
	_, err = t.exec(`UPDATE top_ups SET grant_entry_id = ?, lot_id = ? WHERE id = ?`, entryID, lotID, tu.ID)
	return err
}

// ApplyPaymentEvent handles a provider event (a Stripe webhook, or the
// sandbox's equivalent) once: the event id is stored in the same transaction
// as its effects, so a replayed or concurrent delivery changes nothing
// (applied = false). Out-of-order events are harmless: a top-up that
// succeeded stays succeeded.
func (d *DB) ApplyPaymentEvent(ctx context.Context, provider string, ev billing.PaymentEvent, pol billing.PaymentPolicy) (applied bool, err error) {
	err = d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`INSERT INTO payment_events (event_id, provider, type, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
			ev.ID, provider, ev.Type, micros(t.Now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		applied = true
		return t.applyEvent(provider, ev, pol)
	})
	return applied, err
}

func (t *Tx) topUpForEvent(ev billing.PaymentEvent) (billing.TopUp, error) {
	if ev.PaymentID != "" {
		var id string
		err := t.queryRow(`SELECT id FROM top_ups WHERE provider_payment_id = ?`, ev.PaymentID).Scan(&id)
		if err == nil {
			return t.topUp(id)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return billing.TopUp{}, err
		}
	}
	if ev.TopUpID != "" {
		return t.topUp(ev.TopUpID)
	}
	return billing.TopUp{}, billing.Errorf(billing.CodeNotFound, "No top-up for payment %q.", ev.PaymentID)
}

func (t *Tx) applyEvent(provider string, ev billing.PaymentEvent, pol billing.PaymentPolicy) error {
	if ev.Invoice != nil || ev.Subscription != nil {
		return t.applySubscriptionEvent(provider, ev) // subscription_events.go
	}
	switch ev.Type {
	case billing.EventPaymentSucceeded, billing.EventPaymentFailed, billing.EventPaymentRequiresAction:
		tu, err := t.topUpForEvent(ev)
		if billing.ErrorCode(err) == billing.CodeNotFound {
			return nil // a payment Tally did not make (another integration on the account)
		}
		if err != nil {
			return err
		}
		p := billing.Payment{ProviderID: ev.PaymentID, FailureReason: ev.FailureReason, NextActionURL: ev.NextActionURL, ReceiptURL: ev.ReceiptURL, Card: ev.Card}
		switch ev.Type {
		case billing.EventPaymentSucceeded:
			p.Status = billing.PaymentSucceeded
		case billing.EventPaymentFailed:
			p.Status = billing.PaymentFailed
		default:
			p.Status = billing.PaymentRequiresAction
		}
		_, err = t.recordPayment(tu.ID, p, pol)
		return err
	case billing.EventCheckoutCompleted, billing.EventSetupSucceeded:
		if ev.Card == nil || ev.ProviderCustomerID == "" {
			return nil // the card is read when the customer returns (CompleteCardSetup)
		}
		var cid string
		err := t.queryRow(`SELECT customer_id FROM payment_customers WHERE provider = ? AND provider_customer_id = ?`, provider, ev.ProviderCustomerID).Scan(&cid)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = t.saveCard(cid, provider, *ev.Card)
		if billing.ErrorCode(err) == billing.CodeConflict {
			return nil // another customer's card: nothing to save, and retrying will not change that
		}
		return err
	case billing.EventChargeRefunded:
		tu, err := t.topUpForEvent(ev)
		if billing.ErrorCode(err) == billing.CodeNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.AmountRefunded <= tu.RefundedAmount {
			return nil // a refund Tally made (already written), or a replay
		}
		// Refunded at the provider (e.g. in Stripe's dashboard): take back
		// the unused credits it pays for.
		_, _, err = t.refundTopUp(tu, ev.AmountRefunded-tu.RefundedAmount, "Refunded at "+provider)
		return err
	case billing.EventChargeDisputeCreated:
		tu, err := t.topUpForEvent(ev)
		if billing.ErrorCode(err) == billing.CodeNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		return t.disputeTopUp(tu, ev.DisputeID)
	}
	return nil
}

// disputeTopUp freezes what is left of a disputed purchase's lot (frozen
// credits leave the balance; an adjustment entry says why) and flags the
// customer for an admin.
func (t *Tx) disputeTopUp(tu billing.TopUp, disputeID string) error {
	if tu.Lot == "" {
		return nil
	}
	lotID, err := parseRowID("lot", tu.Lot)
	if err != nil {
		return err
	}
	w, err := t.loadWallet(tu.Customer)
	if err != nil {
		return err
	}
	ch := billing.PlanDisputeFreeze(ptr(t.state(w, w.lots)), tu, lotID, disputeID)
	if _, err := t.apply(w, &ch); err != nil {
		return err
	}
	if _, err := t.exec(`INSERT INTO customer_flags (customer_id, reason, created_at) VALUES (?, ?, ?)`,
		tu.Customer, fmt.Sprintf("payment for top-up %s disputed (%s)", tu.ID, disputeID), micros(t.Now)); err != nil {
		return err
	}
	t.touch(tu.Customer)
	return nil
}

// RefundTopUp takes the unused credits of a purchase back out of the
// ledger (a refund entry) and returns the amount to refund at the provider.
// It runs once per top-up: a second call finds it refunded and returns the
// same amount (done = true), so a retried refund request completes the
// provider's side without touching the ledger again.
func (d *DB) RefundTopUp(ctx context.Context, topUpID string) (tu billing.TopUp, amount int64, done bool, err error) {
	return d.RefundTopUpBy(ctx, topUpID, billing.Actor{}, "")
}

// RefundTopUpBy is RefundTopUp made by actor (an admin), with their reason
// on the refund entry ("" for the default wording).
func (d *DB) RefundTopUpBy(ctx context.Context, topUpID string, actor billing.Actor, reason string) (tu billing.TopUp, amount int64, done bool, err error) {
	err = d.Write(ctx, func(t *Tx) error {
		tu, err = t.topUp(topUpID)
		if err != nil {
			return err
		}
		if tu.Status == billing.TopUpRefunded {
			amount, done = tu.RefundedAmount, true
			return nil
		}
		if tu.Status != billing.TopUpSucceeded {
			return billing.Errorf(billing.CodeNothingToRefund, "Top-up %s is %s: only paid top-ups can be refunded.", tu.ID, tu.Status)
		}
		if tu.RefundableUntil != nil && !tu.RefundableUntil.After(t.Now) {
			return billing.Errorf(billing.CodeRefundWindowClosed, "Top-up %s stopped being refundable on %s.", tu.ID, tu.RefundableUntil.Format("2 Jan 2006")).
				With("refundable_until", tu.RefundableUntil)
		}
		if reason == "" {
			reason = "Refund of " + tu.Description
		}
		tu, amount, err = t.refundTopUpAs(tu, 0, reason, actor)
		return err
	})
	return tu, amount, done, err
}

// refundTopUp removes the unused credits of a top-up's lot with a refund
// entry. With paid > 0 (a refund made at the provider) it removes the
// credits that amount pays for, up to what is unused; otherwise all unused
// credits, and the amount to refund is their share of the price.
func (t *Tx) refundTopUp(tu billing.TopUp, paid int64, reason string) (billing.TopUp, int64, error) {
	return t.refundTopUpAs(tu, paid, reason, billing.Actor{})
}

// refundTopUpAs is refundTopUp made by actor (zero: the refund job).
func (t *Tx) refundTopUpAs(tu billing.TopUp, paid int64, reason string, actor billing.Actor) (billing.TopUp, int64, error) {
	lotID, err := parseRowID("lot", tu.Lot)
	if err != nil {
		return tu, 0, billing.Errorf(billing.CodeNothingToRefund, "Top-up %s granted no credits.", tu.ID)
	}
	w, err := t.loadWallet(tu.Customer)
	if err != nil {
		return tu, 0, err
	}
	ch, amount, err := billing.PlanRefund(ptr(t.state(w, w.lots)), billing.RefundPlanRequest{TopUp: tu, LotID: lotID, Paid: paid, Reason: reason, Actor: actor})
	if err != nil {
		return tu, 0, err
	}
	ap, err := t.apply(w, &ch)
	if err != nil {
		return tu, 0, err
	}
	var entryID int64
	var unused billing.Credits
	if len(ap.entryIDs) > 0 {
		entryID, unused = ap.entryIDs[0], -ch.Entries[0].Amount
	}
	if _, err := t.exec(`UPDATE top_ups SET status = 'refunded', refunded_credits = refunded_credits + ?, refunded_amount = refunded_amount + ?,
		refund_entry_id = COALESCE(?, refund_entry_id), updated_at = ? WHERE id = ?`, int64(unused), amount, nullInt(entryID), micros(t.Now), tu.ID); err != nil {
		return tu, 0, err
	}
	out, err := t.topUp(tu.ID)
	return out, amount, err
}

// topUpActor is who caused a top-up's changes: the customer who bought it,
// or the auto-refill job.
func topUpActor(tu *billing.TopUp) billing.Actor {
	if tu.Origin == billing.OriginAutoRefill {
		return billing.SystemActor("auto_refill")
	}
	return billing.CustomerActor(tu.Customer)
}
