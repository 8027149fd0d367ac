package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
)

// planBook is the handlers' test price book with two plans.
func planBook() billing.PriceBook {
	pb := testPriceBook()
	pb.Plans = []billing.Plan{
		{Key: "starter", Name: "Starter", Price: billing.Money{Amount: 19_00}, Credits: billing.CreditsOf(2000),
			Rollover: billing.Rollover{Policy: billing.RolloverUpTo, Max: billing.CreditsOf(1000)}, Packs: true},
		{Key: "pro", Name: "Pro", Price: billing.Money{Amount: 49_00}, Credits: billing.CreditsOf(6000),
			Rollover: billing.Rollover{Policy: billing.RolloverAll}, Packs: true},
	}
	return pb
}

// stripeInvoice is an invoice object as Stripe sends it in invoice.* events
// (API 2023-10-16): the subscription line's period is the period paid for.
func stripeInvoice(id, sub, customer, reason string, start, end time.Time, paid int64, attempt int, nextAttempt string) string {
	return fmt.Sprintf(`{"id":%q,"object":"invoice","customer":"cus_T","subscription":%q,"billing_reason":%q,"amount_paid":%d,"amount_due":1900,
		"currency":"usd","attempt_count":%d,"next_payment_attempt":%s,"period_start":%d,"period_end":%d,
		"subscription_details":{"metadata":{"tally_customer":%q,"tally_plan":"starter","tally_price_version":"2"}},
		"lines":{"object":"list","data":[{"id":"il_1","object":"line_item","proration":false,"period":{"start":%d,"end":%d},
		"price":{"id":"price_T","object":"price","lookup_key":"tally/starter/month/1900usd"}}]}}`,
		id, sub, reason, paid, attempt, nextAttempt, start.AddDate(0, -1, 0).Unix(), start.Unix(), customer, start.Unix(), end.Unix())
}

func stripeSubscription(id, status string, cancelAtEnd bool, start, end time.Time, lookup string) string {
	return fmt.Sprintf(`{"id":%q,"object":"subscription","customer":"cus_T","status":%q,"cancel_at_period_end":%t,
		"current_period_start":%d,"current_period_end":%d,"metadata":{},
		"items":{"object":"list","data":[{"id":"si_1","object":"subscription_item","price":{"id":"price_T","object":"price","lookup_key":%q}}]}}`,
		id, status, cancelAtEnd, start.Unix(), end.Unix(), lookup)
}

