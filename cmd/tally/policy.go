package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// policyConfig are the policy's defaults for a fresh installation, from
// flags and TALLY_* variables. Once a version is stored (the first start
// stores these), the admin console's Policies page is where it changes.
type policyConfig struct {
	PromoExpiry       time.Duration
	CustomMin         int64
	CustomMax         int64
	LowBalancePercent int
	HoldTTL           time.Duration
	HoldMaxTTL        time.Duration
	RefillMaxPerMonth int
	DefaultOverdraft  billing.Credits
}

func policyFlags(fs *flag.FlagSet, getenv env, c *policyConfig) {
	d := billing.DefaultPolicy
	fs.DurationVar(&c.PromoExpiry, "promo-expiry", envDuration(getenv, "TALLY_PROMO_EXPIRY", 0), "an admin's promo grant without a date expires this long after it; 0 = never; whole days (env TALLY_PROMO_EXPIRY; a fresh installation's default, then the Policies page)")
	fs.Int64Var(&c.CustomMin, "custom-topup-min", int64(envInt(getenv, "TALLY_CUSTOM_TOPUP_MIN", int(d.CustomMin))), "smallest custom top-up, in minor units (env TALLY_CUSTOM_TOPUP_MIN; a fresh installation's default)")
	fs.Int64Var(&c.CustomMax, "custom-topup-max", int64(envInt(getenv, "TALLY_CUSTOM_TOPUP_MAX", int(d.CustomMax))), "largest custom top-up, in minor units (env TALLY_CUSTOM_TOPUP_MAX; a fresh installation's default)")
	fs.IntVar(&c.LowBalancePercent, "low-balance-percent", envInt(getenv, "TALLY_LOW_BALANCE_PERCENT", d.LowBalancePercent), "default low-balance line, in percent of the last top-up (env TALLY_LOW_BALANCE_PERCENT; a fresh installation's default)")
	fs.DurationVar(&c.HoldTTL, "hold-ttl", envDuration(getenv, "TALLY_HOLD_TTL", d.HoldTTL), "a hold's lifetime when the request names none (env TALLY_HOLD_TTL; a fresh installation's default)")
	fs.DurationVar(&c.HoldMaxTTL, "hold-max-ttl", envDuration(getenv, "TALLY_HOLD_MAX_TTL", d.HoldMaxTTL), "the longest hold a request may ask for, at most 24h (env TALLY_HOLD_MAX_TTL; a fresh installation's default)")
	c.DefaultOverdraft = 0
	if v := getenv("TALLY_DEFAULT_OVERDRAFT"); v != "" {
		if cr, err := billing.ParseCredits(v); err == nil {
			c.DefaultOverdraft = cr
		}
	}
	fs.Func("default-overdraft", "a new customer's overdraft limit, in credits; 0 = none (env TALLY_DEFAULT_OVERDRAFT; a fresh installation's default)", func(s string) error {
		cr, err := billing.ParseCredits(s)
		if err != nil || cr < 0 {
			return fmt.Errorf("%q is not an amount of credits", s)
		}
		c.DefaultOverdraft = cr
		return nil
	})
	fs.IntVar(&c.RefillMaxPerMonth, "refill-max-per-month", envInt(getenv, "TALLY_REFILL_MAX_PER_MONTH", 0), "auto-refills a month for a customer who set no cap; 0 = no cap (env TALLY_REFILL_MAX_PER_MONTH; a fresh installation's default)")
}

// initialPolicy is the policy the flags describe. Zero values (a config
// built in a test) keep billing's defaults.
func initialPolicy(cfg serveConfig) billing.Policy {
	p := billing.DefaultPolicy
	p.RefundWindow, p.PurchaseExpiry = cfg.RefundWindow, cfg.PurchaseTTL
	c := cfg.Policy
	p.PromoExpiry = c.PromoExpiry
	p.RefillMaxPerMonth = c.RefillMaxPerMonth
	p.DefaultOverdraft = c.DefaultOverdraft
	if c.CustomMin > 0 {
		p.CustomMin = c.CustomMin
	}
	if c.CustomMax > 0 {
		p.CustomMax = c.CustomMax
	}
	if c.LowBalancePercent > 0 {
		p.LowBalancePercent = c.LowBalancePercent
	}
	if c.HoldTTL > 0 {
		p.HoldTTL = c.HoldTTL
	}
	if c.HoldMaxTTL > 0 {
		p.HoldMaxTTL = c.HoldMaxTTL
	}
	return p
}

// startPolicy stores the flags' policy on a fresh installation and says
// which policy is in force; it returns the payments service's view of the
// policy in force (read per purchase, so an edit applies at once).
func startPolicy(ctx context.Context, d *db.DB, cfg serveConfig, log *slog.Logger) (func(context.Context) billing.PaymentPolicy, error) {
	want := initialPolicy(cfg)
	v, seeded, err := d.SeedPolicy(ctx, want)
	if err != nil {
		return nil, usageError{"the policy flags: " + billing.ErrorMessage(err)}
	}
	if seeded {
		log.Info("policy stored from the flags (version 1); edit it at /admin/policies")
	} else if v.Policy != want {
		log.Info("the stored policy is in force; policy flags are only a new installation's defaults", "version", v.Version)
	}
	return func(ctx context.Context) billing.PaymentPolicy {
		cur, err := d.CurrentPolicy(ctx)
		if err != nil {
			log.Error("reading the policy; using the last one read", "err", err)
			return v.Policy.Payment()
		}
		return cur.Policy.Payment()
	}, nil
}
