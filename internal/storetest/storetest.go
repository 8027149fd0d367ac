// Package storetest chooses the store tests run against: SQLite (the
// default: a file under t.TempDir()) or, with TALLY_TEST_DB=postgres,
// PostgreSQL: one throw-away cluster per test binary (internal/pgtest) and
// a fresh database per test, copied from a migrated template so a test
// pays for CREATE DATABASE, not for the migrations.
//
//	func TestMain(m *testing.M) { storetest.Main(m, migrate) }
//	d, err := db.Open(ctx, storetest.DSN(t), db.Options{})
package storetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tally-billing/tally/internal/pgtest"
)

// Env is the variable that picks the store: "postgres", or "" / "sqlite".
const Env = "TALLY_TEST_DB"

var (
	cluster *pgtest.Cluster
	admin   *pgx.Conn  // to the cluster's "postgres" database, for CREATE/DROP DATABASE
	adminMu sync.Mutex // a pgx.Conn serves one goroutine at a time
	counter atomic.Int64
)

const template = "tally_template"

// Postgres reports whether this run tests PostgreSQL.
func Postgres() bool { return os.Getenv(Env) == "postgres" }

// Main runs the package's tests. On PostgreSQL it starts the cluster first
// and prepares the template database with migrate (which opens the DSN it
// is given, applying the migrations, and closes it); the cluster is removed
// afterwards.
func Main(m *testing.M, migrate func(dsn string) error) {
	os.Exit(run(m, migrate))
}

func run(m *testing.M, migrate func(dsn string) error) int {
	if !Postgres() {
		return m.Run()
	}
	ctx := context.Background()
	var err error
	cluster, err = pgtest.Start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	defer cluster.Stop()
	if admin, err = pgx.Connect(ctx, cluster.DSN("postgres")); err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+template); err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	if migrate != nil {
		if err := migrate(cluster.DSN(template)); err != nil {
			fmt.Fprintln(os.Stderr, "storetest: migrating the template:", err)
			return 1
		}
	}
	return m.Run()
}

// DSN is a new, empty store for t (migrated, on PostgreSQL): a file path
// under t.TempDir() for SQLite, a fresh database's URL for PostgreSQL,
// dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	if !Postgres() {
		return filepath.Join(t.TempDir(), "tally.db")
	}
	if cluster == nil {
		t.Fatal("storetest: TALLY_TEST_DB=postgres but the package's TestMain does not call storetest.Main")
	}
	name := fmt.Sprintf("t%d_%s", counter.Add(1), sanitize(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adminMu.Lock()
	_, err := admin.Exec(ctx, `CREATE DATABASE "`+name+`" TEMPLATE `+template)
	adminMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		adminMu.Lock()
		_, err := admin.Exec(ctx, `DROP DATABASE "`+name+`" WITH (FORCE)`)
		adminMu.Unlock()
		if err != nil {
			t.Logf("storetest: drop %s: %v", name, err)
		}
	})
	return cluster.DSN(name)
}

// sanitize makes a test's name part of a database name (at most 63 bytes).
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.ToLower(s)
}

// SkipIfPostgres skips a test that is inherently SQLite's (the file, its WAL,
// PRAGMAs), saying why.
func SkipIfPostgres(t testing.TB, why string) {
	t.Helper()
	if Postgres() {
		t.Skip("SQLite only: " + why)
	}
}
