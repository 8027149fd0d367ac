package db

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Outbound webhooks: endpoints, the fan-out of outbox events to them as
// delivery rows, and the log of attempts. The worker that sends them is
// notify.Webhooks; nothing here is on the debit path.

// WebhookSecretPrefix starts every endpoint signing secret (Standard Webhooks).
const WebhookSecretPrefix = "whsec_"

// WebhookFanOutConsumer is the fan-out's cursor in event_cursors.
const WebhookFanOutConsumer = "webhooks"

// SecretOverlap is how long a rotated-out secret keeps signing.
const SecretOverlap = 24 * time.Hour

func newWebhookSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(b)
}

const endpointCols = `id, url, description, event_types, enabled, disabled_reason, secret, COALESCE(old_secret, ''), COALESCE(old_secret_until, 0), created_at, updated_at`

func scanEndpoint(r rowScanner) (billing.WebhookEndpoint, error) {
	var e billing.WebhookEndpoint
	var types string
	var until, created, updated int64
	if err := r.Scan(&e.ID, &e.URL, &e.Description, &types, &e.Enabled, &e.DisabledReason, &e.Secret, &e.OldSecret, &until, &created, &updated); err != nil {
		return e, err
	}
	if err := json.Unmarshal([]byte(types), &e.EventTypes); err != nil {
		return e, fmt.Errorf("db: endpoint %s event_types: %w", e.ID, err)
	}
	if until != 0 {
		e.OldSecretUntil = fromMicros(until)
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	return e, nil
}

func errNoEndpoint(id string) error {
	return billing.Errorf(billing.CodeNotFound, "No webhook endpoint %q.", id)
}

// CreateWebhookEndpoint stores a new endpoint (in validated) with a new
// secret. With an idempotency key, a replay returns the endpoint the first
// request made (replayed true) and the same key with another request is
// idempotency_conflict.
func (d *DB) CreateWebhookEndpoint(ctx context.Context, in billing.WebhookEndpointInput) (billing.WebhookEndpoint, bool, error) {
	types, _ := json.Marshal(*in.EventTypes)
	desc := ""
	if in.Description != nil {
		desc = *in.Description
	}
	enabled := in.Enabled == nil || *in.Enabled
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%t", *in.URL, desc, types, enabled))
	hash := hex.EncodeToString(sum[:])
	var out billing.WebhookEndpoint
	var replayed bool
	err := d.Write(ctx, func(t *Tx) error {
		if in.IdempotencyKey != "" {
			var id, h string
			err := t.queryRow(`SELECT id, request_hash FROM webhook_endpoints WHERE idempotency_key = ?`, in.IdempotencyKey).Scan(&id, &h)
			if err == nil {
				if h != hash {
					return billing.Errorf(billing.CodeIdempotencyConflict, "This idempotency key was used for another request.").With("param", "idempotency_key")
				}
				replayed = true
				out, err = scanEndpoint(t.queryRow(`SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, id))
				return err
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		out = billing.WebhookEndpoint{ID: newID("we", 10), URL: *in.URL, Description: desc, EventTypes: *in.EventTypes, Enabled: enabled,
			Secret: newWebhookSecret(), CreatedAt: t.Now.UTC().Truncate(time.Microsecond)}
		out.UpdatedAt = out.CreatedAt
		_, err := t.exec(`INSERT INTO webhook_endpoints (id, url, description, event_types, enabled, secret, idempotency_key, request_hash, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, out.ID, out.URL, desc, string(types), enabled, out.Secret, nullStr(in.IdempotencyKey), hash,
			micros(t.Now), micros(t.Now))
		return err
	})
	return out, replayed, err
}

// FindWebhookEndpoints lists the endpoints, oldest first.
func (d *DB) FindWebhookEndpoints(ctx context.Context) ([]billing.WebhookEndpoint, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.WebhookEndpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// FindWebhookEndpoint returns one endpoint (not_found).
func (d *DB) FindWebhookEndpoint(ctx context.Context, id string) (billing.WebhookEndpoint, error) {
	e, err := scanEndpoint(d.read.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, errNoEndpoint(id)
	}
	return e, err
}

// findEndpoint reads an endpoint inside a write (not_found).
func (t *Tx) findEndpoint(id string) (billing.WebhookEndpoint, error) {
	e, err := scanEndpoint(t.queryRow(`SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, errNoEndpoint(id)
	}
	return e, err
}

// UpdateWebhookEndpoint changes the fields in sets (validated). Enabling an
// endpoint clears why the worker disabled it.
func (d *DB) UpdateWebhookEndpoint(ctx context.Context, id string, in billing.WebhookEndpointInput) (billing.WebhookEndpoint, error) {
	var out billing.WebhookEndpoint
	err := d.Write(ctx, func(t *Tx) error {
		e, err := t.findEndpoint(id)
		if err != nil {
			return err
		}
		if in.URL != nil {
			e.URL = *in.URL
		}
		if in.Description != nil {
			e.Description = *in.Description
		}
		if in.EventTypes != nil {
			e.EventTypes = *in.EventTypes
		}
		if in.Enabled != nil {
			e.Enabled = *in.Enabled
			if e.Enabled {
				e.DisabledReason = ""
			}
		}
		e.UpdatedAt = t.Now.UTC().Truncate(time.Microsecond)
		types, _ := json.Marshal(e.EventTypes)
		if _, err := t.exec(`UPDATE webhook_endpoints SET url = ?, description = ?, event_types = ?, enabled = ?, disabled_reason = ?, updated_at = ? WHERE id = ?`,
			e.URL, e.Description, string(types), e.Enabled, e.DisabledReason, micros(t.Now), id); err != nil {
			return err
		}
		out = e
		return nil
	})
	return out, err
}

// DeleteWebhookEndpoint removes an endpoint with its deliveries and their log.
func (d *DB) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	return d.Write(ctx, func(t *Tx) error {
		if _, err := t.exec(`DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = ?)`, id); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM webhook_deliveries WHERE endpoint_id = ?`, id); err != nil {
			return err
		}
		res, err := t.exec(`DELETE FROM webhook_endpoints WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNoEndpoint(id)
		}
		return nil
	})
}

// RotateWebhookSecret gives the endpoint a new secret; the current one
// keeps signing beside it (two signatures in webhook-signature) for
// overlap, so receivers can switch without missing a delivery.
func (d *DB) RotateWebhookSecret(ctx context.Context, id string, overlap time.Duration) (billing.WebhookEndpoint, error) {
	var out billing.WebhookEndpoint
	err := d.Write(ctx, func(t *Tx) error {
		e, err := t.findEndpoint(id)
		if err != nil {
			return err
		}
		e.OldSecret, e.OldSecretUntil, e.Secret = e.Secret, t.Now.Add(overlap).UTC().Truncate(time.Microsecond), newWebhookSecret()
		e.UpdatedAt = t.Now.UTC().Truncate(time.Microsecond)
		if _, err := t.exec(`UPDATE webhook_endpoints SET secret = ?, old_secret = ?, old_secret_until = ?, updated_at = ? WHERE id = ?`,
			e.Secret, e.OldSecret, micros(e.OldSecretUntil), micros(t.Now), id); err != nil {
			return err
		}
		out = e
		return nil
	})
	return out, err
}

// FanOutWebhooks reads up to limit outbox events after seq after and
// inserts one delivery per event and enabled endpoint that subscribes to
// it, with the fan-out's cursor, in one transaction. A delivery is unique
// per endpoint and event, so reading an event twice (a crash between the
// read and the commit) enqueues nothing twice. When no endpoint wants the
// events nothing is written unless save is set: the caller keeps its place
// in memory and saves it now and then, so a Tally without webhooks adds no
// commit per event (re-reading events after a restart costs nothing but
// the read). It returns the last seq read (after when none), how many
// events it read and how many deliveries it added.
func (d *DB) FanOutWebhooks(ctx context.Context, after int64, limit int, save bool) (last int64, events, added int, err error) {
	evs, err := d.FindEvents(ctx, EventFilter{After: after, Limit: limit})
	if err != nil || len(evs) == 0 {
		if err == nil && save && after > 0 {
			err = d.SaveEventCursor(ctx, WebhookFanOutConsumer, after)
		}
		return after, 0, 0, err
	}
	eps, err := d.FindWebhookEndpoints(ctx)
	if err != nil {
		return after, 0, 0, err
	}
	last = evs[len(evs)-1].Seq
	type pair struct {
		ep string
		ev billing.Event
	}
	var todo []pair
	for _, ev := range evs {
		for _, ep := range eps {
			// An endpoint hears what happens from its creation on, not
			// the history before it (resend sends an older event).
			if ep.Enabled && ep.Wants(ev.Type) && !ev.CreatedAt.Before(ep.CreatedAt) {
				todo = append(todo, pair{ep.ID, ev})
			}
		}
	}
	if len(todo) == 0 && !save {
		return last, len(evs), 0, nil
	}
	err = d.Write(ctx, func(t *Tx) error {
		added = 0
		for _, p := range todo {
			n, err := t.enqueueDelivery(p.ep, p.ev)
			if err != nil {
				return err
			}
			added += n
		}
		return t.saveEventCursor(WebhookFanOutConsumer, last)
	})
	if err != nil {
		return after, 0, 0, err
	}
	return last, len(evs), added, nil
}

func (t *Tx) enqueueDelivery(endpointID string, ev billing.Event) (int, error) {
	body, err := billing.WebhookPayload(ev)
	if err != nil {
		return 0, err
	}
	res, err := t.exec(`INSERT INTO webhook_deliveries (endpoint_id, event_seq, msg_id, event_type, customer_id, payload, next_attempt_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, event_seq) DO NOTHING`,
		endpointID, ev.Seq, ev.ID, ev.Type, nullStr(ev.Customer), string(body), micros(t.Now), micros(t.Now), micros(t.Now))
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

const deliveryCols = `d.id, d.endpoint_id, d.msg_id, d.event_type, COALESCE(d.customer_id, ''), d.status, d.attempts, d.next_attempt_at, d.first_attempt_at, d.created_at, d.payload`

func scanDelivery(r rowScanner) (billing.WebhookDelivery, error) {
	var x billing.WebhookDelivery
	var next, created int64
	var first sql.NullInt64
	if err := r.Scan(&x.ID, &x.EndpointID, &x.MessageID, &x.EventType, &x.Customer, &x.Status, &x.Attempts, &next, &first, &created, &x.Payload); err != nil {
		return x, err
	}
	x.PublicID = fmt.Sprintf("whd_%d", x.ID)
	if x.Status == billing.DeliveryPending {
		n := fromMicros(next)
		x.NextAttempt = &n
	}
	x.FirstAt, x.CreatedAt = timePtr(first), fromMicros(created)
	return x, nil
}

// ResendWebhookEvent queues an outbox event (evt_<seq>) to the endpoint
// again, with its webhook-id unchanged so the receiver can tell it is the
// same message; its earlier attempts stay in the log.
func (d *DB) ResendWebhookEvent(ctx context.Context, endpointID, eventID string) (billing.WebhookDelivery, error) {
	seq, err := parseRowID("evt", eventID)
	if err != nil || seq < 1 {
		return billing.WebhookDelivery{}, billing.Errorf(billing.CodeValidation, "event_id must be an event id such as evt_42").With("param", "event_id")
	}
	if _, err := d.FindWebhookEndpoint(ctx, endpointID); err != nil {
		return billing.WebhookDelivery{}, err
	}
	evs, err := d.FindEvents(ctx, EventFilter{After: seq - 1, Limit: 1})
	if err != nil {
		return billing.WebhookDelivery{}, err
	}
	if len(evs) == 0 || evs[0].Seq != seq {
		return billing.WebhookDelivery{}, billing.Errorf(billing.CodeNotFound, "No event %q.", eventID).With("param", "event_id")
	}
	var out billing.WebhookDelivery
	err = d.Write(ctx, func(t *Tx) error {
		if _, err := t.enqueueDelivery(endpointID, evs[0]); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, first_attempt_at = NULL, updated_at = ?
			WHERE endpoint_id = ? AND event_seq = ?`, micros(t.Now), micros(t.Now), endpointID, seq); err != nil {
			return err
		}
		out, err = scanDelivery(t.queryRow(`SELECT `+deliveryCols+` FROM webhook_deliveries d WHERE endpoint_id = ? AND event_seq = ?`, endpointID, seq))
		return err
	})
	return out, err
}

// CreateTestDelivery queues a webhook.test event to one endpoint (enabled
// or not: a test is how an admin checks a disabled endpoint again).
func (d *DB) CreateTestDelivery(ctx context.Context, endpointID string) (billing.WebhookDelivery, error) {
	if _, err := d.FindWebhookEndpoint(ctx, endpointID); err != nil {
		return billing.WebhookDelivery{}, err
	}
	var out billing.WebhookDelivery
	err := d.Write(ctx, func(t *Tx) error {
		msg := newID("msg_test", 10)
		body, err := json.Marshal(map[string]any{"id": msg, "type": billing.EventWebhookTest, "created_at": t.Now.UTC(),
			"data": map[string]any{"endpoint": endpointID}})
		if err != nil {
			return err
		}
		var id int64
		if err := t.queryRow(`INSERT INTO webhook_deliveries (endpoint_id, msg_id, event_type, payload, next_attempt_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, endpointID, msg, billing.EventWebhookTest, string(body), micros(t.Now), micros(t.Now), micros(t.Now)).Scan(&id); err != nil {
			return err
		}
		out, err = scanDelivery(t.queryRow(`SELECT `+deliveryCols+` FROM webhook_deliveries d WHERE id = ?`, id))
		return err
	})
	return out, err
}

// FindWebhookDeliveries lists an endpoint's deliveries, newest first, each
// with its attempts (oldest first); before is a delivery id for the next
// page (0: the newest).
func (d *DB) FindWebhookDeliveries(ctx context.Context, endpointID string, before int64, limit int) ([]billing.WebhookDelivery, error) {
	if _, err := d.FindWebhookEndpoint(ctx, endpointID); err != nil {
		return nil, err
	}
	limit = clampLimit(limit)
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := d.read.QueryContext(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries d WHERE endpoint_id = ? AND id < ? ORDER BY id DESC LIMIT ?`,
		endpointID, before, limit)
	if err != nil {
		return nil, err
	}
	var out []billing.WebhookDelivery
	for rows.Next() {
		x, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].History, err = d.webhookAttempts(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d *DB) webhookAttempts(ctx context.Context, deliveryID int64) ([]billing.WebhookAttempt, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT attempted_at, status_code, latency_ms, response, error FROM webhook_attempts WHERE delivery_id = ? ORDER BY id`, deliveryID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []billing.WebhookAttempt{}
	for rows.Next() {
		var a billing.WebhookAttempt
		var at int64
		if err := rows.Scan(&at, &a.StatusCode, &a.LatencyMS, &a.Response, &a.Error); err != nil {
			return nil, err
		}
		a.At = fromMicros(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// DueWebhookDeliveries returns up to limit pending deliveries of enabled
// endpoints (and test events, which go to disabled ones too) whose time has come, oldest first, skipping those in skip (in
// flight) and any that has an older pending delivery to the same endpoint
// for the same customer: a customer's later event waits while an earlier
// one is retrying, so each endpoint sees one customer's events in order.
//
// On PostgreSQL, where several instances deliver, the deliveries returned
// are claimed: locked with SKIP LOCKED (another instance's claim in flight
// is passed over) and leased, their next attempt moved webhookLease ahead,
// so no other instance sends them meanwhile. RecordWebhookAttempt sets the
// real next attempt; an instance that dies mid-attempt leaves the lease to
// run out, and another retries (webhooks are at least once).
func (d *DB) DueWebhookDeliveries(ctx context.Context, now time.Time, limit int, skip map[int64]bool) ([]billing.WebhookJob, error) {
	if d.dialect == Postgres {
		var out []billing.WebhookJob
		err := d.Write(ctx, func(t *Tx) error {
			rows, err := t.query(dueDeliveries+` FOR UPDATE OF d SKIP LOCKED`, micros(now), limit+len(skip))
			if err != nil {
				return err
			}
			if out, err = scanDue(rows, limit, skip); err != nil {
				return err
			}
			for _, j := range out {
				if _, err := t.exec(`UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?`, micros(now.Add(webhookLease)), j.Delivery.ID); err != nil {
					return err
				}
			}
			return nil
		})
		return out, err
	}
	rows, err := d.read.QueryContext(ctx, dueDeliveries, micros(now), limit+len(skip))
	if err != nil {
		return nil, err
	}
	return scanDue(rows, limit, skip)
}

// webhookLease is how long a claimed delivery is an instance's (the HTTP
// client gives up after 15 seconds).
const webhookLease = 2 * time.Minute

const dueDeliveries = `SELECT ` + deliveryCols + `, e.id, e.url, e.description, e.event_types, e.enabled, e.disabled_reason, e.secret,
		COALESCE(e.old_secret, ''), COALESCE(e.old_secret_until, 0), e.created_at, e.updated_at
		FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
		WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND (e.enabled = 1 OR d.event_seq IS NULL)
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.customer_id = d.customer_id
			AND p.status = 'pending' AND p.id < d.id)
		ORDER BY d.id LIMIT ?`

func scanDue(rows *sql.Rows, limit int, skip map[int64]bool) ([]billing.WebhookJob, error) {
	defer rows.Close()
	var out []billing.WebhookJob
	for rows.Next() {
		var j billing.WebhookJob
		var next, created int64
		var first sql.NullInt64
		var types string
		var until, ecreated, eupdated int64
		x, e := &j.Delivery, &j.Endpoint
		if err := rows.Scan(&x.ID, &x.EndpointID, &x.MessageID, &x.EventType, &x.Customer, &x.Status, &x.Attempts, &next, &first, &created, &x.Payload,
			&e.ID, &e.URL, &e.Description, &types, &e.Enabled, &e.DisabledReason, &e.Secret, &e.OldSecret, &until, &ecreated, &eupdated); err != nil {
			return nil, err
		}
		if skip[x.ID] {
			continue
		}
		x.PublicID, x.FirstAt, x.CreatedAt = fmt.Sprintf("whd_%d", x.ID), timePtr(first), fromMicros(created)
		if until != 0 {
			e.OldSecretUntil = fromMicros(until)
		}
		out = append(out, j)
		if len(out) == limit {
			break
		}
	}
	return out, rows.Err()
}

// WebhookOutcome is what an attempt leads to.
type WebhookOutcome struct {
	Attempt billing.WebhookAttempt
	// Status: succeeded; pending (retry at RetryAt); or failed, which
	// disables the endpoint with DisableReason.
	Status        string
	RetryAt       time.Time
	DisableReason string
}

// RecordWebhookAttempt logs an attempt and moves its delivery on.
func (d *DB) RecordWebhookAttempt(ctx context.Context, job billing.WebhookJob, o WebhookOutcome) error {
	return d.Write(ctx, func(t *Tx) error {
		a := o.Attempt
		if _, err := t.exec(`INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, response, error) VALUES (?, ?, ?, ?, ?, ?)`,
			job.Delivery.ID, micros(a.At), a.StatusCode, a.LatencyMS, a.Response, a.Error); err != nil {
			return err
		}
		next := micros(o.RetryAt)
		if o.Status != billing.DeliveryPending {
			next = micros(a.At)
		}
		if _, err := t.exec(`UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
			first_attempt_at = COALESCE(first_attempt_at, ?), updated_at = ? WHERE id = ?`,
			o.Status, next, micros(a.At), micros(t.Now), job.Delivery.ID); err != nil {
			return err
		}
		if o.Status == billing.DeliveryFailed {
			_, err := t.exec(`UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?`,
				o.DisableReason, micros(t.Now), job.Endpoint.ID)
			return err
		}
		return nil
	})
}
