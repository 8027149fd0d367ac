package db

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
)

// Backup writes a consistent copy of the database at path to the new file
// to, while other processes keep reading and writing it. It uses VACUUM
// INTO, which reads one snapshot (a WAL read transaction never blocks
// writers) and writes a compact, self-contained database file: restoring is
// copying it back in place while Tally is stopped.
//
// A PostgreSQL database is backed up with PostgreSQL's own tools (pg_dump,
// or the provider's snapshots); Backup says so.
func Backup(ctx context.Context, path, to string) error {
	if IsPostgresDSN(path) {
		return fmt.Errorf("backup: %s is a PostgreSQL database: back it up with pg_dump (pg_dump -Fc -f FILE URL) or your provider's snapshots", redactDSN(path))
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := os.Stat(to); err == nil {
		return fmt.Errorf("backup: %s already exists; choose a new file", to)
	}
	if strings.ContainsAny(path, "?#") {
		return fmt.Errorf("backup: database path %q may not contain '?' or '#'", path)
	}
	conn, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, to); err != nil {
		os.Remove(to)
		return fmt.Errorf("backup: %w", err)
	}
	// Check the copy before calling it a backup.
	check, err := sql.Open("sqlite", to+"?_pragma=query_only(1)")
	if err != nil {
		return err
	}
	defer check.Close()
	var res string
	if err := check.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		return fmt.Errorf("backup: the copy failed its integrity check: %v %s", err, res)
	}
	return nil
}
