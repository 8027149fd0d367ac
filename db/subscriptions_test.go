package db_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

func planPriceBook() billing.PriceBook {
	pb := testPriceBook()
	pb.Plans = []billing.Plan{
		{Key: "starter", Name: "Starter", Price: billing.Money{Amount: 1000}, Credits: billing.CreditsOf(1000),
			Rollover: billing.Rollover{Policy: billing.RolloverUpTo, Max: billing.CreditsOf(500), Periods: 2}, Packs: true},
		{Key: "pro", Name: "Pro", Price: billing.Money{Amount: 4000}, Credits: billing.CreditsOf(5000),
			Rollover: billing.Rollover{Policy: billing.RolloverAll}, Packs: true},
		{Key: "basic", Name: "Basic", Price: billing.Money{Amount: 500}, Credits: billing.CreditsOf(300)},
	}
	return pb
}

func mustPlanDB(t *testing.T, clk *clock) *db.DB {
	t.Helper()
	d := mustOpenDB(t, clk.Now)
	if _, _, err := d.PublishPriceBook(context.Background(), planPriceBook()); err != nil {
		t.Fatal(err)
	}
	return d
}

func mustBalance(t *testing.T, d *db.DB, id string, want int64) {
	t.Helper()
	b, err := d.Balance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if b.Balance != billing.CreditsOf(want) {
		t.Fatalf("balance = %s, want %d", b.Balance, want)
	}
}

func eventCounts(t *testing.T, d *db.DB, customer string) map[string]int {
	t.Helper()
	evs, err := d.FindEvents(context.Background(), db.EventFilter{Customer: customer, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range evs {
		out[e.Type]++
	}
	return out
}

// TestSandboxSubscriptionLivesThroughPeriods subscribes to Starter (1,000
// credits a month, up to 500 roll over for two periods), uses 200, and
// advances the sandbox clock: 500 carry, 300 expire, 1,000 renew; plan
// credits burn before purchased ones.
func TestSandboxSubscriptionLivesThroughPeriods(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 100)
	res, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "starter", Actor: billing.CustomerActor(id)})
	if err != nil {
		t.Fatal(err)
	}
	sub := res.Subscription
	if sub.Status != billing.SubActive || sub.PriceVersion != 2 || !sub.CurrentPeriodEnd.Equal(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("subscription = %+v", sub)
	}
	mustBalance(t, d, id, 1100)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "pro"}); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("second subscription: %v, want conflict", err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(200)}); err != nil {
		t.Fatal(err)
	}
	// The plan's credits burned first: the purchase is untouched.
	lots, err := d.FindLots(ctx, id, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lots {
		if l.Source == billing.SourcePurchase && l.Remaining != billing.CreditsOf(100) {
			t.Fatalf("purchased lot burned first: %+v", l)
		}
	}

	adv, err := d.AdvanceSandbox(ctx, 31*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if adv.Renewed != 1 {
		t.Fatalf("advance = %+v, want one renewal", adv)
	}
	// 100 purchased + 500 rolled over + 1,000 renewed.
	mustBalance(t, d, id, 1600)
	again, err := d.AdvanceSandbox(ctx, 0)
	if err != nil || again.Renewed != 0 {
		t.Fatalf("advance by 0 = %+v, %v; want nothing renewed", again, err)
	}
	cur, _ := d.FindSubscription(ctx, id)
	u, err := d.SubscriptionCredits(ctx, *cur)
	if err != nil {
		t.Fatal(err)
	}
	if u.Granted != billing.CreditsOf(1000) || u.Left != billing.CreditsOf(1000) || u.RolledOver != billing.CreditsOf(500) {
		t.Fatalf("plan usage = %+v", u)
	}

	// Nothing used in period 2: 1,000 unused, but 500 rolled-over credits
	// still live (two periods), so the cap lets none carry.
	if _, err := d.AdvanceSandbox(ctx, 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, d, id, 1600)
	cur, _ = d.FindSubscription(ctx, id)
	u, _ = d.SubscriptionCredits(ctx, *cur)
	if u.RolledOver != billing.CreditsOf(500) || u.Left != billing.CreditsOf(1000) {
		t.Fatalf("plan usage after period 2 = %+v", u)
	}
	ev := eventCounts(t, d, id)
	if ev[billing.EventSubscriptionCreated] != 1 || ev[billing.EventSubscriptionRenewed] != 2 || ev[billing.EventCreditsRolledOver] != 1 ||
		ev[billing.EventGrantExpired] != 2 {
		t.Fatalf("events = %v", ev)
	}
	inv, err := d.ListSubscriptionInvoices(ctx, id, 10)
	if err != nil || len(inv) != 3 || inv[0].Amount.Amount != 1000 {
		t.Fatalf("invoices = %+v, %v", inv, err)
	}
	mustVerify(t, d)
}

// TestRenewalExactlyOncePerPeriod replays invoice.paid for one period from
// many goroutines, sends a second invoice for the same period, and the
// next period's invoice before the previous one: each period's credits are
// granted once, and the newest period stays current.
func TestRenewalExactlyOncePerPeriod(t *testing.T) {
	ctx := context.Background()
	p1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	p2, p3, p4 := p1.AddDate(0, 1, 0), p1.AddDate(0, 2, 0), p1.AddDate(0, 3, 0)
	clk := &clock{t: p1}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 0)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "basic", Provider: db.ProviderStripe, ProviderID: "sub_S1",
		Invoice: "in_1", Start: p1, End: p2}); err != nil {
		t.Fatal(err)
	}
	// The checkout's answer and the webhook both bring in_1.
	if r, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "basic", Provider: db.ProviderStripe, ProviderID: "sub_S1",
		Invoice: "in_1", Start: p1, End: p2}); err != nil || !r.Replayed {
		t.Fatalf("replayed first invoice = %+v, %v", r, err)
	}
	clk.Add(31 * 24 * time.Hour)
	// Period 3's invoice arrives first.
	if _, err := d.RenewSubscription(ctx, db.RenewInput{Subscription: "sub_S1", Invoice: "in_3", Start: p3, End: p4}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	replayed := make([]bool, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inv := "in_2"
			if i%4 == 3 {
				inv = "in_2_retry" // another invoice for the same period
			}
			r, err := d.RenewSubscription(ctx, db.RenewInput{Subscription: "sub_S1", Invoice: inv, Start: p2, End: p3})
			replayed[i], errs[i] = r.Replayed, err
		}()
	}
	wg.Wait()
	fresh := 0
	for i := range 8 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !replayed[i] {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d renewals of period 2 granted credits, want 1", fresh)
	}
	es, _, err := d.FindEntries(ctx, billing.EntryFilter{Customer: id, Type: billing.EntryGrant, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d grants, want 3 (one per period)", len(es))
	}
	sub, _ := d.FindSubscription(ctx, id)
	if !sub.CurrentPeriodStart.Equal(p3) {
		t.Fatalf("current period starts %s, want %s (the late invoice must not move it back)", sub.CurrentPeriodStart, p3)
	}
	// The late invoice of period 2 after the fact, once more.
	if r, err := d.RenewSubscription(ctx, db.RenewInput{Subscription: sub.ID, Invoice: "in_2", Start: p2, End: p3}); err != nil || !r.Replayed {
		t.Fatalf("replay = %+v, %v", r, err)
	}
	if ev := eventCounts(t, d, id); ev[billing.EventSubscriptionRenewed] != 2 {
		t.Fatalf("renewed events = %d, want 2", ev[billing.EventSubscriptionRenewed])
	}
	mustVerify(t, d)
}

