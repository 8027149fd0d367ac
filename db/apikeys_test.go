package db_test

import (
	"context"
	"github.com/tally-billing/tally/internal/storetest"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

func TestCreateAPIKeyScopes(t *testing.T) {
	d := mustOpenDB(t, nil)
	ctx := context.Background()
	for _, sc := range billing.Scopes() {
		k, secret, err := d.CreateAPIKey(ctx, sc+" key", sc, billing.Limits{}, 0)
		if err != nil {
			t.Fatalf("scope %s: %v", sc, err)
		}
		got, err := d.Authenticate(ctx, secret)
		if err != nil || got.Scope != sc || got.ID != k.ID {
			t.Fatalf("scope %s: authenticated as %+v, %v", sc, got, err)
		}
	}
	_, _, err := d.CreateAPIKey(ctx, "bad", "root", billing.Limits{}, 0)
	if billing.ErrorCode(err) != billing.CodeValidation || !strings.Contains(err.Error(), "admin, metering, portal, read") {
		t.Fatalf("scope root: %v, want validation_failed naming every scope", err)
	}
}

// TestPortalScopeMigration upgrades a database made before the portal scope:
// its keys and their spend survive the rebuild of api_keys, and portal keys
// can be made afterwards.
func TestPortalScopeMigration(t *testing.T) {
	ctx := context.Background()
	path := storetest.DSN(t)
	old := db.MigrateForTest(t, path, 3)
	const secret = "tsk_oldmeteringkey00000000000000"
	if _, err := old.Exec(`INSERT INTO api_keys (id, name, prefix, hash, scope, daily_cap, rate_limit, created_at)
		VALUES ('key_old', 'old', 'tsk_oldmeter', ?, 'metering', 5000, 7, 1)`, db.HashForTest(secret)); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`INSERT INTO api_key_spend (api_key_id, day, credits) VALUES ('key_old', '2026-03-10', 1234)`); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`INSERT INTO api_keys (id, name, prefix, hash, scope, created_at) VALUES ('key_p', 'p', 'tsk_p', x'00', 'portal', 1)`); err == nil {
		t.Fatal("the old schema took a portal key: the test does not start from the old schema")
	}

	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	k, err := d.Authenticate(ctx, secret)
	if err != nil || k.ID != "key_old" || k.Scope != billing.ScopeMetering || k.RateLimit != 7 ||
		k.Limits.DailyCap == nil || *k.Limits.DailyCap != 5000 {
		t.Fatalf("old key after the migration: %+v, %v", k, err)
	}
	var spent int64
	if err := old.QueryRow(`SELECT credits FROM api_key_spend WHERE api_key_id = 'key_old'`).Scan(&spent); err != nil || spent != 1234 {
		t.Fatalf("old key's spend after the migration: %d, %v", spent, err)
	}
	if _, _, err := d.CreateAPIKey(ctx, "portal", billing.ScopePortal, billing.Limits{}, 0); err != nil {
		t.Fatalf("portal key after the migration: %v", err)
	}
	// The foreign key from spend to keys still holds.
	if _, err := old.Exec(`INSERT INTO api_key_spend (api_key_id, day, credits) VALUES ('key_ghost', '2026-03-10', 1)`); err == nil {
		t.Fatal("api_key_spend took a row for a key that does not exist")
	}
}

// A key's last use is stored in the background, at most once a minute.
func TestAPIKeyLastUsed(t *testing.T) {
	d := mustOpenDB(t, nil)
	ctx := context.Background()
	k, secret, err := d.CreateAPIKey(ctx, "used", billing.ScopeRead, billing.Limits{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func() *time.Time {
		keys, err := d.FindAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range keys {
			if x.ID == k.ID {
				return x.LastUsedAt
			}
		}
		t.Fatal("key not listed")
		return nil
	}
	if lastUsed() != nil {
		t.Fatal("a new key has a last use")
	}
	if _, err := d.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for lastUsed() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the last use was never stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := *lastUsed()
	for range 20 {
		if _, err := d.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := *lastUsed(); !got.Equal(first) {
		t.Fatalf("stored again within the minute: %v then %v", first, got)
	}
}
