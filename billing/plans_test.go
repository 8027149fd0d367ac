package billing

import (
	"errors"
	"testing"
	"time"
)

func TestRolloverCarry(t *testing.T) {
	c := CreditsOf
	tests := []struct {
		name                  string
		r                     Rollover
		unused, rolled, carry Credits
	}{
		{"none keeps nothing", Rollover{Policy: RolloverNone}, c(500), 0, 0},
		{"all keeps everything", Rollover{Policy: RolloverAll, Periods: 1}, c(500), c(9000), c(500)},
		{"all of nothing", Rollover{Policy: RolloverAll, Periods: 1}, 0, 0, 0},
		{"up to: under the cap", Rollover{Policy: RolloverUpTo, Max: c(1000)}, c(999), 0, c(999)},
		{"up to: exactly the cap", Rollover{Policy: RolloverUpTo, Max: c(1000)}, c(1000), 0, c(1000)},
		{"up to: one millicredit over the cap", Rollover{Policy: RolloverUpTo, Max: c(1000)}, c(1000) + 1, 0, c(1000)},
		{"up to: far over the cap", Rollover{Policy: RolloverUpTo, Max: c(1000)}, c(5000), 0, c(1000)},
		{"up to: earlier rollover counts", Rollover{Policy: RolloverUpTo, Max: c(1000)}, c(800), c(300), c(700)},
		{"up to: earlier rollover fills the cap", Rollover{Policy: RolloverUpTo, Max: c(1000)}, c(800), c(1000), 0},
		{"up to: earlier rollover over the cap", Rollover{Policy: RolloverUpTo, Max: c(1000)}, c(800), c(1500), 0},
		{"up to: a millicredit of room", Rollover{Policy: RolloverUpTo, Max: c(1000)}, c(800), c(1000) - 1, 1},
		{"up to: nothing unused", Rollover{Policy: RolloverUpTo, Max: c(1000)}, 0, 0, 0},
		{"negative unused", Rollover{Policy: RolloverAll}, -5, 0, 0},
		{"up to: the largest cap", Rollover{Policy: RolloverUpTo, Max: MaxCredits}, MaxCredits, 0, MaxCredits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RolloverCarry(tt.r, tt.unused, tt.rolled); got != tt.carry {
				t.Fatalf("RolloverCarry = %s, want %s", got, tt.carry)
			}
		})
	}
}

func TestAddIntervals(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 9, 30, 0, 0, time.UTC) }
	tests := []struct {
		from     time.Time
		interval string
		n        int
		want     time.Time
	}{
		{d(2026, 1, 1), IntervalMonth, 1, d(2026, 2, 1)},
		{d(2026, 1, 31), IntervalMonth, 1, d(2026, 2, 28)},
		{d(2028, 1, 31), IntervalMonth, 1, d(2028, 2, 29)},
		{d(2026, 12, 15), IntervalMonth, 1, d(2027, 1, 15)},
		{d(2026, 3, 31), IntervalMonth, 3, d(2026, 6, 30)},
		{d(2028, 2, 29), IntervalYear, 1, d(2029, 2, 28)},
		{d(2026, 5, 10), IntervalYear, 2, d(2028, 5, 10)},
	}
	for _, tt := range tests {
		if got := AddIntervals(tt.from, tt.interval, tt.n); !got.Equal(tt.want) {
			t.Errorf("AddIntervals(%s, %s, %d) = %s, want %s", tt.from, tt.interval, tt.n, got, tt.want)
		}
	}
}

func TestProrate(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		amount      int64
		left, total time.Duration
		want        int64
	}{
		{3000, 15 * day, 30 * day, 1500},
		{1000, 10 * day, 30 * day, 333},                // 333.33 rounds down
		{1000, 20 * day, 30 * day, 667},                // 666.67 rounds up
		{3000, 30*day - 5*time.Second, 30 * day, 3000}, // seconds into a period: the whole difference, not 2,999
		{1, time.Hour, 2 * time.Hour, 1},               // a half rounds up
		{1000, 0, 30 * day, 0},
		{1000, -day, 30 * day, 0},
		{1000, 31 * day, 30 * day, 1000},
		{int64(MaxCredits), 29 * day, 31 * day, 935483870967742}, // 10^15 * 29/31 = ...741.94; the product in nanoseconds needs 128 bits
	}
	for _, tt := range tests {
		if got := Prorate(tt.amount, tt.left, tt.total); got != tt.want {
			t.Errorf("Prorate(%d, %s, %s) = %d, want %d", tt.amount, tt.left, tt.total, got, tt.want)
		}
	}
}

