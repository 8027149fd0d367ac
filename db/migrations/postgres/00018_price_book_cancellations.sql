-- +goose Up
-- See the SQLite twin (db/migrations/00018_price_book_cancellations.sql):
-- scheduled price-book versions cancelled before they took effect.
CREATE TABLE price_book_cancellations (
    version      BIGINT PRIMARY KEY REFERENCES price_books(version),
    cancelled_at BIGINT NOT NULL,
    cancelled_by TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE price_book_cancellations;
