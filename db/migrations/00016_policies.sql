-- +goose Up
-- The operator's policy (billing.Policy: refund window, default expiries,
-- custom top-up bounds, the default low-balance line, hold lifetimes, the
-- auto-refill cap), one row per version, edited in the admin console. The
-- newest version is the one in force; the first is written from the
-- server's flags when a fresh installation starts. body is the policy as
-- JSON (durations in nanoseconds), so a new field needs no migration.
-- Append-only like admin_audit: a version is never changed, only followed.
CREATE TABLE policies (
    version    INTEGER PRIMARY KEY,            -- 1, 2, 3... (the writer numbers them)
    body       TEXT NOT NULL,
    actor      TEXT NOT NULL,                  -- kind:id (billing.Actor)
    reason     TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
-- +goose StatementBegin
CREATE TRIGGER policies_append_only_u BEFORE UPDATE ON policies
BEGIN SELECT RAISE(ABORT, 'policy versions are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER policies_append_only_d BEFORE DELETE ON policies
BEGIN SELECT RAISE(ABORT, 'policy versions are append-only'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE policies;
