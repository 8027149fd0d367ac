-- +goose Up
-- API keys get a fourth scope, portal: only portal keys (and admin keys)
-- may make portal sign-in links, which spend a customer's money. SQLite
-- cannot change a CHECK constraint in place, so api_keys is rebuilt; its one
-- child, api_key_spend, is set aside first so no foreign key is broken.
CREATE TABLE api_key_spend_copy AS SELECT * FROM api_key_spend;
CREATE TABLE api_keys_copy AS SELECT * FROM api_keys;
DROP TABLE api_key_spend;
DROP TABLE api_keys;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,             -- key_...
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,                -- the first characters, for people to recognise it
    hash        BLOB NOT NULL UNIQUE,         -- SHA-256 of the secret; the secret itself is never stored
    scope       TEXT NOT NULL CHECK (scope IN ('admin', 'metering', 'portal', 'read')),
    daily_cap   INTEGER CHECK (daily_cap >= 0),
    monthly_cap INTEGER CHECK (monthly_cap >= 0),
    rate_limit  INTEGER CHECK (rate_limit > 0), -- requests per second; NULL = unlimited
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
INSERT INTO api_keys (id, name, prefix, hash, scope, daily_cap, monthly_cap, rate_limit, created_at, revoked_at)
    SELECT id, name, prefix, hash, scope, daily_cap, monthly_cap, rate_limit, created_at, revoked_at FROM api_keys_copy;

-- Credits spent through each API key per UTC day, for per-key caps.
CREATE TABLE api_key_spend (
    api_key_id TEXT NOT NULL REFERENCES api_keys(id),
    day        TEXT NOT NULL,
    credits    INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, day)
) WITHOUT ROWID;
INSERT INTO api_key_spend (api_key_id, day, credits) SELECT api_key_id, day, credits FROM api_key_spend_copy;
DROP TABLE api_key_spend_copy;
DROP TABLE api_keys_copy;

-- +goose Down
-- Portal keys cannot be kept under the old constraint: they become read keys.
CREATE TABLE api_key_spend_copy AS SELECT * FROM api_key_spend;
CREATE TABLE api_keys_copy AS SELECT * FROM api_keys;
DROP TABLE api_key_spend;
DROP TABLE api_keys;
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    scope       TEXT NOT NULL CHECK (scope IN ('admin', 'metering', 'read')),
    daily_cap   INTEGER CHECK (daily_cap >= 0),
    monthly_cap INTEGER CHECK (monthly_cap >= 0),
    rate_limit  INTEGER CHECK (rate_limit > 0),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
INSERT INTO api_keys (id, name, prefix, hash, scope, daily_cap, monthly_cap, rate_limit, created_at, revoked_at)
    SELECT id, name, prefix, hash, CASE scope WHEN 'portal' THEN 'read' ELSE scope END, daily_cap, monthly_cap, rate_limit, created_at, revoked_at
    FROM api_keys_copy;
CREATE TABLE api_key_spend (
    api_key_id TEXT NOT NULL REFERENCES api_keys(id),
    day        TEXT NOT NULL,
    credits    INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, day)
) WITHOUT ROWID;
INSERT INTO api_key_spend (api_key_id, day, credits) SELECT api_key_id, day, credits FROM api_key_spend_copy;
DROP TABLE api_key_spend_copy;
DROP TABLE api_keys_copy;
