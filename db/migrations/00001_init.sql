-- +goose Up
-- Tally's schema. Amounts are INTEGER millicredits (credits) or minor units
-- (money); times are INTEGER unix microseconds, UTC. Nothing here is
-- SQLite-only except where a comment says so.

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,            -- cus_...
    external_id TEXT NOT NULL UNIQUE,        -- the product's own id
    email       TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

-- The cached state of a customer's credits. It changes only in the
-- transaction that appends the entry explaining the change, so that
-- balance == sum(entries.amount) == sum(live lots.remaining) - debt.
CREATE TABLE wallets (
    customer_id     TEXT PRIMARY KEY REFERENCES customers(id),
    balance         INTEGER NOT NULL DEFAULT 0,
    held            INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    debt            INTEGER NOT NULL DEFAULT 0 CHECK (debt >= 0),
    overdraft_limit INTEGER NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    daily_cap       INTEGER CHECK (daily_cap >= 0),
    monthly_cap     INTEGER CHECK (monthly_cap >= 0),
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID; -- SQLite: the row lives in its primary-key B-tree (one page per update, not two)

-- A grant of credits. Debits burn remaining down in burn order.
CREATE TABLE lots (
    id               INTEGER PRIMARY KEY,
    customer_id      TEXT NOT NULL REFERENCES customers(id),
    source           TEXT NOT NULL CHECK (source IN ('purchase', 'promo', 'subscription', 'adjustment')),
    priority         INTEGER NOT NULL,
    amount           INTEGER NOT NULL CHECK (amount > 0),
    remaining        INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at       INTEGER,
    refundable_until INTEGER,
    frozen           INTEGER NOT NULL DEFAULT 0,
    reason           TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL
);
-- Partial indexes (SQLite and PostgreSQL both have them): only live lots matter to a debit.
CREATE INDEX lots_live ON lots (customer_id) WHERE remaining > 0;
CREATE INDEX lots_expiring ON lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;

CREATE TABLE holds (
    id             TEXT PRIMARY KEY,          -- hld_...
    customer_id    TEXT NOT NULL REFERENCES customers(id),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    status         TEXT NOT NULL CHECK (status IN ('active', 'captured', 'released', 'expired')),
    expires_at     INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    closed_at      INTEGER,
    close_entry_id INTEGER,
    api_key_id     TEXT
);
CREATE INDEX holds_active ON holds (expires_at) WHERE status = 'active';
CREATE INDEX holds_customer_active ON holds (customer_id) WHERE status = 'active';
CREATE INDEX holds_key_active ON holds (api_key_id) WHERE status = 'active';

-- The ledger: append-only. amount is the signed change to the balance,
-- held_delta the change to held credits. An entry written under an
-- idempotency key is also that key's stored result: a replay is rebuilt
-- from it, and request_hash tells a replay from a conflicting reuse.
CREATE TABLE entries (
    id              INTEGER PRIMARY KEY,
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    type            TEXT NOT NULL CHECK (type IN ('grant', 'debit', 'hold', 'hold_release', 'expiry', 'refund', 'adjustment')),
    amount          INTEGER NOT NULL,
    held_delta      INTEGER NOT NULL DEFAULT 0,
    balance_after   INTEGER NOT NULL,
    feature         TEXT,
    quantity        INTEGER,
    price_version   INTEGER,
    lot_id          INTEGER REFERENCES lots(id),
    hold_id         TEXT REFERENCES holds(id),
    source          TEXT,
    reason          TEXT NOT NULL DEFAULT '',
    metadata        TEXT,                     -- JSON object of string tags
    api_key_id      TEXT,
    idempotency_key TEXT UNIQUE,
    request_hash    BLOB,
    created_at      INTEGER NOT NULL
);
CREATE INDEX entries_customer ON entries (customer_id, id);
-- No (customer_id, feature) index: every index is a random-page write per
-- debit, and a feature filter on one customer's history scans that
-- customer's entries newest first, which is fast for any feature in use.
-- Dashboards read the rollups in usage_daily instead (docs/BENCHMARKS.md).

-- Which lots each entry took credits from (debits, expiries, refunds, negative adjustments).
CREATE TABLE entry_lots (
    entry_id INTEGER NOT NULL REFERENCES entries(id),
    lot_id   INTEGER NOT NULL REFERENCES lots(id),
    amount   INTEGER NOT NULL CHECK (amount > 0),
    PRIMARY KEY (entry_id, lot_id)
);

-- Daily per-feature usage rollups, maintained in the debit's transaction so
-- dashboards and spend caps never scan entries. day is UTC 'YYYY-MM-DD'.
CREATE TABLE usage_daily (
    customer_id TEXT NOT NULL REFERENCES customers(id),
    day         TEXT NOT NULL,
    feature     TEXT NOT NULL,
    credits     INTEGER NOT NULL,
    quantity    INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    PRIMARY KEY (customer_id, day, feature)
) WITHOUT ROWID;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,             -- key_...
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,                -- the first characters, for people to recognise it
    hash        BLOB NOT NULL UNIQUE,         -- SHA-256 of the secret; the secret itself is never stored
    scope       TEXT NOT NULL CHECK (scope IN ('admin', 'metering', 'read')),
    daily_cap   INTEGER CHECK (daily_cap >= 0),
    monthly_cap INTEGER CHECK (monthly_cap >= 0),
    rate_limit  INTEGER CHECK (rate_limit > 0), -- requests per second; NULL = unlimited
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Credits spent through each API key per UTC day, for per-key caps.
CREATE TABLE api_key_spend (
    api_key_id TEXT NOT NULL REFERENCES api_keys(id),
    day        TEXT NOT NULL,
    credits    INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, day)
) WITHOUT ROWID;

-- Every published price book version, immutable.
CREATE TABLE price_books (
    version      INTEGER PRIMARY KEY,
    published_at INTEGER NOT NULL,
    body         TEXT NOT NULL                -- JSON: currency, features, packs
);

-- Append-only is enforced by the database too, not only by the code.
-- (Trigger syntax differs in PostgreSQL; the rule is the same.)
-- +goose StatementBegin
CREATE TRIGGER entries_append_only_u BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER entries_append_only_d BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER entry_lots_append_only_u BEFORE UPDATE ON entry_lots
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER price_books_immutable_u BEFORE UPDATE ON price_books
BEGIN SELECT RAISE(ABORT, 'price book versions are immutable'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER price_books_immutable_d BEFORE DELETE ON price_books
BEGIN SELECT RAISE(ABORT, 'price book versions are immutable'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE price_books;
DROP TABLE api_key_spend;
DROP TABLE api_keys;
DROP TABLE usage_daily;
DROP TABLE entry_lots;
DROP TABLE entries;
DROP TABLE holds;
DROP TABLE lots;
DROP TABLE wallets;
DROP TABLE customers;
