package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/tally-billing/tally/billing"
)

// priceBookBody is what a version stores; version and times are columns.
type priceBookBody struct {
	Currency    string               `json:"currency"`
	Features    []billing.Feature    `json:"features"`
	Packs       []billing.CreditPack `json:"packs"`
	Plans       []billing.Plan       `json:"plans,omitempty"`
	CustomTopUp *billing.CustomTopUp `json:"custom_top_up,omitempty"`
}

func bodyOf(pb billing.PriceBook) priceBookBody {
	if pb.Packs == nil {
		pb.Packs = []billing.CreditPack{} // "no packs" is one thing, however it was sent
	}
	return priceBookBody{Currency: pb.Currency, Features: pb.Features, Packs: pb.Packs, Plans: pb.Plans, CustomTopUp: pb.CustomTopUp}
}

type priceBookCache struct {
	mu      sync.Mutex
	pb      *billing.PriceBook
	checked time.Time
	// from and next bound the times the writer's copy is in effect for:
	// from its effective time (zero: any earlier time too) to the next
	// version's (zero: none); outside them the writer reads the price book
	// again. Used by the writer goroutine only.
	from, next time.Time
	// readNext is the next scheduled version's time for the read path's
	// copy (pb), which is read again from then on.
	readNext time.Time
}

// priceBookTTL is how long the read path trusts its copy of the current
// price book before checking for a newer version (published by another
// process, such as `tally pricebook publish`, or a scheduled one that took
// effect). Debits never use this copy: the writer checks the version once
// per batch.
const priceBookTTL = time.Second

// pbCols are a version's columns, as decodeRow reads them.
const pbCols = `version, published_at, COALESCE(effective_at, published_at), COALESCE(published_by, ''), body`

// live leaves out the versions cancelled before they took effect
// (CancelScheduledPriceBook): they are never in effect.
const live = `version NOT IN (SELECT version FROM price_book_cancellations)`

// inEffect selects the version in effect at a time (the argument): the
// latest effective time at or before it, the newest version of those.
const inEffect = `SELECT ` + pbCols + ` FROM price_books WHERE COALESCE(effective_at, published_at) <= ? AND ` + live + `
	ORDER BY COALESCE(effective_at, published_at) DESC, version DESC LIMIT 1`

// nextEffect is when the next version takes effect after a time (the
// argument), if one is scheduled.
const nextEffect = `SELECT MIN(COALESCE(effective_at, published_at)) FROM price_books WHERE COALESCE(effective_at, published_at) > ? AND ` + live

// PublishOptions say when a version takes effect and who published it.
type PublishOptions struct {
	// EffectiveAt, when after now, schedules the version: it takes effect
	// then. Zero (or a past time) is now.
	EffectiveAt time.Time
	// Actor, when set, is stored as the version's publisher, and an audit
	// record (Audit, Reason, with the versions before and after) is written
	// in the same transaction.
	Actor  billing.Actor
	Audit  string
	Reason string
	// DraftRev, when set, is the console's draft revision this version was
	// made from: the draft is removed in the same transaction, and a draft
	// of another revision (saved since, or published already) is a
	// conflict that publishes nothing.
	DraftRev int64
}

// PublishPriceBook validates pb and stores it as a new immutable version,
// in effect at once, or at pb.EffectiveAt when that is later (the API and
// `tally pricebook publish --file` schedule a version so). Publishing a
// book identical to the one in effect makes no new version and returns
// that one (changed = false).
func (d *DB) PublishPriceBook(ctx context.Context, pb billing.PriceBook) (_ billing.PriceBook, changed bool, err error) {
	var o PublishOptions
	if pb.EffectiveAt != nil {
		o.EffectiveAt = *pb.EffectiveAt
	}
	return d.PublishPriceBookWith(ctx, pb, o)
}

