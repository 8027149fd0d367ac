package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Two stores speak through the same code: SQLite (the embedded default) and
// PostgreSQL (several instances on one database). SQL is written once, with
// `?` placeholders and the SQL both accept; the few constructs that differ
// are chosen per dialect where they are used (d.sql). PostgreSQL's driver is
// pgx's database/sql driver, wrapped (pgDriver) so that `?` is rebound to
// `$1, $2...` in one place, for every connection, statement and query.

// Dialect is the SQL a store speaks.
type Dialect int

const (
	// SQLite is the embedded store (modernc.org/sqlite).
	SQLite Dialect = iota
	// Postgres is PostgreSQL through pgx.
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Dialect is the database's SQL dialect.
func (d *DB) Dialect() Dialect { return d.dialect }

// IsPostgresDSN reports whether dsn names a PostgreSQL database
// (postgres:// or postgresql://).
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// pgDriverName is the wrapped pgx driver's name in database/sql.
const pgDriverName = "tally-pgx"

func init() {
	sql.Register(pgDriverName, pgDriver{stdlib.GetDefaultDriver()})
}

// pgDriver is pgx's database/sql driver with `?` rebound to `$n`.
type pgDriver struct{ d driver.Driver }

func (p pgDriver) Open(name string) (driver.Conn, error) {
	c, err := p.d.Open(name)
	if err != nil {
		return nil, err
	}
	return &pgConn{c}, nil
}

// pgConn forwards every interface pgx's connection implements, rebinding
// the query text on the way.
type pgConn struct{ c driver.Conn }

func (c *pgConn) Prepare(q string) (driver.Stmt, error) { return c.c.Prepare(rebind(q)) }
func (c *pgConn) Close() error                          { return c.c.Close() }
func (c *pgConn) Begin() (driver.Tx, error) {
	return c.c.(driver.ConnBeginTx).BeginTx(context.Background(), driver.TxOptions{})
}
func (c *pgConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.c.(driver.ConnPrepareContext).PrepareContext(ctx, rebind(q))
}
func (c *pgConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	return c.c.(driver.ConnBeginTx).BeginTx(ctx, o)
}
func (c *pgConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.c.(driver.ExecerContext).ExecContext(ctx, rebind(q), args)
}
func (c *pgConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.c.(driver.QueryerContext).QueryContext(ctx, rebind(q), args)
}
func (c *pgConn) Ping(ctx context.Context) error {
	if p, ok := c.c.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
func (c *pgConn) ResetSession(ctx context.Context) error {
	if r, ok := c.c.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}
func (c *pgConn) IsValid() bool {
	if v, ok := c.c.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}
func (c *pgConn) CheckNamedValue(v *driver.NamedValue) error {
	// The schema's flags are integers (0/1), as in SQLite, which stores a
	// Go bool as one: pgx would refuse to put a bool in a bigint.
	if b, ok := v.Value.(bool); ok {
		v.Value = boolInt(b)
		return nil
	}
	if n, ok := c.c.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

// rebinds caches rebind's results: the code's queries are a nearly fixed
// set (a few are built with IN lists of varying length), and the cache
// stops growing at maxRebinds.
var (
	rebinds    sync.Map
	rebindsLen atomic.Int64
)

const maxRebinds = 20_000

// rebind turns `?` placeholders into PostgreSQL's `$1, $2...`, leaving any
// `?` inside a string literal, a quoted identifier or a comment alone.
func rebind(q string) string {
	if v, ok := rebinds.Load(q); ok {
		return v.(string)
	}
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			b.WriteString(q[i:min(j+1, len(q))])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			end := len(q)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(q[i:end])
			i = end - 1
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	out := b.String()
	if rebindsLen.Load() < maxRebinds {
		rebinds.Store(q, out)
		rebindsLen.Add(1)
	}
	return out
}

// pgCode is a PostgreSQL error's SQLSTATE, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure, from either store.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return pgCode(err) == "23505"
}

// isConstraint reports whether err is any constraint failure (unique,
// check, foreign key, not null), from either store.
func isConstraint(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
	}
	return strings.HasPrefix(pgCode(err), "23")
}

// isRetryable reports a PostgreSQL transaction that lost a race it can win
// on a second try: a deadlock or a serialization failure. The writer then
// runs its batch again. An operation may have carried on after such an
// error (a debit refused for any reason looks its key up), and then meets
// an aborted transaction (25P02): that reruns the batch too, a bounded
// number of times.
func isRetryable(err error) bool {
	if errors.Is(err, errCommitRolledBack) {
		return true
	}
	switch pgCode(err) {
	case "40P01", "40001", "25P02":
		return true
	}
	return false
}

// greatest is the scalar larger-of function: SQLite's max(a, b),
// PostgreSQL's GREATEST(a, b).
func (d *DB) greatest() string { return d.sql("max", "GREATEST") }

// sql picks the dialect's form of a construct the two stores spell
// differently.
func (d *DB) sql(sqlite, postgres string) string {
	if d.dialect == Postgres {
		return postgres
	}
	return sqlite
}

// errCommitRolledBack is a COMMIT that PostgreSQL answered with ROLLBACK: an
// earlier statement had aborted the transaction, and nothing was written.
var errCommitRolledBack = &pgconn.PgError{Code: "25P02", Message: "COMMIT rolled back an aborted transaction"}

// rawPgx is the pgx connection under a database/sql driver connection of
// the PostgreSQL store.
func rawPgx(dc any) *pgx.Conn {
	if c, ok := dc.(*pgConn); ok {
		dc = c.c
	}
	return dc.(*stdlib.Conn).Conn()
}
