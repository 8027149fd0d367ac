package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers/forms"
	"github.com/tally-billing/tally/views"
)

func (s *Server) billingRoutes(p *echo.Group) {
	if s.cfg.Payments.Service == nil {
		return
	}
	p.GET("/billing", s.billingPage)
	p.GET("/top-up", s.topUpPage) // flow=top_up lands here
	p.POST("/top-ups/confirm", s.confirmTopUp)
	p.POST("/top-ups", s.createTopUp)
	p.POST("/top-ups/checkout", s.startCheckout)
	p.GET("/top-ups/checkout", s.checkoutReturn)
	p.GET("/top-ups/return", s.topUpReturn)
	p.GET("/top-ups/:id", s.topUpStatus)
	p.GET("/receipts/:id", s.receiptPage)
	p.POST("/cards/setup", s.startCardSetup)
	p.GET("/cards/added", s.cardAdded)
	p.POST("/cards/:id/default", s.defaultCard)
	p.POST("/cards/:id/remove", s.removeCard)
	p.POST("/auto-refill", s.saveRefill)
	p.POST("/notices/:id/dismiss", s.dismissNotice)
	p.GET("/partials/purchases", s.purchasesPartial)
	p.GET("/partials/empty", func(c echo.Context) error { return c.HTML(http.StatusOK, "") })
}

func (s *Server) sandboxMode() bool {
	_, ok := s.cfg.Payments.Provider.(sandbox)
	return ok
}

// topUpPanel is the top-up block, for the Billing tab, the focused top-up and the
// overview.
func (s *Server) topUpPanel(c echo.Context, flow bool) (views.TopUpPanel, error) {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	pb, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return views.TopUpPanel{}, err
	}
	p := views.TopUpPanel{Flow: flow, Sandbox: s.sandboxMode(), CustomKey: newClickKey()}
	if pb != nil {
		p.Packs = pb.ActivePacks()
		for _, pk := range p.Packs {
			p.Options = append(p.Options, views.PayOption{Pack: pk, Key: newClickKey()})
		}
		if base, ok := pb.BaseRate(); ok {
			cur := base.Price.Currency
			pol := pb.CustomPolicy(s.policy(ctx).Payment())
			p.CustomMin = billing.Money{Amount: pol.CustomMin, Currency: cur}
			p.CustomMax = billing.Money{Amount: pol.CustomMax, Currency: cur}
			per, _, _ := billing.CustomCredits(pb, 100, billing.PaymentPolicy{CustomMin: 100, CustomMax: 100})
			p.CustomRate = fmt.Sprintf("%s credits per %s", per, views.NewFmt("", "").Money(billing.Money{Amount: 100, Currency: cur}))
		}
	}
	if card, ok, err := s.cfg.Payments.Service.DefaultCard(ctx, cid); err != nil {
		return p, err
	} else if ok {
		p.Card = &card
	}
	return p, nil
}

// GET /portal/billing (and /portal/top-up for flow=top_up).
func (s *Server) billingPage(c echo.Context) error {
	return s.renderBilling(c, http.StatusOK, nil)
}

// renderBilling answers with the Billing tab; edit adjusts it (a form shown
// again with its errors).
func (s *Server) renderBilling(c echo.Context, status int, edit func(*views.BillingPage)) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	sh, err := s.shell(c, "Billing", "billing")
	if err != nil {
		return err
	}
	tp, err := s.topUpPanel(c, s.inTopUpFlow(c))
	if err != nil {
		return err
	}
	page := views.BillingPage{Sandbox: s.sandboxMode(), TopUp: tp}
	if page.Cards, err = s.cfg.Payments.Store.FindCards(ctx, cid, s.cfg.Payments.Provider.Name()); err != nil {
		return err
	}
	if page.Refill, err = s.refillForm(c, nil, nil); err != nil {
		return err
	}
	if page.Purchases, err = s.purchases(ctx, cid); err != nil {
		return err
	}
	if edit != nil {
		edit(&page)
	}
	return render(c, status, views.Billing(sh, page))
}

func newClickKey() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "click_" + hex.EncodeToString(b)
}

