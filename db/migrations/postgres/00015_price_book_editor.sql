-- +goose Up
-- See the SQLite twin (db/migrations/00015_price_book_editor.sql): a
-- version's effective time and publisher, and the console's one draft.
ALTER TABLE price_books ADD COLUMN effective_at BIGINT;
ALTER TABLE price_books ADD COLUMN published_by TEXT;

CREATE TABLE price_book_drafts (
    id           BIGINT PRIMARY KEY CHECK (id = 1),
    body         TEXT NOT NULL,
    base_version BIGINT,
    rev          BIGINT NOT NULL,
    updated_by   TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- +goose Down
DROP TABLE price_book_drafts;
ALTER TABLE price_books DROP COLUMN published_by;
ALTER TABLE price_books DROP COLUMN effective_at;