// TestStripeSubscriptionWebhooks: the first invoice.paid starts the
// subscription and grants its period; replays (the same event, or another
// event for the same invoice) grant nothing more; the next period's invoice
// arriving before the one in between grants each period once; a failed
// invoice starts the dunning and the provider's last attempt ends the
// plan; customer.subscription.updated and .deleted keep Tally in step.
func TestStripeSubscriptionWebhooks(t *testing.T) {
	p := newStripeAPI(t)
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	id := p.namedCustomer(t, "acme", "Acme")
	p1 := time.Now().UTC().Truncate(time.Second)
	p2, p3, p4 := p1.AddDate(0, 1, 0), p1.AddDate(0, 2, 0), p1.AddDate(0, 3, 0)
	grants := func() int {
		return p.sqlCount(t, `SELECT COUNT(*) FROM entries WHERE customer_id = ? AND type = 'grant' AND source = 'subscription'`, id)
	}

	first := stripeEvent("evt_inv1", "invoice.paid", stripeInvoice("in_1", "sub_S", id, "subscription_create", p1, p2, 1900, 1, "null"))
	if r := p.deliver(t, first); r.Body["duplicate"] != false {
		t.Fatalf("first invoice: %s", r.Raw)
	}
	if got := p.available(t, id); got != billing.CreditsOf(2000) {
		t.Fatalf("after the first invoice: %s credits, want 2000", got)
	}
	sub, err := p.DB.FindSubscription(ctx, id)
	if err != nil || sub == nil || sub.Plan != "starter" || sub.Provider != "stripe" || sub.PriceVersion != 2 || !sub.CurrentPeriodEnd.Equal(p2) {
		t.Fatalf("subscription = %+v, %v", sub, err)
	}
	if r := p.deliver(t, first); r.Body["duplicate"] != true {
		t.Fatalf("replayed event: %s", r.Raw)
	}
	// Stripe sends the same invoice in another event (invoice.paid after a
	// retried delivery of its own, or the dashboard's "resend").
	p.deliver(t, stripeEvent("evt_inv1_again", "invoice.paid", stripeInvoice("in_1", "sub_S", id, "subscription_create", p1, p2, 1900, 1, "null")))
	if n := grants(); n != 1 {
		t.Fatalf("%d subscription grants after replays, want 1", n)
	}

	// Period 3 before period 2.
	p.deliver(t, stripeEvent("evt_inv3", "invoice.paid", stripeInvoice("in_3", "sub_S", id, "subscription_cycle", p3, p4, 1900, 1, "null")))
	p.deliver(t, stripeEvent("evt_inv2", "invoice.paid", stripeInvoice("in_2", "sub_S", id, "subscription_cycle", p2, p3, 1900, 1, "null")))
	p.deliver(t, stripeEvent("evt_inv2_b", "invoice.paid", stripeInvoice("in_2", "sub_S", id, "subscription_cycle", p2, p3, 1900, 1, "null")))
	if n := grants(); n != 3 {
		t.Fatalf("%d subscription grants, want 3 (one per period)", n)
	}
	if sub, _ = p.DB.FindSubscription(ctx, id); !sub.CurrentPeriodStart.Equal(p3) {
		t.Fatalf("current period starts %s, want %s", sub.CurrentPeriodStart, p3)
	}

	// Stripe says the customer asked to cancel at the period's end, then
	// took it back; an older update arriving late does not move the period back.
	p.deliver(t, stripeEvent("evt_sub_upd1", "customer.subscription.updated", stripeSubscription("sub_S", "active", true, p3, p4, "tally/starter/month/1900usd")))
	if sub, _ = p.DB.FindSubscription(ctx, id); !sub.CancelAtPeriodEnd {
		t.Fatalf("cancel_at_period_end not followed: %+v", sub)
	}
	p.deliver(t, stripeEvent("evt_sub_upd0", "customer.subscription.updated", stripeSubscription("sub_S", "active", false, p1, p2, "tally/pro/month/4900usd")))
	if sub, _ = p.DB.FindSubscription(ctx, id); sub.CancelAtPeriodEnd || sub.Plan != "pro" || !sub.CurrentPeriodStart.Equal(p3) {
		t.Fatalf("after the late update: %+v", sub)
	}

	// Dunning: three failed attempts, the last one final. The customer is
	// told of the first (with the way to a working card: the plan page
	// says so too) and of the last, not of the retry between.
	v := newPortalVisitor(t, p.testAPI)
	v.signIn("acme")
	for attempt := 1; attempt <= 3; attempt++ {
		next := fmt.Sprint(p4.Add(time.Duration(attempt) * 72 * time.Hour).Unix())
		if attempt == 3 {
			next = "null"
		}
		p.deliver(t, stripeEvent(fmt.Sprint("evt_fail", attempt), "invoice.payment_failed",
			stripeInvoice("in_4", "sub_S", id, "subscription_cycle", p4, p4.AddDate(0, 1, 0), 0, attempt, next)))
		sub, _ = p.DB.FindSubscription(ctx, id)
		want := billing.SubPastDue
		if attempt == 3 {
			want = billing.SubCanceled
		}
		if sub.Status != want {
			t.Fatalf("after attempt %d: %s, want %s", attempt, sub.Status, want)
		}
		if attempt == 1 {
			if href, _ := doc(t, v.get("/portal/plan").want(t, http.StatusOK)).Find(`[data-testid="plan-update-card"]`).Attr("href"); href != "/portal/billing#cards" {
				t.Fatalf("past due, the plan page offers no card update (%q)", href)
			}
		}
	}
	var told []string
	doc(t, v.get("/portal/notifications").want(t, http.StatusOK)).Find(`[data-testid="notification"]`).Each(func(_ int, s *goquery.Selection) {
		title := s.Find("p.font-semibold").First()
		title.Find(`[data-testid="notification-new"]`).Remove()
		link, _ := s.Find("a").Attr("href")
		told = append(told, strings.Join(strings.Fields(title.Text()), " ")+" -> "+link)
	})
	if got := strings.Join(told, " | "); got != "Your plan has ended -> /portal/plan | Your plan's payment failed -> /portal/billing#cards | "+
		"Receipt: Starter plan -> /portal/plan | Receipt: Starter plan -> /portal/plan | Receipt: Starter plan -> /portal/plan" {
		t.Fatalf("notifications: %s", got)
	}
	// The credits stop renewing: a late paid invoice of the ended plan grants nothing.
	p.deliver(t, stripeEvent("evt_inv5", "invoice.paid", stripeInvoice("in_5", "sub_S", id, "subscription_cycle", p4, p4.AddDate(0, 1, 0), 1900, 1, "null")))
	if n := grants(); n != 3 {
		t.Fatalf("%d subscription grants after the plan ended, want 3", n)
	}
	evs := p.sqlCount(t, `SELECT COUNT(*) FROM events WHERE customer_id = ? AND type = 'invoice.payment_failed'`, id)
	if evs != 3 {
		t.Fatalf("%d invoice.payment_failed events, want 3", evs)
	}
	p.verify(t)
}