// PublishPriceBookWith is PublishPriceBook with a time it takes effect (a
// scheduled version) and the admin who published it. A book identical to
// the one in effect, published for now, makes no new version.
func (d *DB) PublishPriceBookWith(ctx context.Context, pb billing.PriceBook, o PublishOptions) (_ billing.PriceBook, changed bool, err error) {
	if err := pb.Validate(); err != nil {
		return billing.PriceBook{}, false, err
	}
	body, err := json.Marshal(bodyOf(pb))
	if err != nil {
		return billing.PriceBook{}, false, err
	}
	var out billing.PriceBook
	err = d.Write(ctx, func(t *Tx) error {
		now := t.Now.UTC().Truncate(time.Microsecond)
		eff := o.EffectiveAt.UTC().Truncate(time.Microsecond)
		if !eff.After(now) {
			eff = now
		}
		if o.DraftRev > 0 {
			var rev int64
			if err := t.queryRow(`SELECT rev FROM price_book_drafts WHERE id = 1`).Scan(&rev); err != nil || rev != o.DraftRev {
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
				return billing.Errorf(billing.CodeConflict, "The draft was published or changed meanwhile: nothing was published.")
			}
		}
		cur, err := scanVersion(t.queryRow(inEffect, micros(now)))
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur != nil && eff.Equal(now) && bytes.Equal(cur.body, body) {
			out, changed = *cur.pb, false
			return nil
		}
		var last sql.NullInt64
		if err := t.queryRow(`SELECT MAX(version) FROM price_books`).Scan(&last); err != nil {
			return err
		}
		out = pb
		out.Version = last.Int64 + 1
		out.PublishedAt = now
		out.EffectiveAt = &eff
		out.PublishedBy = o.Actor.String()
		changed = true
		if _, err = t.exec(`INSERT INTO price_books (version, published_at, effective_at, published_by, body) VALUES (?, ?, ?, ?, ?)`,
			out.Version, micros(now), micros(eff), nullString(out.PublishedBy), string(body)); err != nil {
			return err
		}
		t.w.pb = nil // price the next operation with the new version
		if o.DraftRev > 0 {
			if _, err := t.exec(`DELETE FROM price_book_drafts WHERE id = 1 AND rev = ?`, o.DraftRev); err != nil {
				return err
			}
		}
		if o.Actor.Kind != "" && o.Audit != "" {
			before := ""
			if cur != nil {
				before = "v" + strconv.FormatInt(cur.pb.Version, 10)
			}
			after := "v" + strconv.FormatInt(out.Version, 10) + " effective " + eff.Format(time.RFC3339)
			if _, err := t.exec(`INSERT INTO admin_audit (actor, action, customer_id, reason, before, after, created_at) VALUES (?, ?, NULL, ?, ?, ?, ?)`,
				o.Actor.String(), o.Audit, o.Reason, before, after, micros(now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return billing.PriceBook{}, false, err
	}
	d.pb.mu.Lock()
	d.pb.checked = time.Time{}
	d.pb.mu.Unlock()
	return out, changed, nil
}

// versionRow is a stored version and its body as stored.
type versionRow struct {
	pb   *billing.PriceBook
	body []byte
}

// scanVersion reads a row of pbCols.
func scanVersion(r rowScanner) (*versionRow, error) {
	var v, at, eff int64
	var by string
	var body []byte
	if err := r.Scan(&v, &at, &eff, &by, &body); err != nil {
		return nil, err
	}
	pb, err := decodePriceBook(v, at, body)
	if err != nil {
		return nil, err
	}
	e := fromMicros(eff)
	pb.EffectiveAt, pb.PublishedBy = &e, by
	return &versionRow{pb: pb, body: body}, nil
}

func decodePriceBook(version, publishedAt int64, body []byte) (*billing.PriceBook, error) {
	var b priceBookBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	return &billing.PriceBook{Version: version, PublishedAt: fromMicros(publishedAt),
		Currency: b.Currency, Features: b.Features, Packs: b.Packs, Plans: b.Plans, CustomTopUp: b.CustomTopUp}, nil
}

// CurrentPriceBook returns the version in effect now, or nil when none has
// been published (or none has taken effect yet).
func (d *DB) CurrentPriceBook(ctx context.Context) (*billing.PriceBook, error) {
	c := &d.pb
	c.mu.Lock()
	defer c.mu.Unlock()
	now := d.now()
	if c.pb != nil && time.Since(c.checked) < priceBookTTL && (c.readNext.IsZero() || now.Before(c.readNext)) {
		return c.pb, nil
	}
	var v sql.NullInt64
	err := d.read.QueryRowContext(ctx, `SELECT version FROM price_books WHERE COALESCE(effective_at, published_at) <= ? AND `+live+`
		ORDER BY COALESCE(effective_at, published_at) DESC, version DESC LIMIT 1`, micros(now)).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	// A scheduled version is read at its time, not up to a TTL later.
	var n sql.NullInt64
	if err := d.read.QueryRowContext(ctx, nextEffect, micros(now)).Scan(&n); err != nil {
		return nil, err
	}
	c.readNext = time.Time{}
	if n.Valid {
		c.readNext = fromMicros(n.Int64)
	}
	if !v.Valid {
		return nil, nil
	}
	if c.pb == nil || c.pb.Version != v.Int64 {
		pb, err := d.PriceBookVersion(ctx, v.Int64)
		if err != nil {
			return nil, err
		}
		c.pb = pb
	}
	c.checked = time.Now()
	return c.pb, nil
}

// PriceBookVersion returns one version.
func (d *DB) PriceBookVersion(ctx context.Context, version int64) (*billing.PriceBook, error) {
	r, err := scanVersion(d.read.QueryRowContext(ctx, `SELECT `+pbCols+` FROM price_books WHERE version = ?`, version))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.Errorf(billing.CodeNotFound, "No price book version %d.", version)
	}
	if err != nil {
		return nil, err
	}
	return r.pb, nil
}

// ListPriceBooks returns every version, newest first (scheduled ones
// included: their EffectiveAt is ahead).
func (d *DB) ListPriceBooks(ctx context.Context) ([]billing.PriceBook, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+pbCols+` FROM price_books ORDER BY version DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.PriceBook
	for rows.Next() {
		r, err := scanVersion(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r.pb)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Cancelled versions are listed, marked.
	at := make(map[int64]int, len(out))
	for i, pb := range out {
		at[pb.Version] = i
	}
	crows, err := d.read.QueryContext(ctx, `SELECT version, cancelled_at, cancelled_by FROM price_book_cancellations`)
	if err != nil {
		return nil, err
	}
	defer crows.Close()
	for crows.Next() {
		var v, when int64
		var by string
		if err := crows.Scan(&v, &when, &by); err != nil {
			return nil, err
		}
		if i, ok := at[v]; ok {
			t := fromMicros(when)
			out[i].CancelledAt, out[i].CancelledBy = &t, by
		}
	}
	return out, crows.Err()
}

// CancelScheduledPriceBook cancels a version scheduled for later, before it
// takes effect: it is never in effect, and the version before it stays
// (versions are immutable; the cancellation is a row of its own, audited
// in the same transaction). A version already in effect, or in effect
// once, cannot be cancelled: publish another, or roll back.
func (d *DB) CancelScheduledPriceBook(ctx context.Context, version int64, actor billing.Actor, reason string) (billing.PriceBook, error) {
	var out billing.PriceBook
	err := d.Write(ctx, func(t *Tx) error {
		now := t.Now.UTC()
		r, err := scanVersion(t.queryRow(`SELECT `+pbCols+` FROM price_books WHERE version = ?`, version))
		if errors.Is(err, sql.ErrNoRows) {
			return billing.Errorf(billing.CodeNotFound, "No price book version %d.", version)
		}
		if err != nil {
			return err
		}
		cancelled := billing.Errorf(billing.CodeConflict, "Version %d was cancelled already.", version)
		var n int
		if err := t.queryRow(`SELECT COUNT(*) FROM price_book_cancellations WHERE version = ?`, version).Scan(&n); err != nil {
			return err
		} else if n > 0 {
			return cancelled // it never took effect, whatever the time
		}
		if r.pb.EffectiveAt == nil || !r.pb.EffectiveAt.After(now) {
			return billing.Errorf(billing.CodeConflict, "Version %d took effect already, so it cannot be cancelled: publish another version, or roll back to an earlier one.", version)
		}
		// The key decides a race (two admins, two instances) that the count
		// above cannot: one row, and the other is told.
		res, err := t.exec(`INSERT INTO price_book_cancellations (version, cancelled_at, cancelled_by, reason) VALUES (?, ?, ?, ?)
			ON CONFLICT (version) DO NOTHING`, version, micros(now), actor.String(), reason)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return cancelled
		}
		if actor.Kind != "" {
			if _, err := t.exec(`INSERT INTO admin_audit (actor, action, customer_id, reason, before, after, created_at) VALUES (?, ?, NULL, ?, ?, ?, ?)`,
				actor.String(), billing.AuditPriceBookCancelled, reason,
				"v"+strconv.FormatInt(version, 10)+" scheduled for "+r.pb.EffectiveAt.Format(time.RFC3339), "cancelled", micros(now)); err != nil {
				return err
			}
		}
		t.w.pb = nil // the next version's time may have changed
		out = *r.pb
		at := now
		out.CancelledAt, out.CancelledBy = &at, actor.String()
		return nil
	})
	if err != nil {
		return billing.PriceBook{}, err
	}
	d.pb.mu.Lock()
	d.pb.checked = time.Time{}
	d.pb.mu.Unlock()
	return out, nil
}

// priceBook is the current price book inside the writer. The writer keeps
// its copy until another process commits (see PRAGMA data_version in the
// writer) or this process publishes, so a new version applies from the next
// batch on.
func (t *Tx) priceBook() (*billing.PriceBook, error) {
	w := t.w
	c := &w.d.pb
	if w.pb != nil && !t.Now.Before(c.from) && (c.next.IsZero() || t.Now.Before(c.next)) {
		return w.pb, nil
	}
	now := micros(t.Now)
	if dec := w.pbDecoded; dec != nil {
		// One small query says which version is in effect and when the next
		// takes over; the body is read and decoded only for a new version.
		var v, next sql.NullInt64
		if err := t.queryRow(`SELECT (SELECT version FROM price_books WHERE COALESCE(effective_at, published_at) <= ? AND `+live+`
			ORDER BY COALESCE(effective_at, published_at) DESC, version DESC LIMIT 1), (`+nextEffect+`)`,
			now, now).Scan(&v, &next); err != nil {
			return nil, err
		}
		if v.Valid && v.Int64 == dec.Version && dec.EffectiveAt != nil {
			c.from, c.next = *dec.EffectiveAt, time.Time{}
			if next.Valid {
				c.next = fromMicros(next.Int64)
			}
			w.pb = dec
			return dec, nil
		}
	}
	r, err := scanVersion(t.queryRow(inEffect, now))
	from := time.Time{}
	if errors.Is(err, sql.ErrNoRows) {
		// Before the first version's time: history written at a past time
		// (Backfill: demo data) is priced with the first version, unless
		// that version was published before now for later (scheduled).
		r, err = scanVersion(t.queryRow(`SELECT ` + pbCols + ` FROM price_books WHERE ` + live + ` ORDER BY COALESCE(effective_at, published_at), version LIMIT 1`))
		if err == nil && !r.pb.PublishedAt.After(t.Now) {
			err = sql.ErrNoRows
		}
	} else if err == nil {
		from = *r.pb.EffectiveAt
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.Errorf(billing.CodeUnknownFeature, "No price book has been published yet, so no feature can be priced.")
	}
	if err != nil {
		return nil, err
	}
	// A version scheduled later takes over at its time: read again then
	// (and for an operation dated before this version's time).
	var n sql.NullInt64
	if err := t.queryRow(nextEffect, now).Scan(&n); err != nil {
		return nil, err
	}
	c.from, c.next = from, time.Time{}
	if n.Valid {
		c.next = fromMicros(n.Int64)
	}
	w.pb, w.pbDecoded = r.pb, r.pb
	return r.pb, nil
}

// feature looks a feature up in the current price book.
func (t *Tx) feature(key string) (billing.Feature, *billing.PriceBook, error) {
	pb, err := t.priceBook()
	if err != nil {
		return billing.Feature{}, nil, err
	}
	f, ok := pb.Feature(key)
	if !ok {
		return billing.Feature{}, nil, billing.Errorf(billing.CodeUnknownFeature,
			"Feature %q is not in price book version %d.", key, pb.Version).With("param", "feature").With("price_version", pb.Version)
	}
	return f, pb, nil
}
