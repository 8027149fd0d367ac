package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
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
		if _, err := t.exec(`INSERT INTO admin_users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)`,
			a.ID, email, string(hash), role, micros(a.CreatedAt)); err != nil {
			return err
		}
		return t.auditFrom(ctx, func(r *billing.AuditRecord) { r.After = email + " (" + role + ")" })
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

// AuthenticateAdmin checks an e-mail and password. unauthorized, and the
// same for a disabled admin (after the same bcrypt comparison), so the
// answer tells nobody whether the account exists or is disabled.
func (d *DB) AuthenticateAdmin(ctx context.Context, email, password string) (billing.AdminUser, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var hash string
	a, err := scanAdmin(d.read.QueryRowContext(ctx, `SELECT `+adminCols+`, password_hash FROM admin_users WHERE email = ?`, email), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		bcrypt.CompareHashAndPassword(d.dummy(), []byte(password))
		return billing.AdminUser{}, errAdminCredentials
	}
	if err != nil {
		return billing.AdminUser{}, err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil || !a.Active() {
		return billing.AdminUser{}, errAdminCredentials
	}
	return a, nil
}

// adminCols are the columns scanAdmin reads, in its order.
const adminCols = `id, email, role, created_at, disabled_at`

// scanAdmin reads adminCols, then extra.
func scanAdmin(row interface{ Scan(...any) error }, extra ...any) (billing.AdminUser, error) {
	var a billing.AdminUser
	var created int64
	var disabled sql.NullInt64
	if err := row.Scan(append([]any{&a.ID, &a.Email, &a.Role, &created, &disabled}, extra...)...); err != nil {
		return billing.AdminUser{}, err
	}
	a.CreatedAt, a.DisabledAt = fromMicros(created), timePtr(disabled)
	return a, nil
}

// FindAdmin reads an admin by id, disabled or not. not_found.
func (d *DB) FindAdmin(ctx context.Context, id string) (billing.AdminUser, error) {
	a, err := scanAdmin(d.read.QueryRowContext(ctx, `SELECT `+adminCols+` FROM admin_users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, billing.Errorf(billing.CodeNotFound, "No admin %q.", id)
	}
	return a, err
}

// FindAdminByEmail reads an admin by e-mail (any case), disabled or not.
// not_found.
func (d *DB) FindAdminByEmail(ctx context.Context, email string) (billing.AdminUser, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	a, err := scanAdmin(d.read.QueryRowContext(ctx, `SELECT `+adminCols+` FROM admin_users WHERE email = ?`, email))
	if errors.Is(err, sql.ErrNoRows) {
		return a, billing.Errorf(billing.CodeNotFound, "No admin with e-mail %s.", email).With("param", "email")
	}
	return a, err
}

// FindAdmins lists every admin, disabled or not, by e-mail.
func (d *DB) FindAdmins(ctx context.Context) ([]billing.AdminUser, error) {
	rows, err := d.read.QueryContext(ctx, `SELECT `+adminCols+` FROM admin_users ORDER BY email`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.AdminUser
	for rows.Next() {
		a, err := scanAdmin(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// DisableAdmin disables an admin: they can't sign in, and every live
// session of theirs ends (revoked) in the same transaction as the change
// and its audit record (admin.disabled). Returns the admin as now and how
// many sessions ended. See billing.CheckStaffChange for the refusals.
func (d *DB) DisableAdmin(ctx context.Context, id string, by billing.Actor, reason string) (billing.AdminUser, int, error) {
	var ended int64
	a, err := d.changeStaff(ctx, id, by, reason, billing.StaffChange{Disable: true}, func(t *Tx, a *billing.AdminUser) (int64, error) {
		at := t.Now.UTC().Truncate(time.Microsecond)
		if _, err := t.exec(`UPDATE admin_users SET disabled_at = ? WHERE id = ?`, micros(at), id); err != nil {
			return 0, err
		}
		a.DisabledAt = &at
		res, err := t.exec(`UPDATE admin_sessions SET ended_at = ?, end_reason = ? WHERE admin_id = ? AND ended_at IS NULL`, micros(at), billing.SessionRevoked, id)
		if err != nil {
			return 0, err
		}
		ended, err = res.RowsAffected()
		return ended, err
	})
	return a, int(ended), err
}

// EnableAdmin lets a disabled admin sign in again (admin.enabled). Their
// old sessions stay ended.
func (d *DB) EnableAdmin(ctx context.Context, id string, by billing.Actor, reason string) (billing.AdminUser, error) {
	return d.changeStaff(ctx, id, by, reason, billing.StaffChange{Enable: true}, func(t *Tx, a *billing.AdminUser) (int64, error) {
		a.DisabledAt = nil
		_, err := t.exec(`UPDATE admin_users SET disabled_at = NULL WHERE id = ?`, id)
		return -1, err
	})
}

// SetAdminRole gives an admin another role (admin.role_changed); it
// applies to their next request (requireAdmin reads the role every time).
func (d *DB) SetAdminRole(ctx context.Context, id, role string, by billing.Actor, reason string) (billing.AdminUser, error) {
	return d.changeStaff(ctx, id, by, reason, billing.StaffChange{Role: role}, func(t *Tx, a *billing.AdminUser) (int64, error) {
		a.Role = role
		_, err := t.exec(`UPDATE admin_users SET role = ? WHERE id = ?`, role, id)
		return -1, err
	})
}

// changeStaff reads the staff in the write's transaction (on PostgreSQL
// locking their rows, so two instances' changes can't both pass the
// last-owner rule), checks the change, makes it and appends its audit
// record, all in one transaction. apply makes the change and returns how
// many sessions it ended (-1: none were concerned).
func (d *DB) changeStaff(ctx context.Context, id string, by billing.Actor, reason string, ch billing.StaffChange, apply func(*Tx, *billing.AdminUser) (int64, error)) (billing.AdminUser, error) {
	if by.Kind == "" {
		return billing.AdminUser{}, billing.Errorf(billing.CodeValidation, "a staff change needs an actor")
	}
	action := billing.AuditAdminRoleChanged
	switch {
	case ch.Disable:
		action = billing.AuditAdminDisabled
	case ch.Enable:
		action = billing.AuditAdminEnabled
	}
	var out billing.AdminUser
	err := d.Write(ctx, func(t *Tx) error {
		rows, err := t.query(`SELECT ` + adminCols + ` FROM admin_users ORDER BY id` + d.sql("", " FOR NO KEY UPDATE"))
		if err != nil {
			return err
		}
		var staff []billing.AdminUser
		for rows.Next() {
			a, err := scanAdmin(rows)
			if err != nil {
				rows.Close()
				return err
			}
			staff = append(staff, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		i := slices.IndexFunc(staff, func(a billing.AdminUser) bool { return a.ID == id })
		if i < 0 {
			return billing.Errorf(billing.CodeNotFound, "No admin %q.", id)
		}
		before := staff[i]
		if err := billing.CheckStaffChange(by, before, staff, ch); err != nil {
			return err
		}
		out = before
		ended, err := apply(t, &out)
		if err != nil {
			return err
		}
		return t.recordAudit(billing.AuditRecord{Actor: by, Action: action, Reason: reason, Before: staffJSON(before, -1), After: staffJSON(out, ended)})
	})
	if err != nil {
		return billing.AdminUser{}, err
	}
	return out, nil
}

// staffJSON is an admin as an audit record's before or after:
// {"admin":"adm_…","email":"…","role":"admin","status":"active"}, with
// "sessions_ended" when sessions is not negative.
func staffJSON(a billing.AdminUser, sessions int64) string {
	v := struct {
		ID       string `json:"admin"`
		Email    string `json:"email"`
		Role     string `json:"role"`
		Status   string `json:"status"`
		Sessions *int64 `json:"sessions_ended,omitempty"`
	}{ID: a.ID, Email: a.Email, Role: a.Role, Status: a.Status()}
	if sessions >= 0 {
		v.Sessions = &sessions
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// StartAdminSession stores a new admin session and returns its id.
func (d *DB) StartAdminSession(ctx context.Context, s billing.AdminSession) (string, error) {
	id := newID("", 32)[1:]
	h := hashSecret(id)
	err := d.Write(ctx, func(t *Tx) error {
		// Not for a disabled admin: a sign-in that raced their disabling
		// starts nothing (the same answer as a wrong password). On
		// PostgreSQL the row's share lock waits for a disable under way.
		var disabled sql.NullInt64
		err := t.queryRow(`SELECT disabled_at FROM admin_users WHERE id = ?`+d.sql("", " FOR SHARE"), s.AdminID).Scan(&disabled)
		if errors.Is(err, sql.ErrNoRows) || disabled.Valid {
			return errAdminCredentials
		}
		if err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO admin_sessions (id_hash, admin_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			h[:], s.AdminID, micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt)); err != nil {
			return err
		}
		return t.auditFrom(ctx, nil) // the sign-in's record (billing.WithAudit)
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
		if _, err := t.exec(`UPDATE admin_sessions SET ended_at = ?, end_reason = ? WHERE id_hash = ? AND ended_at IS NULL`, micros(at), reason, h[:]); err != nil {
			return err
		}
		return t.auditFrom(ctx, nil) // the sign-out's record (billing.WithAudit)
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
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		return t.auditFrom(ctx, func(r *billing.AuditRecord) { r.After = strconv.FormatInt(n, 10) + " sessions ended" })
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

// RecordAudit appends an admin action to the audit log, at the Tx's clock,
// alone: for actions that change nothing else (a sign-in, a portal view).
// A write and its record go together through WithAudit.
func (d *DB) RecordAudit(ctx context.Context, r billing.AuditRecord) error {
	if r.Actor.Kind == "" || r.Action == "" {
		return billing.Errorf(billing.CodeValidation, "an audit record needs an actor and an action")
	}
	return d.Write(ctx, func(t *Tx) error { return t.recordAudit(r) })
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
