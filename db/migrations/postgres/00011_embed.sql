-- +goose Up
-- The origins (scheme://host[:port]) whose pages may show the embeddable
-- balance widget with embed tokens minted by an API key. A table of its own
-- rather than a column, so the hot path's key lookup stays as it is and a
-- key lists as many origins as it needs; an origin removed here (or its key
-- revoked) stops the key's tokens at once, as every embed request checks.
CREATE TABLE api_key_origins (
    api_key_id TEXT NOT NULL REFERENCES api_keys(id),
    origin     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, origin)
);
CREATE INDEX api_key_origins_origin ON api_key_origins (origin);

-- +goose Down
DROP TABLE api_key_origins;