var (
	testStarter = Plan{Key: "starter", Name: "Starter", Interval: IntervalMonth, Price: Money{Amount: 1000, Currency: "usd"},
		Credits: CreditsOf(1000), Rollover: Rollover{Policy: RolloverUpTo, Max: CreditsOf(500), Periods: 1}, Packs: true}
	testPro = Plan{Key: "pro", Name: "Pro", Interval: IntervalMonth, Price: Money{Amount: 4000, Currency: "usd"},
		Credits: CreditsOf(5000), Rollover: Rollover{Policy: RolloverAll, Periods: 2}, Packs: true}
)

// TestQuotePlanChange checks proration against hand-computed fixtures: a
// 30-day period (1 to 31 Jan... here 1 Apr to 1 May), Starter ($10, 1,000
// credits) to Pro ($40, 5,000 credits).
func TestQuotePlanChange(t *testing.T) {
	start := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	sub := Subscription{ID: "sub_1", Plan: "starter", Status: SubActive, CurrentPeriodStart: start, CurrentPeriodEnd: start.AddDate(0, 1, 0)}
	tests := []struct {
		name    string
		at      time.Time
		credits Credits
		amount  int64
	}{
		// 4,000 credits * 30/30 = 4,000; $30.00 * 30/30.
		{"at the start", start, CreditsOf(4000), 3000},
		// 18 days left of 30: 4,000 * 18/30 = 2,400; 3,000 * 18/30 = 1,800.
		{"12 days in", start.AddDate(0, 0, 12), CreditsOf(2400), 1800},
		// 7 days left: 4,000 * 7/30 = 933.33 -> 933 whole credits; 3,000 * 7/30 = 700.
		{"23 days in", start.AddDate(0, 0, 23), CreditsOf(933), 700},
		// 1 hour left: 3,000/720 = 4.16 -> 4 cents, which buy 4 * 4,000/3,000 = 5.33 -> 5
		// credits (the time alone, 4,000/720 = 5.55, gave 6: more than the 4 cents pay for).
		{"an hour before the end", sub.CurrentPeriodEnd.Add(-time.Hour), CreditsOf(5), 4},
		// Seconds in: the whole difference, not 3,999 credits for $29.99.
		{"a minute in", start.Add(time.Minute), CreditsOf(4000), 3000},
		// 6 minutes in: $30.00 * 43,194/43,200 = $29.996 -> $30.00 charged, so all
		// 4,000 credits (by time alone 3,999.44 -> 3,999: $30.00 for 3,999 credits).
		{"six minutes in", start.Add(6 * time.Minute), CreditsOf(4000), 3000},
		// 20 of 30 days left: $30.00 * 2/3 = $20.00, which buys 4,000 * 20/30 = 2,666.67 -> 2,667.
		{"10 days in", start.AddDate(0, 0, 10), CreditsOf(2667), 2000},
		{"at the end", sub.CurrentPeriodEnd, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := QuotePlanChange(sub, testStarter, testPro, tt.at)
			if !q.Upgrade || q.CreditsNow != tt.credits || q.AmountNow.Amount != tt.amount || q.AmountNow.Currency != "usd" {
				t.Fatalf("quote = %+v, want upgrade with %s credits and %d cents", q, tt.credits, tt.amount)
			}
		})
	}
	// A 31-day period, 10 days in: $30.00 * 21/31 = $20.32, which buys
	// 2,032 * 4,000/3,000 = 2,709.33 -> 2,709 credits (by time alone 2,709.68 -> 2,710).
	sub31 := Subscription{ID: "sub_2", Plan: "starter", Status: SubActive, CurrentPeriodStart: start, CurrentPeriodEnd: start.AddDate(0, 0, 31)}
	if q := QuotePlanChange(sub31, testStarter, testPro, start.AddDate(0, 0, 10)); q.CreditsNow != CreditsOf(2709) || q.AmountNow.Amount != 2032 {
		t.Fatalf("31-day period, 10 days in: %+v, want 2,709 credits for $20.32", q)
	}
	// The same price and more credits: no money to follow, the credits are prorated by time.
	more := testStarter
	more.Key, more.Credits = "starter_plus", CreditsOf(1600)
	if q := QuotePlanChange(sub, testStarter, more, start.AddDate(0, 0, 10)); !q.Upgrade || q.CreditsNow != CreditsOf(400) || q.AmountNow.Amount != 0 {
		t.Fatalf("same price, more credits: %+v, want 400 credits for nothing", q)
	}
	down := QuotePlanChange(sub, testPro, testStarter, start.AddDate(0, 0, 3))
	if down.Upgrade || down.CreditsNow != 0 || down.AmountNow.Amount != 0 || !down.EffectiveAt.Equal(sub.CurrentPeriodEnd) {
		t.Fatalf("downgrade quote = %+v, want nothing now, effective at the period's end", down)
	}
	yearly := testPro
	yearly.Interval = IntervalYear
	if QuotePlanChange(sub, testStarter, yearly, start).Upgrade {
		t.Fatal("a move to another interval happened at once; it waits for the period's end")
	}
}

