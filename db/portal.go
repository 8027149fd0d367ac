package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"time"

	"github.com/tally-billing/tally/billing"
)

// CreatePortalSession makes a single-use sign-in link token for a customer.
// The token is returned once; only its hash is stored.
func (d *DB) CreatePortalSession(ctx context.Context, ref, returnURL, flow string, ttl time.Duration) (token string, expires time.Time, err error) {
	id, err := d.ResolveCustomer(ctx, ref)
	if err != nil {
		return "", time.Time{}, err
	}
	token = newID("pst", 24)[4:]
	h := hashSecret(token)
	err = d.Write(ctx, func(t *Tx) error {
		expires = t.Now.Add(ttl).UTC().Truncate(time.Microsecond)
		if _, err := t.exec(`INSERT INTO portal_sessions (token_hash, customer_id, return_url, flow, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			h[:], id, returnURL, flow, micros(t.Now), micros(expires)); err != nil {
			return err
		}
		// An admin's link is recorded with it (billing.WithAudit).
		return t.auditFrom(ctx, func(r *billing.AuditRecord) { r.Customer, r.After = id, expires.Format(time.RFC3339) })
	})
	return token, expires, err
}

// Portal link errors.
var (
	errLinkUsed    = billing.Errorf(billing.CodeLinkUsed, "This sign-in link has already been used.")
	errLinkExpired = billing.Errorf(billing.CodeLinkExpired, "This sign-in link has expired.")
	errLinkUnknown = billing.Errorf(billing.CodeNotFound, "This sign-in link is not valid.")
)

// UsePortalSession consumes a sign-in link: it works once, before it expires.
func (d *DB) UsePortalSession(ctx context.Context, token string) (billing.PortalSignIn, error) {
	h := hashSecret(token)
	// A made-up, used or expired link is answered from a read connection:
	// only a link that can still work queues a write, so a flood of bad
	// links never reaches the single writer.
	var expires int64
	var used sql.NullInt64
	err := d.read.QueryRowContext(ctx, `SELECT expires_at, used_at FROM portal_sessions WHERE token_hash = ?`, h[:]).Scan(&expires, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return billing.PortalSignIn{}, errLinkUnknown
	case err != nil:
		return billing.PortalSignIn{}, err
	case used.Valid:
		return billing.PortalSignIn{}, errLinkUsed
	case expires <= micros(d.now()):
		return billing.PortalSignIn{}, errLinkExpired
	}
	var out billing.PortalSignIn
	err = d.Write(ctx, func(t *Tx) error {
		var expires int64
		var used sql.NullInt64
		err := t.queryRow(`SELECT customer_id, return_url, flow, expires_at, used_at FROM portal_sessions WHERE token_hash = ?`, h[:]).
			Scan(&out.CustomerID, &out.ReturnURL, &out.Flow, &expires, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return errLinkUnknown
		case err != nil:
			return err
		case used.Valid:
			return errLinkUsed
		case expires <= micros(t.Now):
			return errLinkExpired
		}
		// used_at IS NULL in the WHERE: a link used twice at once signs in once.
		res, err := t.exec(`UPDATE portal_sessions SET used_at = ? WHERE token_hash = ? AND used_at IS NULL`, micros(t.Now), h[:])
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errLinkUsed
		}
		return nil
	})
	return out, err
}

// Secret returns the named secret of n random bytes, creating it on first use.
func (d *DB) Secret(ctx context.Context, name string, n int) ([]byte, error) {
	var v []byte
	err := d.read.QueryRowContext(ctx, `SELECT value FROM app_secrets WHERE name = ?`, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	fresh := make([]byte, n)
	rand.Read(fresh)
	err = d.Write(ctx, func(t *Tx) error {
		// Another process may have created it meanwhile: keep the first.
		if _, err := t.exec(`INSERT INTO app_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`, name, fresh, micros(t.Now)); err != nil {
			return err
		}
		return t.queryRow(`SELECT value FROM app_secrets WHERE name = ?`, name).Scan(&v)
	})
	return v, err
}

// FindCustomerSettings returns a customer's settings (defaults when none are saved).
func (d *DB) FindCustomerSettings(ctx context.Context, customerID string) (billing.CustomerSettings, error) {
	var s billing.CustomerSettings
	var v sql.NullInt64
	err := d.read.QueryRowContext(ctx, `SELECT low_balance_threshold FROM customer_settings WHERE customer_id = ?`, customerID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return s, nil
	}
	s.LowBalanceThreshold = creditsPtr(v)
	return s, err
}

// UpdateCustomerSettings saves a customer's settings.
func (d *DB) UpdateCustomerSettings(ctx context.Context, customerID string, s billing.CustomerSettings) error {
	return d.Write(ctx, func(t *Tx) error { return t.saveCustomerSettings(customerID, s) })
}

// saveCustomerSettings writes a customer's settings row, and the new
// low-balance line into the writer's copy of the wallet (the line the next
// debit's threshold events are decided against).
func (t *Tx) saveCustomerSettings(customerID string, s billing.CustomerSettings) error {
	w, err := t.loadWallet(customerID)
	if err != nil {
		return err
	}
	w.lowSet = s.LowBalanceThreshold
	if err := t.saveWallet(w); err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO customer_settings (customer_id, low_balance_threshold, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (customer_id) DO UPDATE SET low_balance_threshold = excluded.low_balance_threshold, updated_at = excluded.updated_at`,
		customerID, nullCredits(s.LowBalanceThreshold), micros(t.Now))
	return err
}

// LastTopUp returns the credits of the customer's most recent purchase grant
// (0 when there is none), for the default low-balance threshold.
func (d *DB) LastTopUp(ctx context.Context, customerID string) (billing.Credits, error) {
	var c billing.Credits
	err := d.read.QueryRowContext(ctx, `SELECT amount FROM lots WHERE customer_id = ? AND source = 'purchase' ORDER BY id DESC LIMIT 1`, customerID).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return c, err
}

// UpdateCustomerCaps saves the caps and the low-balance threshold a
// customer sets in the portal. One transaction, so a page never shows half
// a save. It writes only the customer's own caps: the operator's caps and
// overdraft limit are read and kept inside it, never changed from here.
func (d *DB) UpdateCustomerCaps(ctx context.Context, customerID string, sc billing.CustomerCapsInput) error {
	if err := sc.Validate(); err != nil {
		return err
	}
	id, err := d.ResolveCustomer(ctx, customerID)
	if err != nil {
		return err
	}
	return d.Write(ctx, func(t *Tx) error {
		w, err := t.loadWallet(id)
		if err != nil {
			return err
		}
		own := billing.SpendCaps{DailyCap: sc.DailyCap, MonthlyCap: sc.MonthlyCap}
		if err := own.CheckUnder(w.caps); err != nil {
			return err
		}
		w.customerCaps = own
		if err := t.saveWallet(w); err != nil {
			return err
		}
		return t.saveCustomerSettings(id, billing.CustomerSettings{LowBalanceThreshold: sc.LowBalanceThreshold})
	})
}

// CustomerSpend is what a customer has spent today and this month (UTC),
// read from the same rollups the spend caps are checked against.
func (d *DB) CustomerSpend(ctx context.Context, customerID string) (billing.Spend, error) {
	read := func(q string, args ...any) *sql.Row { return d.read.QueryRowContext(ctx, q, args...) }
	return spendOf(read, "usage_daily", "customer_id", customerID, d.now())
}
