package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// PaymentService is what the HTTP layer needs from the payment service
// (*payments.Service).
type PaymentService interface {
	StartCardSetup(ctx context.Context, customerID, successURL, cancelURL string) (billing.CardSetup, error)
	CompleteCardSetup(ctx context.Context, customerID, setupID string) (billing.Card, error)
	SetDefaultCard(ctx context.Context, customerID, cardID string) (billing.Card, error)
	RemoveCard(ctx context.Context, customerID, cardID string) (billing.Card, error)
	DefaultCard(ctx context.Context, customerID string) (billing.Card, bool, error)
	Quote(ctx context.Context, req billing.TopUpRequest) (billing.Credits, billing.Money, string, error)
	TopUp(ctx context.Context, customerID string, req billing.TopUpRequest) (billing.TopUp, error)
	StartTopUpCheckout(ctx context.Context, customerID string, req billing.TopUpRequest, successURL, cancelURL string) (billing.TopUp, billing.CardSetup, error)
	CompleteTopUpCheckout(ctx context.Context, customerID, sessionID string) (billing.TopUp, billing.Card, error)
	Refresh(ctx context.Context, topUpID string) (billing.TopUp, error)
	HandleEvent(ctx context.Context, ev billing.PaymentEvent) (bool, error)
	Refund(ctx context.Context, topUpID string) (billing.TopUp, error)
	RefundBy(ctx context.Context, topUpID string, actor billing.Actor, reason string) (billing.TopUp, error)
}

// PaymentStore is what the billing pages read.
type PaymentStore interface {
	FindCards(ctx context.Context, customerID, provider string) ([]billing.Card, error)
	FindTopUp(ctx context.Context, id string) (billing.TopUp, error)
	FindTopUps(ctx context.Context, customerID string, limit int) ([]billing.TopUp, error)
	FindRefillSettings(ctx context.Context, customerID string) (billing.RefillSettings, bool, error)
	SaveRefillSettings(ctx context.Context, customerID string, s billing.RefillSettings) error
	RefillMonth(ctx context.Context, customerID string, now time.Time) (int, int64, error)
	FindNotices(ctx context.Context, customerID string, limit int) ([]billing.Notice, error)
	DismissNotice(ctx context.Context, customerID string, seq int64) error
}

// sandbox is the sandbox provider's pages' side (payments.SandboxProvider).
type sandbox interface {
	AddCard(setupID, number string, expMonth, expYear int, cvc string) (billing.Card, error)
	SetupCharge(setupID string) (billing.Money, string, bool)
	SetupReturnURL(setupID string) (string, error)
	Authenticate(paymentID string, approve bool) (billing.PaymentEvent, error)
}

// PaymentsConfig wires payments into the HTTP layer.
type PaymentsConfig struct {
	Service  PaymentService
	Store    PaymentStore
	Provider billing.PaymentProvider // Stripe or the sandbox
	Policy   billing.PaymentPolicy
}

func (s *Server) paymentRoutes() {
	if s.cfg.Payments.Service == nil {
		return
	}
	e := s.e
	e.POST("/webhooks/stripe", s.stripeWebhook)
	csrf := s.csrf()
	if _, ok := s.cfg.Payments.Provider.(sandbox); ok {
		sb := e.Group("/sandbox", csrf, s.requireCustomer)
		sb.GET("/cards/new", s.sandboxCardForm)
		sb.POST("/cards", s.sandboxAddCard)
		sb.GET("/authenticate/:id", s.sandboxAuthPage)
		sb.POST("/authenticate/:id", s.sandboxAuthenticate)
	}
	s.e.POST("/api/v1/topups/:id/refund", s.refundTopUp, s.requireKey(billing.ScopeAdmin))
	s.e.GET("/api/v1/topups/:id", s.getTopUp, s.requireKey(billing.ScopeRead))
}

