package db

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Backup writes a consistent copy of the database at path to the new file
// to, while other processes keep reading and writing it. It uses VACUUM
// INTO, which reads one snapshot (a WAL read transaction never blocks
// writers) and writes a compact, self-contained database file: restoring is
// copying it back in place while Tally is stopped.
//
// On PostgreSQL (path is a postgres:// URL) it runs pg_dump, which reads one
// snapshot while others write, into a custom-format archive, and checks the
// archive with pg_restore --list. Restore it with
// pg_restore --clean --if-exists --dbname URL FILE while Tally is stopped.
func Backup(ctx context.Context, path, to string) error {
	if IsPostgresDSN(path) {
		return backupPostgres(ctx, path, to)
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

func backupPostgres(ctx context.Context, dsn, to string) error {
	if _, err := os.Stat(to); err == nil {
		return fmt.Errorf("backup: %s already exists; choose a new file", to)
	}
	dump, err := pgTool("pg_dump")
	if err != nil {
		return err
	}
	// The password goes to pg_dump in its environment, not on its command
	// line, where every user of the machine could read it.
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("backup: %s: %w", Redact(dsn), err)
	}
	env := os.Environ()
	if pw, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("backup: %s: %w: %s", filepath.Base(name), err, strings.TrimSpace(out.String()))
		}
		return nil
	}
	if err := run(dump, "--format=custom", "--no-owner", "--file="+to, "--dbname="+u.String()); err != nil {
		os.Remove(to)
		return err
	}
	restore, err := pgTool("pg_restore")
	if err != nil {
		return err
	}
	if err := run(restore, "--list", to); err != nil {
		return fmt.Errorf("backup: the archive is unreadable: %w", err)
	}
	return nil
}

// pgTool finds one of PostgreSQL's client programs: on the PATH, or in the
// newest /usr/lib/postgresql/N/bin (Debian's layout, which keeps them off
// the PATH).
func pgTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(d string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return n }
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("backup: %s not found; install PostgreSQL's client programs (Debian: apt-get install postgresql-client) or back up with your provider's snapshots", name)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
