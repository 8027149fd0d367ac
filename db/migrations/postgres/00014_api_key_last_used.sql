-- +goose Up
-- When an API key was last used, to the minute: the admin console's API
-- keys page shows it. Stored at most once a minute per key, after the
-- request is authenticated and apart from it (db/apikeys.go noteKeyUse).
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;

-- +goose Down
ALTER TABLE api_keys DROP COLUMN last_used_at;