// POST /portal/top-ups/confirm asks once before money moves: "Add 1,000
// credits for $10.00 with Visa •••• 4242?". The confirmation carries a key
// for this click, so submitting it twice charges once.
func (s *Server) confirmTopUp(c echo.Context) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	req := billing.TopUpRequest{PackID: c.FormValue("pack")}
	if req.PackID == "" {
		amt, answered, err := s.readCustomAmount(c)
		if err != nil || answered {
			return err
		}
		req.Amount = amt
	}
	credits, price, _, err := s.cfg.Payments.Service.Quote(ctx, req)
	if err != nil {
		return err
	}
	card, ok, err := s.cfg.Payments.Service.DefaultCard(ctx, cid)
	if err != nil {
		return err
	}
	if !ok {
		return billing.Errorf(billing.CodeNoPaymentMethod, "Add a card first.")
	}
	sh := s.publicShell(c, "Confirm purchase")
	dlg := views.TopUpConfirmDialog(sh, views.TopUpConfirm{PackID: req.PackID, Amount: req.Amount, Credits: credits, Price: price, Card: card, Key: newClickKey()})
	if isHTMX(c) {
		return render(c, http.StatusOK, dlg)
	}
	full, err := s.shell(c, "Confirm purchase", "billing")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.Modal(full, dlg))
}

// checkCustomAmount keeps a custom amount within the policy's bounds, with
// an error a customer can act on ("between $5.00 and $1,000.00") rather
// than the domain's minor units.
func (s *Server) checkCustomAmount(c echo.Context, amount int64) error {
	pb, err := s.prices.CurrentPriceBook(c.Request().Context())
	if err != nil {
		return err
	}
	if msg := s.customRange(c, pb, amount); msg != "" {
		return billing.Errorf(billing.CodeValidation, "%s", msg).With("param", "amount")
	}
	return nil
}

// customRange says why a custom amount is out of bounds ("" when it is
// not, or when no pack prices custom amounts: Quote says why then).
func (s *Server) customRange(c echo.Context, pb *billing.PriceBook, amount int64) string {
	base, ok := pb.BaseRate()
	if !ok {
		return ""
	}
	pol := pb.CustomPolicy(s.policy(c.Request().Context()).Payment())
	if amount >= pol.CustomMin && amount <= pol.CustomMax {
		return ""
	}
	f := s.publicShell(c, "").Fmt
	cur := base.Price.Currency
	return fmt.Sprintf("Enter an amount between %s and %s.",
		f.Money(billing.Money{Amount: pol.CustomMin, Currency: cur}), f.Money(billing.Money{Amount: pol.CustomMax, Currency: cur}))
}

// readCustomAmount reads the custom amount a customer typed (the forms
// package's one parser, in the price book's currency). A wrong one is
// answered here: the custom amount form again with the error beside the
// field, swapped in place of the form by htmx, or the page around it
// (answered is then true).
func (s *Server) readCustomAmount(c echo.Context) (amount int64, answered bool, err error) {
	pb, err := s.prices.CurrentPriceBook(c.Request().Context())
	if err != nil {
		return 0, false, err
	}
	cur := "usd"
	if pb != nil {
		cur = pb.Currency
	}
	fm := readForm(c)
	amt := fm.Money("amount", cur, forms.Opts{Required: "Enter an amount, such as " + fm.Locale.MoneyExample(cur) + ".",
		Negative: "Enter an amount above zero, without a minus sign."})
	if amt != nil {
		if msg := s.customRange(c, pb, *amt); msg != "" {
			fm.Fail("amount", msg)
		}
	}
	if fm.Valid() {
		return *amt, false, nil
	}
	tp, err := s.topUpPanel(c, s.inTopUpFlow(c))
	if err != nil {
		return 0, false, err
	}
	tp.CustomValue, tp.CustomError = fm.Value("amount"), fm.Errors["amount"]
	tp.Focus = fm.Value("from") == "top-up"
	if isHTMX(c) {
		c.Response().Header().Set("HX-Retarget", "#custom-top-up")
		c.Response().Header().Set("HX-Reswap", "outerHTML")
		return 0, true, render(c, http.StatusUnprocessableEntity, views.CustomAmountForm(s.publicShell(c, ""), tp))
	}
	if tp.Focus {
		return 0, true, s.renderTopUp(c, http.StatusUnprocessableEntity, &tp)
	}
	return 0, true, s.renderBilling(c, http.StatusUnprocessableEntity, func(p *views.BillingPage) { p.TopUp = tp })
}