// TestStripeSubscriptionDeleted: customer.subscription.deleted ends the
// plan in Tally at once.
func TestStripeSubscriptionDeleted(t *testing.T) {
	p := newStripeAPI(t)
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	id := p.namedCustomer(t, "acme", "Acme")
	p1 := time.Now().UTC().Truncate(time.Second)
	p.deliver(t, stripeEvent("evt_inv1", "invoice.paid", stripeInvoice("in_1", "sub_D", id, "subscription_create", p1, p1.AddDate(0, 1, 0), 1900, 1, "null")))
	p.deliver(t, stripeEvent("evt_del", "customer.subscription.deleted", stripeSubscription("sub_D", "canceled", false, p1, p1.AddDate(0, 1, 0), "tally/starter/month/1900usd")))
	sub, err := p.DB.FindSubscription(ctx, id)
	if err != nil || sub.Status != billing.SubCanceled || sub.CanceledAt == nil {
		t.Fatalf("after deleted: %+v, %v", sub, err)
	}
	if n := p.sqlCount(t, `SELECT COUNT(*) FROM events WHERE customer_id = ? AND type = 'subscription.canceled'`, id); n != 1 {
		t.Fatalf("%d subscription.canceled events, want 1", n)
	}
}

// TestStripePlanCancelTellsStripeFirst: a Stripe subscriber may cancel and
// switch plans in the portal; Stripe is told first, so when Stripe cannot
// be reached nothing changes in Tally either (no cancellation, no upgrade
// credits).
func TestStripePlanCancelTellsStripeFirst(t *testing.T) {
	p := newStripeAPI(t) // its Stripe API is unreachable
	ctx := context.Background()
	if _, _, err := p.DB.PublishPriceBook(ctx, planBook()); err != nil {
		t.Fatal(err)
	}
	id, v := p.shopper(t, "acme")
	p1 := time.Now().UTC().Truncate(time.Second)
	p.deliver(t, stripeEvent("evt_inv1", "invoice.paid", stripeInvoice("in_1", "sub_C", id, "subscription_create", p1, p1.AddDate(0, 1, 0), 1900, 1, "null")))
	page := doc(t, v.get("/portal/plan").want(t, http.StatusOK))
	if page.Find(`[data-testid="cancel-plan"]`).Length() != 1 || page.Find(`[data-testid="choose-pro"]`).Length() != 1 ||
		page.Find(`[data-testid="plan-billed-by-stripe"]`).Length() != 1 {
		t.Fatal("a Stripe plan's page: want a cancel button, the plans to switch to, and who bills it")
	}
	dlg := v.choosePlan("cancel", "")
	r := v.post("/portal/plan", planForm(t, dlg))
	if r.Status < 400 {
		t.Fatalf("cancel with Stripe unreachable answered %d", r.Status)
	}
	if sub, _ := p.DB.FindSubscription(ctx, id); sub.CancelAtPeriodEnd {
		t.Fatal("Tally recorded a cancellation Stripe never got")
	}
	before := p.available(t, id)
	r = v.post("/portal/plan", planForm(t, v.choosePlan("change", "pro")))
	if r.Status < 400 {
		t.Fatalf("an upgrade with Stripe unreachable answered %d", r.Status)
	}
	if sub, _ := p.DB.FindSubscription(ctx, id); sub.Plan != "starter" || p.available(t, id) != before {
		t.Fatalf("Tally recorded an upgrade Stripe never got: %+v, %s credits", sub, p.available(t, id))
	}
}
