-- +goose Up
-- The event outbox: what happened, written in the same transaction as the
-- change that caused it. seq is database-wide and increasing (AUTOINCREMENT:
-- never reused, even after old events are pruned); SQLite has one writer at
-- a time, so seq order is commit order and a reader that has seen seq N
-- will never later see a new event below N.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    type        TEXT NOT NULL,
    customer_id TEXT,
    data        TEXT NOT NULL,            -- JSON object: structured, never prose
    actor       TEXT NOT NULL DEFAULT '', -- kind:id (billing.Actor)
    created_at  INTEGER NOT NULL
);
CREATE INDEX events_customer ON events (customer_id, seq);

-- Where each consumer of the outbox is: it has handled every event up to seq.
CREATE TABLE event_cursors (
    consumer   TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Who caused an entry (billing.Actor, kind:id). NULL on a debit metered by an
-- API key: its actor is api_key:<api_key_id>, which the row already holds
-- (the debit fast path writes no column it does not need).
ALTER TABLE entries ADD COLUMN actor TEXT;

-- Whether the last threshold event said "low" (balance.low or
-- balance.depleted), so balance.recovered fires only after one.
ALTER TABLE wallets ADD COLUMN low_announced INTEGER NOT NULL DEFAULT 0;

-- grant.expiring fires once per lot: when it fired.
ALTER TABLE lots ADD COLUMN expiring_noticed_at INTEGER;

-- +goose Down
ALTER TABLE lots DROP COLUMN expiring_noticed_at;
ALTER TABLE wallets DROP COLUMN low_announced;
ALTER TABLE entries DROP COLUMN actor;
DROP TABLE event_cursors;
DROP TABLE events;
