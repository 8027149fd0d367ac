package billing

import "context"

// Managing the staff: an owner (in the console) or the operator (the CLI)
// disables a member of staff, enables them again, or changes their role.
// A disabled admin can't sign in and has no live session; they stay in
// admin_users, so the audit log still names them.

// Audit actions of the staff changes. Before and After are small JSON
// objects: the admin's id, e-mail, role and status (StaffState).
const (
	AuditAdminDisabled    = "admin.disabled"
	AuditAdminEnabled     = "admin.enabled"
	AuditAdminRoleChanged = "admin.role_changed"
)

// Active reports whether the admin may sign in (not disabled).
func (a AdminUser) Active() bool { return a.DisabledAt == nil }

// Status is "active" or "disabled".
func (a AdminUser) Status() string {
	if a.Active() {
		return "active"
	}
	return "disabled"
}

// StaffChange is one change to a member of staff: exactly one of Disable,
// Enable or Role.
type StaffChange struct {
	Disable bool
	Enable  bool
	Role    string // the new role
}

// CheckStaffChange is the rule every staff change passes, in the store's
// transaction (over the staff it read there) and in the console before it
// asks for a reason: by (the actor) may not disable themselves or change
// their own role; the last active owner may not be disabled or demoted, or
// nobody could manage the staff any more; and a change must change
// something. Errors: validation_failed (param role), forbidden (oneself),
// conflict (the last owner, or nothing to change).
func CheckStaffChange(by Actor, target AdminUser, staff []AdminUser, ch StaffChange) error {
	param := "status"
	switch {
	case ch.Disable:
		if !target.Active() {
			return Errorf(CodeConflict, "%s is already disabled.", target.Email).With("param", param)
		}
	case ch.Enable:
		if target.Active() {
			return Errorf(CodeConflict, "%s is already active.", target.Email).With("param", param)
		}
		return nil
	default:
		param = "role"
		if !ValidRole(ch.Role) {
			return Errorf(CodeValidation, "Pick a role: owner, admin or support.").With("param", param)
		}
		if target.Role == ch.Role {
			return Errorf(CodeConflict, "%s is already %s %s.", target.Email, article(ch.Role), ch.Role).With("param", param)
		}
	}
	// Disabling, or a role other than owner: the last active owner stays.
	if target.Role == RoleOwner && target.Active() {
		owners := 0
		for _, a := range staff {
			if a.Role == RoleOwner && a.Active() {
				owners++
			}
		}
		if owners <= 1 {
			what := "demoted"
			if ch.Disable {
				what = "disabled"
			}
			return Errorf(CodeConflict, "%s is the last active owner and can't be %s: make someone else an owner first.", target.Email, what).With("param", param)
		}
	}
	if by.Kind == ActorAdmin && by.ID == target.ID {
		if ch.Disable {
			return Errorf(CodeForbidden, "You can't disable your own account: ask another owner.").With("param", param)
		}
		return Errorf(CodeForbidden, "You can't change your own role: ask another owner.").With("param", param)
	}
	return nil
}

func article(role string) string {
	if role == RoleOwner || role == RoleAdmin {
		return "an"
	}
	return "a"
}

// AdminStaff is the store's side of managing the staff. Each change, its
// audit record (actor by, the reason, the admin before and after) and, for
// a disable, the end of every session of the admin (end_reason revoked)
// commit in one transaction, after CheckStaffChange. not_found for an
// unknown admin.
type AdminStaff interface {
	FindAdminByEmail(ctx context.Context, email string) (AdminUser, error)
	// DisableAdmin returns the admin as now and how many sessions ended.
	DisableAdmin(ctx context.Context, id string, by Actor, reason string) (AdminUser, int, error)
	EnableAdmin(ctx context.Context, id string, by Actor, reason string) (AdminUser, error)
	SetAdminRole(ctx context.Context, id, role string, by Actor, reason string) (AdminUser, error)
}
