package db

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/tally-billing/tally/internal/storetest"
)

// Migration 00019 adds admin_users.disabled_at and its down removes it
// again, keeping the staff, on both stores.
func TestMigration00019DisabledAtUpAndDown(t *testing.T) {
	ctx := context.Background()
	path := storetest.DSN(t)
	if !IsPostgresDSN(path) {
		path = filepath.Join(t.TempDir(), "m.db")
	}
	conn := MigrateForTest(t, path, 19)
	dialect, err := SQLite, error(nil)
	if IsPostgresDSN(path) {
		dialect = Postgres
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO admin_users (id, email, password_hash, role, created_at, disabled_at) VALUES ('adm_1', 'a@example.com', 'x', 'owner', 1, 2)`); err != nil {
		t.Fatalf("disabled_at at 00019: %v", err)
	}
	goose := conn
	if dialect == Postgres {
		// MigrateForTest hands back Tally's driver (bools as 0/1); goose
		// needs pgx's own.
		if goose, err = sql.Open("pgx", path); err != nil {
			t.Fatal(err)
		}
		defer goose.Close()
	}
	p, err := migrationProvider(dialect, goose)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 18); err != nil {
		t.Fatalf("down to 18: %v", err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM admin_users`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("staff after down: %d, %v", n, err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT disabled_at FROM admin_users`); err == nil {
		t.Fatal("disabled_at still there after the down migration")
	}
	if _, err := p.UpTo(ctx, 19); err != nil {
		t.Fatalf("up again: %v", err)
	}
}