func isHTMX(c echo.Context) bool { return c.Request().Header.Get("HX-Request") == "true" }

// POST /portal/top-ups charges the default card once for this click.
func (s *Server) createTopUp(c echo.Context) error {
	ctx := c.Request().Context()
	ps := currentCustomer(c)
	req := billing.TopUpRequest{PackID: c.FormValue("pack"), Key: c.FormValue("key"), Origin: billing.OriginPortal}
	if req.PackID == "" {
		amt, err := strconv.ParseInt(c.FormValue("amount_minor"), 10, 64)
		if err != nil || amt <= 0 {
			return billing.Errorf(billing.CodeValidation, "Choose a pack or an amount.")
		}
		if err := s.checkCustomAmount(c, amt); err != nil {
			return err
		}
		req.Amount = amt
	}
	if !strings.HasPrefix(req.Key, "click_") {
		return billing.Errorf(billing.CodeInvalidRequest, "This purchase form has expired; start again.")
	}
	// Namespaced per customer: one customer's click key can never touch
	// another's top-up.
	req.Key = ps.CustomerID + ":" + req.Key
	req.ReturnURL = s.absURL(c, "/portal/top-ups/return")
	tu, err := s.cfg.Payments.Service.TopUp(ctx, ps.CustomerID, req)
	if err != nil {
		return err
	}
	// The authentication page comes back to this top-up's status page.
	if tu.Status == billing.TopUpRequiresAction && tu.NextActionURL != "" {
		return redirect(c, tu.NextActionURL)
	}
	switch tu.Status {
	case billing.TopUpSucceeded:
		if s.inTopUpFlow(c) && ps.ReturnURL != "" {
			return redirect(c, "/portal/top-ups/"+tu.ID)
		}
		if isHTMX(c) {
			// Stay on the page: the dialog says it worked, and the header
			// balance rises by itself (the grant's commit pushes a balance event).
			return render(c, http.StatusOK, views.TopUpSucceededDialog(s.publicShell(c, "Credits added"), tu))
		}
		f := s.publicShell(c, "").Fmt
		flash(c, "success", fmt.Sprintf("Added %s credits. %s was charged to %s.", f.Credits(tu.Credits), f.Money(tu.Price),
			views.CardLabel(billing.Card{Brand: tu.CardBrand, Last4: tu.CardLast4})))
		return redirect(c, "/portal")
	case billing.TopUpFailed:
		sh := s.publicShell(c, "Payment declined")
		failed := views.TopUpFailed{TopUp: tu, RetryKey: newClickKey()}
		if isHTMX(c) {
			return render(c, http.StatusOK, views.TopUpFailedDialog(sh, failed))
		}
		full, err := s.shell(c, "Payment declined", "billing")
		if err != nil {
			return err
		}
		return render(c, http.StatusPaymentRequired, views.Modal(full, views.TopUpFailedDialog(sh, failed)))
	}
	return redirect(c, "/portal/top-ups/"+tu.ID)
}

