-- +goose Up
-- A version may be published for a later time: effective_at is when it
-- takes effect (NULL for versions from before this migration: their
-- published_at). Debits and the portal use the version whose effective
-- time is the latest at or before theirs. published_by is the actor who
-- published it ("admin:adm_..."; NULL for the CLI and the API). The
-- versions stay immutable: these columns are written with the row.
ALTER TABLE price_books ADD COLUMN effective_at INTEGER;
ALTER TABLE price_books ADD COLUMN published_by TEXT;

-- The admin console's draft price book: one per installation (id is 1),
-- kept across restarts until it is published or discarded. rev counts the
-- saves, so an editor holding an older page cannot overwrite a newer save.
CREATE TABLE price_book_drafts (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    body         TEXT NOT NULL,                 -- JSON, as price_books.body
    base_version INTEGER,                       -- the version it started from
    rev          INTEGER NOT NULL,
    updated_by   TEXT NOT NULL,                 -- kind:id
    updated_at   INTEGER NOT NULL
);

-- +goose Down
DROP TABLE price_book_drafts;
ALTER TABLE price_books DROP COLUMN published_by;
ALTER TABLE price_books DROP COLUMN effective_at;
