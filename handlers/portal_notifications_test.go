package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
)

// notificationsFixture: alpha (low-balance line 50) crossed it n times.
func notificationsFixture(t *testing.T, n int) (*notifyAPI, *portalVisitor) {
	t.Helper()
	p := newPayAPI(t)
	id := p.namedCustomer(t, "alpha", "Alpha Labs")
	line := billing.CreditsOf(50)
	if err := p.DB.UpdateCustomerSettings(context.Background(), id, billing.CustomerSettings{LowBalanceThreshold: &line}); err != nil {
		t.Fatal(err)
	}
	p.grant(t, "alpha", "100", "purchase")
	for range n {
		lowAgain(t, p)
	}
	v := newPortalVisitor(t, p.testAPI)
	v.signIn("alpha")
	return &notifyAPI{p, id}, v
}

type notifyAPI struct {
	*payAPI
	alpha string // alpha's customer id
}

// lowAgain takes alpha below the line (balance.low) and back (recovered).
func lowAgain(t *testing.T, p *payAPI) {
	t.Helper()
	p.usage("alpha", "image.generate", "12", "").want(t, http.StatusCreated) // 60 credits: 100 -> 40
	p.grant(t, "alpha", "60", "promo")
}

func TestPortalNotifications(t *testing.T) {
	p, v := notificationsFixture(t, 22)

	bell := testID(t, v.get("/portal").want(t, http.StatusOK), "notification-unread")
	if bell != "9+" {
		t.Fatalf("header unread %q, want 9+", bell)
	}
	r := v.get("/portal/notifications").want(t, http.StatusOK)
	d := doc(t, r)
	items := d.Find(`[data-testid="notification"]`)
	if items.Length() != 20 {
		t.Fatalf("%d notifications on the first page, want 20", items.Length())
	}
	if d.Find(`[data-testid="notification-new"]`).Length() != 20 {
		t.Errorf("%d marked new, want the 20 unread", d.Find(`[data-testid="notification-new"]`).Length())
	}
	if got := items.First().Text(); !strings.Contains(got, "Your balance is low") || !strings.Contains(got, "down to 40 credits") {
		t.Errorf("first notification: %q", got)
	}
	var ids []int
	items.Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "notification-"))
		ids = append(ids, n)
	})
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("not newest first: %v", ids)
		}
	}
	if d.Find(`header [data-testid="notification-unread"]`).Length() != 0 {
		t.Error("the header still counts unread notifications on the list")
	}
	older, _ := d.Find(`[data-testid="notifications-older"]`).Attr("href")
	if older == "" {
		t.Fatal("no link to older notifications")
	}
	// Read now: the badge is gone from other pages.
	if doc(t, v.get("/portal").want(t, http.StatusOK)).Find(`[data-testid="notification-unread"]`).Length() != 0 {
		t.Error("unread count after opening the list")
	}
	d2 := doc(t, v.get(older).want(t, http.StatusOK))
	if n := d2.Find(`[data-testid="notification"]`).Length(); n != 2 {
		t.Errorf("%d on the older page, want 2", n)
	}
	if d2.Find(`[data-testid="notifications-older"]`).Length() != 0 || d2.Find(`[data-testid="notification-new"]`).Length() != 0 {
		t.Error("the last page offers an older page or marks old notifications new")
	}
	// A new one counts again; another customer's never does.
	lowAgain(t, p.payAPI)
	p.namedCustomer(t, "beta", "Beta")
	if got := testID(t, v.get("/portal").want(t, http.StatusOK), "notification-unread"); got != "1" {
		t.Errorf("unread %q after one more, want 1", got)
	}
}

func TestPortalNotificationsEmpty(t *testing.T) {
	_, v := notificationsFixture(t, 0)
	r := v.get("/portal/notifications").want(t, http.StatusOK)
	if got := testID(t, r, "notifications-empty"); !strings.Contains(got, "No notifications yet") {
		t.Errorf("empty state: %q", got)
	}
}

func TestPortalMailPrefs(t *testing.T) {
	p, v := notificationsFixture(t, 0)
	d := doc(t, v.get("/portal/settings").want(t, http.StatusOK))
	boxes := d.Find(`form[data-testid="mail-prefs"] input[type="checkbox"][name="mail"]`)
	if boxes.Length() != len(billing.NotificationKinds) || boxes.Filter("[checked]").Length() != len(billing.NotificationKinds) {
		t.Fatalf("%d checkboxes, %d checked; want every kind, on by default", boxes.Length(), boxes.Filter("[checked]").Length())
	}
	boxes.Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		if d.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("checkbox %s has no label", id)
		}
	})
	tok := v.csrf("/portal/settings")
	r := v.post("/portal/settings/notifications", url.Values{"_csrf": {tok}, "mail": {billing.NotifyReceipt, billing.NotifyExpiring, "bogus"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("save: %d", r.Status)
	}
	off, err := p.DB.MailOptOuts(context.Background(), p.alpha)
	if err != nil {
		t.Fatal(err)
	}
	if len(off) != len(billing.NotificationKinds)-2 || !off[billing.NotifyLowBalance] || !off[billing.NotifyPlan] || off[billing.NotifyReceipt] {
		t.Errorf("opt-outs %v", off)
	}
	d = doc(t, v.get("/portal/settings").want(t, http.StatusOK))
	if got := d.Find(`form[data-testid="mail-prefs"] input[checked]`).Length(); got != 2 {
		t.Errorf("%d checked after the save, want 2", got)
	}
	// Without the CSRF token nothing is saved.
	r = v.post("/portal/settings/notifications", url.Values{"mail": {billing.NotifyLowBalance}})
	if r.Status != http.StatusForbidden {
		t.Errorf("without a CSRF token: %d", r.Status)
	}
	// htmx gets the section back with a confirmation.
	r = v.post("/portal/settings/notifications", url.Values{"_csrf": {tok}}, "HX-Request", "true").want(t, http.StatusOK)
	if !strings.Contains(testID(t, r, "mail-prefs-saved"), "saved") {
		t.Errorf("htmx answer: %.300s", r.Raw)
	}
	if off, _ := p.DB.MailOptOuts(context.Background(), p.alpha); len(off) != len(billing.NotificationKinds) {
		t.Errorf("nothing checked: %d kinds off, want all", len(off))
	}
}
