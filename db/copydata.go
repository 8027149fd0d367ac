package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CopyProgress reports one table copied by CopyData.
type CopyProgress struct {
	Table string
	Rows  int64
	Done  int // tables copied so far, this one included
	Total int // tables to copy
}

// CopyData moves an installation: it copies every row of the SQLite
// database at fromPath into the empty PostgreSQL database at toDSN, in one
// PostgreSQL transaction, so the target either holds the whole ledger or
// nothing. The source is read in one read transaction (a consistent
// snapshot); Tally may keep serving it meanwhile, but writes made after the
// copy starts are not copied, so stop it first for the final move.
//
// The target is migrated to the source's schema version first; both must
// be at the same version (run 'tally migrate' on the source if it is
// older). Tables are copied parents first (by their foreign keys), with
// PostgreSQL's COPY protocol, and every id sequence is set past the
// largest copied id. The target must hold no customers and no ledger
// entries. Run Verify on the target afterwards.
func CopyData(ctx context.Context, fromPath, toDSN string, progress func(CopyProgress)) error {
	if !IsPostgresDSN(toDSN) {
		return errors.New("migrate-data: the target must be a postgres:// URL")
	}
	fromPath = strings.TrimPrefix(fromPath, "sqlite:")
	if _, err := os.Stat(fromPath); err != nil {
		return fmt.Errorf("migrate-data: source: %w", err)
	}
	if strings.ContainsAny(fromPath, "?#") {
		return fmt.Errorf("migrate-data: database path %q may not contain '?' or '#'", fromPath)
	}
	// Bring the target's schema up to date with the same runner as Open.
	target, err := Open(ctx, toDSN, Options{})
	if err != nil {
		return fmt.Errorf("migrate-data: target: %w", err)
	}
	target.Close()

	src, err := sql.Open("sqlite", fromPath+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer src.Close()
	src.SetMaxOpenConns(1)
	stx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("migrate-data: source: %w", err)
	}
	defer stx.Rollback()

	dst, err := pgx.Connect(ctx, toDSN)
	if err != nil {
		return fmt.Errorf("migrate-data: target: %w", err)
	}
	defer dst.Close(context.Background())

	var srcVer, dstVer int64
	if err := stx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&srcVer); err != nil {
		return fmt.Errorf("migrate-data: source is not a Tally database: %w", err)
	}
	if err := dst.QueryRow(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&dstVer); err != nil {
		return fmt.Errorf("migrate-data: target: %w", err)
	}
	if srcVer != dstVer {
		return fmt.Errorf("migrate-data: the source is at schema version %d and this Tally at %d; run 'tally migrate --db %s' first", srcVer, dstVer, fromPath)
	}

	tables, err := sqliteTablesInOrder(ctx, stx)
	if err != nil {
		return fmt.Errorf("migrate-data: source: %w", err)
	}
	for _, must := range []string{"customers", "entries"} {
		var n int64
		if err := dst.QueryRow(ctx, `SELECT COUNT(*) FROM `+must).Scan(&n); err != nil {
			return fmt.Errorf("migrate-data: target: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("migrate-data: the target already holds %d %s; migrate into an empty database", n, must)
		}
	}

	dtx, err := dst.Begin(ctx)
	if err != nil {
		return err
	}
	defer dtx.Rollback(context.Background())
	for i, table := range tables {
		// A row a migration seeded (a default) gives way to the source's.
		if _, err := dtx.Exec(ctx, `DELETE FROM `+pgx.Identifier{table}.Sanitize()); err != nil {
			return fmt.Errorf("migrate-data: table %s: clearing the target's defaults: %w", table, err)
		}
		n, err := copyTable(ctx, stx, dtx, table)
		if err != nil {
			return fmt.Errorf("migrate-data: table %s: %w", table, err)
		}
		if progress != nil {
			progress(CopyProgress{Table: table, Rows: n, Done: i + 1, Total: len(tables)})
		}
	}
	if err := resetSequences(ctx, dtx); err != nil {
		return fmt.Errorf("migrate-data: sequences: %w", err)
	}
	return dtx.Commit(ctx)
}

