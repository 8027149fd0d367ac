package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
)

// planForm is a confirmation's form, as its confirming button posts it.
func planForm(t *testing.T, confirm response) url.Values {
	t.Helper()
	return formValues(t, confirm, `[data-testid="plan-confirm"] form[action="/portal/plan"]`)
}

// choosePlan asks to confirm action (on plan) and returns the dialog.
func (v *portalVisitor) choosePlan(action, plan string) response {
	v.t.Helper()
	return v.post("/portal/plan/confirm", url.Values{"_csrf": {v.csrf("/portal/plan")}, "action": {action}, "plan": {plan}},
		"HX-Request", "true").want(v.t, http.StatusOK)
}

// TestPlanThroughThePortal subscribes in the sandbox from the Plan tab,
// upgrades with a prorated grant shown before it is confirmed (hand
// computed), schedules a downgrade, takes it back and cancels; a second
// press of a confirmation writes nothing more.
func TestPlanThroughThePortal(t *testing.T) {
	p := newPayAPI(t)
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	id, v := p.shopper(t, "acme")

	page := v.get("/portal/plan").want(t, http.StatusOK)
	d := doc(t, page)
	if d.Find(`nav a[href="/portal/plan"][aria-current="page"]`).Length() != 1 || d.Find(`[data-testid="no-plan"]`).Length() != 1 ||
		d.Find(`[data-testid="plan-choice"]`).Length() != 2 {
		t.Fatalf("plan tab before subscribing:\n%s", page.Raw)
	}

	// Subscribe to Starter: the dialog says what happens, then it happens once.
	dlg := v.choosePlan("subscribe", "starter")
	if got := testID(t, dlg, "plan-confirm-text"); got != "You will get 2,000 credits now and pay $19.00 today, then $19.00 every month for 2,000 credits." {
		t.Fatalf("subscribe confirmation: %q", got)
	}
	if p.available(t, id) != 0 {
		t.Fatal("the confirmation wrote something")
	}
	form := planForm(t, dlg)
	if loc := v.location(v.post("/portal/plan", form), http.StatusSeeOther); loc != "/portal/plan" {
		t.Fatalf("after subscribing: %s", loc)
	}
	if got := p.available(t, id); got != billing.CreditsOf(2000) {
		t.Fatalf("after subscribing: %s credits", got)
	}
	page = v.get("/portal/plan").want(t, http.StatusOK)
	if f := testID(t, page, "flash"); !strings.Contains(f, "You are on Starter: 2,000 credits were added.") {
		t.Fatalf("flash: %q", f)
	}
	if got := testID(t, page, "current-plan-name"); got != "Starter" {
		t.Fatalf("current plan: %q", got)
	}
	v.post("/portal/plan", form) // the same press again
	if got := p.available(t, id); got != billing.CreditsOf(2000) {
		t.Fatalf("a second press changed the credits to %s", got)
	}
	// The payment is a receipt among the customer's notifications, once,
	// with the way to the plan.
	nd := doc(t, v.get("/portal/notifications").want(t, http.StatusOK))
	receipts := nd.Find(`[data-testid="notification"]`).FilterFunction(func(_ int, s *goquery.Selection) bool {
		return strings.Contains(s.Text(), "Receipt: Starter plan")
	})
	if receipts.Length() != 1 || !strings.Contains(receipts.Text(), "You paid $19.00 for the Starter plan: 2,000 credits for ") ||
		receipts.Find(`a[href="/portal/plan"]`).Length() != 1 {
		t.Fatalf("plan receipt among the notifications: %d\n%s", receipts.Length(), nd.Text())
	}

	// Ten days into the 31-day period (10 Mar to 10 Apr), Starter ($19,
	// 2,000 credits) to Pro ($49, 6,000): $30.00 * 21/31 = $20.322 -> $20.32,
	// which buys $20.32 * 4,000/$30.00 = 2,709.3 -> 2,709 credits (the credits
	// follow the money charged; by time alone, 2,709.7 -> 2,709).
	p.Clock.Advance(10 * 24 * time.Hour)
	dlg = v.choosePlan("change", "pro")
	if got := testID(t, dlg, "plan-confirm-text"); !strings.HasPrefix(got, "You will get 2,709 credits now and pay $20.32 today. From ") ||
		!strings.HasSuffix(got, ", Pro renews at $49.00 every month with 6,000 credits.") {
		t.Fatalf("upgrade confirmation: %q", got)
	}
	v.location(v.post("/portal/plan", planForm(t, dlg)), http.StatusSeeOther)
	if got := p.available(t, id); got != billing.CreditsOf(2000+2709) {
		t.Fatalf("after the upgrade: %s credits", got)
	}
	if f := testID(t, v.get("/portal/plan"), "flash"); !strings.Contains(f, "2,709 credits were added and $20.32 was charged") {
		t.Fatalf("upgrade flash: %q", f)
	}

	// Back to Starter: at the period's end, nothing now.
	dlg = v.choosePlan("change", "starter")
	if got := testID(t, dlg, "plan-confirm-text"); !strings.HasPrefix(got, "Nothing changes today.") {
		t.Fatalf("downgrade confirmation: %q", got)
	}
	v.location(v.post("/portal/plan", planForm(t, dlg)), http.StatusSeeOther)
	page = v.get("/portal/plan")
	if got := testID(t, page, "plan-status"); !strings.HasPrefix(got, "Switches to Starter on") {
		t.Fatalf("status after the downgrade: %q", got)
	}
	dlg = v.choosePlan("resume", "")
	v.location(v.post("/portal/plan", planForm(t, dlg)), http.StatusSeeOther)
	if got := testID(t, v.get("/portal/plan"), "plan-status"); !strings.HasPrefix(got, "Renews on") {
		t.Fatalf("status after keeping Pro: %q", got)
	}
	dlg = v.choosePlan("cancel", "")
	if got := testID(t, dlg, "plan-confirm-text"); !strings.HasPrefix(got, "Your plan ends on") {
		t.Fatalf("cancel confirmation: %q", got)
	}
	v.location(v.post("/portal/plan", planForm(t, dlg)), http.StatusSeeOther)
	page = v.get("/portal/plan")
	if got := testID(t, page, "plan-status"); !strings.HasPrefix(got, "Ends on") {
		t.Fatalf("status after canceling: %q", got)
	}
	// What was paid is in the notifications, newest first: the upgrade's
	// receipt, then the subscription's; the downgrade, the resume and the
	// cancellation charged nothing and are not there.
	var plan []string
	doc(t, v.get("/portal/notifications").want(t, http.StatusOK)).Find(`[data-testid="notification"]`).Each(func(_ int, s *goquery.Selection) {
		title := s.Find("p.font-semibold").First()
		title.Find(`[data-testid="notification-new"]`).Remove()
		if h := strings.Join(strings.Fields(title.Text()), " "); strings.Contains(h, "plan") || strings.Contains(h, "Pro") {
			plan = append(plan, h)
		}
	})
	if strings.Join(plan, " | ") != "Receipt: upgrade to Pro | Receipt: Starter plan" {
		t.Fatalf("plan notifications: %q", plan)
	}
	if n := doc(t, page).Find(`[data-testid="plan-invoice"]`).Length(); n != 2 {
		t.Fatalf("%d plan invoices, want 2 (the first period, the upgrade)", n)
	}

	// Plan invoices are purchases with receipts, the customer's own.
	var descs []string
	for _, r := range v.purchases() {
		descs = append(descs, r.Description+" "+r.Amount)
	}
	if len(descs) != 2 || !strings.HasPrefix(descs[0], "Upgrade to Pro (prorated)") || !strings.HasSuffix(descs[0], "$20.32") {
		t.Fatalf("purchases: %q", descs)
	}
	// The table's receipt links (the phone list has them too).
	links := doc(t, v.get("/portal/billing")).Find(`[data-testid="receipt-row"] a[href^="/portal/plan/receipts/"]`)
	receipt, _ := links.First().Attr("href")
	if links.Length() != 2 {
		t.Fatalf("%d plan receipts in the purchases table, want 2", links.Length())
	}
	// On a phone, a plan payment's line is its date alone: no card, no dangling "·".
	phone := doc(t, v.get("/portal/billing")).Find(`[data-testid="purchase-list"] li`)
	if phone.Length() == 0 {
		t.Fatal("no purchases on a phone")
	}
	phone.Each(func(_ int, li *goquery.Selection) {
		w := li.Find(`[data-testid="purchase-when"]`)
		if txt := strings.Join(strings.Fields(w.Text()), " "); w.Length() != 1 || txt == "" || strings.HasSuffix(txt, "·") {
			t.Errorf("a purchase's date line on a phone: %q", txt)
		}
	})
	if got := testID(t, v.get(receipt).want(t, http.StatusOK), "receipt"); !strings.Contains(got, "$20.32") {
		t.Fatalf("the upgrade's receipt: %q", got)
	}
	_, other := p.shopper(t, "other")
	other.get(receipt).want(t, http.StatusNotFound)

	// The overview's forecast knows nothing renews after a cancellation;
	// the clock is the demo's only.
	if doc(t, v.get("/portal")).Find(`[data-testid="plan-renewal"]`).Length() != 0 {
		t.Fatal("a canceled plan's renewal in the forecast")
	}
	v.post("/portal/plan/clock", url.Values{"_csrf": {v.csrf("/portal/plan")}}).want(t, http.StatusNotFound)
	p.verify(t)
}

