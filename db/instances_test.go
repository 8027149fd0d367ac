package db_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/internal/storetest"
)

// Several instances: two *db.DB opened on one database are two Tally
// instances (two processes behind a load balancer), each with its own
// writer. On PostgreSQL that is how Tally runs on several machines; on
// SQLite it is a server and a CLI command sharing the file.

// openInstance opens another instance on d's database.
func openInstance(t testing.TB, d *db.DB, now func() time.Time) *db.DB {
	t.Helper()
	o, err := db.Open(context.Background(), d.Path(), db.Options{Now: now, PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// TestInstancesHoldCapsOverdraftAndKeys spreads concurrent debits over two
// instances, each request's retry going to the other one: the balance, the
// overdraft limit, a customer's daily cap and an API key's daily cap (across
// two customers) each admit exactly what they allow, every acknowledged
// debit is in the ledger once (a retry replays the same entry), and the
// books balance.
func TestInstancesHoldCapsOverdraftAndKeys(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 5, 12, 10, 0, 0, 0, time.UTC)}
	a := mustOpenDB(t, clk.Now)
	b := openInstance(t, a, clk.Now)
	inst := []*db.DB{a, b}

	hot := mustCustomer(t, a, "hot", 60)
	over := mustCustomer(t, a, "over", 0)
	if _, err := a.SetLimits(ctx, over, billing.Limits{OverdraftLimit: billing.CreditsOf(25)}); err != nil {
		t.Fatal(err)
	}
	capped := mustCustomer(t, b, "capped", 1000)
	daily := billing.CreditsOf(30)
	if _, err := b.SetLimits(ctx, capped, billing.Limits{DailyCap: &daily}); err != nil {
		t.Fatal(err)
	}
	keyCap := billing.CreditsOf(35)
	key, _, err := a.CreateAPIKey(ctx, "meter", billing.ScopeMetering, billing.Limits{DailyCap: &keyCap}, 0)
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := mustCustomer(t, a, "k1", 100), mustCustomer(t, b, "k2", 100)

	type want struct {
		customer string
		key      *billing.APIKey
		requests int
	}
	groups := []want{{hot, nil, 90}, {over, nil, 40}, {capped, nil, 50}, {k1, &key, 30}, {k2, &key, 30}}
	type result struct {
		group int
		id    string
	}
	var mu sync.Mutex
	accepted := map[string]result{} // idempotency key -> first answer
	perGroup := make([]int, len(groups))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 24)
	for g, w := range groups {
		for i := 0; i < w.requests; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				ikey := fmt.Sprintf("g%d-%d", g, i)
				req := billing.UsageRequest{Customer: w.customer, Feature: "chat.request", Quantity: qty(1), IdempotencyKey: ikey, APIKey: w.key}
				first, err := inst[i%2].Debit(ctx, req)
				again, err2 := inst[(i+1)%2].Debit(ctx, req) // the client's retry, through the other instance
				switch {
				case err == nil:
					if err2 != nil || again.ID != first.ID || !again.Replayed {
						t.Errorf("%s: accepted as %s, retry on the other instance: %+v %v", ikey, first.ID, again, err2)
					}
					mu.Lock()
					accepted[ikey] = result{g, first.ID}
					perGroup[g]++
					mu.Unlock()
				case billing.ErrorCode(err) == billing.CodeInsufficientCredits || billing.ErrorCode(err) == billing.CodeSpendLimitExceeded:
					if err2 == nil {
						t.Errorf("%s: refused (%v), then accepted on retry", ikey, err)
					}
				default:
					t.Errorf("%s: %v", ikey, err)
				}
			}()
		}
	}
	wg.Wait()
	// hot: 60 credits; over: 25 of overdraft; capped: 30 a day; k1+k2: the key's 35 a day.
	for g, n := range map[int]int{0: 60, 1: 25, 2: 30} {
		if perGroup[g] != n {
			t.Errorf("group %d (%s): %d debits accepted, want exactly %d", g, groups[g].customer, perGroup[g], n)
		}
	}
	if n := perGroup[3] + perGroup[4]; n != 35 {
		t.Errorf("the key's customers: %d debits accepted, want exactly 35 (the key's daily cap)", n)
	}
	ids := map[string]bool{}
	for k, r := range accepted {
		if ids[r.id] {
			t.Errorf("entry %s acknowledged for two keys (%s)", r.id, k)
		}
		ids[r.id] = true
	}
	for _, c := range []struct {
		id   string
		want billing.Credits
	}{{hot, 0}, {over, -billing.CreditsOf(25)}, {capped, billing.CreditsOf(970)}} {
		for _, d := range inst {
			bal, err := d.Balance(ctx, c.id)
			if err != nil || bal.Balance != c.want {
				t.Errorf("%s balance %v (%v), want %v", c.id, bal.Balance, err, c.want)
			}
		}
	}
	// Every acknowledged debit is in the ledger exactly once.
	raw := db.RawForTest(t, a)
	var n int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM entries WHERE type = 'debit'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(accepted) {
		t.Errorf("%d debit entries for %d acknowledged debits", n, len(accepted))
	}
	mustVerify(t, a)
}

