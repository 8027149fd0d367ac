-- +goose Up
-- Single-use sign-in links for the customer portal, as product backends ask
-- for them (POST /api/v1/portal-sessions). Only a hash of the token is kept.
CREATE TABLE portal_sessions (
    token_hash  BYTEA PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    return_url  TEXT NOT NULL,
    flow        TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- Preferences a customer sets in the portal.
CREATE TABLE customer_settings (
    customer_id           TEXT PRIMARY KEY REFERENCES customers(id),
    low_balance_threshold BIGINT CHECK (low_balance_threshold >= 0), -- NULL: 10% of the last top-up
    updated_at            BIGINT NOT NULL
);

-- Keys Tally generates for itself (the session cookie keys) when none is
-- configured, so sessions survive restarts.
CREATE TABLE app_secrets (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every lot of a customer, in order (the portal lists them; the last
-- purchase sets the default low-balance threshold). Replaces the partial
-- index of live lots: a customer has few lots.
DROP INDEX lots_live;
CREATE INDEX lots_customer ON lots (customer_id, id);

-- +goose Down
DROP INDEX lots_customer;
CREATE INDEX lots_live ON lots (customer_id) WHERE remaining > 0;
DROP TABLE app_secrets;
DROP TABLE customer_settings;
DROP TABLE portal_sessions;
