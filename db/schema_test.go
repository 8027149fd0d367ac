package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tally-billing/tally/internal/pgtest"
	"github.com/tally-billing/tally/internal/storetest"
)

// TestSchemasAgree applies both dialects' migrations and compares what they
// make: the tables, their columns (name, type, NOT NULL), primary keys,
// unique constraints and indexes (columns, partial or not) and the other
// indexes by name. A migration added for SQLite without its PostgreSQL twin
// in db/migrations/postgres (or one that means something else) fails here.
// Without TALLY_TEST_DB=postgres it starts a cluster of its own.
func TestSchemasAgree(t *testing.T) {
	ctx := context.Background()
	lite, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	var dsn string
	if storetest.Postgres() {
		dsn = storetest.DSN(t)
	} else {
		c, err := pgtest.Start(ctx)
		if errors.Is(err, pgtest.ErrUnavailable) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		if err := c.CreateDB(ctx, "schema"); err != nil {
			t.Fatal(err)
		}
		dsn = c.DSN("schema")
	}
	pg, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	lv, err := lite.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pv, err := pg.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lv != pv {
		t.Errorf("schema version: SQLite %d, PostgreSQL %d: a migration lacks its twin in db/migrations/postgres", lv, pv)
	}
	a, err := sqliteSchema(ctx, lite.read)
	if err != nil {
		t.Fatal(err)
	}
	b, err := postgresSchema(ctx, pg.read)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 20 {
		t.Fatalf("only %d schema facts read from SQLite: the comparison would prove nothing", len(a))
	}
	for _, f := range a {
		if !slices.Contains(b, f) {
			t.Errorf("SQLite has, PostgreSQL lacks: %s", f)
		}
	}
	for _, f := range b {
		if !slices.Contains(a, f) {
			t.Errorf("PostgreSQL has, SQLite lacks: %s", f)
		}
	}
}

// A schema fact is one line: "table t", "column t.c type notnull",
// "pk t (a,b)", "unique t (a,b) [partial]", "index t name".

func sqliteSchema(ctx context.Context, db *sql.DB) ([]string, error) {
	tables, err := strs(ctx, db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'goose_db_version' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, tb := range tables {
		out = append(out, "table "+tb)
		rows, err := db.QueryContext(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid`, tb)
		if err != nil {
			return nil, err
		}
		var pk []string
		pkAt := map[string]int{}
		for rows.Next() {
			var name, typ string
			var notnull bool
			var pos int
			if err := rows.Scan(&name, &typ, &notnull, &pos); err != nil {
				rows.Close()
				return nil, err
			}
			if pos > 0 {
				notnull = true // PostgreSQL's primary keys are NOT NULL; SQLite's INTEGER PRIMARY KEY is too
				pkAt[name] = pos
				pk = append(pk, name)
			}
			out = append(out, fmt.Sprintf("column %s.%s %s notnull=%v", tb, name, liteType(typ), notnull))
		}
		rows.Close()
		if len(pk) > 0 {
			slices.SortFunc(pk, func(x, y string) int { return pkAt[x] - pkAt[y] })
			out = append(out, fmt.Sprintf("pk %s (%s)", tb, strings.Join(pk, ",")))
		}
		idx, err := db.QueryContext(ctx, `SELECT name, "unique", origin, partial FROM pragma_index_list(?)`, tb)
		if err != nil {
			return nil, err
		}
		type index struct {
			name, origin string
			unique       bool
			partial      bool
		}
		var list []index
		for idx.Next() {
			var x index
			if err := idx.Scan(&x.name, &x.unique, &x.origin, &x.partial); err != nil {
				idx.Close()
				return nil, err
			}
			list = append(list, x)
		}
		idx.Close()
		for _, x := range list {
			if x.origin == "pk" {
				continue
			}
			cols, err := strs(ctx, db, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, x.name)
			if err != nil {
				return nil, err
			}
			if x.unique {
				out = append(out, uniqueFact(tb, cols, x.partial))
			}
			if x.origin == "c" {
				out = append(out, "index "+tb+" "+x.name)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func postgresSchema(ctx context.Context, db *sql.DB) ([]string, error) {
	tables, err := strs(ctx, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
		AND table_name != 'goose_db_version' ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, tb := range tables {
		out = append(out, "table "+tb)
		rows, err := db.QueryContext(ctx, `SELECT column_name, data_type, is_nullable = 'NO' FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position`, tb)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var name, typ string
			var notnull bool
			if err := rows.Scan(&name, &typ, &notnull); err != nil {
				rows.Close()
				return nil, err
			}
			if name == "rowid" {
				continue // SQLite's implicit rowid, made explicit (customer_flags, entry_lots)
			}
			out = append(out, fmt.Sprintf("column %s.%s %s notnull=%v", tb, name, typ, notnull))
		}
		rows.Close()
		idx, err := db.QueryContext(ctx, `SELECT c.relname, i.indisprimary, i.indisunique, i.indpred IS NOT NULL,
			(SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
			FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class r ON r.oid = i.indrelid
			JOIN pg_namespace ns ON ns.oid = r.relnamespace
			WHERE ns.nspname = 'public' AND r.relname = ?`, tb)
		if err != nil {
			return nil, err
		}
		for idx.Next() {
			var name, cols string
			var primary, unique, partial bool
			if err := idx.Scan(&name, &primary, &unique, &partial, &cols); err != nil {
				idx.Close()
				return nil, err
			}
			if cols == "rowid" {
				continue
			}
			switch {
			case primary:
				out = append(out, fmt.Sprintf("pk %s (%s)", tb, cols))
			case unique:
				out = append(out, uniqueFact(tb, strings.Split(cols, ","), partial))
				if !strings.HasSuffix(name, "_key") { // CREATE UNIQUE INDEX, not a UNIQUE constraint
					out = append(out, "index "+tb+" "+name)
				}
			default:
				out = append(out, "index "+tb+" "+name)
			}
		}
		idx.Close()
	}
	slices.Sort(out)
	return out, nil
}

func uniqueFact(table string, cols []string, partial bool) string {
	s := fmt.Sprintf("unique %s (%s)", table, strings.Join(cols, ","))
	if partial {
		s += " partial"
	}
	return s
}

// liteType is PostgreSQL's name of an SQLite column type as the migrations
// translate it.
func liteType(t string) string {
	switch strings.ToUpper(t) {
	case "INTEGER":
		return "bigint"
	case "TEXT":
		return "text"
	case "BLOB":
		return "bytea"
	}
	return "sqlite:" + t
}

func strs(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
