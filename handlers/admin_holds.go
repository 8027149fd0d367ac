package handlers

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// adminHoldStore is what the customer page's holds need (*db.DB).
type adminHoldStore interface {
	FindOpenHolds(ctx context.Context, customerID string) ([]billing.OpenHold, error)
	ReleaseCustomerHold(ctx context.Context, customerID, holdID string, actor billing.Actor) (billing.Hold, error)
}

// adminHoldsAndPolicy fills the customer page's open holds and the policy
// lines it shows (the default low-balance line, a grant's default expiry).
func (s *Server) adminHoldsAndPolicy(ctx context.Context, d *views.AdminCustomerPage) error {
	pol := s.policy(ctx)
	d.LowBalancePercent, d.PromoExpiry = pol.LowBalancePercent, pol.PromoExpiry
	hs, ok := s.store.(adminHoldStore)
	if !ok {
		return nil
	}
	holds, err := hs.FindOpenHolds(ctx, d.Customer.ID)
	if err != nil {
		return err
	}
	for _, h := range holds {
		d.Holds = append(d.Holds, views.AdminHold{ID: h.ID, Credits: h.Credits, CreatedAt: h.CreatedAt, ExpiresAt: h.ExpiresAt,
			KeyID: h.KeyID, KeyName: h.KeyName})
	}
	return nil
}

// POST /admin/customers/:id/holds/:hold/release: after a confirmation, the
// hold's credits are available again, through the kernel's hold-close plan
// with the admin as the actor (the ledger's hold_release entry), and the
// audit record in the same transaction.
func (s *Server) adminReleaseHold(c echo.Context) error {
	ctx := c.Request().Context()
	cu, err := s.ledger.FindCustomer(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	hs, ok := s.store.(adminHoldStore)
	if !ok {
		return billing.Errorf(billing.CodeNotFound, "Holds can't be released here.")
	}
	holdID := c.Param("hold")
	page := "/admin/customers/" + cu.ID
	// Like every other action, a release needs a reason, kept in the audit
	// log: asked on the confirmation, which comes back with an error
	// beside the field when it is missing.
	f := s.readAdminForm(c, "release")
	confirmed := c.FormValue("confirm") == "1"
	var reason string
	if confirmed {
		reason = f.reason()
	}
	if !confirmed || !f.Valid() {
		holds, err := hs.FindOpenHolds(ctx, cu.ID)
		if err != nil {
			return err
		}
		for _, h := range holds {
			if h.ID == holdID {
				fm := s.publicShell(c, "").Fmt
				status := http.StatusOK
				if !f.Valid() {
					status = http.StatusUnprocessableEntity
				}
				return render(c, status, views.AdminConfirmActionView(s.adminShell(c, "Release the hold", "customers"), views.AdminConfirmAction{
					Heading: "Release " + fm.Credits(h.Credits) + " held credits?",
					Message: "The hold " + h.ID + " of " + adminCustomerTitle(cu) + " ends without a charge: its credits are available to them again at once. A later capture of this hold by the app will be refused.",
					Action:  page + "/holds/" + h.ID + "/release", Button: "Release hold", Cancel: page, Danger: true,
					AskReason: true, Reason: f.Value("reason"), ReasonError: f.Errors["reason"]}))
			}
		}
		return adminFlashTo(c, "info", "That hold is no longer open: it was captured, released or has expired.", page)
	}
	actor := billing.AdminActor(currentAdmin(c).User.ID)
	h, err := hs.ReleaseCustomerHold(s.audited(c, billing.AuditHoldReleased, cu.ID, reason, "", ""), cu.ID, holdID, actor)
	if err != nil {
		switch billing.ErrorCode(err) {
		case billing.CodeHoldNotFound, billing.CodeHoldNotActive:
			return adminFlashTo(c, "error", billing.ErrorMessage(err), page)
		}
		return err
	}
	fm := s.publicShell(c, "").Fmt
	if h.Replayed {
		adminFlash(c, "info", "Hold "+h.ID+" was "+h.Status+" already: nothing changed.")
	} else {
		adminFlash(c, "success", "Released "+fm.Credits(h.Credits)+" held credits ("+h.ID+"): they are available to "+adminCustomerTitle(cu)+" again.")
	}
	return c.Redirect(http.StatusSeeOther, page)
}
