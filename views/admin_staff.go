package views

import "github.com/tally-billing/tally/billing"

// AdminStaffPage is /admin/admins (owners): the staff, each with their
// role, status and the changes an owner may make.
type AdminStaffPage struct {
	Staff []billing.AdminUser
	Me    string // the signed-in owner's id: their own row offers no change
	// Error is a refused change, shown in its admin's row beside the
	// control it came from.
	Error *StaffError
}

// StaffError is a staff change refused, beside its control.
type StaffError struct {
	AdminID string
	Field   string // role or status
	Message string
	Role    string // the role that was picked (kept in the select)
}

// errFor is the row's error for field, or "".
func (p AdminStaffPage) errFor(id, field string) string {
	if p.Error != nil && p.Error.AdminID == id && p.Error.Field == field {
		return p.Error.Message
	}
	return ""
}

// roleFor is the role the row's select shows: the one just picked when the
// change was refused, else the admin's own.
func (p AdminStaffPage) roleFor(a billing.AdminUser) string {
	if p.Error != nil && p.Error.AdminID == a.ID && p.Error.Role != "" {
		return p.Error.Role
	}
	return a.Role
}

// AdminStaffConfirm is the step before a staff change: what it does, and
// the reason for the audit log.
type AdminStaffConfirm struct {
	Target billing.AdminUser
	Action string // role, disable, enable
	Role   string // the new role (Action role)
	Reason string
	Errors map[string]string // reason
}

// staffRoleMay says what a role may do, for the confirmation.
func staffRoleMay(role string) string {
	switch role {
	case billing.RoleOwner:
		return "Owners may do everything, including finance and managing the staff on this page."
	case billing.RoleAdmin:
		return "Admins make billing changes (grants, deductions, limits, refunds, freezes, price books) but can't see finance or manage the staff."
	}
	return "Support reads everything and changes nothing (they may open a customer's portal read-only)."
}

// staffButton is the confirmation's button.
func (c AdminStaffConfirm) button() string {
	switch c.Action {
	case "disable":
		return "Disable " + c.Target.Email
	case "enable":
		return "Enable " + c.Target.Email
	}
	return "Make " + c.Target.Email + " " + c.Role
}