// TestRolloverAtTheLotSweep: with a real provider the period's end comes
// from the clock: the expiry sweep closes the period (rollover), and the
// invoice.paid that arrives later grants the next one.
func TestRolloverAtTheLotSweep(t *testing.T) {
	ctx := context.Background()
	p1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: p1}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 0)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "pro", Provider: db.ProviderStripe, ProviderID: "sub_P",
		Invoice: "in_1", Start: p1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(100)}); err != nil {
		t.Fatal(err)
	}
	clk.Add(30*24*time.Hour + time.Minute)
	if _, err := d.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	// Pro rolls everything over: 4,500 stay.
	mustBalance(t, d, id, 4500)
	if _, err := d.RenewSubscription(ctx, db.RenewInput{Subscription: "sub_P", Invoice: "in_2", Start: p1.AddDate(0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, d, id, 9500)
	// The rolled-over lot expires at the end of period 2 with the new one.
	clk.Add(31 * 24 * time.Hour)
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "chat.request", Quantity: qty(1)}); err != nil {
		t.Fatal(err)
	}
	// Pro's rollover lives one period: the 4,500 expire, 4,999 of period 2 roll.
	mustBalance(t, d, id, 4999)
	mustVerify(t, d)
}

// TestPlanChangesProrate upgrades 12 days into a 30-day period (hand
// computed: 4,000 * 18/30 = 2,400 credits, $30.00 * 18/30 = $18.00),
// schedules a downgrade, resumes, cancels at the period's end and lives
// past it.
func TestPlanChangesProrate(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 0)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "starter"}); err != nil {
		t.Fatal(err)
	}
	clk.Add(12 * 24 * time.Hour)
	preview, err := d.ChangePlan(ctx, id, "pro", true, billing.CustomerActor(id))
	if err != nil {
		t.Fatal(err)
	}
	q := preview.Quote
	if q == nil || !q.Upgrade || q.CreditsNow != billing.CreditsOf(2400) || q.AmountNow.Amount != 1800 {
		t.Fatalf("preview = %+v", q)
	}
	mustBalance(t, d, id, 1000) // the preview wrote nothing
	up, err := d.ChangePlan(ctx, id, "pro", false, billing.CustomerActor(id))
	if err != nil || up.Subscription.Plan != "pro" {
		t.Fatalf("upgrade = %+v, %v", up, err)
	}
	mustBalance(t, d, id, 3400)
	down, err := d.ChangePlan(ctx, id, "basic", false, billing.CustomerActor(id))
	if err != nil || down.Quote.Upgrade || down.Subscription.NextPlan != "basic" || down.Subscription.Plan != "pro" {
		t.Fatalf("downgrade = %+v, %v", down, err)
	}
	mustBalance(t, d, id, 3400)
	if s, err := d.ResumeSubscription(ctx, id, billing.CustomerActor(id)); err != nil || s.NextPlan != "" {
		t.Fatalf("resume = %+v, %v", s, err)
	}
	if _, err := d.ChangePlan(ctx, id, "basic", false, billing.CustomerActor(id)); err != nil {
		t.Fatal(err)
	}
	// The downgrade takes effect at renewal: Basic's 300 credits. Each lot
	// keeps the rule it was granted with: Starter's 1,000 carry up to its
	// cap (500, for two periods), the upgrade's 2,400 all (Pro, one period).
	if _, err := d.AdvanceSandbox(ctx, 20*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	sub, _ := d.FindSubscription(ctx, id)
	if sub.Plan != "basic" || sub.NextPlan != "" {
		t.Fatalf("after renewal = %+v", sub)
	}
	mustBalance(t, d, id, 3200)
	if _, err := d.CancelSubscription(ctx, id, true, billing.CustomerActor(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AdvanceSandbox(ctx, 40*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	sub, _ = d.FindSubscription(ctx, id)
	if sub.Status != billing.SubCanceled {
		t.Fatalf("after the canceled period = %+v", sub)
	}
	ev := eventCounts(t, d, id)
	if ev[billing.EventSubscriptionCanceled] != 1 || ev[billing.EventSubscriptionRenewed] != 1 {
		t.Fatalf("events = %v", ev)
	}
	// Basic rolls nothing over and Pro's rollover ended with period 2;
	// Starter's 500 live to the end of period 3.
	mustBalance(t, d, id, 500)
	mustVerify(t, d)
}

// TestPaymentFailureStopsRenewals: a failed invoice makes the subscription
// past due and tells (invoice.payment_failed); when the provider gives up
// it is canceled and its next invoice grants nothing.
func TestPaymentFailureStopsRenewals(t *testing.T) {
	ctx := context.Background()
	p1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: p1}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 0)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "basic", Provider: db.ProviderStripe, ProviderID: "sub_F",
		Invoice: "in_1", Start: p1}); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		s, err := d.SubscriptionPaymentFailed(ctx, db.InvoiceFailedInput{Subscription: "sub_F", Invoice: "in_2",
			Amount: billing.Money{Amount: 500, Currency: "usd"}, Attempt: attempt, Final: attempt == 3})
		if err != nil {
			t.Fatal(err)
		}
		want := billing.SubPastDue
		if attempt == 3 {
			want = billing.SubCanceled
		}
		if s.Status != want {
			t.Fatalf("attempt %d: status %s, want %s", attempt, s.Status, want)
		}
	}
	_, err := d.RenewSubscription(ctx, db.RenewInput{Subscription: "sub_F", Invoice: "in_3", Start: p1.AddDate(0, 2, 0)})
	if billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("renewal of a canceled subscription: %v", err)
	}
	if ev := eventCounts(t, d, id); ev[billing.EventInvoicePaymentFailed] != 3 || ev[billing.EventSubscriptionCanceled] != 1 {
		t.Fatalf("events = %v", ev)
	}
	// The dunning notices: each attempt's replaces the last; the final one stays.
	ns, err := d.FindNotices(ctx, id, 10)
	if err != nil || len(ns) != 1 || ns[0].Type != billing.EventInvoicePaymentFailed || ns[0].Data["final"] != true {
		t.Fatalf("notices = %+v, %v", ns, err)
	}
	subs, err := d.SubscribersPerPlan(ctx)
	if err != nil || len(subs) != 0 {
		t.Fatalf("subscribers = %+v, %v", subs, err)
	}
	mustVerify(t, d)
}

