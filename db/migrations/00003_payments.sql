-- +goose Up
-- The customer at the payment provider (Stripe's cus_..., or the sandbox's).
CREATE TABLE payment_customers (
    customer_id          TEXT PRIMARY KEY REFERENCES customers(id),
    provider             TEXT NOT NULL,
    provider_customer_id TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    UNIQUE (provider, provider_customer_id)
);

-- Saved cards: what the portal shows (brand, last 4, expiry), never numbers.
CREATE TABLE payment_methods (
    id          TEXT PRIMARY KEY,          -- card_...
    customer_id TEXT NOT NULL REFERENCES customers(id),
    provider    TEXT NOT NULL,
    provider_id TEXT NOT NULL,             -- pm_... at the provider
    brand       TEXT NOT NULL,
    last4       TEXT NOT NULL,
    exp_month   INTEGER NOT NULL,
    exp_year    INTEGER NOT NULL,
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    removed_at  INTEGER,
    UNIQUE (provider, provider_id)
);
CREATE INDEX payment_methods_customer ON payment_methods (customer_id) WHERE removed_at IS NULL;

-- A purchase of credits. Its grant is written exactly once, by whichever
-- comes first: the provider's synchronous answer or its webhook.
CREATE TABLE top_ups (
    id                  TEXT PRIMARY KEY,  -- top_...
    customer_id         TEXT NOT NULL REFERENCES customers(id),
    origin              TEXT NOT NULL CHECK (origin IN ('portal', 'auto_refill', 'api')),
    pack_id             TEXT NOT NULL DEFAULT '',
    description         TEXT NOT NULL,
    credits             INTEGER NOT NULL CHECK (credits > 0),
    amount              INTEGER NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'requires_action', 'succeeded', 'failed', 'refunded')),
    provider            TEXT NOT NULL,
    provider_payment_id TEXT UNIQUE,
    idempotency_key     TEXT NOT NULL UNIQUE, -- the click (or refill attempt) that asked for it
    payment_method_id   TEXT,
    card_brand          TEXT NOT NULL DEFAULT '',
    card_last4          TEXT NOT NULL DEFAULT '',
    failure_reason      TEXT NOT NULL DEFAULT '',
    next_action_url     TEXT NOT NULL DEFAULT '',
    receipt_url         TEXT NOT NULL DEFAULT '',
    grant_entry_id      INTEGER REFERENCES entries(id),
    lot_id              INTEGER REFERENCES lots(id),
    refund_entry_id     INTEGER REFERENCES entries(id),
    refunded_credits    INTEGER NOT NULL DEFAULT 0,
    refunded_amount     INTEGER NOT NULL DEFAULT 0,
    refill_job_id       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX top_ups_customer ON top_ups (customer_id, created_at);

-- Provider events (webhooks) already processed: each is handled once.
CREATE TABLE payment_events (
    event_id    TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    type        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);

-- Auto-refill: when a debit takes the balance below threshold, one job buys
-- more with the saved card.
CREATE TABLE refill_settings (
    customer_id          TEXT PRIMARY KEY REFERENCES customers(id),
    enabled              INTEGER NOT NULL DEFAULT 0,
    threshold            INTEGER NOT NULL CHECK (threshold >= 0),
    mode                 TEXT NOT NULL CHECK (mode IN ('pack', 'target')),
    pack_id              TEXT NOT NULL DEFAULT '',
    target               INTEGER NOT NULL DEFAULT 0,
    max_refills_per_month INTEGER,             -- NULL: no count ceiling
    max_amount_per_month INTEGER,              -- minor units; NULL: no amount ceiling
    failures             INTEGER NOT NULL DEFAULT 0,
    paused_reason        TEXT NOT NULL DEFAULT '',
    updated_at           INTEGER NOT NULL
);

CREATE TABLE refill_jobs (
    id              TEXT PRIMARY KEY,      -- rfj_...
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'running', 'requires_action', 'succeeded', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    top_up_id       TEXT,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- At most one open job per customer: a second crossing while one is open adds nothing.
CREATE UNIQUE INDEX refill_jobs_open ON refill_jobs (customer_id) WHERE status IN ('pending', 'running', 'requires_action');
CREATE INDEX refill_jobs_due ON refill_jobs (next_attempt_at) WHERE status = 'pending';

-- Things a customer (and later outbound webhooks and emails) should hear
-- about: a declined refill, a paused auto-refill, a dispute.
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

-- Customers an admin should look at (a disputed payment).
CREATE TABLE customer_flags (
    customer_id TEXT NOT NULL REFERENCES customers(id),
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- +goose Down
DROP TABLE customer_flags;
DROP TABLE billing_events;
DROP TABLE refill_jobs;
DROP TABLE refill_settings;
DROP TABLE payment_events;
DROP TABLE top_ups;
DROP TABLE payment_methods;
DROP TABLE payment_customers;
