package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The policy in force (billing.Policy) is the newest row of policies. Readers
// on hot paths (a hold's lifetime, the low-balance line inside the writer)
// take it from memory; CurrentPolicy rereads the table when its copy is
// older than policyFresh, so another process's edit (a second instance)
// arrives within seconds, and this process's own edits replace the copy as
// they commit.

// policyFresh is how long a read of the policy is trusted before rereading.
const policyFresh = 2 * time.Second

type policyCache struct {
	v       atomic.Pointer[policyRead]
	at      atomic.Int64 // unix nanos of the last read
	reading atomic.Bool  // a background reread is under way (policyNow)

	// The background reread is the DB's: Close waits for it (wg), and none
	// starts once Close has begun (closed), so no read opens a connection
	// (and SQLite's -wal and -shm files) after Close returns.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// stopRereads makes policyNow start no more background reads and waits for
// the one under way (Close).
func (c *policyCache) stopRereads() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
}

type policyRead struct{ billing.PolicyVersion }

// BuiltinPolicy is the policy before any version is stored (billing's defaults).
var BuiltinPolicy = billing.PolicyVersion{Policy: billing.DefaultPolicy}

// SeedPolicy stores p as the first version, from the server's flags, when
// there is none yet, and returns the version in force (p's or the stored
// one: flags are only a fresh installation's defaults) and whether p was
// stored. validation_failed.
func (d *DB) SeedPolicy(ctx context.Context, p billing.Policy) (billing.PolicyVersion, bool, error) {
	// Flags that no policy allows matter only when they would be stored:
	// an installation with a stored policy starts whatever its flags say.
	d.pol.at.Store(0)
	if v, err := d.CurrentPolicy(ctx); err != nil || v.Version > 0 {
		return v, false, err
	}
	if errs := p.Validate(); len(errs) > 0 {
		return billing.PolicyVersion{}, false, policyError(errs)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return billing.PolicyVersion{}, false, err
	}
	var seeded bool
	err = d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`INSERT INTO policies (version, body, actor, reason, created_at) VALUES (1, ?, ?, ?, ?) ON CONFLICT (version) DO NOTHING`,
			string(body), billing.SystemActor("flags").String(), "the server's flags at the first start", micros(t.Now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		seeded = n == 1
		return err
	})
	if err != nil {
		return billing.PolicyVersion{}, false, err
	}
	d.pol.at.Store(0)
	v, err := d.CurrentPolicy(ctx)
	return v, seeded, err
}

// CurrentPolicy is the policy in force: the newest version, or
// BuiltinPolicy when none is stored.
func (d *DB) CurrentPolicy(ctx context.Context) (billing.PolicyVersion, error) {
	if v := d.pol.v.Load(); v != nil && time.Since(time.Unix(0, d.pol.at.Load())) < policyFresh {
		return v.PolicyVersion, nil
	}
	read := time.Now()
	vs, err := d.policyRows(ctx, 1)
	if err != nil {
		return billing.PolicyVersion{}, err
	}
	v := BuiltinPolicy
	if len(vs) > 0 {
		v = vs[0]
	}
	d.keepPolicy(v, read)
	return v, nil
}

// keepPolicy replaces the cached policy unless a newer version is cached.
func (d *DB) keepPolicy(v billing.PolicyVersion, read time.Time) {
	for {
		old := d.pol.v.Load()
		if old != nil && old.Version > v.Version {
			return
		}
		if d.pol.v.CompareAndSwap(old, &policyRead{v}) {
			d.pol.at.Store(read.UnixNano())
			return
		}
	}
}