// redirect sends the browser on: with HX-Redirect for htmx requests (which
// cannot follow a 303 into a full page), or a 303.
func redirect(c echo.Context, to string) error {
	if isHTMX(c) {
		c.Response().Header().Set("HX-Redirect", to)
		return c.NoContent(http.StatusOK)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

func (s *Server) absURL(c echo.Context, path string) string {
	base := strings.TrimRight(s.cfg.Portal.BaseURL, "/")
	if base == "" {
		base = "http://" + c.Request().Host
	}
	return base + path
}

// inTopUpFlow reports whether the customer came for a top-up from the
// product (POST /api/v1/portal-sessions with "flow": "top_up").
func (s *Server) inTopUpFlow(c echo.Context) bool {
	return currentCustomer(c).Flow == "top_up"
}

// GET /portal/top-ups/:id: the state of a purchase (after authenticating,
// it polls until the webhook or the provider settles it).
func (s *Server) topUpStatus(c echo.Context) error {
	ctx := c.Request().Context()
	ps := currentCustomer(c)
	tu, err := s.customerTopUp(c, c.Param("id"))
	if err != nil {
		return err
	}
	if tu.Status == billing.TopUpPending || tu.Status == billing.TopUpRequiresAction {
		if fresh, err := s.cfg.Payments.Service.Refresh(ctx, tu.ID); err == nil {
			tu = fresh
		}
	}
	st := views.TopUpStatus{TopUp: tu}
	if tu.Status == billing.TopUpFailed {
		st.RetryKey = newClickKey()
	}
	if s.inTopUpFlow(c) {
		st.ReturnURL = ps.ReturnURL
	}
	if c.QueryParam("partial") != "" {
		return render(c, http.StatusOK, views.TopUpStatusCard(s.publicShell(c, ""), st))
	}
	sh, err := s.shell(c, "Payment", "billing")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.TopUpStatusPage(sh, st))
}

// customerTopUp is one of the signed-in customer's top-ups (another
// customer's is not found).
func (s *Server) customerTopUp(c echo.Context, id string) (billing.TopUp, error) {
	tu, err := s.cfg.Payments.Store.FindTopUp(c.Request().Context(), id)
	if err != nil || tu.Customer != currentCustomer(c).CustomerID {
		return billing.TopUp{}, billing.Errorf(billing.CodeNotFound, "No such purchase.")
	}
	return tu, nil
}

// GET /portal/receipts/:id: a printable receipt.
func (s *Server) receiptPage(c echo.Context) error {
	tu, err := s.customerTopUp(c, c.Param("id"))
	if err != nil {
		return err
	}
	if tu.Status != billing.TopUpSucceeded && tu.Status != billing.TopUpRefunded {
		return billing.Errorf(billing.CodeNotFound, "This purchase was not paid, so it has no receipt.")
	}
	sh, err := s.shell(c, "Receipt", "billing")
	if err != nil {
		return err
	}
	cu, err := s.ledger.FindCustomer(c.Request().Context(), tu.Customer)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ReceiptPage(sh, views.Receipt{TopUp: tu, Product: s.cfg.Portal.ProductName, Email: cu.Email, Name: cu.Name, Account: cu.ExternalID, Issued: tu.CreatedAt}))
}

// POST /portal/cards/setup sends the customer to the provider's hosted page
// to add a card (Stripe Checkout in setup mode, or the sandbox's form).
func (s *Server) startCardSetup(c echo.Context) error {
	ps := currentCustomer(c)
	setup, err := s.cfg.Payments.Service.StartCardSetup(c.Request().Context(), ps.CustomerID,
		s.absURL(c, "/portal/cards/added"), s.absURL(c, "/portal/billing"))
	if err != nil {
		return err
	}
	return redirect(c, setup.URL)
}

// GET /portal/cards/added: back from the hosted page, save the card (it
// becomes the default). The customer lands at the top of the Billing tab,
// where the message is, not scrolled past it.
func (s *Server) cardAdded(c echo.Context) error {
	id := c.QueryParam("session_id")
	if id == "" {
		id = c.QueryParam("setup")
	}
	card, err := s.cfg.Payments.Service.CompleteCardSetup(c.Request().Context(), currentCustomer(c).CustomerID, id)
	if err != nil {
		flash(c, "error", "The card was not saved: "+billing.ErrorMessage(err))
		return c.Redirect(http.StatusSeeOther, "/portal/billing")
	}
	flash(c, "success", "Saved "+views.CardLabel(card)+". It is now your default card.")
	return c.Redirect(http.StatusSeeOther, "/portal/billing")
}

func (s *Server) defaultCard(c echo.Context) error {
	card, err := s.cfg.Payments.Service.SetDefaultCard(c.Request().Context(), currentCustomer(c).CustomerID, c.Param("id"))
	if err != nil {
		return err
	}
	flash(c, "success", views.CardLabel(card)+" is now your default card.")
	return redirect(c, "/portal/billing#cards")
}

func (s *Server) removeCard(c echo.Context) error {
	card, err := s.cfg.Payments.Service.RemoveCard(c.Request().Context(), currentCustomer(c).CustomerID, c.Param("id"))
	if err != nil {
		return err
	}
	flash(c, "success", "Removed "+views.CardLabel(card)+".")
	return redirect(c, "/portal/billing#cards")
}