// TestPlanForecastOnTheOverview: a subscriber's overview says when the plan
// renews, and that they will not run out when it covers their use.
func TestPlanForecastOnTheOverview(t *testing.T) {
	p := newPayAPI(t)
	if _, _, err := p.DB.PublishPriceBook(context.Background(), planBook()); err != nil {
		t.Fatal(err)
	}
	_, v := p.shopper(t, "acme")
	dlg := v.choosePlan("subscribe", "pro")
	v.location(v.post("/portal/plan", planForm(t, dlg)), http.StatusSeeOther)
	got := testID(t, v.get("/portal").want(t, http.StatusOK), "plan-renewal")
	if !strings.HasPrefix(got, "Your plan renews on") || !strings.Contains(got, "6,000 credits") || !strings.HasSuffix(got, "you will not run out.") {
		t.Fatalf("overview: %q", got)
	}
}

// TestPlanRoutesNeedASignedInCustomer: the Plan tab and its forms are a
// signed-in customer's; anyone else is sent to sign in and nothing is written.
func TestPlanRoutesNeedASignedInCustomer(t *testing.T) {
	p := newPayAPI(t)
	if _, _, err := p.DB.PublishPriceBook(context.Background(), planBook()); err != nil {
		t.Fatal(err)
	}
	id := p.namedCustomer(t, "acme", "Acme")
	anon := newPortalVisitor(t, p.testAPI)
	for _, r := range []response{
		anon.get("/portal/plan"),
		anon.post("/portal/plan", url.Values{"action": {"subscribe"}, "plan": {"pro"}, "key": {"click_x"}}),
		anon.post("/portal/plan/confirm", url.Values{"action": {"subscribe"}, "plan": {"pro"}}),
	} {
		if r.Status < 300 || r.Status == http.StatusOK {
			t.Fatalf("anonymous request answered %d", r.Status)
		}
	}
	if sub, _ := p.DB.FindSubscription(context.Background(), id); sub != nil {
		t.Fatalf("an anonymous request subscribed: %+v", sub)
	}
}

