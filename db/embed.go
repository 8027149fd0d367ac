package db

import (
	"context"
	"database/sql"
	"errors"
	"slices"

	"github.com/tally-billing/tally/billing"
)

// SetAPIKeyOrigins replaces the origins whose pages may show the balance
// widget with tokens this key mints (id or prefix). Each origin is checked
// and normalised by billing.ParseOrigin; duplicates collapse. Errors:
// validation_failed, not_found.
func (d *DB) SetAPIKeyOrigins(ctx context.Context, ref string, origins []string) ([]string, error) {
	clean, err := cleanOrigins(origins)
	if err != nil {
		return nil, err
	}
	err = d.Write(ctx, func(t *Tx) error {
		var id string
		err := t.queryRow(`SELECT id FROM api_keys WHERE id = ? OR prefix = ?`, ref, ref).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return billing.Errorf(billing.CodeNotFound, "No API key with id or prefix %q.", ref)
		}
		if err != nil {
			return err
		}
		before, err := t.keyOrigins(id)
		if err != nil {
			return err
		}
		if err := t.setKeyOrigins(id, clean); err != nil {
			return err
		}
		return t.auditFrom(ctx, func(r *billing.AuditRecord) {
			after := slices.Clone(clean)
			slices.Sort(after)
			r.Before = jsonText(map[string]any{"id": id, "allowed_origins": before})
			r.After = jsonText(map[string]any{"id": id, "allowed_origins": after})
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(clean)
	return clean, nil
}

// apiKeyOrigins reads the allowed origins of every key, sorted.
func (d *DB) apiKeyOrigins(ctx context.Context) (map[string][]string, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT api_key_id, origin FROM api_key_origins ORDER BY api_key_id, origin`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var id, o string
		if err := rows.Scan(&id, &o); err != nil {
			return nil, err
		}
		out[id] = append(out[id], o)
	}
	return out, rows.Err()
}

// EmbedKeyAllows reports whether the key with this id is live (not revoked)
// and lists origin among its allowed origins: what every use of an embed
// token checks, so revoking the key or removing the origin ends its tokens
// at once, in every process. A missing key is not live.
func (d *DB) EmbedKeyAllows(ctx context.Context, keyID, origin string) (live, allowed bool, err error) {
	var revoked sql.NullInt64
	err = d.read.QueryRowContext(ctx, `SELECT k.revoked_at FROM api_keys k WHERE k.id = ?`, keyID).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	var n int
	if err := d.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_key_origins WHERE api_key_id = ? AND origin = ?`, keyID, origin).Scan(&n); err != nil {
		return false, false, err
	}
	return !revoked.Valid, n > 0, nil
}

// OriginEmbeds reports whether any live key lists origin: the embed API's
// CORS preflight, which carries no token, is answered for such origins only.
func (d *DB) OriginEmbeds(ctx context.Context, origin string) (bool, error) {
	var n int
	err := d.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_key_origins o JOIN api_keys k ON k.id = o.api_key_id
		WHERE o.origin = ? AND k.revoked_at IS NULL`, origin).Scan(&n)
	return n > 0, err
}