// refillForm is the auto-refill form with what it will do next and what it
// did this month.
func (s *Server) refillForm(c echo.Context, set *billing.RefillSettings, values map[string]string) (views.RefillForm, error) {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	f := views.RefillForm{Values: values}
	if set == nil {
		cur, found, err := s.cfg.Payments.Store.FindRefillSettings(ctx, cid)
		if err != nil {
			return f, err
		}
		if !found {
			if cur.Threshold, err = s.defaultRefillThreshold(c); err != nil {
				return f, err
			}
		}
		set = &cur
	}
	f.Settings = *set
	pb, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return f, err
	}
	if pb != nil {
		f.Packs = pb.Packs
	}
	if f.Settings.PackID == "" && len(f.Packs) > 0 {
		f.Settings.PackID = f.Packs[0].ID
	}
	_, f.HasCard, err = s.cfg.Payments.Service.DefaultCard(ctx, cid)
	if err != nil {
		return f, err
	}
	n, amt, err := s.cfg.Payments.Store.RefillMonth(ctx, cid, s.store.Now())
	if err != nil {
		return f, err
	}
	cur := "usd"
	if pb != nil {
		cur = pb.Currency
	}
	f.MonthCount, f.MonthAmount = n, billing.Money{Amount: amt, Currency: cur}
	// What the next refill would buy now.
	req := billing.TopUpRequest{PackID: f.Settings.PackID}
	if f.Settings.Mode == billing.RefillTarget {
		b, err := s.ledger.Balance(ctx, cid)
		if err != nil {
			return f, err
		}
		need := f.Settings.Target - b.Available
		if r := need % billing.Milli; need > 0 && r != 0 {
			need += billing.Milli - r
		}
		req = billing.TopUpRequest{Credits: max(need, 0)}
	}
	if req.PackID != "" || req.Credits > 0 {
		if credits, price, _, err := s.cfg.Payments.Service.Quote(ctx, req); err == nil {
			f.NextCredits, f.NextPrice = credits, price
		}
	}
	return f, nil
}

// defaultRefillThreshold is the threshold the form offers a customer who
// never set auto-refill: where the portal starts warning of a low balance
// (their own setting, or 10% of their last top-up), else 10% of the smallest
// pack, in whole credits. 0 would refill only once the credits are gone.
func (s *Server) defaultRefillThreshold(c echo.Context) (billing.Credits, error) {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	set, err := s.portal.FindCustomerSettings(ctx, cid)
	if err != nil {
		return 0, err
	}
	last, err := s.portal.LastTopUp(ctx, cid)
	if err != nil {
		return 0, err
	}
	th := set.ThresholdWith(s.policy(ctx).LowBalanceLine(last))
	if th <= 0 {
		pb, err := s.prices.CurrentPriceBook(ctx)
		if err != nil {
			return 0, err
		}
		if base, ok := pb.BaseRate(); ok {
			th = base.Credits / 10
		}
	}
	return th - th%billing.Milli, nil
}

// purchases are every purchase of credits, newest first: the top-ups paid
// here (not a checkout abandoned before any payment) and the purchase lots
// the product recorded through the API (grants with source purchase), the
// same purchases Credits & history lists.
func (s *Server) purchases(ctx context.Context, customerID string) ([]views.Purchase, error) {
	tops, err := s.cfg.Payments.Store.FindTopUps(ctx, customerID, 50)
	if err != nil {
		return nil, err
	}
	lots, err := s.portal.FindLots(ctx, customerID, 100)
	if err != nil {
		return nil, err
	}
	paidHere, frozen := map[string]bool{}, map[string]bool{}
	for _, l := range lots {
		frozen[l.ID] = l.Frozen // a purchase's lot is frozen by a dispute of its payment
	}
	var out []views.Purchase
	for _, t := range tops {
		if t.Lot != "" {
			paidHere[t.Lot] = true
		}
		if t.Status == billing.TopUpPending && t.PaymentID == "" {
			continue // a checkout left before paying
		}
		out = append(out, views.Purchase{TopUp: t, Disputed: t.Status == billing.TopUpSucceeded && frozen[t.Lot]})
	}
	for _, l := range lots {
		if l.Source != billing.SourcePurchase || paidHere[l.ID] {
			continue
		}
		desc := l.Reason
		if desc == "" {
			desc = "Credits purchased"
		}
		out = append(out, views.Purchase{Recorded: true, TopUp: billing.TopUp{Description: desc, Credits: l.Amount, Status: billing.TopUpSucceeded, CreatedAt: l.CreatedAt}})
	}
	plans, err := s.planPurchases(ctx, customerID) // portal_plan.go
	if err != nil {
		return nil, err
	}
	out = append(out, plans...)
	slices.SortStableFunc(out, func(a, b views.Purchase) int { return b.TopUp.CreatedAt.Compare(a.TopUp.CreatedAt) })
	return out, nil
}

