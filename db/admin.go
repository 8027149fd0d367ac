package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
	"golang.org/x/crypto/bcrypt"
)

// The admin console's storage: staff (admin_users), their server-side
// sessions (admin_sessions, the same scheme as customer_sessions) and the
// audit log of their actions (admin_audit, append-only by trigger). Money
// changes are not copied into admin_audit: the ledger entry, written in the
// change's own transaction with its actor and reason, is their record, and
// FindAudit reads both.

// adminBcryptCost is bcrypt's work factor for admin passwords.
const adminBcryptCost = 12 // the default of Options.PasswordCost

// CreateAdmin adds a member of staff. validation_failed, conflict.
func (d *DB) CreateAdmin(ctx context.Context, email, password, role string) (billing.AdminUser, error) {
	email, err := billing.CheckAdminEmail(email)
	if err != nil {
		return billing.AdminUser{}, err
	}
	if !billing.ValidRole(role) {
		return billing.AdminUser{}, billing.Errorf(billing.CodeValidation, "role %q is not one of %s", role, strings.Join(billing.Roles(), ", ")).With("param", "role")
	}
	if err := billing.CheckAdminPassword(password); err != nil {
		return billing.AdminUser{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), d.pwCost)
	if err != nil {
		return billing.AdminUser{}, err
	}
	a := billing.AdminUser{ID: newID("adm", 8), Email: email, Role: role}
	err = d.Write(ctx, func(t *Tx) error {
		a.CreatedAt = t.Now.UTC().Truncate(time.Microsecond)
		var n int
		if err := t.queryRow(`SELECT count(*) FROM admin_users WHERE email = ?`, email).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return billing.Errorf(billing.CodeConflict, "An admin with e-mail %s already exists.", email).With("param", "email")
		}
		_, err := t.exec(`INSERT INTO admin_users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)`,
			a.ID, email, string(hash), role, micros(a.CreatedAt))
		return err
	})
	return a, err
}

var errAdminCredentials = billing.Errorf(billing.CodeUnauthorized, "That e-mail and password do not match an admin.")

// dummy is compared against when the e-mail is unknown, so a wrong e-mail
// takes as long as a wrong password and tells nothing.
func (d *DB) dummy() []byte {
	d.dummyOnce.Do(func() { d.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("tally: no such admin"), d.pwCost) })
	return d.dummyHash
}

// AuthenticateAdmin checks an e-mail and password. unauthorized.
func (d *DB) AuthenticateAdmin(ctx context.Context, email, password string) (billing.AdminUser, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var a billing.AdminUser
	var hash string
	var created int64
	err := d.read.QueryRowContext(ctx, `SELECT id, email, password_hash, role, created_at FROM admin_users WHERE email = ?`, email).
		Scan(&a.ID, &a.Email, &hash, &a.Role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		bcrypt.CompareHashAndPassword(d.dummy(), []byte(password))
		return billing.AdminUser{}, errAdminCredentials
	}
	if err != nil {
		return billing.AdminUser{}, err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return billing.AdminUser{}, errAdminCredentials
	}
	a.CreatedAt = fromMicros(created)
	return a, nil
}

// FindAdmin reads an admin by id. not_found.
func (d *DB) FindAdmin(ctx context.Context, id string) (billing.AdminUser, error) {
	var a billing.AdminUser
	var created int64
	err := d.read.QueryRowContext(ctx, `SELECT id, email, role, created_at FROM admin_users WHERE id = ?`, id).
		Scan(&a.ID, &a.Email, &a.Role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return a, billing.Errorf(billing.CodeNotFound, "No admin %q.", id)
	}
	a.CreatedAt = fromMicros(created)
	return a, err
}

