package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/tally-billing/tally/billing"
)

// APIKeyPrefix starts every secret key, so leaked keys are easy to scan for.
const APIKeyPrefix = "tsk_"

// keyCacheTTL is how long a verified key is trusted without reading it again:
// a key revoked by another process (the CLI) stops working within this time.
const keyCacheTTL = 2 * time.Second

type cachedKey struct {
	key *billing.APIKey // nil: no such key (cached too, against brute force load)
	at  time.Time
}

type apiKeyCache struct {
	mu   sync.Mutex
	m    map[[32]byte]cachedKey
	used map[string]time.Time // when each key's last use was last stored
}

// lastUsedEvery: a key's last use is stored at most this often, so the
// request path queues one small write a minute per key, not one a request.
const lastUsedEvery = time.Minute

// noteKeyUse stores that a key was used, at most once a minute, in the
// background: authentication never waits for it, and a lost write (a
// closing database) only leaves the time a minute behind.
func (d *DB) noteKeyUse(id string) {
	now := time.Now()
	c := &d.keys
	c.mu.Lock()
	if c.used == nil || len(c.used) > 10_000 {
		c.used = map[string]time.Time{}
	}
	last, ok := c.used[id]
	stale := !ok || now.Sub(last) >= lastUsedEvery
	if stale {
		c.used[id] = now
	}
	c.mu.Unlock()
	if stale {
		go d.Write(context.Background(), func(t *Tx) error {
			_, err := t.exec(`UPDATE api_keys SET last_used_at = ? WHERE id = ?`, micros(t.Now), id)
			return err
		})
	}
}

