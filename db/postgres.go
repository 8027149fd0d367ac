package db

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// openPostgres opens a PostgreSQL database: a pool of readers, a small pool
// for the writer's connection (and the migrations), and the LISTEN
// connection that carries other instances' commits to this one's
// subscribers (notify_pg.go).
func openPostgres(ctx context.Context, dsn string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	write, err := sql.Open(pgDriverName, dsn)
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(2)
	write.SetMaxIdleConns(2)
	write.SetConnMaxIdleTime(0)
	write.SetConnMaxLifetime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("db: open %s: %w", Redact(dsn), err)
	}
	if current, err := postgresCurrent(ctx, write); err != nil || !current {
		if err := migratePostgres(ctx, dsn); err != nil {
			write.Close()
			return nil, err
		}
	}
	read, err := sql.Open(pgDriverName, dsn)
	if err != nil {
		write.Close()
		return nil, err
	}
	read.SetMaxOpenConns(opts.ReadConns * 2)
	read.SetMaxIdleConns(opts.ReadConns * 2)
	read.SetConnMaxIdleTime(5 * time.Minute)
	d := &DB{path: dsn, dialect: Postgres, read: read, write: write, now: opts.Now, log: opts.Logger, pwCost: opts.PasswordCost,
		refillCh: make(chan struct{}, 1), eventCh: make(chan struct{}, 1)}
	d.w, err = newWriter(d, write, opts.MaxBatch)
	if err != nil {
		read.Close()
		write.Close()
		return nil, err
	}
	// The writer's own notifications are skipped by the listener: its
	// commits already woke this instance's subscribers (after commit).
	var pid uint32
	if err := d.w.conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		d.w.close()
		read.Close()
		write.Close()
		return nil, err
	}
	if d.listen, err = startListener(ctx, d, dsn, pid); err != nil {
		d.w.close()
		read.Close()
		write.Close()
		return nil, err
	}
	return d, nil
}

// migratePostgres runs goose through pgx's own driver: goose's version
// table has a boolean column, and Tally's wrapper turns bools into integers.
func migratePostgres(ctx context.Context, dsn string) error {
	conn, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(2)
	p, err := migrationProvider(Postgres, conn)
	if err != nil {
		return fmt.Errorf("db: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	return nil
}

// postgresCurrent reports whether the database is at the newest migration
// already, as it is at every start but the first after an upgrade: then
// goose (a connection of its own, a session lock) is not needed.
func postgresCurrent(ctx context.Context, conn *sql.DB) (bool, error) {
	files, err := fs.Glob(migrations, "migrations/postgres/*.sql")
	if err != nil || len(files) == 0 {
		return false, err
	}
	slices.Sort(files)
	newest, err := strconv.ParseInt(strings.SplitN(path.Base(files[len(files)-1]), "_", 2)[0], 10, 64)
	if err != nil {
		return false, err
	}
	var v sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT MAX(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
		return false, nil // no version table yet: a new database
	}
	return v.Int64 == newest, nil
}
