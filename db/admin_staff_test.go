package db_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// staffFixture is a store with two owners, an admin and a support.
func staffFixture(t *testing.T) (*db.DB, map[string]billing.AdminUser) {
	t.Helper()
	d := mustOpenDB(t, nil)
	staff := map[string]billing.AdminUser{}
	for _, x := range []struct{ name, role string }{{"owner1", billing.RoleOwner}, {"owner2", billing.RoleOwner}, {"admin", billing.RoleAdmin}, {"support", billing.RoleSupport}} {
		a, err := d.CreateAdmin(context.Background(), x.name+"@example.com", "correct horse battery", x.role)
		if err != nil {
			t.Fatal(err)
		}
		staff[x.name] = a
	}
	return d, staff
}

func startSession(t *testing.T, d *db.DB, adminID string) (string, error) {
	t.Helper()
	now := time.Now()
	return d.StartAdminSession(context.Background(), billing.AdminSession{AdminID: adminID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)})
}

func staffAudit(t *testing.T, d *db.DB, action string) []billing.AuditRecord {
	t.Helper()
	recs, _, err := d.FindAudit(context.Background(), billing.AuditFilter{Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Disabling ends every session of the admin (revoked) with the change and
// its audit record; a disabled admin can't sign in (the wrong password's
// answer) nor start a session; enabling lets them sign in again.
func TestDisableAdminEndsSessionsAndSignIn(t *testing.T) {
	ctx := context.Background()
	d, staff := staffFixture(t)
	owner, target := staff["owner1"], staff["admin"]
	var sessions []string
	for range 2 {
		id, err := startSession(t, d, target.ID)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, id)
	}
	other, err := startSession(t, d, staff["support"].ID)
	if err != nil {
		t.Fatal(err)
	}
	a, n, err := d.DisableAdmin(ctx, target.ID, billing.AdminActor(owner.ID), "left the company")
	if err != nil || n != 2 || a.Active() || a.DisabledAt == nil {
		t.Fatalf("disable = %+v, %d sessions, %v; want disabled, 2 sessions", a, n, err)
	}
	for _, id := range sessions {
		s, err := d.FindAdminSession(ctx, id)
		if err != nil || s.EndedAt == nil || s.EndReason != billing.SessionRevoked {
			t.Errorf("session after disable = %+v, %v; want ended, revoked", s, err)
		}
	}
	if s, _ := d.FindAdminSession(ctx, other); s.EndedAt != nil {
		t.Errorf("another admin's session ended: %+v", s)
	}
	if got, err := d.FindAdmin(ctx, target.ID); err != nil || got.Active() || got.Status() != "disabled" {
		t.Fatalf("FindAdmin after disable = %+v, %v", got, err)
	}
	_, errRight := d.AuthenticateAdmin(ctx, target.Email, "correct horse battery")
	_, errWrong := d.AuthenticateAdmin(ctx, target.Email, "wrong password here")
	if billing.ErrorCode(errRight) != billing.CodeUnauthorized || billing.ErrorMessage(errRight) != billing.ErrorMessage(errWrong) {
		t.Fatalf("a disabled admin's right password: %v; a wrong one: %v (want the same refusal)", errRight, errWrong)
	}
	if _, err := startSession(t, d, target.ID); billing.ErrorCode(err) != billing.CodeUnauthorized {
		t.Fatalf("a session for a disabled admin: %v, want unauthorized", err)
	}
	recs := staffAudit(t, d, billing.AuditAdminDisabled)
	if len(recs) != 1 || recs[0].Actor != billing.AdminActor(owner.ID) || recs[0].Reason != "left the company" {
		t.Fatalf("audit = %+v", recs)
	}
	var before, after map[string]any
	if json.Unmarshal([]byte(recs[0].Before), &before) != nil || json.Unmarshal([]byte(recs[0].After), &after) != nil ||
		before["status"] != "active" || after["status"] != "disabled" || after["email"] != target.Email || after["sessions_ended"] != float64(2) {
		t.Fatalf("audit before %q after %q", recs[0].Before, recs[0].After)
	}
	if _, _, err := d.DisableAdmin(ctx, target.ID, billing.AdminActor(owner.ID), "again"); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("disable twice: %v, want conflict", err)
	}

	a, err = d.EnableAdmin(ctx, target.ID, billing.SystemActor("cli"), "came back")
	if err != nil || !a.Active() {
		t.Fatalf("enable = %+v, %v", a, err)
	}
	if _, err := d.AuthenticateAdmin(ctx, target.Email, "correct horse battery"); err != nil {
		t.Fatalf("sign-in after enable: %v", err)
	}
	if s, _ := d.FindAdminSession(ctx, sessions[0]); s.EndedAt == nil {
		t.Error("enabling revived an ended session")
	}
	if _, err := d.EnableAdmin(ctx, target.ID, billing.SystemActor("cli"), ""); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("enable an active admin: %v, want conflict", err)
	}
	if recs := staffAudit(t, d, billing.AuditAdminEnabled); len(recs) != 1 || recs[0].Actor != billing.SystemActor("cli") ||
		!strings.Contains(recs[0].Before, `"status":"disabled"`) || !strings.Contains(recs[0].After, `"status":"active"`) {
		t.Fatalf("enable audit = %+v", recs)
	}
	list, err := d.FindAdmins(ctx)
	if err != nil || len(list) != 4 {
		t.Fatalf("FindAdmins = %d, %v", len(list), err)
	}
}

