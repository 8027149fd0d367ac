package db

import (
	"context"
	"database/sql"
	"testing"

	"github.com/tally-billing/tally/billing"
)

// ExecForTest runs a statement inside a writer operation.
func ExecForTest(t *Tx, query string) error {
	_, err := t.exec(query)
	return err
}

// CustomerForTest creates a customer holding credits (one purchased lot),
// for the tests in this package and in db_test.
func CustomerForTest(t testing.TB, d *DB, ext string, credits int64) string {
	t.Helper()
	ctx := context.Background()
	c, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: ext})
	if err != nil {
		t.Fatal(err)
	}
	if credits > 0 {
		if _, err := d.Grant(ctx, billing.GrantRequest{Customer: c.ID, Credits: billing.CreditsOf(credits), Source: billing.SourcePurchase}); err != nil {
			t.Fatal(err)
		}
	}
	return c.ID
}

// VerifyForTest fails t with every broken ledger invariant.
func VerifyForTest(t testing.TB, d *DB) {
	t.Helper()
	problems, err := d.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error("invariant:", p)
	}
}

// MigrateForTest creates a database at path with the schema of the given
// migration version (to test later migrations on old data) and returns a
// plain connection to it.
func MigrateForTest(t testing.TB, path string, version int64) *sql.DB {
	t.Helper()
	dialect, conn, err := SQLite, (*sql.DB)(nil), error(nil)
	if IsPostgresDSN(path) {
		dialect = Postgres
		conn, err = sql.Open("pgx", path)
		if err == nil {
			// The template is migrated to the last version: start empty.
			_, err = conn.Exec(`DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
		}
	} else {
		conn, err = sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p, err := migrationProvider(dialect, conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
	if dialect == Postgres {
		// Tests write SQL with ? placeholders: hand them Tally's driver.
		if conn, err = sql.Open(pgDriverName, path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
	}
	return conn
}

// RawForTest is a plain connection to d's database (its reader pool) for
// tests that look at rows or write what the code never would.
func RawForTest(t testing.TB, d *DB) *sql.DB {
	if d.dialect == Postgres {
		return d.read
	}
	raw, err := sql.Open("sqlite", d.path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// IsUniqueViolationForTest reports a UNIQUE or PRIMARY KEY failure of either store.
func IsUniqueViolationForTest(err error) bool { return isUniqueViolation(err) }

// HashForTest is how a secret is stored.
func HashForTest(secret string) []byte { h := hashSecret(secret); return h[:] }

// StartPolicyReread makes the cached policy stale and asks for it from
// memory, as the writer does: a background reread starts (policyNow).
func StartPolicyReread(d *DB) {
	d.pol.at.Store(0)
	d.policyNow()
}

// PolicyRereadRunning reports whether a background policy reread is under way.
func PolicyRereadRunning(d *DB) bool { return d.pol.reading.Load() }
