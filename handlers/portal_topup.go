package handlers

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// GET /portal/top-up: the focused top-up, where a `flow: top_up` link (and
// the overview's "Top up now") lands. It says why the customer is here
// (out of credits, or running low), what the refused action needed, the
// balance, and offers one pack that covers it with one button that pays it
// with the saved card: pressing it is the confirmation. Without a saved
// card the button takes a card and pays in one step. Other packs and a
// custom amount sit below.
func (s *Server) topUpPage(c echo.Context) error { return s.renderTopUp(c, http.StatusOK, nil) }

// renderTopUp answers with the focused top-up; tp, when set, is its
// panel as the customer left it (a custom amount refused, with why).
func (s *Server) renderTopUp(c echo.Context, status int, panel *views.TopUpPanel) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	sh, err := s.shell(c, "Add credits", "billing")
	if err != nil {
		return err
	}
	tp, err := s.topUpPanel(c, s.inTopUpFlow(c))
	if err != nil {
		return err
	}
	if panel != nil {
		tp = *panel
	}
	tp.Focus = true
	b, err := s.ledger.Balance(ctx, cid)
	if err != nil {
		return err
	}
	f := views.TopUpFocus{Panel: tp, Available: b.Available, Balance: b.Balance, Low: sh.Customer.Balance.Low, Depleted: sh.Customer.Balance.Depleted}
	if sess, _, ok, _ := s.session(c); ok {
		if req, ok := sess.Values["req"].(int64); ok && req > 0 {
			f.Required = billing.Credits(req)
		}
	}
	last, err := s.lastPack(ctx, cid)
	if err != nil {
		return err
	}
	// The overview's suggestion: the same forecast, the same rule.
	now := s.store.Now()
	usage, _, err := s.dashboardUsage(ctx, cid, now)
	if err != nil {
		return err
	}
	fc, _, err := s.forecast(ctx, cid, sh.Fmt, b, usage, now)
	if err != nil {
		return err
	}
	if pk, ok := billing.SuggestTopUpPack(tp.Packs, f.Required-b.Available, fc.TopUp, last); ok {
		f.Suggested = &views.PayOption{Pack: pk, Key: newClickKey()}
		for _, p := range tp.Packs {
			if p.ID != pk.ID {
				f.Others = append(f.Others, views.PayOption{Pack: p, Key: newClickKey()})
			}
		}
	}
	return render(c, status, views.TopUpFocusPage(sh, f))
}

// lastPack is the pack the customer bought last ("" if none).
func (s *Server) lastPack(ctx context.Context, customerID string) (string, error) {
	if s.cfg.Payments.Store == nil {
		return "", nil
	}
	tops, err := s.cfg.Payments.Store.FindTopUps(ctx, customerID, 20)
	if err != nil {
		return "", err
	}
	for _, t := range tops {
		if t.PackID != "" && (t.Status == billing.TopUpSucceeded || t.Status == billing.TopUpRefunded) {
			return t.PackID, nil
		}
	}
	return "", nil
}

// offerTopUp adds what a product needs to offer a top-up at once to an
// insufficient_credits error: the pack to suggest (the smallest that
// covers the shortfall, or the one the customer bought last), beside the
// required and available credits the error already carries. Any other
// error, or one the offer cannot be made for, is returned as it is.
func (s *Server) offerTopUp(ctx context.Context, customer string, err error) error {
	return (&topUpOffers{s: s, ctx: ctx}).offer(customer, err)
}

// topUpOffers suggests packs for many refusals (a batch's) and reads the
// price book, and each customer's last pack, once.
type topUpOffers struct {
	s      *Server
	ctx    context.Context
	pb     *billing.PriceBook
	loaded bool
	last   map[string]string // customer as named in the request -> last pack
}

func (o *topUpOffers) offer(customer string, err error) error {
	var be *billing.Error
	if !errors.As(err, &be) || be.Code != billing.CodeInsufficientCredits {
		return err
	}
	if !o.loaded {
		o.loaded = true
		if pb, perr := o.s.prices.CurrentPriceBook(o.ctx); perr == nil {
			o.pb = pb
		}
	}
	if o.pb == nil || len(o.pb.Packs) == 0 {
		return err
	}
	required, _ := be.Details["required"].(billing.Credits)
	available, _ := be.Details["available"].(billing.Credits)
	last, seen := o.last[customer]
	if !seen {
		if cu, ferr := o.s.ledger.FindCustomer(o.ctx, customer); ferr == nil {
			last, _ = o.s.lastPack(o.ctx, cu.ID)
		}
		if o.last == nil {
			o.last = map[string]string{}
		}
		o.last[customer] = last
	}
	pk, ok := billing.SuggestPack(o.pb.ActivePacks(), max(required-available, 0), last)
	if !ok {
		return err
	}
	return be.With("suggested_pack", map[string]any{"id": pk.ID, "name": pk.Name, "credits": pk.Credits, "price": pk.Price})
}
