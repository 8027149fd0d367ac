package handlers

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// GET /admin/admins (owners): the staff, with their role and status, and
// the changes an owner may make to the others.
func (s *Server) adminAdminsPage(c echo.Context) error {
	return s.renderStaff(c, http.StatusOK, nil)
}

// renderStaff renders the admins page, with a refused change beside its
// control when there is one.
func (s *Server) renderStaff(c echo.Context, status int, e *views.StaffError) error {
	staff, err := s.store.FindAdmins(c.Request().Context())
	if err != nil {
		return err
	}
	return render(c, status, views.AdminAdminsPage(s.adminShell(c, "Admins", "admins"),
		views.AdminStaffPage{Staff: staff, Me: currentAdmin(c).User.ID, Error: e}))
}

// POST /admin/admins/:id/role, /disable and /enable (owners) change a
// member of staff: without confirm=1 (the admins page's buttons) the
// change is checked (billing.CheckStaffChange) and a confirmation asks for
// the reason; with it and a reason, the store makes the change with its
// audit record (disabling ends every session of theirs) and the admins
// page says so. A refusal (the last active owner, oneself, a change made
// meanwhile) is shown on the admins page beside the control it came from.
func (s *Server) adminStaffChange(c echo.Context) error {
	ctx := c.Request().Context()
	target, err := s.store.FindAdmin(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	action := c.Path()[strings.LastIndexByte(c.Path(), '/')+1:]
	ch, field := billing.StaffChange{Disable: action == "disable", Enable: action == "enable"}, "status"
	if action == "role" {
		ch.Role, field = c.FormValue("role"), "role"
	}
	by := billing.AdminActor(currentAdmin(c).User.ID)
	refused := func(err error) error {
		switch billing.ErrorCode(err) {
		case billing.CodeConflict, billing.CodeForbidden, billing.CodeValidation:
			return s.renderStaff(c, http.StatusUnprocessableEntity, &views.StaffError{AdminID: target.ID, Field: field,
				Message: billing.ErrorMessage(err) + " Nothing was changed.", Role: ch.Role})
		}
		return err
	}
	staff, err := s.store.FindAdmins(ctx)
	if err != nil {
		return err
	}
	if err := billing.CheckStaffChange(by, target, staff, ch); err != nil {
		return refused(err)
	}
	confirm := views.AdminStaffConfirm{Target: target, Action: action, Role: ch.Role, Reason: strings.TrimSpace(c.FormValue("reason"))}
	if c.FormValue("confirm") != "1" {
		return render(c, http.StatusOK, views.AdminStaffConfirmPage(s.adminShell(c, "Confirm", "admins"), confirm))
	}
	switch {
	case confirm.Reason == "":
		confirm.Errors = map[string]string{"reason": "Say why: the reason is kept in the audit log."}
	case len(confirm.Reason) > 500:
		confirm.Errors = map[string]string{"reason": "Keep the reason under 500 characters."}
	}
	if confirm.Errors != nil {
		return render(c, http.StatusUnprocessableEntity, views.AdminStaffConfirmPage(s.adminShell(c, "Confirm", "admins"), confirm))
	}
	var msg string
	switch action {
	case "disable":
		a, n, err := s.store.DisableAdmin(ctx, target.ID, by, confirm.Reason)
		if err != nil {
			return refused(err)
		}
		msg = a.Email + " is disabled: they can't sign in (" + plural(n, "session") + " ended)."
	case "enable":
		a, err := s.store.EnableAdmin(ctx, target.ID, by, confirm.Reason)
		if err != nil {
			return refused(err)
		}
		msg = a.Email + " is active again and can sign in."
	default:
		a, err := s.store.SetAdminRole(ctx, target.ID, ch.Role, by, confirm.Reason)
		if err != nil {
			return refused(err)
		}
		msg = a.Email + " is now " + a.Role + " (was " + target.Role + ")."
	}
	return adminFlashTo(c, "success", msg, "/admin/admins")
}
