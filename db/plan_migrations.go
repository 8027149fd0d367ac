package db

import (
	"context"
	"database/sql"
	"errors"
	"strconv"

	"github.com/tally-billing/tally/billing"
)

// Migrating subscribers to a new version of their plan (billing/
// plan_migration.go): the admin console's impact preview and the
// migration, applied at each subscriber's next renewal.

// scanCandidates reads the live subscriptions of plan key (rows of
// subCols) with their plans at the versions they pay for.
func scanCandidates(rows *sql.Rows, planAt func(key string, v int64) (billing.Plan, error)) ([]billing.MigrationCandidate, error) {
	var subs []billing.Subscription
	for rows.Next() {
		s, err := scanSubscription(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		subs = append(subs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	plans := map[int64]billing.Plan{}
	out := make([]billing.MigrationCandidate, 0, len(subs))
	for _, s := range subs {
		p, ok := plans[s.PriceVersion]
		if !ok {
			var err error
			if p, err = planAt(s.Plan, s.PriceVersion); err != nil {
				return nil, err
			}
			plans[s.PriceVersion] = p
		}
		out = append(out, billing.MigrationCandidate{Sub: s, Plan: p})
	}
	return out, nil
}

const candidatesQuery = `SELECT ` + subCols + ` FROM subscriptions WHERE plan_key = ? AND status != 'canceled' ORDER BY id`

// PlanMigrationImpact is what migrating the subscribers of plan key on
// older versions to the current price book's would do, per period.
// Errors: not_found (the plan is not in the current price book),
// validation_failed (a version billed at another interval or currency).
func (d *DB) PlanMigrationImpact(ctx context.Context, key string) (billing.MigrationImpact, error) {
	pb, err := d.CurrentPriceBook(ctx)
	if err != nil {
		return billing.MigrationImpact{}, err
	}
	to, ok := pb.Plan(key)
	if !ok {
		return billing.MigrationImpact{}, billing.Errorf(billing.CodeNotFound, "Plan %q is not in the current price book.", key)
	}
	rows, err := d.read.QueryContext(ctx, candidatesQuery, key)
	if err != nil {
		return billing.MigrationImpact{}, err
	}
	cands, err := scanCandidates(rows, func(k string, v int64) (billing.Plan, error) {
		b, err := d.PriceBookVersion(ctx, v)
		if err != nil {
			return billing.Plan{}, err
		}
		p, _ := b.Plan(k)
		return p, nil
	})
	if err != nil {
		return billing.MigrationImpact{}, err
	}
	return billing.NewMigrationImpact(to, pb.Version, cands)
}

// PlanMigration is a migration made (or found, Replayed): the subscribers
// it moved, for telling their provider.
type PlanMigration struct {
	Impact   billing.MigrationImpact
	Moved    []billing.Subscription
	Replayed bool
}

// MigratePlan moves every subscriber of plan key on an older version to
// version (the current price book's, which the admin saw: another is a
// conflict) from their next renewal, in one transaction with its audit
// entry. requestKey names the confirmation: the same key again migrates
// nobody more and returns the subscribers it moved (Replayed). Errors:
// not_found, conflict (the price book changed since the preview),
// validation_failed, invalid_request (no key).
func (d *DB) MigratePlan(ctx context.Context, key string, version int64, requestKey string, actor billing.Actor) (PlanMigration, error) {
	if requestKey == "" || len(requestKey) > 100 {
		return PlanMigration{}, billing.Errorf(billing.CodeInvalidRequest, "A migration needs the confirmation's key.")
	}
	var out PlanMigration
	err := d.Write(ctx, func(t *Tx) error {
		var id, v int64
		var k string
		err := t.queryRow(`SELECT id, plan_key, to_version FROM plan_migrations WHERE request_key = ?`, requestKey).Scan(&id, &k, &v)
		if err == nil {
			out.Replayed, out.Impact.Plan, out.Impact.Version = true, k, v
			if out.Impact.To, err = t.planAt(k, v); err != nil {
				return err
			}
			out.Moved, err = t.migrated(id)
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		pb, err := t.priceBook()
		if err != nil {
			return err
		}
		if pb.Version != version {
			return billing.Errorf(billing.CodeConflict, "The price book is at version %d now, not %d: review the migration again.", pb.Version, version)
		}
		to, ok := pb.Plan(key)
		if !ok {
			return billing.Errorf(billing.CodeNotFound, "Plan %q is not in the current price book.", key)
		}
		rows, err := t.query(candidatesQuery, key)
		if err != nil {
			return err
		}
		cands, err := scanCandidates(rows, t.planAt)
		if err != nil {
			return err
		}
		if out.Impact, err = billing.NewMigrationImpact(to, version, cands); err != nil {
			return err
		}
		if out.Impact.Subscribers == 0 {
			return billing.Errorf(billing.CodeConflict, "No subscriber of %s is on an older version: there is nobody to migrate.", to.Name)
		}
		if err := t.queryRow(`INSERT INTO plan_migrations (request_key, plan_key, to_version, subscribers, skipped, actor, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, requestKey, key, version, out.Impact.Subscribers, out.Impact.Skipped, actor.String(), micros(t.Now)).Scan(&id); err != nil {
			return err
		}
		for _, c := range cands {
			if !billing.Migratable(c.Sub, key, version) {
				continue
			}
			w, err := t.loadWallet(c.Sub.Customer)
			if err != nil {
				return err
			}
			ch, err := billing.PlanMigrate(ptr(t.state(w, w.lots)), c.Sub, to, version, actor)
			if err != nil {
				return err
			}
			if _, err := t.apply(w, &ch); err != nil {
				return err
			}
			if _, err := t.exec(`INSERT INTO plan_migration_subscribers (migration_id, subscription_id, from_version) VALUES (?, ?, ?)`,
				id, c.Sub.ID, c.Sub.PriceVersion); err != nil {
				return err
			}
			out.Moved = append(out.Moved, *ch.Subscription)
		}
		froms := ""
		for i, g := range out.Impact.Groups {
			if i > 0 {
				froms += ", "
			}
			froms += "v" + strconv.FormatInt(g.Version, 10)
		}
		_, err = t.exec(`INSERT INTO admin_audit (actor, action, customer_id, reason, before, after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			actor.String(), billing.AuditPlanMigrated, nil, "Migrate "+to.Name+" subscribers to price book version "+strconv.FormatInt(version, 10),
			key+" "+froms, key+" v"+strconv.FormatInt(version, 10)+": "+strconv.Itoa(len(out.Moved))+" subscribers from their next renewal",
			micros(t.Now))
		return err
	})
	return out, err
}

// migrated is the subscriptions migration id moved, as they are now.
func (t *Tx) migrated(id int64) ([]billing.Subscription, error) {
	rows, err := t.query(`SELECT `+subCols+` FROM subscriptions WHERE id IN (SELECT subscription_id FROM plan_migration_subscribers WHERE migration_id = ?)
		ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []billing.Subscription
	for rows.Next() {
		s, err := scanSubscription(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
