-- +goose Up
-- A scheduled price-book version an admin cancelled before it took effect.
-- Versions stay immutable (and their numbers are never reused); a version
-- named here is never in effect: every query that picks the version in
-- effect, or the next one, leaves it out (db/pricebook.go). Once only: the
-- version is the key.
CREATE TABLE price_book_cancellations (
    version      INTEGER PRIMARY KEY REFERENCES price_books(version),
    cancelled_at INTEGER NOT NULL,
    cancelled_by TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE price_book_cancellations;
