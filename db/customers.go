package db

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// CreateCustomer creates a customer with an empty wallet, or returns the
// existing customer with the same external_id (created = false).
func (d *DB) CreateCustomer(ctx context.Context, in billing.CustomerInput) (c billing.Customer, created bool, err error) {
	if err := in.Validate(); err != nil {
		return c, false, err
	}
	err = d.Write(ctx, func(t *Tx) error {
		existing, err := t.customerByRef(in.ExternalID)
		if err == nil {
			c, created = existing, false
			// A repeat that names another e-mail or name would drop it
			// without a word: say how to change them.
			if (in.Email != "" && in.Email != existing.Email) || (in.Name != "" && in.Name != existing.Name) {
				return billing.Errorf(billing.CodeConflict,
					"Customer %s already exists with another email or name; this request changed nothing. Change them with PATCH /api/v1/customers/%s.",
					in.ExternalID, existing.ID).With("param", "external_id").With("customer", existing.ID)
			}
			return nil
		}
		if billing.ErrorCode(err) != billing.CodeCustomerNotFound {
			return err
		}
		c = billing.Customer{ID: newID("cus", 10), ExternalID: in.ExternalID, Email: in.Email, Name: in.Name, CreatedAt: t.Now.UTC().Truncate(time.Microsecond)}
		// A new wallet's overdraft is the policy's (policy.go); admins set
		// it per customer afterwards.
		c.Limits.OverdraftLimit = d.policyNow().DefaultOverdraft
		if _, err := t.exec(`INSERT INTO customers (id, external_id, email, name, created_at) VALUES (?, ?, ?, ?, ?)`,
			c.ID, c.ExternalID, c.Email, c.Name, micros(c.CreatedAt)); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO wallets (customer_id, overdraft_limit, updated_at) VALUES (?, ?, ?)`, c.ID, int64(c.Limits.OverdraftLimit), micros(t.Now)); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err == nil {
		d.customerIDs.Store(c.ID, c.ID)
		d.customerIDs.Store(c.ExternalID, c.ID)
	}
	return c, created, err
}

const customerCols = `c.id, c.external_id, c.email, c.name, c.created_at, w.overdraft_limit, w.daily_cap, w.monthly_cap,
	w.customer_daily_cap, w.customer_monthly_cap`

type rowScanner interface{ Scan(dest ...any) error }

func scanCustomer(r rowScanner) (billing.Customer, error) {
	var c billing.Customer
	var created, overdraft int64
	var daily, monthly, ownDaily, ownMonthly sql.NullInt64
	if err := r.Scan(&c.ID, &c.ExternalID, &c.Email, &c.Name, &created, &overdraft, &daily, &monthly, &ownDaily, &ownMonthly); err != nil {
		return c, err
	}
	c.CreatedAt = fromMicros(created)
	c.Limits = billing.Limits{OverdraftLimit: billing.Credits(overdraft), DailyCap: creditsPtr(daily), MonthlyCap: creditsPtr(monthly)}
	c.CustomerCaps = billing.SpendCaps{DailyCap: creditsPtr(ownDaily), MonthlyCap: creditsPtr(ownMonthly)}
	return c, nil
}

func creditsPtr(v sql.NullInt64) *billing.Credits {
	if !v.Valid {
		return nil
	}
	c := billing.Credits(v.Int64)
	return &c
}

func nullCredits(c *billing.Credits) any {
	if c == nil {
		return nil
	}
	return int64(*c)
}

func notFoundCustomer(ref string) error {
	return billing.Errorf(billing.CodeCustomerNotFound, "No customer with id or external_id %q.", ref).With("param", "customer")
}

func (t *Tx) customerByRef(ref string) (billing.Customer, error) {
	q := `SELECT ` + customerCols + ` FROM customers c JOIN wallets w ON w.customer_id = c.id WHERE `
	var c billing.Customer
	var err error
	if strings.HasPrefix(ref, "cus_") {
		c, err = scanCustomer(t.queryRow(q+`c.id = ?`, ref))
	} else {
		c, err = scanCustomer(t.queryRow(q+`c.external_id = ?`, ref))
	}
	if errors.Is(err, sql.ErrNoRows) {
		return c, notFoundCustomer(ref)
	}
	return c, err
}

// ResolveCustomer turns a customer reference (Tally's cus_ id or the
// product's external_id) into Tally's id.
func (d *DB) ResolveCustomer(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", billing.Errorf(billing.CodeValidation, "customer is required").With("param", "customer")
	}
	if id, ok := d.customerIDs.Load(ref); ok {
		return id.(string), nil
	}
	var id string
	var err error
	if strings.HasPrefix(ref, "cus_") {
		err = d.read.QueryRowContext(ctx, `SELECT id FROM customers WHERE id = ?`, ref).Scan(&id)
	} else {
		err = d.read.QueryRowContext(ctx, `SELECT id FROM customers WHERE external_id = ?`, ref).Scan(&id)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFoundCustomer(ref)
	}
	if err != nil {
		return "", err
	}
	d.customerIDs.Store(ref, id)
	return id, nil
}

// FindCustomer returns a customer by reference.
func (d *DB) FindCustomer(ctx context.Context, ref string) (billing.Customer, error) {
	id, err := d.ResolveCustomer(ctx, ref)
	if err != nil {
		return billing.Customer{}, err
	}
	c, err := scanCustomer(d.read.QueryRowContext(ctx, `SELECT `+customerCols+` FROM customers c JOIN wallets w ON w.customer_id = c.id WHERE c.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, notFoundCustomer(ref)
	}
	return c, err
}

// FindCustomers lists customers by id.
func (d *DB) FindCustomers(ctx context.Context, f billing.CustomerFilter) ([]billing.Customer, bool, error) {
	limit := clampLimit(f.Limit)
	rows, err := d.read.QueryContext(ctx, `SELECT `+customerCols+` FROM customers c JOIN wallets w ON w.customer_id = c.id
		WHERE c.id > ? ORDER BY c.id LIMIT ?`, f.Cursor, limit+1)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []billing.Customer
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, c)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, rows.Err()
}