// The last active owner can't be disabled or demoted; nobody disables
// themselves or changes their own role; a role change is audited with the
// roles before and after; a refusal changes nothing and records nothing.
func TestStaffChangeGuards(t *testing.T) {
	ctx := context.Background()
	d, staff := staffFixture(t)
	o1, o2, adm := staff["owner1"], staff["owner2"], staff["admin"]
	cli := billing.SystemActor("cli")

	if _, _, err := d.DisableAdmin(ctx, o1.ID, billing.AdminActor(o1.ID), "me"); billing.ErrorCode(err) != billing.CodeForbidden {
		t.Fatalf("disable oneself: %v, want forbidden", err)
	}
	if _, err := d.SetAdminRole(ctx, o1.ID, billing.RoleAdmin, billing.AdminActor(o1.ID), "me"); billing.ErrorCode(err) != billing.CodeForbidden {
		t.Fatalf("change one's own role: %v, want forbidden", err)
	}
	if _, err := d.SetAdminRole(ctx, adm.ID, "root", cli, ""); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("unknown role: %v, want validation_failed", err)
	}
	if _, err := d.SetAdminRole(ctx, adm.ID, billing.RoleAdmin, cli, ""); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("the same role: %v, want conflict", err)
	}
	if _, err := d.SetAdminRole(ctx, "adm_nobody", billing.RoleAdmin, cli, ""); billing.ErrorCode(err) != billing.CodeNotFound {
		t.Fatalf("unknown admin: %v, want not_found", err)
	}

	// Two owners: one may be demoted, then the other is the last.
	a, err := d.SetAdminRole(ctx, o2.ID, billing.RoleSupport, billing.AdminActor(o1.ID), "moved to support")
	if err != nil || a.Role != billing.RoleSupport {
		t.Fatalf("demote the second owner = %+v, %v", a, err)
	}
	if got, _ := d.FindAdmin(ctx, o2.ID); got.Role != billing.RoleSupport {
		t.Fatalf("role after change = %q", got.Role)
	}
	recs := staffAudit(t, d, billing.AuditAdminRoleChanged)
	if len(recs) != 1 || recs[0].Actor != billing.AdminActor(o1.ID) || !strings.Contains(recs[0].Before, `"role":"owner"`) || !strings.Contains(recs[0].After, `"role":"support"`) {
		t.Fatalf("role audit = %+v", recs)
	}
	for name, err := range map[string]error{
		"demote": func() error { _, err := d.SetAdminRole(ctx, o1.ID, billing.RoleAdmin, cli, ""); return err }(),
		"disable": func() error {
			_, _, err := d.DisableAdmin(ctx, o1.ID, cli, "")
			return err
		}(),
	} {
		if billing.ErrorCode(err) != billing.CodeConflict || !strings.Contains(billing.ErrorMessage(err), "last active owner") {
			t.Errorf("%s the last active owner: %v, want conflict naming the last owner", name, err)
		}
	}
	if got, _ := d.FindAdmin(ctx, o1.ID); got.Role != billing.RoleOwner || !got.Active() {
		t.Fatalf("the last owner after refusals = %+v", got)
	}

	// A disabled owner does not count: with o2 an owner again but
	// disabled, o1 is still the last active owner.
	if _, err := d.SetAdminRole(ctx, o2.ID, billing.RoleOwner, cli, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.DisableAdmin(ctx, o2.ID, cli, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetAdminRole(ctx, o1.ID, billing.RoleAdmin, cli, ""); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("demote the last active owner beside a disabled one: %v, want conflict", err)
	}
	// A disabled owner may be demoted (they are not the last active one).
	if _, err := d.SetAdminRole(ctx, o2.ID, billing.RoleAdmin, cli, ""); err != nil {
		t.Fatalf("demote a disabled owner: %v", err)
	}
	if n := len(staffAudit(t, d, billing.AuditAdminDisabled)); n != 1 {
		t.Fatalf("%d admin.disabled records, want 1 (refusals record nothing)", n)
	}
	if n := len(staffAudit(t, d, billing.AuditAdminRoleChanged)); n != 3 {
		t.Fatalf("%d admin.role_changed records, want 3", n)
	}
}

// Two instances (or the server and the CLI) demoting and disabling the two
// owners at once: the staff are read under lock in each change's
// transaction, so exactly one of each pair gets through and one active
// owner always remains.
func TestStaffChangeLastOwnerAcrossInstances(t *testing.T) {
	ctx := context.Background()
	for round := range 10 {
		d, staff := staffFixture(t)
		o := openInstance(t, d, nil)
		o1, o2 := staff["owner1"], staff["owner2"]
		errs := make(chan error, 2)
		go func() { _, _, err := d.DisableAdmin(ctx, o1.ID, billing.SystemActor("cli"), ""); errs <- err }()
		go func() {
			_, err := o.SetAdminRole(ctx, o2.ID, billing.RoleAdmin, billing.SystemActor("cli"), "")
			errs <- err
		}()
		ok, refused := 0, 0
		for range 2 {
			switch err := <-errs; {
			case err == nil:
				ok++
			case billing.ErrorCode(err) == billing.CodeConflict && strings.Contains(billing.ErrorMessage(err), "last active owner"):
				refused++
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		list, err := d.FindAdmins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		owners := 0
		for _, a := range list {
			if a.Role == billing.RoleOwner && a.Active() {
				owners++
			}
		}
		if ok != 1 || refused != 1 || owners != 1 {
			t.Fatalf("round %d: %d changes made, %d refused, %d active owners left; want 1, 1, 1", round, ok, refused, owners)
		}
	}
}