func hashSecret(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// CreateAPIKey makes a new key and returns it with its secret, which is shown
// once and never stored: only its SHA-256 is. (A random 160-bit secret needs
// no slow password hash: it cannot be guessed from its digest.)
func (d *DB) CreateAPIKey(ctx context.Context, name, scope string, lim billing.Limits, rateLimit int) (billing.APIKey, string, error) {
	return d.CreateAPIKeyWithOrigins(ctx, name, scope, lim, rateLimit, nil)
}

// CreateAPIKeyWithOrigins is CreateAPIKey with the key's allowed origins
// (billing.ParseOrigin), stored in the same transaction, with the audit
// record in ctx if any (billing.WithAudit; its After is the new key).
func (d *DB) CreateAPIKeyWithOrigins(ctx context.Context, name, scope string, lim billing.Limits, rateLimit int, origins []string) (billing.APIKey, string, error) {
	clean, err := cleanOrigins(origins)
	if err != nil {
		return billing.APIKey{}, "", err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return billing.APIKey{}, "", billing.Errorf(billing.CodeValidation, "name is required (at most 100 characters)").With("param", "name")
	}
	if !billing.ValidScope(scope) {
		return billing.APIKey{}, "", billing.Errorf(billing.CodeValidation, "scope %q is not one of %s", scope, strings.Join(billing.Scopes(), ", ")).With("param", "scope")
	}
	if err := lim.Validate(); err != nil {
		return billing.APIKey{}, "", err
	}
	if rateLimit < 0 || rateLimit > 1_000_000 {
		return billing.APIKey{}, "", billing.Errorf(billing.CodeValidation, "rate limit must be 0 (off) to 1,000,000 requests per second").With("param", "rate_limit")
	}
	secret := APIKeyPrefix + strings.TrimPrefix(newID("", 20), "_")
	return d.insertAPIKey(ctx, name, scope, lim, rateLimit, secret, clean)
}

func (d *DB) insertAPIKey(ctx context.Context, name, scope string, lim billing.Limits, rateLimit int, secret string, origins []string) (billing.APIKey, string, error) {
	h := hashSecret(secret)
	k := billing.APIKey{ID: newID("key", 8), Name: name, Prefix: secret[:12], Scope: scope, Limits: lim, RateLimit: rateLimit}
	err := d.Write(ctx, func(t *Tx) error {
		k.CreatedAt = t.Now.UTC().Truncate(time.Microsecond)
		_, err := t.exec(`INSERT INTO api_keys (id, name, prefix, hash, scope, daily_cap, monthly_cap, rate_limit, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, k.ID, k.Name, k.Prefix, h[:], k.Scope,
			nullCredits(lim.DailyCap), nullCredits(lim.MonthlyCap), nullInt(int64(rateLimit)), micros(k.CreatedAt))
		if isUniqueViolation(err) {
			return billing.Errorf(billing.CodeConflict, "That key already exists.")
		}
		if err != nil {
			return err
		}
		if err := t.setKeyOrigins(k.ID, origins); err != nil {
			return err
		}
		k.AllowedOrigins = origins
		return t.auditFrom(ctx, func(r *billing.AuditRecord) { r.After = keyAudit(k) })
	})
	if err != nil {
		return billing.APIKey{}, "", err
	}
	d.keys.mu.Lock()
	delete(d.keys.m, h)
	d.keys.mu.Unlock()
	return k, secret, nil
}

// EnsureAPIKey stores a key with a secret chosen by the caller, unless a key
// with that secret exists. Only the demo uses it, so that the documented demo
// key works on every run.
func (d *DB) EnsureAPIKey(ctx context.Context, name, scope, secret string) (billing.APIKey, error) {
	if k, err := d.Authenticate(ctx, secret); err == nil {
		return *k, nil
	}
	k, _, err := d.insertAPIKey(ctx, name, scope, billing.Limits{}, 0, secret, nil)
	return k, err
}

const apiKeyCols = `id, name, prefix, scope, daily_cap, monthly_cap, rate_limit, created_at, revoked_at`

func scanAPIKey(r rowScanner) (billing.APIKey, error) {
	var k billing.APIKey
	var daily, monthly, rate, revoked sql.NullInt64
	var created int64
	err := r.Scan(&k.ID, &k.Name, &k.Prefix, &k.Scope, &daily, &monthly, &rate, &created, &revoked)
	k.Limits = billing.Limits{DailyCap: creditsPtr(daily), MonthlyCap: creditsPtr(monthly)}
	k.RateLimit, k.CreatedAt, k.RevokedAt = int(rate.Int64), fromMicros(created), timePtr(revoked)
	return k, err
}

// errInvalidKey is Authenticate's refusal, made only when a request is
// refused (every request authenticates; most are not refused).
func errInvalidKey() error {
	return billing.Errorf(billing.CodeUnauthorized, "Invalid API key. Send a live key as 'Authorization: Bearer tsk_...'.")
}

// Authenticate returns the live key with this secret. Errors: unauthorized.
func (d *DB) Authenticate(ctx context.Context, secret string) (*billing.APIKey, error) {
	if !strings.HasPrefix(secret, APIKeyPrefix) || len(secret) > 100 {
		return nil, errInvalidKey()
	}
	h := hashSecret(secret)
	c := &d.keys
	c.mu.Lock()
	e, ok := c.m[h]
	c.mu.Unlock()
	if !ok || time.Since(e.at) > keyCacheTTL {
		k, err := scanAPIKey(d.read.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE hash = ?`, h[:]))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			e = cachedKey{at: time.Now()}
		case err != nil:
			return nil, err
		default:
			e = cachedKey{key: &k, at: time.Now()}
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) > 10_000 {
			c.m = map[[32]byte]cachedKey{}
		}
		c.m[h] = e
		c.mu.Unlock()
	}
	if e.key == nil || e.key.RevokedAt != nil {
		return nil, errInvalidKey()
	}
	d.noteKeyUse(e.key.ID)
	return e.key, nil
}

// FindAPIKeys lists every key, newest first (never their secrets).
func (d *DB) FindAPIKeys(ctx context.Context) ([]billing.APIKey, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	origins, err := d.apiKeyOrigins(ctx)
	for i := range out {
		out[i].AllowedOrigins = origins[out[i].ID]
	}
	if err != nil {
		return out, err
	}
	used, err := d.apiKeysLastUsed(ctx)
	for i := range out {
		if at, ok := used[out[i].ID]; ok {
			out[i].LastUsedAt = &at
		}
	}
	return out, err
}

