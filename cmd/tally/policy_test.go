package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// The flags are a fresh installation's policy; after that the stored one
// is in force, and the payments service's view of it follows an edit at
// once, with no restart.
func TestStartPolicy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.db")
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := serveConfig{RefundWindow: 7 * 24 * time.Hour, Policy: policyConfig{CustomMin: 10_00, HoldTTL: time.Minute, LowBalancePercent: 15}}
	pay, err := startPolicy(ctx, d, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if p := pay(ctx); p.RefundWindow != 7*24*time.Hour || p.CustomMin != 10_00 || p.CustomMax != billing.DefaultPolicy.CustomMax {
		t.Fatalf("from the flags: %+v", p)
	}
	v, _ := d.CurrentPolicy(ctx)
	if v.Version != 1 || v.Policy.HoldTTL != time.Minute || v.Policy.LowBalancePercent != 15 {
		t.Fatalf("stored: %+v", v)
	}
	next := v.Policy
	next.CustomMin, next.PurchaseExpiry = 50_00, 90*24*time.Hour
	if _, err := d.UpdatePolicy(ctx, 1, next, billing.AdminActor("adm_x"), "dearer"); err != nil {
		t.Fatal(err)
	}
	if p := pay(ctx); p.CustomMin != 50_00 || p.PurchaseExpiry != 90*24*time.Hour {
		t.Fatalf("after the edit, the service still sees %+v", p)
	}
	// A restart with other flags keeps the edited policy.
	cfg.RefundWindow = 0
	pay, err = startPolicy(ctx, d, cfg, log)
	if err != nil || pay(ctx).CustomMin != 50_00 || pay(ctx).RefundWindow != 7*24*time.Hour {
		t.Fatalf("restart: %+v %v", pay(ctx), err)
	}
	// Flags that no policy allows don't stop an installation whose policy
	// is stored; on a fresh one they are a usage error.
	if _, err := startPolicy(ctx, d, serveConfig{RefundWindow: 36 * time.Hour}, log); err != nil {
		t.Fatalf("odd flags with a stored policy: %v", err)
	}
	d2, err := db.Open(ctx, filepath.Join(t.TempDir(), "t2.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, err := startPolicy(ctx, d2, serveConfig{RefundWindow: 36 * time.Hour}, log); err == nil || !strings.Contains(err.Error(), "whole days") {
		t.Fatalf("a refund window of 36h: %v", err)
	}
}
