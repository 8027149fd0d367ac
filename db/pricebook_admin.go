package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tally-billing/tally/billing"
)

// PriceBookDraft is the admin console's draft price book: one per
// installation, kept until it is published or discarded.
type PriceBookDraft struct {
	Book        billing.PriceBook
	BaseVersion int64 // the version it was started from (0: none)
	Rev         int64 // how many times it was saved
	UpdatedBy   billing.Actor
	UpdatedAt   time.Time
}

// FindPriceBookDraft returns the draft, or nil when there is none.
func (d *DB) FindPriceBookDraft(ctx context.Context) (*PriceBookDraft, error) {
	var body []byte
	var base sql.NullInt64
	var by string
	var at int64
	out := &PriceBookDraft{}
	err := d.read.QueryRowContext(ctx, `SELECT body, base_version, rev, updated_by, updated_at FROM price_book_drafts WHERE id = 1`).
		Scan(&body, &base, &out.Rev, &by, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var b priceBookBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	out.Book = billing.PriceBook{Currency: b.Currency, Features: b.Features, Packs: b.Packs, Plans: b.Plans, CustomTopUp: b.CustomTopUp}
	out.BaseVersion, out.UpdatedBy, out.UpdatedAt = base.Int64, billing.ParseActor(by), fromMicros(at)
	return out, nil
}

// SavePriceBookDraft stores pb as the draft, validated as publishing
// would validate it. rev is the revision the editor started from (0 for a
// new draft): a draft saved since by someone else is a conflict, not
// overwritten. It takes the audit record in ctx (billing.WithAudit),
// written in the same transaction. Errors: validation_failed, conflict.
func (d *DB) SavePriceBookDraft(ctx context.Context, pb billing.PriceBook, base, rev int64, actor billing.Actor) (PriceBookDraft, error) {
	if err := pb.Validate(); err != nil {
		return PriceBookDraft{}, err
	}
	body, err := json.Marshal(bodyOf(pb))
	if err != nil {
		return PriceBookDraft{}, err
	}
	var out PriceBookDraft
	err = d.Write(ctx, func(t *Tx) error {
		var have int64
		var haveBase sql.NullInt64
		err := t.queryRow(`SELECT rev, base_version FROM price_book_drafts WHERE id = 1`).Scan(&have, &haveBase)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if have != rev {
			if rev == 0 {
				return billing.Errorf(billing.CodeConflict, "A draft exists already: open it to edit, or discard it first.")
			}
			return billing.Errorf(billing.CodeConflict, "Someone saved the draft since you opened it: reload the draft and make your change again.")
		}
		if rev > 0 && base == 0 {
			base = haveBase.Int64
		}
		now := t.Now.UTC().Truncate(time.Microsecond)
		out = PriceBookDraft{Book: pb, BaseVersion: base, Rev: rev + 1, UpdatedBy: actor, UpdatedAt: now}
		_, err = t.exec(`INSERT INTO price_book_drafts (id, body, base_version, rev, updated_by, updated_at) VALUES (1, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET body = excluded.body, base_version = excluded.base_version, rev = excluded.rev,
			updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
			string(body), nullInt(base), out.Rev, actor.String(), micros(now))
		if err != nil {
			return err
		}
		return t.auditFrom(ctx, func(r *billing.AuditRecord) {
			if rev > 0 {
				r.Before = fmt.Sprintf("draft revision %d", rev)
			}
			r.After = fmt.Sprintf("draft revision %d: %d features, %d packs, %d plans", out.Rev, len(pb.Features), len(pb.Packs), len(pb.Plans))
		})
	})
	return out, err
}

// DiscardPriceBookDraft removes the draft (nothing when there is none).
// It takes the audit record in ctx (billing.WithAudit), written with it.
func (d *DB) DiscardPriceBookDraft(ctx context.Context) error {
	return d.Write(ctx, func(t *Tx) error {
		var rev int64
		if err := t.queryRow(`SELECT rev FROM price_book_drafts WHERE id = 1`).Scan(&rev); errors.Is(err, sql.ErrNoRows) {
			return nil // nothing to discard, nothing to record
		} else if err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM price_book_drafts WHERE id = 1`); err != nil {
			return err
		}
		return t.auditFrom(ctx, func(r *billing.AuditRecord) { r.Before = fmt.Sprintf("draft revision %d", rev) })
	})
}

// UsageTotals adds up the ledger's usage entries (debits and hold
// captures) since a time, per customer and feature: the events, the
// single quantities and each dimension's quantities, for the price-book
// impact preview (billing.PreviewImpact).
//
// One grouped query over the window: its first entry is found by a binary
// search on the primary key (entries are numbered in commit order, and
// created_at has no index, on purpose: it would cost every debit a write),
// and rows group by customer, feature and breakdown, so single-quantity
// usage arrives as one row per customer and feature. A breakdown is JSON
// (portable SQL has no JSON functions), so dimensional usage groups per
// distinct breakdown and is added up here, streaming.
func (d *DB) UsageTotals(ctx context.Context, since time.Time) ([]billing.UsageTotal, error) {
	first, ok, err := d.firstEntryAt(ctx, micros(since))
	if err != nil || !ok {
		return nil, err
	}
	rows, err := d.read.QueryContext(ctx, `SELECT customer_id, feature, quantities, COUNT(*), COALESCE(SUM(quantity), 0)
		FROM entries WHERE id >= ? AND created_at >= ? AND type = 'debit' AND feature IS NOT NULL
		GROUP BY customer_id, feature, quantities`, first, micros(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type key struct{ customer, feature string }
	index := map[key]int{}
	var out []billing.UsageTotal
	for rows.Next() {
		var k key
		var qs sql.NullString
		var events, qty int64
		if err := rows.Scan(&k.customer, &k.feature, &qs, &events, &qty); err != nil {
			return nil, err
		}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, billing.UsageTotal{Customer: k.customer, Feature: k.feature})
		}
		u := &out[i]
		u.Events += events
		u.Quantity += billing.Quantity(qty)
		lines, err := scanBreakdown(qs)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			if u.Quantities == nil {
				u.Quantities = billing.Quantities{}
			}
			u.Quantities[l.Dimension] += l.Quantity * billing.Quantity(events)
		}
	}
	return out, rows.Err()
}