func TestPlanValidation(t *testing.T) {
	base := func() PriceBook {
		return PriceBook{Currency: "usd", Features: []Feature{{Key: "chat", Credits: CreditsOf(1)}},
			Plans: []Plan{{Key: "pro", Price: Money{Amount: 2000}, Credits: CreditsOf(5000)}}}
	}
	pb := base()
	if err := pb.Validate(); err != nil {
		t.Fatal(err)
	}
	p := pb.Plans[0]
	if p.Interval != IntervalMonth || p.Rollover.Policy != RolloverNone || p.Price.Currency != "usd" || p.Name != "pro" ||
		p.EffectivePriority() != DefaultPriority[SourceSubscription] {
		t.Fatalf("defaults not filled: %+v", p)
	}
	bad := map[string]func(*Plan){
		"bad key":           func(p *Plan) { p.Key = "Pro Plan" },
		"weekly":            func(p *Plan) { p.Interval = "week" },
		"free":              func(p *Plan) { p.Price.Amount = 0 },
		"other currency":    func(p *Plan) { p.Price.Currency = "eur" },
		"no credits":        func(p *Plan) { p.Credits = 0 },
		"too many credits":  func(p *Plan) { p.Credits = MaxCredits + 1 },
		"unknown policy":    func(p *Plan) { p.Rollover.Policy = "some" },
		"up_to without max": func(p *Plan) { p.Rollover.Policy = RolloverUpTo },
		"all with max":      func(p *Plan) { p.Rollover = Rollover{Policy: RolloverAll, Max: 5} },
		"none with periods": func(p *Plan) { p.Rollover.Periods = 2 },
		"forever":           func(p *Plan) { p.Rollover = Rollover{Policy: RolloverAll, Periods: 121} },
		"priority":          func(p *Plan) { p.Priority = ptrTo(-1) },
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			pb := base()
			mutate(&pb.Plans[0])
			var e *Error
			if err := pb.Validate(); !errors.As(err, &e) || e.Code != CodeValidation {
				t.Fatalf("Validate = %v, want validation_failed", err)
			}
		})
	}
	pb = base()
	pb.Plans = append(pb.Plans, pb.Plans[0])
	if err := pb.Validate(); err == nil {
		t.Fatal("a plan twice was accepted")
	}
}

