package db_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/internal/storetest"
)

func TestPolicySeedVersionsAndAudit(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	v, err := d.CurrentPolicy(ctx)
	if err != nil || v.Version != 0 || v.Policy != billing.DefaultPolicy {
		t.Fatalf("before any version: %+v, %v", v, err)
	}
	if _, _, err := d.SeedPolicy(ctx, billing.Policy{}); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("an invalid first seed: %v", err)
	}
	flags := billing.DefaultPolicy
	flags.RefundWindow = 14 * 24 * time.Hour
	v, seeded, err := d.SeedPolicy(ctx, flags)
	if err != nil || !seeded || v.Version != 1 || v.Policy != flags || v.Actor != billing.SystemActor("flags") {
		t.Fatalf("seed: %+v seeded=%v %v", v, seeded, err)
	}
	// A second start with other flags keeps the stored policy.
	other := flags
	other.RefundWindow = 0
	if v, seeded, err = d.SeedPolicy(ctx, other); err != nil || seeded || v.Version != 1 || v.Policy.RefundWindow != 14*24*time.Hour {
		t.Fatalf("second seed: %+v seeded=%v %v", v, seeded, err)
	}
	// Invalid flags change nothing once a policy is stored.
	if v, seeded, err := d.SeedPolicy(ctx, billing.Policy{}); err != nil || seeded || v.Version != 1 {
		t.Fatalf("an invalid seed after the first: %+v %v %v", v, seeded, err)
	}

	admin := billing.AdminActor("adm_1")
	next := flags
	next.PurchaseExpiry, next.LowBalancePercent = 365*24*time.Hour, 25
	v2, err := d.UpdatePolicy(ctx, 1, next, admin, "yearly expiry")
	if err != nil || v2.Version != 2 || v2.Policy != next || v2.Actor != admin || v2.Reason != "yearly expiry" {
		t.Fatalf("update: %+v %v", v2, err)
	}
	// Applies at once to this process's readers.
	if cur, _ := d.CurrentPolicy(ctx); cur.Version != 2 || cur.Policy.LowBalancePercent != 25 {
		t.Fatalf("current after update: %+v", cur)
	}
	// Saving from a stale page is a conflict and writes nothing.
	stale := next
	stale.LowBalancePercent = 50
	if _, err := d.UpdatePolicy(ctx, 1, stale, admin, "stale"); billing.ErrorCode(err) != billing.CodeConflict {
		t.Fatalf("stale update: %v", err)
	}
	bad := next
	bad.CustomMax = bad.CustomMin - 1
	if _, err := d.UpdatePolicy(ctx, 2, bad, admin, "bad"); billing.ErrorCode(err) != billing.CodeValidation || !strings.Contains(err.Error(), "custom_max") {
		t.Fatalf("invalid update: %v", err)
	}
	hist, err := d.PolicyHistory(ctx, 10)
	if err != nil || len(hist) != 2 || hist[0].Version != 2 || hist[1].Version != 1 {
		t.Fatalf("history: %+v %v", hist, err)
	}
	// One audit record, with the policy before and after.
	recs, _, err := d.FindAudit(ctx, billing.AuditFilter{Action: billing.AuditPolicyUpdated})
	if err != nil || len(recs) != 1 || recs[0].Actor != admin || recs[0].Reason != "yearly expiry" ||
		!strings.Contains(recs[0].Before, `"low_balance_percent":10`) || !strings.Contains(recs[0].After, `"low_balance_percent":25`) {
		t.Fatalf("audit: %+v %v", recs, err)
	}
	// Versions are append-only.
	for _, q := range []string{`UPDATE policies SET reason = 'x' WHERE version = 1`, `DELETE FROM policies`} {
		err := d.Write(ctx, func(tx *db.Tx) error { return db.ExecForTest(tx, q) })
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the trigger's refusal", q, err)
		}
	}
}

// The kernel reads the policy in force: a hold without ttl_seconds lives
// the policy's default, a longer one than its maximum is refused, and the
// default low-balance line is the policy's percentage of the last top-up.
func TestPolicyInputsToTheKernel(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "pol", 0)
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: id, Credits: billing.CreditsOf(100), Source: billing.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	p := billing.DefaultPolicy
	p.HoldTTL, p.HoldMaxTTL, p.LowBalancePercent, p.DefaultOverdraft = 2*time.Minute, time.Hour, 50, billing.CreditsOf(7)
	if _, err := d.UpdatePolicy(ctx, 0, p, billing.AdminActor("adm_1"), "test"); err != nil {
		t.Fatal(err)
	}
	h, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: billing.CreditsOf(1)})
	if err != nil || !h.ExpiresAt.Equal(clk.Now().Add(2*time.Minute)) {
		t.Fatalf("hold with the policy's default lifetime: %+v %v", h, err)
	}
	if _, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: billing.CreditsOf(1), TTLSeconds: 7200}); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("a hold past the policy's longest: %v", err)
	}
	if _, err := d.ReleaseHold(ctx, h.ID, nil); err != nil {
		t.Fatal(err)
	}
	// A new customer's overdraft is the policy's; an existing one keeps theirs.
	nc, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "pol-new"})
	if err != nil || nc.Limits.OverdraftLimit != billing.CreditsOf(7) {
		t.Fatalf("new customer: %+v %v", nc.Limits, err)
	}
	if got, _ := d.FindCustomer(ctx, "pol-new"); got.Limits.OverdraftLimit != billing.CreditsOf(7) {
		t.Fatalf("stored overdraft: %+v", got.Limits)
	}
	if old, _ := d.FindCustomer(ctx, id); old.Limits.OverdraftLimit != 0 {
		t.Fatalf("an existing customer's overdraft changed: %+v", old.Limits)
	}
	// 100 bought, 55 used: 45 left is under 50% of the last top-up (not
	// under the built-in 10%).
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: id, Feature: "image.generate", Quantity: qty(11)}); err != nil {
		t.Fatal(err)
	}
	evs, err := d.FindEvents(ctx, db.EventFilter{Customer: id})
	if err != nil {
		t.Fatal(err)
	}
	low := false
	for _, e := range evs {
		low = low || e.Type == billing.EventBalanceLow
	}
	if !low {
		t.Fatalf("no balance.low at 45 of 100 with a 50%% line: %+v", evs)
	}
}

