package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/views"
)

// planMigrationStore is what migrating a plan's subscribers needs from
// storage (*db.DB). Errors: not_found, conflict, validation_failed.
type planMigrationStore interface {
	PlanMigrationImpact(ctx context.Context, key string) (billing.MigrationImpact, error)
	MigratePlan(ctx context.Context, key string, version int64, requestKey string, actor billing.Actor) (db.PlanMigration, error)
}

// planMigration is the plan page's migration panel: the impact of moving
// the plan's subscribers on older versions to the current one (nil: the
// store keeps no subscriptions, or the plan is retired).
func (s *Server) planMigration(ctx context.Context, key string) (*billing.MigrationImpact, string, error) {
	ms, ok := s.store.(planMigrationStore)
	if !ok {
		return nil, "", nil
	}
	im, err := ms.PlanMigrationImpact(ctx, key)
	if err == nil {
		return &im, "", nil
	}
	switch billing.ErrorCode(err) {
	case billing.CodeValidation:
		return nil, billing.ErrorMessage(err), nil
	case billing.CodeNotFound:
		return nil, "", nil
	}
	return nil, "", err
}

// POST /admin/plans/:key/migrate (admins): without confirm=1, the
// confirmation with the impact and a key for the confirmation; with it, the
// migration, once for that key: every subscriber on an older version moves
// at their next renewal. Stripe subscribers' prices change at Stripe
// without proration (from their next invoice); the same confirmation
// posted again retries Stripe for those and migrates nobody more.
func (s *Server) adminMigratePlan(c echo.Context) error {
	ctx := c.Request().Context()
	ms, ok := s.store.(planMigrationStore)
	if !ok {
		return billing.Errorf(billing.CodeNotFound, "Subscriptions are not kept here.")
	}
	key := c.Param("key")
	back := "/admin/plans/" + url.PathEscape(key)
	if c.FormValue("confirm") != "1" {
		im, err := ms.PlanMigrationImpact(ctx, key)
		if err != nil {
			if billing.ErrorCode(err) == billing.CodeValidation {
				return adminFlashTo(c, "error", billing.ErrorMessage(err), back)
			}
			return err
		}
		if im.Subscribers == 0 {
			return adminFlashTo(c, "error", "Every subscriber of "+im.To.Name+" is on version "+strconv.FormatInt(im.Version, 10)+" or moving to it: there is nobody to migrate.", back)
		}
		return render(c, http.StatusOK, views.AdminMigrationConfirmPage(s.adminShell(c, "Confirm migration", "plans"),
			views.AdminMigrationConfirm{Impact: im, Key: "mig_" + strings.TrimPrefix(newClickKey(), "click_")}))
	}
	version, err := strconv.ParseInt(c.FormValue("version"), 10, 64)
	reqKey := c.FormValue("key")
	if err != nil || !strings.HasPrefix(reqKey, "mig_") || len(reqKey) > 64 {
		return billing.Errorf(billing.CodeInvalidRequest, "This confirmation was incomplete; review the migration again.")
	}
	res, err := ms.MigratePlan(ctx, key, version, reqKey, billing.AdminActor(currentAdmin(c).User.ID))
	if err != nil {
		if code := billing.ErrorCode(err); code == billing.CodeConflict || code == billing.CodeValidation {
			return adminFlashTo(c, "error", billing.ErrorMessage(err)+" Nothing was migrated.", back)
		}
		return err
	}
	failed := s.migrateAtProvider(ctx, res, reqKey)
	fm := s.publicShell(c, "").Fmt
	n := len(res.Moved)
	msg := fm.Int(int64(n)) + " subscribers move to version " + strconv.FormatInt(version, 10) + " at their next renewal; nothing changes in their current period."
	if n == 1 {
		msg = "1 subscriber moves to version " + strconv.FormatInt(version, 10) + " at their next renewal; nothing changes in their current period."
	}
	if res.Replayed {
		msg = "This migration was made already: nobody more was migrated."
	}
	if failed > 0 {
		return adminFlashTo(c, "error", msg+" Stripe could not be told for "+fm.Int(int64(failed))+" of them: press the confirmation again to retry.", back)
	}
	return adminFlashTo(c, "success", msg, back)
}

// migrateAtProvider changes the price of the migrated Stripe subscribers
// at Stripe from their next invoice (no proration), once per subscription
// and migration (the key); it returns how many Stripe refused or could not
// be reached for (logged; the same confirmation retries them).
func (s *Server) migrateAtProvider(ctx context.Context, res db.PlanMigration, reqKey string) int {
	svc, ok := s.cfg.Payments.Service.(planChanger)
	failed := 0
	for _, sub := range res.Moved {
		if sub.Provider != db.ProviderStripe || sub.ProviderID == "" || !sub.Migrating() {
			continue
		}
		if !ok {
			failed++
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := svc.ChangeProviderPlan(ctx, sub.ProviderID, res.Impact.To, sub.NextPriceVersion, false, time.Time{}, reqKey)
		cancel()
		if err != nil {
			failed++
			s.log.Warn("plan migration: Stripe's price not changed", slog.String("subscription", sub.ID), slog.String("error", err.Error()))
		}
	}
	return failed
}
