package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
)

// staffRow is the admins page's row of email.
func staffRow(t *testing.T, r response, email string) string {
	t.Helper()
	return strings.Join(strings.Fields(doc(t, r).Find(`[data-testid="admin-row"][data-email="`+email+`"]`).Text()), " ")
}

// An owner disables an admin from the admins page, through a confirmation
// that asks why: every session of theirs stops working at once, their
// right password gets a wrong password's answer, the page shows them
// disabled, and enabling them lets them back in.
func TestAdminStaffDisableAndEnable(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	laptop := a.signIn(t, "admin@staff.test")
	laptop.get("/admin/customers").want(t, http.StatusOK)
	owner := a.signIn(t, "owner@staff.test")

	page := owner.get("/admin/admins").want(t, http.StatusOK)
	d := doc(t, page)
	row := d.Find(`[data-testid="admin-row"][data-email="admin@staff.test"]`)
	if l, _ := row.Find(`[data-testid="disable"]`).Attr("aria-label"); l != "Disable admin@staff.test" {
		t.Errorf("disable button's label %q", l)
	}
	if l, _ := row.Find(`[data-testid="change-role"]`).Attr("aria-label"); l != "Change role of admin@staff.test" {
		t.Errorf("change role button's label %q", l)
	}
	if id, _ := row.Find(`select[name="role"]`).Attr("id"); id == "" || row.Find(`label[for="`+id+`"]`).Length() != 1 {
		t.Errorf("the role select %q has no label", id)
	}
	if own := d.Find(`[data-testid="admin-row"][data-email="owner@staff.test"]`); own.Find(`[data-testid="disable"], [data-testid="role-select"]`).Length() != 0 {
		t.Error("the owner's own row offers to disable them or change their role")
	}

	path := "/admin/admins/" + a.Admin.ID + "/disable"
	r := owner.adminPost("/admin/admins", path, nil).want(t, http.StatusOK)
	if testID(t, r, "confirm") == "" || doc(t, r).Find(`[data-testid="confirm-reason"]`).Length() != 1 {
		t.Fatalf("no confirmation with a reason field: %.500s", r.Raw)
	}
	laptop.get("/admin/customers").want(t, http.StatusOK) // nothing changed yet
	r = owner.adminPost("/admin/admins", path, url.Values{"confirm": {"1"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(testID(t, r, "error-reason"), "Say why") {
		t.Fatalf("confirm without a reason: %d, error %q", r.Status, testID(t, r, "error-reason"))
	}
	if got, _ := doc(t, r).Find(`#staff-reason`).Attr("aria-describedby"); got != "staff-reason-error" {
		t.Errorf("the reason's error is not tied to its field: %q", got)
	}
	r = owner.adminPost("/admin/admins", path, url.Values{"confirm": {"1"}, "reason": {"left the company"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/admins" {
		t.Fatalf("disable: %d to %q; %.300s", r.Status, r.Header.Get("Location"), r.Raw)
	}
	page = owner.get("/admin/admins").want(t, http.StatusOK)
	if msg := testID(t, page, "flash"); !strings.Contains(msg, "admin@staff.test is disabled") || !strings.Contains(msg, "1 session ended") {
		t.Errorf("flash %q", msg)
	}
	if row := staffRow(t, page, "admin@staff.test"); !strings.Contains(row, "Disabled") || !strings.Contains(row, "Enable") {
		t.Errorf("disabled row reads %q", row)
	}
	// Their live session stops working at once.
	if r := laptop.get("/admin/customers"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/admin/sign-in") {
		t.Fatalf("a disabled admin's session: %d to %q, want the sign-in page", r.Status, r.Header.Get("Location"))
	}
	// Their right password gets the wrong password's answer.
	v := newPortalVisitor(t, a.testAPI)
	right := v.adminSignIn("admin@staff.test", adminTestPassword)
	wrong := newPortalVisitor(t, a.testAPI).adminSignIn("admin@staff.test", "wrong password here")
	if right.Status != http.StatusUnauthorized || testID(t, right, "sign-in-error") != testID(t, wrong, "sign-in-error") {
		t.Fatalf("a disabled admin signs in: %d %q; a wrong password: %d %q", right.Status, testID(t, right, "sign-in-error"), wrong.Status, testID(t, wrong, "sign-in-error"))
	}
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditAdminDisabled})
	if len(recs) != 1 || recs[0].Actor != billing.AdminActor(a.Owner.ID) || recs[0].Reason != "left the company" || !strings.Contains(recs[0].After, `"status":"disabled"`) {
		t.Fatalf("audit: %+v", recs)
	}

	// Enabled again, they sign in.
	path = "/admin/admins/" + a.Admin.ID + "/enable"
	owner.adminPost("/admin/admins", path, nil).want(t, http.StatusOK)
	r = owner.adminPost("/admin/admins", path, url.Values{"confirm": {"1"}, "reason": {"rehired"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("enable: %d %.300s", r.Status, r.Raw)
	}
	if msg := testID(t, owner.get("/admin/admins"), "flash"); !strings.Contains(msg, "active again") {
		t.Errorf("flash %q", msg)
	}
	a.signIn(t, "admin@staff.test")
}

// An owner changes an admin's role through a confirmation; it applies to
// the admin's next request and is in the audit log.
func TestAdminStaffRoleChange(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	cus := a.namedCustomer(t, "role", "Role Co")
	staff := a.signIn(t, "admin@staff.test")
	owner := a.signIn(t, "owner@staff.test")
	path := "/admin/admins/" + a.Admin.ID + "/role"
	r := owner.adminPost("/admin/admins", path, url.Values{"role": {"support"}}).want(t, http.StatusOK)
	if !strings.Contains(testID(t, r, "confirm"), "Make admin@staff.test support (now admin)") {
		t.Fatalf("confirmation reads %q", testID(t, r, "confirm"))
	}
	r = owner.adminPost("/admin/admins", path, url.Values{"role": {"support"}, "confirm": {"1"}, "reason": {"moved to support"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("role change: %d %.300s", r.Status, r.Raw)
	}
	if msg := testID(t, owner.get("/admin/admins"), "flash"); !strings.Contains(msg, "admin@staff.test is now support (was admin)") {
		t.Errorf("flash %q", msg)
	}
	if r := staff.adminPost("/admin/customers", "/admin/customers/"+cus+"/limits", url.Values{"reason": {"x"}}); r.Status != http.StatusForbidden {
		t.Fatalf("a write by the demoted admin: %d, want 403", r.Status)
	}
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditAdminRoleChanged})
	if len(recs) != 1 || !strings.Contains(recs[0].Before, `"role":"admin"`) || !strings.Contains(recs[0].After, `"role":"support"`) || recs[0].Reason != "moved to support" {
		t.Fatalf("audit: %+v", recs)
	}
	// A role that is not one is refused beside the select.
	r = owner.adminPost("/admin/admins", path, url.Values{"role": {"root"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(staffRow(t, r, "admin@staff.test"), "Pick a role") {
		t.Fatalf("role root: %d, row %q", r.Status, staffRow(t, r, "admin@staff.test"))
	}
}

// The last active owner can't be demoted or disabled, nor can an owner
// change their own role: the admins page says so in that admin's row,
// beside the control, and nothing changes.
func TestAdminStaffGuardsShowInline(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	owner := a.signIn(t, "owner@staff.test")
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/admin/admins/" + a.Owner.ID + "/role", url.Values{"role": {"admin"}}},
		{"/admin/admins/" + a.Owner.ID + "/role", url.Values{"role": {"admin"}, "confirm": {"1"}, "reason": {"x"}}},
		{"/admin/admins/" + a.Owner.ID + "/disable", url.Values{"confirm": {"1"}, "reason": {"x"}}},
	} {
		r := owner.adminPost("/admin/admins", c.path, c.form)
		if r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("%s %v: %d, want 422; %.300s", c.path, c.form, r.Status, r.Raw)
		}
		e := doc(t, r).Find(`[data-testid="admin-row"][data-email="owner@staff.test"] [data-testid="staff-error"]`)
		if !strings.Contains(e.Text(), "last active owner") || !strings.Contains(e.Text(), "Nothing was changed") {
			t.Errorf("%s: the owner's row's error reads %q", c.path, e.Text())
		}
	}
	if got, _ := a.DB.FindAdmin(context.Background(), a.Owner.ID); got.Role != billing.RoleOwner || !got.Active() {
		t.Fatalf("the last owner after refusals: %+v", got)
	}
	// With a second owner, one's own role is still not one's to change.
	if _, err := a.DB.SetAdminRole(context.Background(), a.Admin.ID, billing.RoleOwner, billing.SystemActor("cli"), ""); err != nil {
		t.Fatal(err)
	}
	r := owner.adminPost("/admin/admins", "/admin/admins/"+a.Owner.ID+"/role", url.Values{"role": {"support"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(staffRow(t, r, "owner@staff.test"), "can't change your own role") {
		t.Fatalf("own role: %d, row %q", r.Status, staffRow(t, r, "owner@staff.test"))
	}
	// An inline error on another row sits beside its select.
	r = owner.adminPost("/admin/admins", "/admin/admins/"+a.Support.ID+"/role", url.Values{"role": {"support"}})
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("the same role: %d", r.Status)
	}
	sel := doc(t, r).Find(`[data-testid="admin-row"][data-email="support@staff.test"] select[name="role"]`)
	if inv, _ := sel.Attr("aria-invalid"); inv != "true" {
		t.Errorf("the select is not marked invalid")
	}
	if n := len(a.audit(t, billing.AuditFilter{Action: billing.AuditAdminRoleChanged})); n != 1 {
		t.Fatalf("%d role changes recorded, want the CLI's 1", n)
	}
}

// aliveSessions pretends every admin session is still alive, as a session
// that escaped its end might be.
type aliveSessions struct{ *db.DB }

func (s aliveSessions) FindAdminSession(ctx context.Context, id string) (billing.AdminSession, error) {
	row, err := s.DB.FindAdminSession(ctx, id)
	row.EndedAt, row.EndReason = nil, ""
	return row, err
}

// A disabled admin's session is refused even if it were somehow still
// alive: the admin is read on every request.
func TestAdminStaffDisabledSessionRefusedEvenIfAlive(t *testing.T) {
	t.Parallel()
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")}
	a := &adminAPI{Keys: keys, testAPI: newTestAPIWith(t, apiOptions{
		config: func(cfg *handlers.Config) { cfg.Portal.SessionKeys = keys },
		store:  func(d *db.DB) handlers.Store { return aliveSessions{d} },
	})}
	ctx := context.Background()
	var err error
	if a.Owner, err = a.DB.CreateAdmin(ctx, "owner@staff.test", adminTestPassword, billing.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if a.Admin, err = a.DB.CreateAdmin(ctx, "admin@staff.test", adminTestPassword, billing.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	v := a.signIn(t, "admin@staff.test")
	v.get("/admin/customers").want(t, http.StatusOK)
	if _, _, err := a.DB.DisableAdmin(ctx, a.Admin.ID, billing.SystemActor("cli"), "left"); err != nil {
		t.Fatal(err)
	}
	if r := v.get("/admin/customers"); r.Status != http.StatusSeeOther {
		t.Fatalf("a disabled admin's (alive) session: %d, want 303 to the sign-in page", r.Status)
	}
}