// Every admin write that takes an audit record (billing.WithAudit) writes
// it in its own transaction: when the record can't be written, the change
// is not made either. (Before, the console wrote its records after the
// commit: a failure between the two left a change without its record.)
func TestAdminWritesAndTheirAuditCommitTogether(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	id := mustCustomer(t, d, "atomic", 50)
	key, _, err := d.CreateAPIKey(ctx, "k", billing.ScopeMetering, billing.Limits{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	hold, err := d.CreateHold(ctx, billing.HoldRequest{Customer: id, Credits: billing.CreditsOf(5), APIKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	cap10 := billing.CreditsOf(10)
	url := "https://example.com/hook"
	all := []string{billing.AllEvents}
	// A record without an actor can't be written (recordAudit refuses it).
	broken := billing.WithAudit(ctx, billing.AuditRecord{Action: "test.broken"})
	good := func(action string) context.Context {
		return billing.WithAudit(ctx, billing.AuditRecord{Actor: billing.AdminActor("adm_1"), Action: action})
	}
	count := func(action string) int {
		recs, _, err := d.FindAudit(ctx, billing.AuditFilter{Action: action, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	for _, c := range []struct {
		name    string
		write   func(context.Context) error
		changed func() bool
	}{
		{"limits", func(ctx context.Context) error {
			_, err := d.SetLimits(ctx, id, billing.Limits{OverdraftLimit: billing.CreditsOf(7)})
			return err
		}, func() bool { c, _ := d.FindCustomer(ctx, id); return c.Limits.OverdraftLimit == billing.CreditsOf(7) }},
		{"key created", func(ctx context.Context) error {
			_, _, err := d.CreateAPIKeyWithOrigins(ctx, "new key", billing.ScopeRead, billing.Limits{}, 0, []string{"https://app.example.com"})
			return err
		}, func() bool { return keyNamed(t, d, "new key") != nil }},
		{"key updated", func(ctx context.Context) error {
			_, err := d.UpdateAPIKey(ctx, key.ID, billing.APIKeyUpdate{Scope: billing.ScopeRead, Limits: billing.Limits{DailyCap: &cap10}, RateLimit: 3})
			return err
		}, func() bool { k := keyNamed(t, d, "k"); return k.Scope == billing.ScopeRead && k.RateLimit == 3 }},
		{"key origins", func(ctx context.Context) error {
			_, err := d.SetAPIKeyOrigins(ctx, key.ID, []string{"https://other.example.com"})
			return err
		}, func() bool { return len(keyNamed(t, d, "k").AllowedOrigins) == 1 }},
		{"webhook created", func(ctx context.Context) error {
			_, _, err := d.CreateWebhookEndpoint(ctx, billing.WebhookEndpointInput{URL: &url, EventTypes: &all})
			return err
		}, func() bool { eps, _ := d.FindWebhookEndpoints(ctx); return len(eps) == 1 }},
		{"hold released", func(ctx context.Context) error {
			_, err := d.ReleaseCustomerHold(ctx, id, hold.ID, billing.AdminActor("adm_1"))
			return err
		}, func() bool { h, _ := d.FindHold(ctx, hold.ID); return h.Status == billing.HoldReleased }},
		{"portal link", func(ctx context.Context) error {
			_, _, err := d.CreatePortalSession(ctx, id, "https://x/", "", time.Minute)
			return err
		}, func() bool { return count("test.portal link") == 1 }},
		{"key revoked", func(ctx context.Context) error {
			_, err := d.RevokeAPIKey(ctx, key.ID)
			return err
		}, func() bool { return keyNamed(t, d, "k").RevokedAt != nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.write(broken); err == nil {
				t.Fatal("the write succeeded though its audit record could not be written")
			}
			if c.changed() {
				t.Fatal("the change was made without its audit record")
			}
			if err := c.write(good("test." + c.name)); err != nil {
				t.Fatal(err)
			}
			if !c.changed() || count("test."+c.name) != 1 {
				t.Fatalf("with a good record: changed=%v, records=%d", c.changed(), count("test."+c.name))
			}
		})
	}
	mustVerify(t, d)
}

func keyNamed(t *testing.T, d *db.DB, name string) *billing.APIKey {
	t.Helper()
	keys, err := d.FindAPIKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if keys[i].Name == name {
			return &keys[i]
		}
	}
	return nil
}

// TestCloseWaitsForThePolicyReread: the writer rereads a stale policy in
// the background; Close waits for that read, so nothing of the DB's opens
// a connection (and SQLite's -wal and -shm files) after Close returns. A
// test's t.TempDir cleanup once failed on it ("directory not empty").
func TestCloseWaitsForThePolicyReread(t *testing.T) {
	for i := range 20 {
		d, err := db.Open(context.Background(), storetest.DSN(t), db.Options{})
		if err != nil {
			t.Fatal(err)
		}
		db.StartPolicyReread(d)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if db.PolicyRereadRunning(d) {
			t.Fatalf("round %d: a policy reread is still running after Close", i)
		}
		db.StartPolicyReread(d) // after Close: starts nothing
		if db.PolicyRereadRunning(d) {
			t.Fatalf("round %d: a policy reread started after Close", i)
		}
	}
}
