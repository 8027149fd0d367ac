package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/tally-billing/tally/billing"
)

// An admin's edits of an existing API key (the console's API keys page):
// scope, spend caps, rate limit and allowed origins in one transaction,
// with the audit record (billing.WithAudit) that says what they were
// before and after.

// cleanOrigins checks and normalises allowed origins (billing.ParseOrigin)
// and drops duplicates. validation_failed.
func cleanOrigins(origins []string) ([]string, error) {
	var clean []string
	for _, o := range origins {
		n, err := billing.ParseOrigin(o)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(clean, n) {
			clean = append(clean, n)
		}
	}
	if len(clean) > 100 {
		return nil, billing.Errorf(billing.CodeValidation, "a key may list at most 100 allowed origins").With("param", "allowed_origin")
	}
	return clean, nil
}

// setKeyOrigins replaces a key's allowed origins.
func (t *Tx) setKeyOrigins(id string, origins []string) error {
	if _, err := t.exec(`DELETE FROM api_key_origins WHERE api_key_id = ?`, id); err != nil {
		return err
	}
	for _, o := range origins {
		if _, err := t.exec(`INSERT INTO api_key_origins (api_key_id, origin, created_at) VALUES (?, ?, ?)`, id, o, micros(t.Now)); err != nil {
			return err
		}
	}
	return nil
}

// keyOrigins reads a key's allowed origins, sorted.
func (t *Tx) keyOrigins(id string) ([]string, error) {
	rows, err := t.query(`SELECT origin FROM api_key_origins WHERE api_key_id = ? ORDER BY origin`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// keyAudit is a key as its audit records show it (never its secret).
func keyAudit(k billing.APIKey) string {
	origins := slices.Clone(k.AllowedOrigins)
	slices.Sort(origins)
	return jsonText(map[string]any{"id": k.ID, "name": k.Name, "scope": k.Scope, "prefix": k.Prefix, "limits": k.Limits,
		"rate_limit": k.RateLimit, "allowed_origins": origins})
}

// jsonText is v as JSON text ("" if it can't be: audit values are for people).
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// UpdateAPIKey changes a live key's scope, caps, rate limit and allowed
// origins (id or prefix) at once, with the audit record in ctx if any. The
// change applies to the key's next request: the key cache is dropped.
// Errors: validation_failed, not_found, conflict (a revoked key).
func (d *DB) UpdateAPIKey(ctx context.Context, ref string, up billing.APIKeyUpdate) (billing.APIKey, error) {
	if !billing.ValidScope(up.Scope) {
		return billing.APIKey{}, billing.Errorf(billing.CodeValidation, "scope %q is not one of %s", up.Scope, strings.Join(billing.Scopes(), ", ")).With("param", "scope")
	}
	if err := up.Limits.Validate(); err != nil {
		return billing.APIKey{}, err
	}
	if up.RateLimit < 0 || up.RateLimit > 1_000_000 {
		return billing.APIKey{}, billing.Errorf(billing.CodeValidation, "rate limit must be 0 (off) to 1,000,000 requests per second").With("param", "rate_limit")
	}
	clean, err := cleanOrigins(up.Origins)
	if err != nil {
		return billing.APIKey{}, err
	}
	var k billing.APIKey
	err = d.Write(ctx, func(t *Tx) error {
		before, err := scanAPIKey(t.queryRow(`SELECT `+apiKeyCols+` FROM api_keys WHERE id = ? OR prefix = ?`, ref, ref))
		if errors.Is(err, sql.ErrNoRows) {
			return billing.Errorf(billing.CodeNotFound, "No API key with id or prefix %q.", ref)
		}
		if err != nil {
			return err
		}
		if before.RevokedAt != nil {
			return billing.Errorf(billing.CodeConflict, "%s is revoked: a revoked key can't be changed.", before.Name)
		}
		if before.AllowedOrigins, err = t.keyOrigins(before.ID); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE api_keys SET scope = ?, daily_cap = ?, monthly_cap = ?, rate_limit = ? WHERE id = ?`,
			up.Scope, nullCredits(up.Limits.DailyCap), nullCredits(up.Limits.MonthlyCap), nullInt(int64(up.RateLimit)), before.ID); err != nil {
			return err
		}
		if err := t.setKeyOrigins(before.ID, clean); err != nil {
			return err
		}
		k = before
		k.Scope, k.Limits, k.RateLimit, k.AllowedOrigins = up.Scope, up.Limits, up.RateLimit, clean
		return t.auditFrom(ctx, func(r *billing.AuditRecord) { r.Before, r.After = keyAudit(before), keyAudit(k) })
	})
	d.keys.mu.Lock()
	d.keys.m = nil
	d.keys.mu.Unlock()
	slices.Sort(k.AllowedOrigins)
	return k, err
}