// FindAdmins lists every admin, by e-mail.
func (d *DB) FindAdmins(ctx context.Context) ([]billing.AdminUser, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT id, email, role, created_at FROM admin_users ORDER BY email`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.AdminUser
	for rows.Next() {
		var a billing.AdminUser
		var created int64
		if err := rows.Scan(&a.ID, &a.Email, &a.Role, &created); err != nil {
			return nil, err
		}
		a.CreatedAt = fromMicros(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

// StartAdminSession stores a new admin session and returns its id.
func (d *DB) StartAdminSession(ctx context.Context, s billing.AdminSession) (string, error) {
	id := newID("", 32)[1:]
	h := hashSecret(id)
	err := d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO admin_sessions (id_hash, admin_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			h[:], s.AdminID, micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt))
		return err
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// FindAdminSession reads a session by its id, ended or not. not_found.
func (d *DB) FindAdminSession(ctx context.Context, id string) (billing.AdminSession, error) {
	var s billing.AdminSession
	if id == "" || len(id) > 100 {
		return s, errSessionUnknown
	}
	h := hashSecret(id)
	var created, seen, expires int64
	var ended sql.NullInt64
	var reason sql.NullString
	err := d.read.QueryRowContext(ctx, `SELECT admin_id, created_at, last_seen_at, expires_at, ended_at, end_reason FROM admin_sessions WHERE id_hash = ?`, h[:]).
		Scan(&s.AdminID, &created, &seen, &expires, &ended, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		return s, errSessionUnknown
	}
	if err != nil {
		return s, err
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expires)
	s.EndedAt, s.EndReason = timePtr(ended), reason.String
	return s, nil
}

// TouchAdminSession moves a live session's idle timer to at (never back).
func (d *DB) TouchAdminSession(ctx context.Context, id string, at time.Time) error {
	h := hashSecret(id)
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE admin_sessions SET last_seen_at = `+t.w.d.greatest()+`(last_seen_at, ?) WHERE id_hash = ? AND ended_at IS NULL`, micros(at), h[:])
		return err
	})
}

// EndAdminSession ends one session (sign-out).
func (d *DB) EndAdminSession(ctx context.Context, id string, at time.Time, reason string) error {
	h := hashSecret(id)
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE admin_sessions SET ended_at = ?, end_reason = ? WHERE id_hash = ? AND ended_at IS NULL`, micros(at), reason, h[:])
		return err
	})
}

// EndAdminSessions ends every live session of an admin and returns how many.
func (d *DB) EndAdminSessions(ctx context.Context, adminID string, at time.Time, reason string) (int, error) {
	var n int64
	err := d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`UPDATE admin_sessions SET ended_at = ?, end_reason = ? WHERE admin_id = ? AND ended_at IS NULL`, micros(at), reason, adminID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// SweepAdminSessions deletes the admin sessions past their maximum age at
// before, ended or not (the audit log keeps who signed in when), and
// returns how many.
func (d *DB) SweepAdminSessions(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := d.Write(ctx, func(t *Tx) error {
		res, err := t.exec(`DELETE FROM admin_sessions WHERE expires_at <= ?`, micros(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// RecordAudit appends an admin action to the audit log, at the Tx's clock.
func (d *DB) RecordAudit(ctx context.Context, r billing.AuditRecord) error {
	if r.Actor.Kind == "" || r.Action == "" {
		return billing.Errorf(billing.CodeValidation, "an audit record needs an actor and an action")
	}
	return d.Write(ctx, func(t *Tx) error {
		_, err := t.exec(`INSERT INTO admin_audit (actor, action, customer_id, reason, before, after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.Actor.String(), r.Action, nullString(r.Customer), r.Reason, r.Before, r.After, micros(t.Now))
		return err
	})
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// FindAudit reads the audit log newest first: the admin actions
// (admin_audit) and the money changes (entries) merged by time. Each source
// is read in its own id order (an index walk, so a page costs two short
// reads however long the ledger is); the cursor holds where each stopped,
// "<last admin_audit id>.<last entry id>" (0 for the top).
func (d *DB) FindAudit(ctx context.Context, f billing.AuditFilter) ([]billing.AuditRecord, string, error) {
	limit := clampLimit(f.Limit)
	// Each source reads below its position; 0 means it has nothing left.
	var curA, curE int64 = math.MaxInt64, math.MaxInt64
	if f.Cursor != "" {
		a, e, ok := strings.Cut(f.Cursor, ".")
		var err1, err2 error
		curA, err1 = strconv.ParseInt(a, 10, 64)
		curE, err2 = strconv.ParseInt(e, 10, 64)
		if !ok || err1 != nil || err2 != nil || curA < 0 || curE < 0 {
			return nil, "", billing.Errorf(billing.CodeInvalidRequest, "cursor %q is not a cursor from a previous page", f.Cursor).With("param", "cursor")
		}
	}
	if strings.HasPrefix(f.Action, "ledger.") {
		curA = 0
	} else if f.Action != "" {
		curE = 0
	}
	var admin, ledger []auditRow
	var err error
	if curA > 0 {
		if admin, err = d.auditAdminRows(ctx, f, curA, limit+1); err != nil {
			return nil, "", err
		}
	}
	if curE > 0 {
		if ledger, err = d.auditEntryRows(ctx, f, curE, limit+1); err != nil {
			return nil, "", err
		}
	}
	// Merge newest first; on a tie the admin action comes first.
	var out []billing.AuditRecord
	i, j := 0, 0
	for len(out) < limit && (i < len(admin) || j < len(ledger)) {
		if j >= len(ledger) || (i < len(admin) && !admin[i].rec.At.Before(ledger[j].rec.At)) {
			out = append(out, admin[i].rec)
			curA = admin[i].id
			i++
		} else {
			out = append(out, ledger[j].rec)
			curE = ledger[j].id
			j++
		}
	}
	// A source read to its end (fewer rows than asked for, all shown) is done.
	if i == len(admin) && len(admin) <= limit {
		curA = 0
	}
	if j == len(ledger) && len(ledger) <= limit {
		curE = 0
	}
	next := ""
	if curA > 0 || curE > 0 {
		next = fmt.Sprintf("%d.%d", curA, curE)
	}
	return out, next, nil
}

