-- +goose Up
-- A debit of a feature priced per dimension (input and output tokens...)
-- keeps its breakdown: a JSON array of {dimension, quantity, credits}, with
-- quantity NULL on the entry itself. NULL for every other entry.
ALTER TABLE entries ADD COLUMN quantities TEXT;

-- +goose Down
ALTER TABLE entries DROP COLUMN quantities;
