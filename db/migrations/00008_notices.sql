-- +goose Up
-- The portal's notices are read from the event outbox (billing.IsNotice);
-- their wording is the views'. This table holds which ones a customer
-- dismissed. The old billing_events rows, prose written by the database,
-- are dropped: an open notice from before the upgrade disappears once.
CREATE TABLE notice_dismissals (
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    seq          INTEGER NOT NULL, -- events.seq
    dismissed_at INTEGER NOT NULL,
    PRIMARY KEY (customer_id, seq)
) WITHOUT ROWID;
DROP TABLE billing_events;

-- +goose Down
CREATE TABLE billing_events (
    id          INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    type        TEXT NOT NULL,
    message     TEXT NOT NULL,
    data        TEXT,
    created_at  INTEGER NOT NULL,
    dismissed_at INTEGER
);
CREATE INDEX billing_events_customer ON billing_events (customer_id, id);
DROP TABLE notice_dismissals;