// policyNow is the cached policy for code that may not wait on a read
// (inside the writer): the last one read, or the built-in one before any
// read. serve reads it at startup (SeedPolicy), so that is the flags' or
// the stored one.
func (d *DB) policyNow() billing.Policy {
	v := d.pol.v.Load()
	if v == nil || time.Since(time.Unix(0, d.pol.at.Load())) >= policyFresh {
		// Reread in the background (one at a time): the caller goes on
		// with the copy it has.
		if d.pol.reading.CompareAndSwap(false, true) {
			d.pol.mu.Lock()
			if d.pol.closed {
				d.pol.reading.Store(false)
			} else {
				d.pol.wg.Go(func() {
					defer d.pol.reading.Store(false)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					d.CurrentPolicy(ctx)
				})
			}
			d.pol.mu.Unlock()
		}
	}
	if v != nil {
		return v.Policy
	}
	return billing.DefaultPolicy
}

// PolicyHistory lists the stored versions, newest first (at most limit).
func (d *DB) PolicyHistory(ctx context.Context, limit int) ([]billing.PolicyVersion, error) {
	return d.policyRows(ctx, clampLimit(limit))
}

func (d *DB) policyRows(ctx context.Context, limit int) ([]billing.PolicyVersion, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT version, body, actor, reason, created_at FROM policies ORDER BY version DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.PolicyVersion
	for rows.Next() {
		v, err := scanPolicy(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func scanPolicy(r rowScanner) (billing.PolicyVersion, error) {
	var v billing.PolicyVersion
	var body, actor string
	var at int64
	if err := r.Scan(&v.Version, &body, &actor, &v.Reason, &at); err != nil {
		return v, err
	}
	// Start from the defaults, so a field added later reads as its default
	// in versions stored before it.
	v.Policy = billing.DefaultPolicy
	if err := json.Unmarshal([]byte(body), &v.Policy); err != nil {
		return v, err
	}
	v.Actor, v.CreatedAt = billing.ParseActor(actor), fromMicros(at)
	return v, nil
}

// UpdatePolicy stores p as the next version if based is still the newest
// (else conflict: someone saved in between, and their change would be
// undone unseen), with an audit record (policy.updated, before and after)
// in the same transaction. It applies at once: this process's cached copy
// is replaced as the transaction commits. validation_failed, conflict.
func (d *DB) UpdatePolicy(ctx context.Context, based int64, p billing.Policy, actor billing.Actor, reason string) (billing.PolicyVersion, error) {
	if errs := p.Validate(); len(errs) > 0 {
		return billing.PolicyVersion{}, policyError(errs)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return billing.PolicyVersion{}, err
	}
	var out billing.PolicyVersion
	err = d.Write(ctx, func(t *Tx) error {
		cur := BuiltinPolicy
		v, err := scanPolicy(t.queryRow(`SELECT version, body, actor, reason, created_at FROM policies ORDER BY version DESC LIMIT 1`))
		switch {
		case err == nil:
			cur = v
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if cur.Version != based {
			return billing.Errorf(billing.CodeConflict, "The policy was changed by %s while you edited it (now version %d). Review the current policy and make your change again.",
				cur.Actor.String(), cur.Version)
		}
		out = billing.PolicyVersion{Version: cur.Version + 1, Policy: p, Actor: actor, Reason: reason, CreatedAt: t.Now.UTC().Truncate(time.Microsecond)}
		if _, err := t.exec(`INSERT INTO policies (version, body, actor, reason, created_at) VALUES (?, ?, ?, ?, ?)`,
			out.Version, string(body), actor.String(), reason, micros(t.Now)); err != nil {
			return err
		}
		before, _ := json.Marshal(cur.Policy)
		if err := t.recordAudit(billing.AuditRecord{Actor: actor, Action: billing.AuditPolicyUpdated, Reason: reason,
			Before: string(before), After: string(body)}); err != nil {
			return err
		}
		t.AfterCommit(func() { d.keepPolicy(out, time.Now()) })
		return nil
	})
	return out, err
}

// policyError is Validate's first fault as a billing error (param: field).
func policyError(errs map[string]string) error {
	for _, f := range billing.PolicyFields {
		if msg, ok := errs[f]; ok {
			return billing.Errorf(billing.CodeValidation, "%s: %s", f, msg).With("param", f)
		}
	}
	return billing.Errorf(billing.CodeValidation, "the policy is not valid")
}