// TestInstancesClaimJobsOnce: refill jobs, expiry notices and (on
// PostgreSQL) webhook deliveries, worked by both instances at once, are each
// taken by one.
func TestInstancesClaimJobsOnce(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 5, 12, 10, 0, 0, 0, time.UTC)}
	a := mustOpenDB(t, clk.Now)
	b := openInstance(t, a, clk.Now)
	inst := []*db.DB{a, b}
	raw := db.RawForTest(t, a)

	// Refill jobs.
	const jobs = 30
	for i := 0; i < jobs; i++ {
		c := mustCustomer(t, a, fmt.Sprintf("r%d", i), 0)
		if _, err := raw.Exec(`INSERT INTO refill_jobs (id, customer_id, status, next_attempt_at, created_at, updated_at) VALUES (?, ?, 'pending', 0, 0, 0)`,
			fmt.Sprintf("rfj_%d", i), c); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				job, ok, err := inst[w%2].ClaimRefillJob(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				claimed[job.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != jobs {
		t.Errorf("%d of %d refill jobs claimed", len(claimed), jobs)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("refill job %s claimed %d times", id, n)
		}
	}

	// grant.expiring: once per lot, whichever instance sweeps.
	in3days := clk.Now().Add(72 * time.Hour)
	var lots []string
	for i := 0; i < 12; i++ {
		c := mustCustomer(t, b, fmt.Sprintf("e%d", i), 0)
		g, err := b.Grant(ctx, billing.GrantRequest{Customer: c, Credits: billing.CreditsOf(5), Source: billing.SourcePromo, ExpiresAt: &in3days})
		if err != nil {
			t.Fatal(err)
		}
		lots = append(lots, g.Lot.ID)
	}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := inst[w%2].ExpireDue(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var notices int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM events WHERE type = 'grant.expiring'`).Scan(&notices); err != nil {
		t.Fatal(err)
	}
	if notices != len(lots) {
		t.Errorf("%d grant.expiring events for %d expiring lots, want one each", notices, len(lots))
	}

	// Webhook deliveries: on PostgreSQL each instance's worker claims them.
	if !storetest.Postgres() {
		t.Log("webhook deliveries: SQLite runs one serving instance, which reads its due deliveries without claiming them; skipped")
		mustVerify(t, a)
		return
	}
	url, types := "https://hooks.example.com/tally", []string{"*"}
	ep, _, err := a.CreateWebhookEndpoint(ctx, billing.WebhookEndpointInput{URL: &url, EventTypes: &types})
	if err != nil {
		t.Fatal(err)
	}
	const deliveries = 24
	for i := 0; i < deliveries; i++ {
		if _, err := inst[i%2].CreateTestDelivery(ctx, ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	sent := map[int64]int{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				due, err := inst[w%2].DueWebhookDeliveries(ctx, clk.Now(), 3, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if len(due) == 0 {
					return
				}
				mu.Lock()
				for _, j := range due {
					sent[j.Delivery.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(sent) != deliveries {
		t.Errorf("%d of %d deliveries taken", len(sent), deliveries)
	}
	for id, n := range sent {
		if n != 1 {
			t.Errorf("delivery %d taken %d times", id, n)
		}
	}
	// The lease runs out: a delivery whose instance died is due again.
	clk.Add(3 * time.Minute)
	due, err := b.DueWebhookDeliveries(ctx, clk.Now(), 100, nil)
	if err != nil || len(due) != deliveries {
		t.Errorf("after the lease: %d due (%v), want %d", len(due), err, deliveries)
	}
	mustVerify(t, a)
}

// TestInstancesHearEachOther: a subscriber of one instance (a customer's
// live balance or notices stream) hears a change committed by the other,
// and the other's events wake this one's outbox consumers. On PostgreSQL
// that is LISTEN/NOTIFY, with no polling (WatchEvents is not running here).
func TestInstancesHearEachOther(t *testing.T) {
	if !storetest.Postgres() {
		t.Skip("PostgreSQL only: on SQLite other processes' commits reach subscribers through WatchEvents' poll (TestWatchEventsWakesOtherProcessesChanges)")
	}
	ctx := context.Background()
	a := mustOpenDB(t, nil)
	b := openInstance(t, a, nil)
	c := mustCustomer(t, a, "c", 10)
	other := mustCustomer(t, a, "other", 10)
	live, stop := a.Subscribe(c)
	defer stop()
	quiet, stop2 := a.Subscribe(other)
	defer stop2()
	drain := func(ch <-chan struct{}) {
		for {
			select {
			case <-ch:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	drain(live) // the grant above, heard by a itself
	drain(quiet)
	drain(a.EventSignal())
	if _, err := b.Debit(ctx, billing.UsageRequest{Customer: c, Feature: "chat.request", Quantity: qty(1)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-live:
	case <-time.After(5 * time.Second):
		t.Fatal("a debit committed by instance b did not reach a subscriber of instance a")
	}
	select {
	case <-quiet:
		t.Error("another customer's subscriber was woken")
	default:
	}
	// Events (a grant writes grant.created) wake a's outbox consumers.
	drain(a.EventSignal())
	if _, err := b.Grant(ctx, billing.GrantRequest{Customer: other, Credits: billing.CreditsOf(1), Source: billing.SourcePromo}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.EventSignal():
	case <-time.After(5 * time.Second):
		t.Fatal("an event written by instance b did not wake instance a's consumers")
	}
	select {
	case <-quiet:
	case <-time.After(5 * time.Second):
		t.Fatal("the grant by instance b did not reach a subscriber of instance a")
	}
}