// POST /webhooks/stripe: Stripe's events, signature-verified, each applied
// once. Anything but a valid signature is a 400 and changes nothing.
func (s *Server) stripeWebhook(c echo.Context) error {
	payload, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return billing.Errorf(billing.CodeInvalidRequest, "Could not read the body.")
	}
	ev, ok, err := s.cfg.Payments.Provider.ParseEvent(payload, c.Request().Header.Get("Stripe-Signature"))
	if err != nil {
		s.metrics.WebhookDeliveries.WithLabelValues("in", "rejected").Inc()
		return billing.Errorf(billing.CodeInvalidRequest, "Webhook signature verification failed.")
	}
	if !ok {
		s.metrics.WebhookDeliveries.WithLabelValues("in", "ignored").Inc()
		return c.NoContent(http.StatusOK)
	}
	applied, err := s.cfg.Payments.Service.HandleEvent(c.Request().Context(), ev)
	if err != nil {
		s.metrics.WebhookDeliveries.WithLabelValues("in", "error").Inc()
		return err // 5xx: Stripe retries
	}
	result := "applied"
	if !applied {
		result = "duplicate"
	}
	s.metrics.WebhookDeliveries.WithLabelValues("in", result).Inc()
	return writeJSON(c, http.StatusOK, map[string]any{"received": true, "duplicate": !applied})
}

// POST /api/v1/topups/:id/refund refunds the unused credits of a purchase.
func (s *Server) refundTopUp(c echo.Context) error {
	tu, err := s.cfg.Payments.Service.Refund(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, tu)
}

func (s *Server) getTopUp(c echo.Context) error {
	tu, err := s.cfg.Payments.Store.FindTopUp(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, tu)
}

// GET /sandbox/cards/new: the sandbox's card form (Stripe Checkout's
// stand-in): it saves a card, or for a purchase takes the card and pays.
func (s *Server) sandboxCardForm(c echo.Context) error {
	f := views.SandboxCardForm{Setup: c.QueryParam("setup"),
		Return: localURL(c.QueryParam("return"), "/portal/billing"), Cancel: localURL(c.QueryParam("cancel"), "/portal/billing")}
	return s.renderSandboxCard(c, http.StatusOK, f)
}

func (s *Server) renderSandboxCard(c echo.Context, status int, f views.SandboxCardForm) error {
	title := "Add a card"
	if amt, desc, ok := s.cfg.Payments.Provider.(sandbox).SetupCharge(f.Setup); ok {
		f.Pay, f.Description, title = &amt, desc, "Pay with a card"
	}
	return render(c, status, views.SandboxCardPage(s.publicShell(c, title), f))
}

// POST /sandbox/cards saves a test card (and pays, for a purchase) and
// returns to the portal, as Checkout does. Every field is checked, and
// errors show beside their fields all at once.
func (s *Server) sandboxAddCard(c echo.Context) error {
	f := views.SandboxCardForm{Setup: c.FormValue("setup"), Return: localURL(c.FormValue("return"), "/portal/billing"),
		Cancel: localURL(c.FormValue("cancel"), "/portal/billing"), Number: c.FormValue("number"), Exp: c.FormValue("exp"), CVC: c.FormValue("cvc")}
	mm, yy, expOK := parseExpiry(f.Exp)
	sb := s.cfg.Payments.Provider.(sandbox)
	_, err := sb.AddCard(f.Setup, strings.ReplaceAll(f.Number, " ", ""), mm, yy, f.CVC)
	if err != nil || !expOK {
		f.Errors = map[string]string{}
		var be *billing.Error
		if errors.As(err, &be) {
			if errs, ok := be.Details["errors"].(map[string]string); ok {
				for param, msg := range errs {
					field := map[string]string{"exp_month": "exp", "exp_year": "exp"}[param]
					if field == "" {
						field = param
					}
					if _, seen := f.Errors[field]; !seen {
						f.Errors[field] = msg
					}
				}
			} else if be.Code == billing.CodeCardDeclined {
				// A valid card its bank refused: a payment's answer, not a typo.
				f.Declined = true
				f.Errors["number"] = views.SandboxDeclinedField
			} else if p, _ := be.Details["param"].(string); p == "number" {
				f.Errors["number"] = be.Message
			} else {
				f.Error = be.Message
			}
		} else if err != nil {
			return err
		}
		if !expOK {
			f.Errors["exp"] = "Enter the expiry as MM/YY, such as 12/34."
		}
		return s.renderSandboxCard(c, http.StatusUnprocessableEntity, f)
	}
	// Back to the portal with the setup's id, as Stripe Checkout returns.
	to, err := sb.SetupReturnURL(f.Setup)
	if err != nil {
		return err
	}
	if u, perr := url.Parse(to); perr == nil {
		to = u.RequestURI() // always this site
	}
	return c.Redirect(http.StatusSeeOther, to)
}