// firstEntryAt is the id of the first entry created at or after at (ok
// false when there is none): a binary search over ids, each step one
// primary-key lookup, since created_at follows commit order.
func (d *DB) firstEntryAt(ctx context.Context, at int64) (int64, bool, error) {
	var lo, hi sql.NullInt64
	if err := d.read.QueryRowContext(ctx, `SELECT MIN(id), MAX(id) FROM entries`).Scan(&lo, &hi); err != nil {
		return 0, false, err
	}
	if !lo.Valid {
		return 0, false, nil
	}
	createdFrom := func(id int64) (int64, int64, error) { // the first entry at or after id, and its time
		var got, c int64
		err := d.read.QueryRowContext(ctx, `SELECT id, created_at FROM entries WHERE id >= ? ORDER BY id LIMIT 1`, id).Scan(&got, &c)
		return got, c, err
	}

	if _, c, err := createdFrom(hi.Int64); err != nil {
		return 0, false, err
	} else if c < at {
		return 0, false, nil
	}
	// The smallest id whose next entry is recent enough (ids may have gaps:
	// the query reads from id on, so any id in a gap before it will do).
	l, h := lo.Int64, hi.Int64
	for l < h {
		mid := l + (h-l)/2
		_, c, err := createdFrom(mid)
		if err != nil {
			return 0, false, err
		}
		if c >= at {
			h = mid
		} else {
			l = mid + 1
		}
	}
	return l, true, nil
}