func TestSubscribersPerPlanAndMRR(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	for i, plan := range []string{"starter", "starter", "pro"} {
		id := mustCustomer(t, d, fmt.Sprint("c", i), 0)
		if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: plan}); err != nil {
			t.Fatal(err)
		}
	}
	subs, err := d.SubscribersPerPlan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []db.PlanSubscribers{{Plan: "pro", Subscribers: 1, MRR: billing.Money{Amount: 4000, Currency: "usd"}},
		{Plan: "starter", Subscribers: 2, MRR: billing.Money{Amount: 2000, Currency: "usd"}}}
	if fmt.Sprint(subs) != fmt.Sprint(want) {
		t.Fatalf("subscribers = %+v, want %+v", subs, want)
	}
}

// TestSandboxRenewsInRealTime: without the test clock, a sandbox
// subscription renews when the real time passes its period's end (the
// server's sweep calls AdvanceSandbox with 0), once.
func TestSandboxRenewsInRealTime(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 0)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "basic"}); err != nil {
		t.Fatal(err)
	}
	if res, err := d.AdvanceSandbox(ctx, 0); err != nil || res.Renewed != 0 {
		t.Fatalf("before the period's end: %+v, %v", res, err)
	}
	clk.Add(30*24*time.Hour + time.Second)
	for range 2 {
		if _, err := d.AdvanceSandbox(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	// Basic rolls nothing over: 300 new credits, the first period's gone.
	mustBalance(t, d, id, 300)
	if inv, _ := d.ListSubscriptionInvoices(ctx, id, 10); len(inv) != 2 {
		t.Fatalf("%d invoices, want 2", len(inv))
	}
	mustVerify(t, d)
}

// TestSubscriberKeepsTheirVersion: a new price book that makes Starter
// dearer and bigger does not change what an existing subscriber pays or
// gets at renewal; a new subscriber gets the new version.
func TestSubscriberKeepsTheirVersion(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	old := mustCustomer(t, d, "old", 0)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: old, Plan: "basic"}); err != nil {
		t.Fatal(err)
	}
	pb := planPriceBook()
	pb.Plans[2].Price.Amount, pb.Plans[2].Credits = 900, billing.CreditsOf(700)
	v3, _, err := d.PublishPriceBook(ctx, pb)
	if err != nil {
		t.Fatal(err)
	}
	fresh := mustCustomer(t, d, "new", 0)
	res, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: fresh, Plan: "basic"})
	if err != nil || res.Subscription.PriceVersion != v3.Version {
		t.Fatalf("new subscriber: %+v, %v", res, err)
	}
	if _, err := d.AdvanceSandbox(ctx, 31*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, d, old, 300)
	mustBalance(t, d, fresh, 700)
	inv, _ := d.ListSubscriptionInvoices(ctx, old, 10)
	if len(inv) != 2 || inv[0].Amount.Amount != 500 {
		t.Fatalf("the old subscriber's renewal: %+v", inv)
	}
	subs, _ := d.SubscribersPerPlan(ctx)
	if len(subs) != 1 || subs[0].Subscribers != 2 || subs[0].MRR.Amount != 1400 {
		t.Fatalf("subscribers per plan across versions: %+v", subs)
	}
}

// TestGrantFreePeriod: the next period's credits now, once; the sandbox's
// renewal of that period grants nothing more.
func TestGrantFreePeriod(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	d := mustPlanDB(t, clk)
	id := mustCustomer(t, d, "c1", 0)
	if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: id, Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
	admin := billing.Actor{Kind: billing.ActorAdmin, ID: "adm_1"}
	res, err := d.GrantFreePeriod(ctx, id, admin)
	if err != nil || res.Replayed || !res.Subscription.CurrentPeriodEnd.Equal(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("free period: %+v, %v", res, err)
	}
	mustBalance(t, d, id, 10000)
	// At the first period's end nothing renews: the period already moved on.
	if adv, err := d.AdvanceSandbox(ctx, 31*24*time.Hour); err != nil || adv.Renewed != 0 {
		t.Fatalf("advance: %+v, %v", adv, err)
	}
	inv, _ := d.ListSubscriptionInvoices(ctx, id, 10)
	if len(inv) != 2 || inv[0].Amount.Amount != 0 {
		t.Fatalf("invoices: %+v", inv)
	}
	mustVerify(t, d)
}
