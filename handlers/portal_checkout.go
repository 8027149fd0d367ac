package handlers

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// POST /portal/top-ups/checkout pays for credits with a new card, in one
// step: the provider's page (Stripe Checkout in payment mode, or the
// sandbox's card form carrying the amount) takes the card and pays; the
// card is saved and becomes the default. It is how a customer without a
// card buys, and how one whose card was declined pays with another
// without looking for the purchase again. The form carries what is bought
// (pack, or the amount typed, or amount_minor from a declined purchase)
// and a click key.
func (s *Server) startCheckout(c echo.Context) error {
	ctx := c.Request().Context()
	ps := currentCustomer(c)
	req := billing.TopUpRequest{PackID: c.FormValue("pack"), Key: c.FormValue("key"), Origin: billing.OriginPortal}
	if req.PackID == "" {
		if raw := c.FormValue("amount_minor"); raw != "" {
			amt, err := strconv.ParseInt(raw, 10, 64) // written by the portal, not typed
			if err != nil || amt <= 0 {
				return billing.Errorf(billing.CodeValidation, "Choose a pack or an amount.")
			}
			if err := s.checkCustomAmount(c, amt); err != nil {
				return err
			}
			req.Amount = amt
		} else {
			amt, answered, err := s.readCustomAmount(c)
			if err != nil || answered {
				return err
			}
			req.Amount = amt
		}
	}
	if !strings.HasPrefix(req.Key, "click_") {
		return billing.Errorf(billing.CodeInvalidRequest, "This purchase form has expired; start again.")
	}
	req.Key = ps.CustomerID + ":" + req.Key
	cancel := "/portal/billing"
	if s.inTopUpFlow(c) {
		cancel = "/portal/top-up"
	}
	tu, setup, err := s.cfg.Payments.Service.StartTopUpCheckout(ctx, ps.CustomerID, req, s.absURL(c, "/portal/top-ups/checkout"), s.absURL(c, cancel))
	if billing.ErrorCode(err) == billing.CodeConflict && tu.ID != "" {
		return redirect(c, "/portal/top-ups/"+tu.ID) // the same click, already paid
	}
	if err != nil {
		return err
	}
	return redirect(c, setup.URL)
}

// GET /portal/top-ups/checkout?session_id=...: back from the checkout page.
// The card is saved as the default and the payment recorded; the customer
// goes on to the purchase's page (which sends them back to the product in
// a top-up flow), or to the bank's page first when it asks.
func (s *Server) checkoutReturn(c echo.Context) error {
	tu, card, err := s.cfg.Payments.Service.CompleteTopUpCheckout(c.Request().Context(), currentCustomer(c).CustomerID, c.QueryParam("session_id"))
	if err != nil {
		flash(c, "error", "The payment was not completed: "+billing.ErrorMessage(err))
		return c.Redirect(http.StatusSeeOther, "/portal/billing")
	}
	if tu.Status == billing.TopUpRequiresAction && tu.NextActionURL != "" {
		return c.Redirect(http.StatusSeeOther, tu.NextActionURL)
	}
	if tu.Status == billing.TopUpSucceeded && !s.inTopUpFlow(c) {
		f := s.publicShell(c, "").Fmt
		flash(c, "success", "Added "+f.Credits(tu.Credits)+" credits. "+f.Money(tu.Price)+" was charged to "+views.CardLabel(card)+", now your default card.")
		return c.Redirect(http.StatusSeeOther, "/portal")
	}
	return c.Redirect(http.StatusSeeOther, "/portal/top-ups/"+tu.ID)
}