// TestSubscriptionPeriodMachine lives through a Starter subscription: the
// first period's credits, a period's end with rollover at the cap, the
// renewal, an upgrade, a scheduled downgrade taken back, a cancellation.
func TestSubscriptionPeriodMachine(t *testing.T) {
	start := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	s := &WalletState{Customer: "cus_1"}
	ch, err := PlanSubscribe(s, nil, SubscribeRequest{ID: "sub_1", Plan: testStarter, PriceVersion: 3, Invoice: "inv_1",
		Start: start, Now: start, Actor: CustomerActor("cus_1")})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Balance != CreditsOf(1000) || ch.NewLot.Source != SourceSubscription || ch.NewLot.Priority != 20 ||
		!ch.NewLot.ExpiresAt.Equal(start.AddDate(0, 1, 0)) || ch.Rollover == nil ||
		!ch.Rollover.KeepUntil.Equal(start.AddDate(0, 2, 0)) || ch.Period == nil || ch.Period.Invoice != "inv_1" ||
		ch.Subscription.PriceVersion != 3 || ch.Events[0].Type != EventSubscriptionCreated {
		t.Fatalf("subscribe change = %+v", ch)
	}
	sub := *ch.Subscription
	if _, err := PlanSubscribe(s, &sub, SubscribeRequest{ID: "sub_2", Plan: testPro, Start: start, Now: start}); err == nil {
		t.Fatal("a second live subscription was accepted")
	}

	// 200 of the period's 1,000 credits used: 800 unused, 500 carry (the cap), 300 expire.
	lot := Lot{ID: 7, Source: SourceSubscription, Priority: 20, Amount: CreditsOf(1000), Remaining: CreditsOf(800), ExpiresAt: ch.NewLot.ExpiresAt}
	s = &WalletState{Customer: "cus_1", Wallet: Wallet{Balance: CreditsOf(800)}, Lots: []Lot{lot}}
	cl := PlanPeriodClose(s, lot, *ch.Rollover, 0, start.AddDate(0, 1, 0))
	if cl.Balance != CreditsOf(500) || len(cl.Entries) != 1 || cl.Entries[0].Amount != -CreditsOf(300) ||
		cl.Entries[0].Burns[0] != (Burn{LotID: 7, Credits: CreditsOf(300)}) || len(cl.CloseLots) != 1 ||
		!cl.CloseLots[0].ExpiresAt.Equal(start.AddDate(0, 2, 0)) {
		t.Fatalf("period close = %+v", cl)
	}

	// The renewal: 1,000 more credits, the period moves on.
	s.Balance = CreditsOf(500)
	rn, err := PlanRenewal(s, sub, RenewalRequest{Plan: testStarter, PriceVersion: 3, Invoice: "inv_2", Start: start.AddDate(0, 1, 0),
		End: start.AddDate(0, 2, 0), Amount: testStarter.Price, Now: start.AddDate(0, 1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if rn.Balance != CreditsOf(1500) || !rn.Subscription.CurrentPeriodStart.Equal(start.AddDate(0, 1, 0)) ||
		rn.Entries[0].Key != "sub:sub_1:renewal:inv_2" || rn.Events[0].Type != EventSubscriptionRenewed {
		t.Fatalf("renewal = %+v", rn)
	}
	// An older invoice arriving late grants its credits but leaves the newer period current.
	late, err := PlanRenewal(s, *rn.Subscription, RenewalRequest{Plan: testStarter, Invoice: "inv_1b", Start: start, End: start.AddDate(0, 1, 0), Now: start})
	if err != nil {
		t.Fatal(err)
	}
	if !late.Subscription.CurrentPeriodStart.Equal(start.AddDate(0, 1, 0)) {
		t.Fatalf("a late invoice moved the period back to %s", late.Subscription.CurrentPeriodStart)
	}
	sub = *rn.Subscription

	// Upgrade 12 days into the 30-day May... period 1 May to 1 Jun is 31 days: 19 left.
	at := sub.CurrentPeriodStart.AddDate(0, 0, 12)
	up, q, err := PlanChangePlan(s, sub, ChangePlanRequest{From: testStarter, To: testPro, PriceVersion: 3, Invoice: "inv_up", Now: at})
	if err != nil {
		t.Fatal(err)
	}
	// 4,000 * 19/31 = 2,451.6 -> 2,452 credits; 3,000 * 19/31 = 1,838.7 -> 1,839 cents.
	if q.CreditsNow != CreditsOf(2452) || q.AmountNow.Amount != 1839 || up.Balance != s.Balance+CreditsOf(2452) ||
		up.Subscription.Plan != "pro" || up.Period.Kind != PeriodUpgrade || !up.NewLot.ExpiresAt.Equal(sub.CurrentPeriodEnd) {
		t.Fatalf("upgrade = %+v, quote %+v", up, q)
	}
	sub = *up.Subscription
	down, q, err := PlanChangePlan(s, sub, ChangePlanRequest{From: testPro, To: testStarter, PriceVersion: 3, Now: at})
	if err != nil {
		t.Fatal(err)
	}
	if q.Upgrade || down.NewLot != nil || down.Balance != s.Balance || down.Subscription.NextPlan != "starter" || down.Subscription.Plan != "pro" {
		t.Fatalf("downgrade = %+v", down)
	}
	res, err := PlanResume(s, *down.Subscription, CustomerActor("cus_1"))
	if err != nil || res.Subscription.NextPlan != "" {
		t.Fatalf("resume = %+v, %v", res, err)
	}
	if _, err := PlanResume(s, *res.Subscription, CustomerActor("cus_1")); err == nil {
		t.Fatal("resuming with nothing to take back was accepted")
	}
	if _, _, err := PlanChangePlan(s, sub, ChangePlanRequest{From: testPro, To: testPro, PriceVersion: 3, Now: at}); err == nil {
		t.Fatal("a change to the same plan was accepted")
	}
	cn, err := PlanCancel(s, sub, true, at, CustomerActor("cus_1"))
	if err != nil || !cn.Subscription.CancelAtPeriodEnd || cn.Subscription.Status != SubActive || cn.Balance != s.Balance {
		t.Fatalf("cancel at period end = %+v, %v", cn, err)
	}
	fail := PlanPaymentFailed(s, sub, "inv_3", testPro.Price, 4, true, at)
	if fail.Subscription.Status != SubCanceled || len(fail.Events) != 2 || fail.Events[0].Type != EventInvoicePaymentFailed {
		t.Fatalf("final payment failure = %+v", fail)
	}
	if _, err := PlanRenewal(s, *fail.Subscription, RenewalRequest{Plan: testPro, Invoice: "inv_4", Start: at, End: at.AddDate(0, 1, 0)}); err == nil {
		t.Fatal("a canceled subscription renewed")
	}
}

// TestForecastWithRenewals runs the depletion forecast with a plan's
// renewals, against hand-computed dates: usage 100 credits a day from
// 1 Jan, the plan renews on 5 Jan and on the 5th of every month.
func TestForecastWithRenewals(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return now.AddDate(0, 0, d-1) }
	sub := &Subscription{ID: "sub_1", Status: SubActive, CurrentPeriodStart: time.Date(2025, 12, 5, 0, 0, 0, 0, time.UTC),
		CurrentPeriodEnd: day(5)}
	purchase := func(c int64) []Lot {
		return []Lot{{ID: 1, Source: SourcePurchase, Priority: 50, Amount: CreditsOf(c), Remaining: CreditsOf(c), CreatedAt: now.AddDate(0, 0, -3)}}
	}
	small := Plan{Key: "small", Name: "Small", Interval: IntervalMonth, Price: Money{Amount: 500, Currency: "usd"}, Credits: CreditsOf(1000)}
	big := Plan{Key: "big", Name: "Big", Interval: IntervalMonth, Price: Money{Amount: 4000, Currency: "usd"}, Credits: CreditsOf(5000)}
	rate := CreditsOf(100)
	tests := []struct {
		name     string
		lots     []Lot
		plan     Plan
		sub      *Subscription
		outlook  Outlook
		runsOut  time.Time
		renewals int
	}{
		// 300 credits last 3 days, to 4 Jan: out a day before the renewal.
		{"runs out before the renewal", purchase(300), small, sub, OutlookRunsOut, day(4), 12},
		// 500 last to 5 Jan, when 1,000 plan credits arrive and burn first
		// (10 days, to 15 Jan); the purchase's last 100 last to 16 Jan,
		// and the next renewal is 5 Feb.
		{"the renewal carries it for a while", purchase(500), small, sub, OutlookRunsOut, day(16), 12},
		// 5,000 a month cover 100 a day: never out.
		{"the plan covers the usage", purchase(500), big, sub, OutlookBeyond, time.Time{}, 12},
		// A cancellation renews nothing: 500 last to 6 Jan.
		{"canceled at the period's end", purchase(500), big, &Subscription{Status: SubActive, CancelAtPeriodEnd: true, CurrentPeriodEnd: day(5)},
			OutlookRunsOut, day(6), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := PlanRenewals(tt.sub, tt.plan, nil, now, ProjectionHorizon)
			if len(rs) != tt.renewals {
				t.Fatalf("%d renewals, want %d", len(rs), tt.renewals)
			}
			if len(rs) > 0 && (!rs[0].CreatedAt.Equal(day(5)) || !rs[0].ExpiresAt.Equal(time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC))) {
				t.Fatalf("first renewal = %+v", rs[0])
			}
			var avail Credits
			for _, l := range tt.lots {
				avail += l.Remaining
			}
			// 30 days of 100 credits: both rates are 100 a day.
			var days []UsageDay
			for d := 1; d <= 30; d++ {
				days = append(days, UsageDay{Day: now.AddDate(0, 0, -d).Format(time.DateOnly), Credits: rate})
			}
			f := NewPlanForecast(now, days, tt.lots, avail, now.AddDate(0, 1, 0), rs)
			p := f.Primary()
			if p.Outlook != tt.outlook || (tt.outlook == OutlookRunsOut && !p.RunsOut.Equal(tt.runsOut)) {
				t.Fatalf("projection = %+v, want %s at %s", p, tt.outlook, tt.runsOut)
			}
			if len(p.Lost) != 0 {
				t.Fatalf("a renewal's unused credits reported lost: %+v", p.Lost)
			}
			if (f.Renewal != nil) != (tt.renewals > 0) {
				t.Fatalf("forecast renewal = %+v", f.Renewal)
			}
		})
	}
	// The lots passed in are not changed by adding the renewals.
	lots := purchase(500)
	NewPlanForecast(now, nil, lots[:1:1], CreditsOf(500), now, PlanRenewals(sub, small, nil, now, ProjectionHorizon))
	if len(lots) != 1 || lots[0].Remaining != CreditsOf(500) {
		t.Fatalf("lots changed: %+v", lots)
	}
}
