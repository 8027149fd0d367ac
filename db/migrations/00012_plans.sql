-- +goose Up
-- Subscription plans (billing/plans.go). A subscription is a customer's plan
-- at the price book version they subscribed to; at most one is live (not
-- canceled) per customer.
CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    customer_id          TEXT NOT NULL REFERENCES customers(id),
    plan_key             TEXT NOT NULL,
    price_version        INTEGER NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('active', 'past_due', 'canceled')),
    current_period_start INTEGER NOT NULL,
    current_period_end   INTEGER NOT NULL,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    next_plan_key        TEXT,            -- a downgrade waiting for the period's end
    next_price_version   INTEGER,
    provider             TEXT NOT NULL,   -- sandbox or stripe
    provider_id          TEXT,            -- Stripe's sub_...
    created_at           INTEGER NOT NULL,
    canceled_at          INTEGER,
    updated_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX subscriptions_live ON subscriptions (customer_id) WHERE status != 'canceled';
CREATE UNIQUE INDEX subscriptions_provider ON subscriptions (provider, provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX subscriptions_due ON subscriptions (current_period_end) WHERE status != 'canceled';

-- Every grant of plan credits: a period's (renewal) or an upgrade's
-- prorated difference. The unique keys make a period's credits arrive
-- exactly once, whichever event (invoice.paid, the checkout's answer, the
-- sandbox clock) brings them first: one row per invoice, one renewal per
-- (subscription, period start). The rows are the subscription invoices'
-- receipts too.
CREATE TABLE subscription_periods (
    id              INTEGER PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id),
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    kind            TEXT NOT NULL CHECK (kind IN ('renewal', 'upgrade')),
    period_start    INTEGER NOT NULL,
    period_end      INTEGER NOT NULL,
    invoice_id      TEXT NOT NULL UNIQUE,
    plan_key        TEXT NOT NULL,
    price_version   INTEGER NOT NULL,
    credits         INTEGER NOT NULL,
    amount          INTEGER NOT NULL,  -- minor units charged
    currency        TEXT NOT NULL,
    lot_id          INTEGER REFERENCES lots(id),
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX subscription_periods_once ON subscription_periods (subscription_id, period_start) WHERE kind = 'renewal';
CREATE INDEX subscription_periods_customer ON subscription_periods (customer_id, id);

-- A subscription lot's rule for its period's end: what carries over, and
-- until when. closed_at is set when the period ended (carried: what stayed).
CREATE TABLE lot_rollovers (
    lot_id          INTEGER PRIMARY KEY REFERENCES lots(id),
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id),
    policy          TEXT NOT NULL CHECK (policy IN ('up_to', 'all')),
    max             INTEGER NOT NULL DEFAULT 0,
    periods         INTEGER NOT NULL,
    keep_until      INTEGER NOT NULL,
    closed_at       INTEGER,
    carried         INTEGER
);

-- The sandbox's test clock: how far `tally sandbox advance` moved
-- subscriptions' time ahead of the real one.
CREATE TABLE sandbox_clock (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    offset_us INTEGER NOT NULL
);

-- +goose Down
DROP TABLE sandbox_clock;
DROP TABLE lot_rollovers;
DROP TABLE subscription_periods;
DROP TABLE subscriptions;