// RevokeAPIKey revokes the key with this id, prefix or secret. Revoking
// twice is harmless. Errors: not_found.
func (d *DB) RevokeAPIKey(ctx context.Context, ref string) (billing.APIKey, error) {
	k, _, err := d.RevokeAPIKeyOnce(ctx, ref)
	return k, err
}

// RevokeAPIKeyOnce is RevokeAPIKey that also says whether the key was
// already revoked (then nothing changes). ref is the key's id, its prefix,
// or its secret (after a leak), which is looked up by its hash and never
// written into an error. Errors: not_found.
func (d *DB) RevokeAPIKeyOnce(ctx context.Context, ref string) (k billing.APIKey, already bool, err error) {
	h := hashSecret(ref)
	err = d.Write(ctx, func(t *Tx) error {
		var err error
		k, err = scanAPIKey(t.queryRow(`SELECT `+apiKeyCols+` FROM api_keys WHERE id = ? OR prefix = ? OR hash = ?`, ref, ref, h[:]))
		if errors.Is(err, sql.ErrNoRows) {
			return errNoKey(ref)
		}
		if err != nil {
			return err
		}
		if k.RevokedAt != nil {
			already = true
			return nil
		}
		now := t.Now.UTC().Truncate(time.Microsecond)
		k.RevokedAt = &now
		if _, err = t.exec(`UPDATE api_keys SET revoked_at = ? WHERE id = ?`, micros(now), k.ID); err != nil {
			return err
		}
		return t.auditFrom(ctx, func(r *billing.AuditRecord) {
			r.Before, r.After = k.ID+" "+k.Name, now.Format("2006-01-02T15:04:05Z")
		})
	})
	d.keys.mu.Lock()
	d.keys.m = nil
	d.keys.mu.Unlock()
	return k, already, err
}

// errNoKey is the not_found of a key looked up by id, prefix or secret; a
// secret is shown by its prefix only.
func errNoKey(ref string) error {
	if prefixLen := 12; strings.HasPrefix(ref, APIKeyPrefix) && len(ref) > prefixLen {
		return billing.Errorf(billing.CodeNotFound, "No API key with that secret (%s…).", ref[:prefixLen])
	}
	return billing.Errorf(billing.CodeNotFound, "No API key with id or prefix %q.", ref)
}

// UpdateAPIKeyLimits sets a key's spend caps and request rate limit.
func (d *DB) UpdateAPIKeyLimits(ctx context.Context, ref string, lim billing.Limits, rateLimit int) (billing.APIKey, error) {
	if err := lim.Validate(); err != nil {
		return billing.APIKey{}, err
	}
	if rateLimit < 0 || rateLimit > 1_000_000 {
		return billing.APIKey{}, billing.Errorf(billing.CodeValidation, "rate limit must be 0 (off) to 1,000,000 requests per second")
	}
	var k billing.APIKey
	err := d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`UPDATE api_keys SET daily_cap = ?, monthly_cap = ?, rate_limit = ? WHERE id = ? OR prefix = ?`,
			nullCredits(lim.DailyCap), nullCredits(lim.MonthlyCap), nullInt(int64(rateLimit)), ref, ref)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return billing.Errorf(billing.CodeNotFound, "No API key with id or prefix %q.", ref)
		}
		k, err = scanAPIKey(t.queryRow(`SELECT `+apiKeyCols+` FROM api_keys WHERE id = ? OR prefix = ?`, ref, ref))
		return err
	})
	d.keys.mu.Lock()
	d.keys.m = nil
	d.keys.mu.Unlock()
	return k, err
}

// apiKeysLastUsed reads when each used key was last used.
func (d *DB) apiKeysLastUsed(ctx context.Context) (map[string]time.Time, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT id, last_used_at FROM api_keys WHERE last_used_at IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = fromMicros(at)
	}
	return out, rows.Err()
}
