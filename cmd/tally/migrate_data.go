package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tally-billing/tally/db"
)

const migrateDataUsage = `Usage: tally migrate-data --from sqlite:FILE --to postgres://USER:PASSWORD@HOST/DB [flags]

Moves an installation from its SQLite file to PostgreSQL: creates Tally's
schema in the target (which must hold no customers and no ledger entries),
copies every table in one PostgreSQL transaction (all or nothing), sets the
id sequences past the copied ids, then runs 'tally verify' on the target.
Stop Tally before the final move: writes made after the copy starts are not
copied. Start it again with --db set to the target URL.

Exit code 0 when the copy is complete and the books balance on the target,
1 when the copy failed (the target is left as it was) or verification found
a problem, 2 for a wrong command line.`

func cmdMigrateData(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlags("migrate-data", migrateDataUsage, stderr)
	from := fs.String("from", "", "the SQLite database to copy, as sqlite:FILE or a file path (required)")
	to := fs.String("to", "", "the PostgreSQL database to fill, as a postgres:// URL (required; env TALLY_MIGRATE_TO)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *to == "" {
		*to = getenv("TALLY_MIGRATE_TO")
	}
	if *from == "" || *to == "" {
		return usageError{"migrate-data needs --from sqlite:FILE and --to postgres://…"}
	}
	if db.IsPostgresDSN(*from) {
		return usageError{"--from must be a SQLite file (sqlite:FILE); copying between PostgreSQL databases is pg_dump's job"}
	}
	if !db.IsPostgresDSN(*to) {
		return usageError{"--to must be a postgres:// URL"}
	}
	start := time.Now()
	fmt.Fprintf(stdout, "Copying %s to %s\n", strings.TrimPrefix(*from, "sqlite:"), db.Redact(*to))
	var rows int64
	err := db.CopyData(ctx, *from, *to, func(p db.CopyProgress) {
		rows += p.Rows
		fmt.Fprintf(stdout, "  [%2d/%d] %-28s %9d rows\n", p.Done, p.Total, p.Table, p.Rows)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Copied %d rows in %s. Verifying the target...\n", rows, time.Since(start).Round(time.Millisecond))
	d, err := openDB(ctx, *to, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	problems, err := d.Verify(ctx)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d ledger invariant(s) broken in the target", len(problems))
	}
	fmt.Fprintf(stdout, "The books balance on the target. Serve it with: tally serve --db '%s'\n", db.Redact(*to))
	return nil
}