// sqliteTablesInOrder lists the source's tables, each after the tables its
// foreign keys point to.
func sqliteTablesInOrder(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	parents := map[string][]string{}
	for _, n := range names {
		prow, err := tx.QueryContext(ctx, `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)`, n)
		if err != nil {
			return nil, err
		}
		for prow.Next() {
			var p string
			if err := prow.Scan(&p); err != nil {
				prow.Close()
				return nil, err
			}
			if p != n {
				parents[n] = append(parents[n], p)
			}
		}
		prow.Close()
	}
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("foreign keys form a cycle through %s", n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, p := range parents[n] {
			if slices.Contains(names, p) {
				if err := visit(p); err != nil {
					return err
				}
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// copyTable streams one table's rows from the source into the target with
// COPY. Values are converted where the dialects store a type differently.
func copyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, table string) (int64, error) {
	// The target's columns and types decide what is copied: a column only
	// the source has is a schema mismatch, reported rather than dropped.
	trows, err := dst.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, table)
	if err != nil {
		return 0, err
	}
	types := map[string]string{}
	for trows.Next() {
		var c, t string
		if err := trows.Scan(&c, &t); err != nil {
			trows.Close()
			return 0, err
		}
		types[c] = t
	}
	trows.Close()
	if err := trows.Err(); err != nil {
		return 0, err
	}
	if len(types) == 0 {
		return 0, fmt.Errorf("the target has no table %s", table)
	}
	crows, err := src.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		return 0, err
	}
	var cols []string
	for crows.Next() {
		var c string
		if err := crows.Scan(&c); err != nil {
			crows.Close()
			return 0, err
		}
		if _, ok := types[c]; !ok {
			crows.Close()
			return 0, fmt.Errorf("column %s exists in the source but not in the target", c)
		}
		cols = append(cols, c)
	}
	crows.Close()

	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = `"` + c + `"`
	}
	rows, err := src.QueryContext(ctx, `SELECT `+strings.Join(quoted, ", ")+` FROM "`+table+`"`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n, err := dst.CopyFrom(ctx, pgx.Identifier{table}, cols, &sqliteRows{rows: rows, cols: cols, types: types})
	if err != nil {
		return n, err
	}
	return n, rows.Err()
}

// sqliteRows adapts *sql.Rows to pgx.CopyFromSource.
type sqliteRows struct {
	rows  *sql.Rows
	cols  []string
	types map[string]string
	err   error
}

func (r *sqliteRows) Next() bool { return r.err == nil && r.rows.Next() }
func (r *sqliteRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

func (r *sqliteRows) Values() ([]any, error) {
	vals := make([]any, len(r.cols))
	ptrs := make([]any, len(r.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		r.err = err
		return nil, err
	}
	for i, v := range vals {
		vals[i] = convertForPostgres(v, r.types[r.cols[i]])
	}
	return vals, nil
}

// convertForPostgres turns a value SQLite returned into what the target
// column takes: SQLite has no boolean (0/1) and may hand text as bytes.
func convertForPostgres(v any, pgType string) any {
	switch pgType {
	case "boolean":
		switch x := v.(type) {
		case int64:
			return x != 0
		case bool:
			return x
		}
	case "text", "character varying":
		if b, ok := v.([]byte); ok {
			return string(b)
		}
	case "bytea":
		if s, ok := v.(string); ok {
			return []byte(s)
		}
	case "jsonb", "json":
		if b, ok := v.([]byte); ok {
			return string(b)
		}
	}
	return v
}

// resetSequences moves every sequence-backed column's sequence past the
// largest id copied, so the next row PostgreSQL numbers does not collide.
func resetSequences(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name)
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')`)
	if err != nil {
		return err
	}
	type seq struct{ table, col, name string }
	var seqs []seq
	for rows.Next() {
		var s seq
		var name *string
		if err := rows.Scan(&s.table, &s.col, &name); err != nil {
			rows.Close()
			return err
		}
		if name != nil {
			s.name = *name
			seqs = append(seqs, s)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, s := range seqs {
		// setval(seq, max, true) makes nextval return max+1; an empty table
		// leaves the sequence at its start.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval($1, m) FROM (SELECT MAX(%s) AS m FROM %s) x WHERE m IS NOT NULL`,
			pgx.Identifier{s.col}.Sanitize(), pgx.Identifier{s.table}.Sanitize()), s.name); err != nil {
			return err
		}
	}
	return nil
}