type auditRow struct {
	id  int64
	rec billing.AuditRecord
}

func (d *DB) auditAdminRows(ctx context.Context, f billing.AuditFilter, cursor int64, n int) ([]auditRow, error) {
	where, args := []string{"id < ?"}, []any{cursor}
	if f.Customer != "" {
		where, args = append(where, "customer_id = ?"), append(args, f.Customer)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.Actor != "" {
		if strings.Contains(f.Actor, ":") {
			where, args = append(where, "actor = ?"), append(args, f.Actor)
		} else {
			where, args = append(where, "actor LIKE ? ESCAPE '\\'"), append(args, likePrefix(f.Actor)+":%")
		}
	}
	rows, err := d.read.QueryContext(ctx, `SELECT id, actor, action, COALESCE(customer_id, ''), reason, before, after, created_at
		FROM admin_audit WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, append(args, n)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		var actor string
		var at int64
		if err := rows.Scan(&r.id, &actor, &r.rec.Action, &r.rec.Customer, &r.rec.Reason, &r.rec.Before, &r.rec.After, &at); err != nil {
			return nil, err
		}
		r.rec.ID, r.rec.Source, r.rec.Actor, r.rec.At = "aud_"+strconv.FormatInt(r.id, 10), "admin", billing.ParseActor(actor), fromMicros(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (d *DB) auditEntryRows(ctx context.Context, f billing.AuditFilter, cursor int64, n int) ([]auditRow, error) {
	where, args := []string{"id < ?"}, []any{cursor}
	if f.Customer != "" {
		where, args = append(where, "customer_id = ?"), append(args, f.Customer)
	}
	if f.Action != "" {
		where, args = append(where, "type = ?"), append(args, strings.TrimPrefix(f.Action, "ledger."))
	}
	// A debit metered by an API key stores no actor: api_key_id says it.
	const actor = `COALESCE(actor, CASE WHEN api_key_id IS NOT NULL THEN 'api_key:' || api_key_id ELSE '' END)`
	if f.Actor != "" {
		if strings.Contains(f.Actor, ":") {
			where, args = append(where, actor+" = ?"), append(args, f.Actor)
		} else {
			where, args = append(where, actor+" LIKE ? ESCAPE '\\'"), append(args, likePrefix(f.Actor)+":%")
		}
	}
	rows, err := d.read.QueryContext(ctx, `SELECT id, `+actor+`, type, customer_id, reason, balance_after - amount, balance_after, created_at
		FROM entries WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, append(args, n)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		var actor, typ string
		var before, after, at int64
		if err := rows.Scan(&r.id, &actor, &typ, &r.rec.Customer, &r.rec.Reason, &before, &after, &at); err != nil {
			return nil, err
		}
		r.rec.ID, r.rec.Source, r.rec.Actor, r.rec.At = EntryID(r.id), "entry", billing.ParseActor(actor), fromMicros(at)
		r.rec.Action = "ledger." + typ
		r.rec.Before, r.rec.After = billing.Credits(before).String(), billing.Credits(after).String()
		out = append(out, r)
	}
	return out, rows.Err()
}

func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}
