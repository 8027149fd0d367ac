package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// NotificationStore is what the portal's notifications list and e-mail
// choices need (*db.DB).
type NotificationStore interface {
	FindNotifications(ctx context.Context, customerID string, before int64, limit int) ([]billing.Notice, bool, error)
	UnreadNotifications(ctx context.Context, customerID string, max int) (int, error)
	MarkNotificationsRead(ctx context.Context, customerID string, seq int64) error
	MailOptOuts(ctx context.Context, customerID string) (map[string]bool, error)
	SaveMailOptOuts(ctx context.Context, customerID string, on map[string]bool) error
}

// NotificationsConfig wires the portal's notifications.
type NotificationsConfig struct {
	Store NotificationStore // nil: no notifications page, bell or e-mail choices
	Mail  bool              // e-mail (SMTP) is configured
}

// notificationsPageSize is how many notifications one page lists.
const notificationsPageSize = 20

func (s *Server) notificationRoutes(p *echo.Group) {
	if s.cfg.Notifications.Store == nil {
		return
	}
	p.GET("/notifications", s.notificationsPage)
	p.POST("/settings/notifications", s.saveMailPrefs)
}

// GET /portal/notifications lists the customer's notifications, newest
// first; ?before=<seq> is the next (older) page. Opening the newest page
// marks them all read.
func (s *Server) notificationsPage(c echo.Context) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	ns := s.cfg.Notifications.Store
	var before int64
	if b := c.QueryParam("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return c.Redirect(http.StatusSeeOther, "/portal/notifications")
		}
		before = n
	}
	items, more, err := ns.FindNotifications(ctx, cid, before, notificationsPageSize)
	if err != nil {
		return err
	}
	// What was unread before this visit is marked "New" on this page.
	unread, err := ns.UnreadNotifications(ctx, cid, notificationsPageSize)
	if err != nil {
		return err
	}
	if before == 0 && len(items) > 0 {
		if err := ns.MarkNotificationsRead(ctx, cid, items[0].ID); err != nil {
			return err
		}
	}
	sh, err := s.shell(c, "Notifications", "notifications")
	if err != nil {
		return err
	}
	sh.Customer.Unread = 0 // read now
	v := views.NotificationsView{Newest: before == 0, MailOff: !s.cfg.Notifications.Mail}
	for i, n := range items {
		v.Items = append(v.Items, views.NotificationItem{Event: n, Unread: before == 0 && i < unread, Link: s.notificationLink(n)})
	}
	if more {
		v.Next = "/portal/notifications?before=" + strconv.FormatInt(items[len(items)-1].ID, 10)
	}
	return render(c, http.StatusOK, views.NotificationsPage(sh, v))
}

// notificationLink is where the customer acts on a notification.
func (s *Server) notificationLink(n billing.Notice) string {
	pay := s.cfg.Payments.Service != nil
	if views.PlanPaymentToFix(n) && pay {
		return "/portal/billing#cards"
	}
	switch billing.NotificationKind(n.Type, n.Data) {
	case billing.NotifyLowBalance, billing.NotifyDepleted:
		if pay {
			return "/portal/top-up"
		}
		return ""
	case billing.NotifyAutoRefill, billing.NotifyReceipt:
		if pay {
			return "/portal/billing"
		}
		return ""
	case billing.NotifyExpiring:
		return "/portal/ledger"
	case billing.NotifyPlan:
		return "/portal/plan"
	}
	return ""
}

// unread is the header's count of unseen notifications (-1: no list).
func (s *Server) unread(ctx context.Context, customerID string) (int, error) {
	if s.cfg.Notifications.Store == nil {
		return -1, nil
	}
	return s.cfg.Notifications.Store.UnreadNotifications(ctx, customerID, views.UnreadMax)
}

// mailPrefs reads the settings page's e-mail section.
func (s *Server) mailPrefs(ctx context.Context, customerID string) (*views.MailPrefsView, error) {
	if s.cfg.Notifications.Store == nil {
		return nil, nil
	}
	off, err := s.cfg.Notifications.Store.MailOptOuts(ctx, customerID)
	if err != nil {
		return nil, err
	}
	cu, err := s.ledger.FindCustomer(ctx, customerID)
	if err != nil {
		return nil, err
	}
	v := &views.MailPrefsView{Email: cu.Email, On: map[string]bool{}, MailOff: !s.cfg.Notifications.Mail}
	for _, k := range billing.NotificationKinds {
		v.On[k] = !off[k]
	}
	return v, nil
}

// POST /portal/settings/notifications saves which notifications are
// e-mailed: the checked kinds are on, the others off.
func (s *Server) saveMailPrefs(c echo.Context) error {
	ctx := c.Request().Context()
	cid := currentCustomer(c).CustomerID
	form, err := c.FormParams()
	if err != nil {
		return billing.Errorf(billing.CodeInvalidRequest, "Could not read the form.")
	}
	on := map[string]bool{}
	for _, k := range form["mail"] {
		if billing.ValidNotificationKind(k) { // anything else is not from our form: ignored
			on[k] = true
		}
	}
	if err := s.cfg.Notifications.Store.SaveMailOptOuts(ctx, cid, on); err != nil {
		return err
	}
	if c.Request().Header.Get("HX-Request") != "true" {
		flash(c, "success", "E-mail choices saved.")
		return c.Redirect(http.StatusSeeOther, "/portal/settings#mail-prefs")
	}
	v, err := s.mailPrefs(ctx, cid)
	if err != nil {
		return err
	}
	v.Saved = true
	return render(c, http.StatusOK, views.MailPrefsForm(s.publicShell(c, "Spend controls"), *v))
}