func parseExpiry(s string) (int, int, bool) {
	m, y, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, 0, false
	}
	mm, err1 := strconv.Atoi(strings.TrimSpace(m))
	yy, err2 := strconv.Atoi(strings.TrimSpace(y))
	if err1 != nil || err2 != nil || mm < 1 || mm > 12 {
		return 0, 0, false
	}
	if yy < 100 {
		yy += 2000
	}
	return mm, yy, true
}

// GET /sandbox/authenticate/:id: the sandbox's 3-D Secure page.
func (s *Server) sandboxAuthPage(c echo.Context) error {
	p, tu, err := s.sandboxPayment(c)
	if err != nil {
		return err
	}
	// A purchase with a saved card names it; one paid with a card typed on
	// the checkout page has none yet: the payment's card is the one typed.
	card := billing.Card{Brand: tu.CardBrand, Last4: tu.CardLast4}
	if card.Last4 == "" && p.Card != nil {
		card = *p.Card
	}
	label := ""
	if card.Last4 != "" {
		label = views.CardLabel(card)
	}
	return render(c, http.StatusOK, views.SandboxAuthPage(s.publicShell(c, "Confirm payment"),
		views.SandboxAuth{PaymentID: p.ProviderID, Amount: tu.Price, Card: label,
			Description: tu.Description, Return: localURL(c.QueryParam("return"), "/portal/top-ups/"+tu.ID)}))
}

// POST /sandbox/authenticate/:id approves or fails the payment; the event
// goes through the same handling as a Stripe webhook.
func (s *Server) sandboxAuthenticate(c echo.Context) error {
	ctx := c.Request().Context()
	p, tu, err := s.sandboxPayment(c)
	if err != nil {
		return err
	}
	ev, err := s.cfg.Payments.Provider.(sandbox).Authenticate(p.ProviderID, c.FormValue("outcome") == "approve")
	if err != nil {
		return err
	}
	if _, err := s.cfg.Payments.Service.HandleEvent(ctx, ev); err != nil {
		return err
	}
	// Back where the charge asked, with ?payment_intent=<id> as Stripe adds
	// it: /portal/top-ups/return finds the purchase by it.
	to := localURL(c.FormValue("return"), "/portal/top-ups/"+tu.ID)
	if u, err := url.Parse(to); err == nil {
		q := u.Query()
		q.Set("payment_intent", p.ProviderID)
		u.RawQuery = q.Encode()
		to = u.String()
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// sandboxPayment is the sandbox payment named in the path and the
// signed-in customer's top-up it pays for (another customer's: not found).
func (s *Server) sandboxPayment(c echo.Context) (billing.Payment, billing.TopUp, error) {
	p, err := s.cfg.Payments.Provider.FindPayment(c.Request().Context(), c.Param("id"))
	if err != nil {
		return p, billing.TopUp{}, err
	}
	tu, err := s.customerTopUpByPayment(c, p.ProviderID)
	return p, tu, err
}

// customerTopUpByPayment finds the signed-in customer's top-up of a payment
// (another customer's payment is not found).
func (s *Server) customerTopUpByPayment(c echo.Context, paymentID string) (billing.TopUp, error) {
	tops, err := s.cfg.Payments.Store.FindTopUps(c.Request().Context(), currentCustomer(c).CustomerID, 100)
	if err != nil {
		return billing.TopUp{}, err
	}
	for _, t := range tops {
		if t.PaymentID == paymentID {
			return t, nil
		}
	}
	return billing.TopUp{}, billing.Errorf(billing.CodeNotFound, "No such payment.")
}

// localURL keeps a return target on this site: only a path on this origin
// ("/portal/billing?x=1") is kept; an absolute URL elsewhere, or anything a
// browser could read as another host, becomes def. Browsers treat '\' as
// '/' in a URL, so "/\evil.example" is "//evil.example": no backslash is
// kept anywhere, and control characters (which browsers strip, and
// url.Parse refuses) neither.
func localURL(raw, def string) string {
	if raw == "" || raw[0] != '/' || strings.Contains(raw, `\`) || (len(raw) > 1 && raw[1] == '/') {
		return def
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return def
	}
	return raw
}