// TestSubscriptionAPI: GET /api/v1/customers/{id}/subscription answers the
// plan and its credits this period; 404 before the customer subscribes.
func TestSubscriptionAPI(t *testing.T) {
	p := newPayAPI(t)
	if _, _, err := p.DB.PublishPriceBook(context.Background(), planBook()); err != nil {
		t.Fatal(err)
	}
	_, v := p.shopper(t, "acme")
	p.do("GET", "/api/v1/customers/acme/subscription", p.Read, nil).wantError(t, http.StatusNotFound, billing.CodeNotFound)
	v.location(v.post("/portal/plan", planForm(t, v.choosePlan("subscribe", "starter"))), http.StatusSeeOther)
	if _, err := p.DB.Debit(context.Background(), billing.UsageRequest{Customer: "acme", Feature: "image.generate", Quantity: ptrQty(10)}); err != nil {
		t.Fatal(err)
	}
	r := p.do("GET", "/api/v1/customers/acme/subscription", p.Read, nil).want(t, http.StatusOK)
	pc, _ := r.Body["period_credits"].(map[string]any)
	if r.Body["object"] != "subscription" || r.Body["plan"] != "starter" || r.Body["status"] != "active" || pc == nil ||
		fmt.Sprint(pc["granted"]) != "2000" || fmt.Sprint(pc["left"]) != "1950" || fmt.Sprint(pc["rolled_over"]) != "0" {
		t.Fatalf("subscription: %s", r.Raw)
	}
}

func ptrQty(n int64) *billing.Quantity { q := billing.QuantityOf(n); return &q }
