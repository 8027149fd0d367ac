-- +goose Up
-- Customers signed in to the portal, one row per browser session. The
-- session cookie carries only a random id; the row is keyed by its SHA-256,
-- so sign-out, an operator's revocation or a newer sign-in ends every copy
-- of the cookie at once. Times are the portal's (wall) clock, in
-- microseconds. Rows past expires_at are deleted by the server's sweep.
CREATE TABLE customer_sessions (
    id_hash      BYTEA PRIMARY KEY,            -- SHA-256 of the id in the cookie
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    return_url   TEXT NOT NULL,
    flow         TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,            -- the idle timer
    expires_at   BIGINT NOT NULL,            -- created_at + the maximum age
    ended_at     BIGINT,                     -- signed out, revoked or replaced
    end_reason   TEXT CHECK (end_reason IN ('signed_out', 'revoked', 'replaced')),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
-- A customer's live sessions, to end them all.
CREATE INDEX customer_sessions_live ON customer_sessions (customer_id) WHERE ended_at IS NULL;
CREATE INDEX customer_sessions_expiry ON customer_sessions (expires_at);

-- +goose Down
DROP TABLE customer_sessions;
