-- +goose Up
-- Outbound webhooks (docs/api.md, "Webhooks"). An endpoint receives the
-- outbox events it subscribes to, signed as the Standard Webhooks
-- specification says.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,          -- we_...
    url             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    event_types     TEXT NOT NULL,             -- JSON array of event types; ["*"]: all
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT NOT NULL DEFAULT '',  -- why the worker turned it off ('' when a person did)
    -- The signing secret (whsec_...) is kept as it is, not hashed: an HMAC
    -- is computed WITH the key, so the worker needs the key itself on every
    -- delivery (a hash would let us check a secret, not sign with it).
    secret          TEXT NOT NULL,
    -- During a rotation the previous secret keeps signing (a second
    -- signature in the same header) until old_secret_until.
    old_secret       TEXT,
    old_secret_until INTEGER,
    idempotency_key  TEXT UNIQUE,              -- of the create request
    request_hash     TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- One row per endpoint and outbox event: the fan-out inserts with
-- ON CONFLICT DO NOTHING, so a restart that reads an event again never
-- enqueues it twice. Test events have no event_seq (NULL never conflicts).
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_seq       INTEGER,                   -- events.seq; NULL for a test event
    msg_id          TEXT NOT NULL,             -- the webhook-id header: evt_<seq>, msg_test_...
    event_type      TEXT NOT NULL,
    customer_id     TEXT,                      -- the order key: one customer's deliveries go in order
    payload         TEXT NOT NULL,             -- the exact body signed and sent on every attempt
    status          TEXT NOT NULL DEFAULT 'pending', -- pending, succeeded, failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    first_attempt_at INTEGER,                 -- the back-off gives up 3 days after this
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, customer_id, id) WHERE status = 'pending';

-- Every attempt, for the delivery log.
CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY,
    delivery_id  INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at INTEGER NOT NULL,
    status_code  INTEGER NOT NULL DEFAULT 0,   -- 0: no HTTP answer (see error)
    latency_ms   INTEGER NOT NULL,
    response     TEXT NOT NULL DEFAULT '',     -- the first bytes of the answer's body
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- Customer e-mail notifications: at most one mail per event and customer.
CREATE TABLE sent_mail (
    customer_id TEXT NOT NULL,
    event_seq   INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,
    PRIMARY KEY (customer_id, event_seq)
) WITHOUT ROWID;

-- The e-mails a customer turned off (every kind is on by default).
CREATE TABLE mail_optouts (
    customer_id TEXT NOT NULL REFERENCES customers(id),
    kind        TEXT NOT NULL,
    PRIMARY KEY (customer_id, kind)
) WITHOUT ROWID;

-- How far a customer has read their notifications list.
CREATE TABLE notification_reads (
    customer_id TEXT PRIMARY KEY REFERENCES customers(id),
    seq         INTEGER NOT NULL
) WITHOUT ROWID;
-- What happened before the upgrade counts as read: the header's count
-- starts at what is new, not at a customer's whole history.
INSERT INTO notification_reads (customer_id, seq)
    SELECT id, (SELECT COALESCE(MAX(seq), 0) FROM events) FROM customers;

-- +goose Down
DROP TABLE notification_reads;
DROP TABLE mail_optouts;
DROP TABLE sent_mail;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
