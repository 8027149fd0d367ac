-- +goose Up
-- See the SQLite twin (db/migrations/00016_policies.sql): the operator's
-- policy, one append-only row per version.
CREATE TABLE policies (
    version    BIGINT PRIMARY KEY,
    body       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE TRIGGER policies_append_only_u BEFORE UPDATE ON policies
    FOR EACH ROW EXECUTE FUNCTION tally_refuse('policy versions are append-only');
CREATE TRIGGER policies_append_only_d BEFORE DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION tally_refuse('policy versions are append-only');

-- +goose Down
DROP TABLE policies;