// UpdateCustomer changes a customer's e-mail and name (a nil field stays).
// An audit record in ctx (billing.WithAudit) is written with the change.
func (d *DB) UpdateCustomer(ctx context.Context, ref string, u billing.CustomerUpdate) (billing.Customer, error) {
	if err := u.Validate(); err != nil {
		return billing.Customer{}, err
	}
	id, err := d.ResolveCustomer(ctx, ref)
	if err != nil {
		return billing.Customer{}, err
	}
	var c billing.Customer
	err = d.Write(ctx, func(t *Tx) error {
		before, err := t.customerByRef(id)
		if err != nil {
			return err
		}
		email, name := before.Email, before.Name
		if u.Email != nil {
			email = *u.Email
		}
		if u.Name != nil {
			name = *u.Name
		}
		if _, err := t.exec(`UPDATE customers SET email = ?, name = ? WHERE id = ?`, email, name, id); err != nil {
			return err
		}
		if c, err = t.customerByRef(id); err != nil {
			return err
		}
		return t.auditFrom(ctx, func(r *billing.AuditRecord) {
			r.Customer = id
			r.Before = jsonText(map[string]string{"email": before.Email, "name": before.Name})
			r.After = jsonText(map[string]string{"email": email, "name": name})
		})
	})
	return c, err
}

// SetLimits replaces the operator's limits on a customer: the spend caps and
// the overdraft limit. The caps the customer set in the portal stay. An
// audit record in ctx (billing.WithAudit) is written with the change, with
// the limits before and after.
func (d *DB) SetLimits(ctx context.Context, ref string, lim billing.Limits) (billing.Customer, error) {
	if err := lim.Validate(); err != nil {
		return billing.Customer{}, err
	}
	id, err := d.ResolveCustomer(ctx, ref)
	if err != nil {
		return billing.Customer{}, err
	}
	var c billing.Customer
	err = d.Write(ctx, func(t *Tx) error {
		w, err := t.loadWallet(id)
		if err != nil {
			return err
		}
		before := billing.Limits{OverdraftLimit: w.OverdraftLimit, DailyCap: w.caps.DailyCap, MonthlyCap: w.caps.MonthlyCap}
		w.caps, w.OverdraftLimit = lim.Caps(), lim.OverdraftLimit
		if err := t.saveWallet(w); err != nil {
			return err
		}
		c, err = t.customerByRef(id)
		c.Limits, c.CustomerCaps = lim, w.customerCaps // the wallet row is written at the end of the batch
		if err != nil {
			return err
		}
		// An admin's change is recorded with it (billing.WithAudit).
		return t.auditFrom(ctx, func(r *billing.AuditRecord) {
			r.Customer, r.Before, r.After = id, jsonText(before), jsonText(lim)
		})
	})
	return c, err
}

func clampLimit(n int) int {
	if n <= 0 {
		return 25
	}
	return min(n, 100)
}