// GET /portal/partials/purchases: the purchases list alone (it fetches
// itself again when the balance changes).
func (s *Server) purchasesPartial(c echo.Context) error {
	rows, err := s.purchases(c.Request().Context(), currentCustomer(c).CustomerID)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ReceiptsSection(s.publicShell(c, ""), rows))
}

// notices are the customer's billing notices not yet dealt with (a declined
// or paused auto-refill, one waiting for the bank's confirmation, a
// dispute): every portal page shows them under its header. The "confirm
// your auto-refill" notice links to the bank's page of the refill that
// waits for it (the newest; none once it is confirmed).
func (s *Server) notices(ctx context.Context, customerID string) ([]views.Notice, error) {
	if s.cfg.Payments.Store == nil {
		return nil, nil
	}
	evs, err := s.cfg.Payments.Store.FindNotices(ctx, customerID, 5)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	authURL := ""
	for _, ev := range evs {
		if ev.Type == billing.EventAutoRefillActionRequired {
			tops, err := s.cfg.Payments.Store.FindTopUps(ctx, customerID, 20)
			if err != nil {
				return nil, err
			}
			for _, t := range tops {
				if t.Origin == billing.OriginAutoRefill && t.Status == billing.TopUpRequiresAction && t.NextActionURL != "" {
					authURL = t.NextActionURL
					break
				}
			}
			break
		}
	}
	out := make([]views.Notice, len(evs))
	for i, ev := range evs {
		out[i] = views.Notice{Event: ev}
		reason, _ := ev.Data["reason"].(string)
		switch {
		case ev.Type == billing.EventAutoRefillActionRequired:
			out[i].Link, out[i].LinkText = authURL, "Confirm the payment"
		case reason == billing.RefillSkipMonthlyCount || reason == billing.RefillSkipMonthlyAmount:
			out[i].Link, out[i].LinkText = "/portal/billing#auto-refill", "Change the monthly ceiling"
		case reason == billing.RefillSkipNoCard:
			out[i].Link, out[i].LinkText = "/portal/billing#cards", "Add a card"
		case ev.Type == billing.EventAutoRefillFailed || ev.Type == billing.EventAutoRefillPaused:
			out[i].Link, out[i].LinkText = "/portal/billing#auto-refill", "Check auto-refill"
		case ev.Type == billing.EventInvoicePaymentFailed:
			out[i].Link, out[i].LinkText = "/portal/plan", "See your plan"
		}
	}
	return out, nil
}

