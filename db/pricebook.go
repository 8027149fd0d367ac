package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/tally-billing/tally/billing"
)

// priceBookBody is what a version stores; version and time are columns.
type priceBookBody struct {
	Currency string               `json:"currency"`
	Features []billing.Feature    `json:"features"`
	Packs    []billing.CreditPack `json:"packs"`
	Plans    []billing.Plan       `json:"plans,omitempty"`
}

type priceBookCache struct {
	mu      sync.Mutex
	pb      *billing.PriceBook
	checked time.Time
}

// priceBookTTL is how long the read path trusts its copy of the current
// price book before checking for a newer version (published by another
// process, such as `tally pricebook publish`). Debits never use this copy:
// the writer checks the version once per batch.
const priceBookTTL = time.Second

// PublishPriceBook validates pb and stores it as a new immutable version.
// Publishing a book identical to the current one makes no new version and
// returns the current one (changed = false).
func (d *DB) PublishPriceBook(ctx context.Context, pb billing.PriceBook) (_ billing.PriceBook, changed bool, err error) {
	if err := pb.Validate(); err != nil {
		return billing.PriceBook{}, false, err
	}
	if pb.Packs == nil {
		pb.Packs = []billing.CreditPack{} // "no packs" is one thing, however it was sent
	}
	body, err := json.Marshal(priceBookBody{Currency: pb.Currency, Features: pb.Features, Packs: pb.Packs, Plans: pb.Plans})
	if err != nil {
		return billing.PriceBook{}, false, err
	}
	var out billing.PriceBook
	err = d.Write(ctx, func(t *Tx) error {
		var cur, curAt sql.NullInt64
		var curBody []byte
		err := t.queryRow(`SELECT version, published_at, body FROM price_books ORDER BY version DESC LIMIT 1`).Scan(&cur, &curAt, &curBody)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur.Valid && bytes.Equal(curBody, body) {
			p, err := decodePriceBook(cur.Int64, curAt.Int64, curBody)
			out, changed = *p, false
			return err
		}
		out = pb
		out.Version = cur.Int64 + 1
		out.PublishedAt = t.Now.UTC().Truncate(time.Microsecond)
		changed = true
		_, err = t.exec(`INSERT INTO price_books (version, published_at, body) VALUES (?, ?, ?)`,
			out.Version, micros(out.PublishedAt), string(body))
		t.w.pb = nil // price the next operation with the new version
		return err
	})
	if err != nil {
		return billing.PriceBook{}, false, err
	}
	d.pb.mu.Lock()
	d.pb.checked = time.Time{}
	d.pb.mu.Unlock()
	return out, changed, nil
}

func decodePriceBook(version, publishedAt int64, body []byte) (*billing.PriceBook, error) {
	var b priceBookBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	return &billing.PriceBook{Version: version, PublishedAt: fromMicros(publishedAt),
		Currency: b.Currency, Features: b.Features, Packs: b.Packs, Plans: b.Plans}, nil
}

// CurrentPriceBook returns the newest price book version, or nil when none
// has been published.
func (d *DB) CurrentPriceBook(ctx context.Context) (*billing.PriceBook, error) {
	c := &d.pb
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pb != nil && time.Since(c.checked) < priceBookTTL {
		return c.pb, nil
	}
	var v sql.NullInt64
	if err := d.read.QueryRowContext(ctx, `SELECT MAX(version) FROM price_books`).Scan(&v); err != nil {
		return nil, err
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
	var at int64
	var body []byte
	err := d.read.QueryRowContext(ctx, `SELECT published_at, body FROM price_books WHERE version = ?`, version).Scan(&at, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, billing.Errorf(billing.CodeNotFound, "No price book version %d.", version)
	}
	if err != nil {
		return nil, err
	}
	return decodePriceBook(version, at, body)
}

// ListPriceBooks returns every version, newest first.
func (d *DB) ListPriceBooks(ctx context.Context) ([]billing.PriceBook, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT version, published_at, body FROM price_books ORDER BY version DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.PriceBook
	for rows.Next() {
		var v, at int64
		var body []byte
		if err := rows.Scan(&v, &at, &body); err != nil {
			return nil, err
		}
		pb, err := decodePriceBook(v, at, body)
		if err != nil {
			return nil, err
		}
		out = append(out, *pb)
	}
	return out, rows.Err()
}

// priceBook is the current price book inside the writer. The writer keeps
// its copy until another process commits (see PRAGMA data_version in the
// writer) or this process publishes, so a new version applies from the next
// batch on.
func (t *Tx) priceBook() (*billing.PriceBook, error) {
	w := t.w
	if w.pb != nil {
		return w.pb, nil
	}
	var v sql.NullInt64
	if err := t.queryRow(`SELECT MAX(version) FROM price_books`).Scan(&v); err != nil {
		return nil, err
	}
	if !v.Valid {
		return nil, billing.Errorf(billing.CodeUnknownFeature, "No price book has been published yet, so no feature can be priced.")
	}
	var at int64
	var body []byte
	if err := t.queryRow(`SELECT published_at, body FROM price_books WHERE version = ?`, v.Int64).Scan(&at, &body); err != nil {
		return nil, err
	}
	pb, err := decodePriceBook(v.Int64, at, body)
	if err != nil {
		return nil, err
	}
	w.pb = pb
	return pb, nil
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
