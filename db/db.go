// Package db is the only package that speaks SQL. It stores Tally's domain in
// an embedded SQLite file (modernc.org/sqlite, no cgo) and owns the single
// writer through which every change to a balance goes.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Options tune Open. The zero value is what production uses.
type Options struct {
	// Now is the clock; tests fix it. Defaults to time.Now.
	Now func() time.Time
	// Logger receives the writer's internal errors. Defaults to slog.Default().
	Logger *slog.Logger
	// MaxBatch caps how many operations one group commit holds. Default 1024.
	MaxBatch int
	// ReadConns is the size of the reader pool. Default 4.
	ReadConns int
	// BusyTimeout is how long a connection waits for another process's write lock.
	BusyTimeout time.Duration
	// PasswordCost is the bcrypt cost of admin passwords. Default 12; tests
	// lower it (bcrypt.MinCost), as bcrypt under -race takes seconds a hash.
	PasswordCost int
}

// DB is an open Tally database: a pool of read connections and one writer.
type DB struct {
	path    string
	dialect Dialect
	read    *sql.DB
	write   *sql.DB
	w       *writer
	ckpt    *checkpointer // SQLite only
	// listen carries other instances' commits to this one (PostgreSQL only).
	listen *pgListener
	now    func() time.Time
	log    *slog.Logger

	pwCost    int
	dummyOnce sync.Once
	dummyHash []byte // see AuthenticateAdmin

	// customerIDs caches external_id and id -> id. Both are immutable once a
	// customer exists, so the cache never goes stale.
	customerIDs sync.Map

	pb       priceBookCache
	subs     subscribers
	keys     apiKeyCache
	pol      policyCache // the policy in force (policy.go)
	refillCh chan struct{}
	eventCh  chan struct{} // signalled after a commit that wrote events
}

// Open opens the database dsn names, applies pending migrations and starts
// the writer. Close must be called to stop it. dsn is a PostgreSQL URL
// (postgres://... or postgresql://...), or an SQLite file: sqlite:FILE or a
// plain path, created if needed.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if IsPostgresDSN(dsn) {
		return openPostgres(ctx, dsn, opts)
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if path == "" {
		return nil, errors.New("db: no database path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("db: database path %q may not contain '?' or '#'", path)
	}
	opts = opts.withDefaults()
	if dir := filepath.Dir(path); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("db: directory of %s: %w", path, err)
		}
	}
	// Every connection: foreign keys on, WAL, fsync on every commit
	// (synchronous=FULL, so an acknowledged write survives power loss), and a
	// busy timeout so a CLI command and a running server share the file.
	base := fmt.Sprintf("%s?_pragma=foreign_keys(1)&_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)",
		path, opts.BusyTimeout.Milliseconds())
	// Writers begin IMMEDIATE: the write lock is taken at BEGIN, so two
	// processes never both read and then fail to upgrade (SQLITE_BUSY mid-transaction).
	// The writer keeps savepoint (statement) journals in memory, not in temp
	// files, and a larger page cache so a batch never spills to the WAL early.
	// Its automatic checkpoint is only a backstop (checkpoint.go).
	write, err := sql.Open("sqlite", base+fmt.Sprintf("&_txlock=immediate&_pragma=temp_store(MEMORY)&_pragma=cache_size(-16000)&_pragma=wal_autocheckpoint(%d)", walBackstopPages))
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", base+"&_query_only=1")
	if err != nil {
		write.Close()
		return nil, err
	}
	read.SetMaxOpenConns(opts.ReadConns)
	read.SetMaxIdleConns(opts.ReadConns)
	read.SetConnMaxIdleTime(0)
	ckpt, err := sql.Open("sqlite", base)
	if err != nil {
		read.Close()
		write.Close()
		return nil, err
	}
	d := &DB{path: path, read: read, write: write, now: opts.Now, log: opts.Logger, pwCost: opts.PasswordCost, refillCh: make(chan struct{}, 1), eventCh: make(chan struct{}, 1),
		ckpt: startCheckpointer(ckpt, opts.Logger)}
	d.w, err = newWriter(d, write, opts.MaxBatch)
	if err != nil {
		d.ckpt.close()
		read.Close()
		write.Close()
		return nil, err
	}
	return d, nil
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Second
	}
	if o.PasswordCost == 0 {
		o.PasswordCost = adminBcryptCost
	}
	return o
}

// Path is the database file (SQLite) or URL (PostgreSQL).
func (d *DB) Path() string { return d.path }

// Now is the database's clock.
func (d *DB) Now() time.Time { return d.now() }

// Close stops the writer after the operations already queued and closes
// the connections, checkpointing the WAL.
func (d *DB) Close() error {
	d.w.close()
	d.pol.stopRereads()
	var err0 error
	if d.ckpt != nil {
		err0 = d.ckpt.close()
	}
	if d.listen != nil {
		d.listen.close()
	}
	err1 := d.read.Close()
	err2 := d.write.Close()
	return errors.Join(err0, err1, err2)
}

// Ping checks that the database answers (for /readyz).
func (d *DB) Ping(ctx context.Context) error {
	var one int
	return d.read.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

func migrate(ctx context.Context, conn *sql.DB) error {
	p, err := migrationProvider(SQLite, conn)
	if err != nil {
		return fmt.Errorf("db: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	return nil
}

// migrationProvider is goose over the dialect's migrations: db/migrations
// for SQLite, db/migrations/postgres for PostgreSQL (the same numbers, the
// same schema; TestSchemasAgree compares them). On PostgreSQL a session
// advisory lock lets several instances start at once: one migrates, the
// others wait and find nothing to do.
func migrationProvider(dialect Dialect, conn *sql.DB) (*goose.Provider, error) {
	if dialect == Postgres {
		sub, err := fs.Sub(migrations, "migrations/postgres")
		if err != nil {
			return nil, err
		}
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		return goose.NewProvider(goose.DialectPostgres, conn, sub, goose.WithSessionLocker(locker))
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectSQLite3, conn, sub)
}

// SchemaVersion reports the applied schema version (Open applies pending
// migrations; `tally migrate` reports the result).
func (d *DB) SchemaVersion(ctx context.Context) (int64, error) {
	conn := d.read
	if d.dialect == Postgres {
		var err error
		if conn, err = sql.Open("pgx", d.path); err != nil { // see migratePostgres
			return 0, err
		}
		defer conn.Close()
	}
	p, err := migrationProvider(d.dialect, conn)
	if err != nil {
		return 0, err
	}
	return p.GetDBVersion(ctx)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}
