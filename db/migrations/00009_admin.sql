-- +goose Up
-- The admin console's staff. Passwords are bcrypt hashes (golang.org/x/crypto);
-- e-mail is stored lower-cased so sign-in is case-insensitive.
CREATE TABLE admin_users (
    id            TEXT PRIMARY KEY,                 -- adm_...
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'support')),
    created_at    INTEGER NOT NULL
);

-- Admins signed in to the console, one row per browser session: the same
-- mechanism as customer_sessions (the cookie carries a random id, the row
-- is keyed by its SHA-256; ending the row ends every copy of the cookie).
CREATE TABLE admin_sessions (
    id_hash      BLOB PRIMARY KEY,
    admin_id     TEXT NOT NULL REFERENCES admin_users(id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    end_reason   TEXT CHECK (end_reason IN ('signed_out', 'revoked', 'replaced')),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
) WITHOUT ROWID;
CREATE INDEX admin_sessions_live ON admin_sessions (admin_id) WHERE ended_at IS NULL;
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- What staff did that is not a ledger entry (sign-in, limits, admins,
-- opening a customer's portal...). Money changes are in entries, whose
-- actor and reason say who and why; the audit log reads both. Append-only:
-- the triggers refuse any UPDATE or DELETE.
CREATE TABLE admin_audit (
    id          INTEGER PRIMARY KEY,
    actor       TEXT NOT NULL,                      -- kind:id (billing.Actor)
    action      TEXT NOT NULL,
    customer_id TEXT,
    reason      TEXT NOT NULL DEFAULT '',
    before      TEXT NOT NULL DEFAULT '',           -- JSON, or '' for nothing
    after       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX admin_audit_customer ON admin_audit (customer_id, id);
-- +goose StatementBegin
CREATE TRIGGER admin_audit_append_only_u BEFORE UPDATE ON admin_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER admin_audit_append_only_d BEFORE DELETE ON admin_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- +goose StatementEnd

-- A flag (a disputed payment) is cleared by an admin once looked at: kept,
-- with who cleared it and when, never deleted.
ALTER TABLE customer_flags ADD COLUMN cleared_at INTEGER;
ALTER TABLE customer_flags ADD COLUMN cleared_by TEXT;

-- An admin's freeze of an account: debits and new holds are refused
-- (account_frozen) while frozen_at is set.
ALTER TABLE wallets ADD COLUMN frozen_at INTEGER;
ALTER TABLE wallets ADD COLUMN frozen_by TEXT;
ALTER TABLE wallets ADD COLUMN frozen_reason TEXT;

-- A portal session an admin opened to see a customer's portal as they do:
-- read-only (every portal write is refused), by that admin.
ALTER TABLE customer_sessions ADD COLUMN read_only_by TEXT;

-- +goose Down
ALTER TABLE customer_sessions DROP COLUMN read_only_by;
ALTER TABLE wallets DROP COLUMN frozen_reason;
ALTER TABLE wallets DROP COLUMN frozen_by;
ALTER TABLE wallets DROP COLUMN frozen_at;
ALTER TABLE customer_flags DROP COLUMN cleared_by;
ALTER TABLE customer_flags DROP COLUMN cleared_at;
DROP TABLE admin_audit;
DROP TABLE admin_sessions;
DROP TABLE admin_users;
