-- +goose Up
-- Migrations of subscribers to a new version of their plan (admin console,
-- db/plan_migrations.go). A migration is made once per confirmation
-- (request_key); each subscriber it moved is kept, with the version it
-- left, and moves at its next renewal (subscriptions.next_plan_key and
-- next_price_version), never mid-period.
CREATE TABLE plan_migrations (
    id          INTEGER PRIMARY KEY,
    request_key TEXT NOT NULL UNIQUE,
    plan_key    TEXT NOT NULL,
    to_version  INTEGER NOT NULL,
    subscribers INTEGER NOT NULL,
    skipped     INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX plan_migrations_plan ON plan_migrations (plan_key, id);

CREATE TABLE plan_migration_subscribers (
    migration_id    INTEGER NOT NULL REFERENCES plan_migrations(id),
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id),
    from_version    INTEGER NOT NULL,
    PRIMARY KEY (migration_id, subscription_id)
);

-- +goose Down
DROP TABLE plan_migration_subscribers;
DROP TABLE plan_migrations;
