-- +goose Up
-- The caps a customer sets for themselves in the portal, apart from the
-- operator's (daily_cap, monthly_cap), which the API sets and a customer can
-- never raise. Both apply; the tighter wins. Caps saved before this
-- migration cannot tell who set them: they stay the operator's, the safe
-- reading (a customer can ask the operator to lift them).
ALTER TABLE wallets ADD COLUMN customer_daily_cap BIGINT CHECK (customer_daily_cap >= 0);
ALTER TABLE wallets ADD COLUMN customer_monthly_cap BIGINT CHECK (customer_monthly_cap >= 0);

-- +goose Down
ALTER TABLE wallets DROP COLUMN customer_monthly_cap;
ALTER TABLE wallets DROP COLUMN customer_daily_cap;
