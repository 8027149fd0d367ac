package db

import (
	"context"
	"slices"

	"github.com/tally-billing/tally/billing"
)

// FindLots lists every lot of a customer, newest first, including those
// used up, expired or frozen (the portal's credit history). limit bounds the
// list (1 to 500; default 100).
func (d *DB) FindLots(ctx context.Context, customerID string, limit int) ([]billing.LotView, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 500)
	// lots_customer (customer_id, id) serves the order without a sort.
	rows, err := d.read.QueryContext(ctx, `SELECT `+lotCols+` FROM lots WHERE customer_id = ? ORDER BY id DESC LIMIT ?`, customerID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []billing.LotView{}
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, billing.LotView{ID: LotID(l.ID), Lot: l})
	}
	return out, rows.Err()
}

// Bounds of FindUsageFacets: how many recent debits it reads tags from, and
// how many values per tag it returns.
const (
	facetDebits    = 2000
	facetTagValues = 100
)

// FindUsageFacets returns what a customer's usage can be filtered by: every
// feature they have used (from the daily rollups, so all of history) and
// the metadata tags of their most recent debits with the values seen.
// Reading tags from recent debits only keeps the cost bounded for customers
// with millions of entries; a tag used only long ago can still be typed in.
func (d *DB) FindUsageFacets(ctx context.Context, customerID string) (billing.UsageFacets, error) {
	out := billing.UsageFacets{Features: []string{}, Tags: map[string][]string{}}
	rows, err := d.read.QueryContext(ctx, `SELECT DISTINCT feature FROM usage_daily WHERE customer_id = ? ORDER BY feature`, customerID)
	if err != nil {
		return out, err
	}
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return out, err
		}
		out.Features = append(out.Features, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err
	}
	// The inner query walks entries_customer newest first and stops after
	// facetDebits debits; json_each then unpacks only those.
	rows, err = d.read.QueryContext(ctx, `SELECT DISTINCT j.key, `+d.sql(`j.value`, `j.value #>> '{}'`)+` FROM
		(SELECT metadata FROM entries WHERE customer_id = ? AND type = 'debit' AND metadata IS NOT NULL ORDER BY id DESC LIMIT ?) e, `+
		d.sql(`json_each(e.metadata) j WHERE j.type = 'text'`, `jsonb_each(e.metadata::jsonb) j WHERE jsonb_typeof(j.value) = 'string'`),
		customerID, facetDebits)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return out, err
		}
		out.Tags[k] = append(out.Tags[k], v)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	for k, vs := range out.Tags {
		slices.Sort(vs)
		out.Tags[k] = vs[:min(len(vs), facetTagValues)]
	}
	return out, nil
}
