-- +goose Up
-- API keys get a fourth scope, portal: only portal keys (and admin keys)
-- may make portal sign-in links, which spend a customer's money.
-- (PostgreSQL changes the CHECK constraint in place; SQLite rebuilds the table.)
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check CHECK (scope IN ('admin', 'metering', 'portal', 'read'));

-- +goose Down
-- Portal keys cannot be kept under the old constraint: they become read keys.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
UPDATE api_keys SET scope = 'read' WHERE scope = 'portal';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check CHECK (scope IN ('admin', 'metering', 'read'));
