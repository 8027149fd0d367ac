-- +goose Up
-- A member of staff an owner (or `tally admin disable`) disabled: they
-- can't sign in (the sign-in says what a wrong password says) and every
-- session of theirs ended when they were disabled; a session somehow still
-- alive is refused too. Kept, never deleted: the audit log names them.
-- NULL is active. Microseconds since the epoch, like created_at.
ALTER TABLE admin_users ADD COLUMN disabled_at INTEGER;

-- +goose Down
ALTER TABLE admin_users DROP COLUMN disabled_at;