// POST /portal/auto-refill saves auto-refill. Every field is read by the
// forms package and checked, so all that is wrong shows at once, each
// error beside its field; nothing is saved until all is right.
func (s *Server) saveRefill(c echo.Context) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	pb, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return err
	}
	cur := "usd"
	if pb != nil {
		cur = pb.Currency
	}
	fm := readForm(c)
	values := map[string]string{"threshold": fm.Value("threshold"), "target": fm.Value("target"),
		"max_refills": fm.Value("max_refills"), "max_amount": fm.Value("max_amount")}
	set := billing.RefillSettings{Enabled: fm.Value("enabled") == "on", Mode: fm.Value("mode"), PackID: fm.Value("pack")}
	if th := fm.Credits("threshold", forms.Opts{Required: "Enter a number of credits, such as 500.",
		Negative: "The balance to refill at can't be negative."}); th != nil {
		set.Threshold = *th
	}
	switch set.Mode {
	case billing.RefillTarget:
		if t := fm.Credits("target", forms.Opts{Required: "Enter the balance to refill to, such as 2,000."}); t != nil {
			set.Target = *t
			if !fm.Failed("threshold") && set.Target <= set.Threshold {
				fm.Fail("target", "The balance to refill to must be above the threshold ("+s.publicShell(c, "").Fmt.CreditsWord(set.Threshold)+").")
			}
		}
	case billing.RefillPack:
		if _, ok := pb.Pack(set.PackID); !ok {
			fm.Fail("pack", "Choose a credit pack to buy.")
		}
	default:
		fm.Fail("mode", "Choose what to buy: a pack, or enough to refill to a balance.")
	}
	if n := fm.Whole("max_refills", forms.Opts{Negative: "Enter 1 to 1,000 refills a month, or leave it empty."}); n != nil {
		if *n < 1 || *n > 1000 {
			fm.Fail("max_refills", "Enter 1 to 1,000 refills a month, or leave it empty.")
		} else {
			set.MaxRefillsPerMonth = n
		}
	}
	if amt := fm.Money("max_amount", cur, forms.Opts{}); amt != nil {
		if *amt < 1 {
			fm.Fail("max_amount", "Enter an amount above zero, or leave it empty.")
		} else {
			set.MaxAmountPerMonth = amt
		}
	}
	if fm.Valid() {
		// The domain's rules are the last word: its verdict goes beside its field.
		if err := set.Validate(pb, pb.CustomPolicy(s.policy(ctx).Payment())); err != nil {
			var be *billing.Error
			if !errors.As(err, &be) || be.Code != billing.CodeValidation {
				return err
			}
			p, _ := be.Details["param"].(string)
			msg := sentence(be.Message)
			if price, ok := be.Details["refill_price"].(billing.Money); ok {
				ceiling, _ := be.Details["ceiling"].(billing.Money)
				msg = views.RefillCeilingTooLow(s.publicShell(c, "").Fmt, price, ceiling)
			}
			fm.Fail(refillField(p), msg)
		}
	}
	if !fm.Valid() {
		f, err := s.refillForm(c, &set, values)
		if err != nil {
			return err
		}
		f.Errors = fm.Errors
		return s.renderRefill(c, http.StatusUnprocessableEntity, f)
	}
	if err := s.cfg.Payments.Store.SaveRefillSettings(ctx, cid, set); err != nil {
		return err
	}
	f, err := s.refillForm(c, nil, nil)
	if err != nil {
		return err
	}
	f.Saved = true
	if !isHTMX(c) {
		flash(c, "success", "Auto-refill saved.")
		return c.Redirect(http.StatusSeeOther, "/portal/billing#auto-refill")
	}
	return s.renderRefill(c, http.StatusOK, f)
}

// refillField is the form field of a RefillSettings.Validate param.
func refillField(param string) string {
	switch param {
	case "max_refills_per_month":
		return "max_refills"
	case "max_amount_per_month":
		return "max_amount"
	case "":
		return "threshold"
	}
	return param
}

// sentence starts a domain message with a capital and ends it with a full
// stop, as the portal writes its messages.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

func (s *Server) renderRefill(c echo.Context, status int, f views.RefillForm) error {
	sh := s.publicShell(c, "Billing")
	if isHTMX(c) {
		return render(c, status, views.RefillSection(sh, f))
	}
	full, err := s.shell(c, "Billing", "billing")
	if err != nil {
		return err
	}
	return render(c, status, views.Modal(full, views.RefillSection(full, f)))
}

func (s *Server) dismissNotice(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return billing.Errorf(billing.CodeNotFound, "No such notice.")
	}
	if err := s.cfg.Payments.Store.DismissNotice(c.Request().Context(), currentCustomer(c).CustomerID, id); err != nil {
		return err
	}
	if isHTMX(c) {
		return c.HTML(http.StatusOK, "")
	}
	// Back to the page the notice was dismissed on.
	back := "/portal"
	if u, err := url.Parse(c.Request().Referer()); err == nil && u.Host == c.Request().Host && strings.HasPrefix(u.Path, "/portal") {
		back = u.RequestURI()
	}
	return c.Redirect(http.StatusSeeOther, back)
}

// GET /portal/top-ups/return: back from authenticating a payment (Stripe
// adds ?payment_intent=pi_...): on to that purchase's status page.
func (s *Server) topUpReturn(c echo.Context) error {
	tu, err := s.customerTopUpByPayment(c, c.QueryParam("payment_intent"))
	if err != nil {
		return c.Redirect(http.StatusSeeOther, "/portal/billing#receipts")
	}
	return c.Redirect(http.StatusSeeOther, "/portal/top-ups/"+tu.ID)
}
