-- +goose Up
-- See the SQLite twin (db/migrations/00019_admin_disabled.sql): when a
-- member of staff was disabled, NULL while active.
ALTER TABLE admin_users ADD COLUMN disabled_at BIGINT;

-- +goose Down
ALTER TABLE admin_users DROP COLUMN disabled_at;
