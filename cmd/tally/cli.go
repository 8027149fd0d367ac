package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
)

// openDB opens the database for a CLI command (quietly: the CLI talks to
// stdout, not to the log).
func openDB(ctx context.Context, path string, stderr io.Writer) (*db.DB, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return db.Open(ctx, path, db.Options{Logger: log})
}

const migrateUsage = `Usage: tally migrate [flags]

Applies pending migrations (embedded in the binary) and prints the schema
version. Safe to run while a server uses the same database.`

func cmdMigrate(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", migrateUsage, stderr)
	path := dbFlag(fs, getenv)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	d, err := openDB(ctx, *path, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: schema version %d, up to date\n", *path, v)
	return nil
}

const apikeyUsage = `Usage: tally apikey <create|list|revoke|limit> [flags]

  create --name N --scope S [--allowed-origin URL]...
                                make a key; its secret is the last line printed
                                (only a hash is stored: save it now).
                                --allowed-origin (repeatable): a page origin,
                                scheme://host[:port], that may show the balance
                                widget with this key's embed tokens (portal and
                                admin keys only: the others mint none)
  list                          list keys (never their secrets)
  revoke ID|PREFIX|SECRET       revoke a key (within 2 s on a running server),
                                by its id, its prefix as list shows it, or
                                its whole secret (after a leak; never
                                printed back). Revoking a revoked key says
                                so and exits 0
  limit ID|PREFIX [--daily C|none] [--monthly C|none] [--rate R]
                                change a key's spend caps (credits) and request
                                rate limit (per second): only the limits given
                                change; --daily none / --monthly none remove a
                                cap, --rate 0 the rate limit

Scopes (create needs one; there is no default): admin (everything), metering
(customers, usage, holds, plus reads),
portal (portal sign-in links, which spend customers' money, plus reads),
read (reads only).`

func cmdAPIKey(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, apikeyUsage)
		if len(args) == 0 {
			return usageError{"apikey needs a subcommand"}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("apikey "+sub, apikeyUsage, stderr)
	path := dbFlag(fs, getenv)
	switch sub {
	case "create":
		name := fs.String("name", "", "what the key is for, e.g. \"production app\" (required)")
		scope := fs.String("scope", "", "admin, metering, portal or read (required: the least the key's holder needs)")
		daily := fs.String("daily", "", "daily spend cap in credits (optional)")
		monthly := fs.String("monthly", "", "monthly spend cap in credits (optional)")
		rate := fs.Int("rate", 0, "request rate limit per second (0 = off)")
		var origins []string
		fs.Func("allowed-origin", "an origin (scheme://host[:port]) whose pages may show the balance widget (repeatable)", func(v string) error {
			o, err := billing.ParseOrigin(v)
			if err != nil {
				return errors.New(billing.ErrorMessage(err))
			}
			origins = append(origins, o)
			return nil
		})
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		if *name == "" {
			return usageError{"apikey create needs --name"}
		}
		if *scope == "" {
			return usageError{fmt.Sprintf("apikey create needs --scope: one of %s (give each part of your product the least it needs)", strings.Join(billing.Scopes(), ", "))}
		}
		if !billing.ValidScope(*scope) {
			return usageError{fmt.Sprintf("--scope %q is not one of %s", *scope, strings.Join(billing.Scopes(), ", "))}
		}
		if billing.CheckOrigins(*scope, origins) != nil {
			return usageError{fmt.Sprintf("--allowed-origin is for keys that mint the balance widget's embed tokens (scope portal or admin); a %s key never does", *scope)}
		}
		if *rate < 0 {
			return usageError{fmt.Sprintf("--rate %d: use 0 (off) or more requests per second", *rate)}
		}
		lim, err := parseCaps(*daily, *monthly)
		if err != nil {
			return err
		}
		d, err := openDB(ctx, *path, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		k, secret, err := d.CreateAPIKey(ctx, *name, *scope, lim, *rate)
		if err != nil {
			return err
		}
		if len(origins) > 0 {
			if origins, err = d.SetAPIKeyOrigins(ctx, k.ID, origins); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "Created API key %s (%s, scope %s).\n", k.ID, k.Name, k.Scope)
		if len(origins) > 0 {
			fmt.Fprintf(stdout, "Allowed origins for the balance widget: %s\n", strings.Join(origins, ", "))
		}
		fmt.Fprintln(stdout, "This is the only time the secret is shown; store it now:")
		fmt.Fprintln(stdout, secret)
		return nil
	case "list":
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		d, err := openDB(ctx, *path, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		keys, err := d.FindAPIKeys(ctx)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			fmt.Fprintln(stdout, "No API keys yet. Create one with: tally apikey create --name NAME --scope SCOPE")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPREFIX\tNAME\tSCOPE\tCREATED\tSTATUS\tLIMITS\tALLOWED ORIGINS")
		for _, k := range keys {
			status := "active"
			if k.RevokedAt != nil {
				status = "revoked " + k.RevokedAt.Format("2006-01-02")
			}
			origins := strings.Join(k.AllowedOrigins, " ")
			if origins == "" {
				origins = "-"
			}
			fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.Scope, k.CreatedAt.Format("2006-01-02 15:04"), status, describeLimits(k), origins)
		}
		return tw.Flush()
	case "revoke":
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageError{"apikey revoke takes one key id, prefix or secret"}
		}
		d, err := openDB(ctx, *path, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		k, already, err := d.RevokeAPIKeyOnce(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		if already {
			fmt.Fprintf(stdout, "%s (%s) was already revoked on %s; nothing changed.\n", k.ID, k.Name, k.RevokedAt.UTC().Format("2006-01-02 15:04 MST"))
			return nil
		}
		fmt.Fprintf(stdout, "Revoked %s (%s).\n", k.ID, k.Name)
		return nil
	case "limit":
		daily := fs.String("daily", "", "daily spend cap in credits; none removes it (default: unchanged)")
		monthly := fs.String("monthly", "", "monthly spend cap in credits; none removes it (default: unchanged)")
		rate := fs.Int("rate", 0, "request rate limit per second; 0 removes it (default: unchanged)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageError{"apikey limit takes one key id or prefix"}
		}
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if !given["daily"] && !given["monthly"] && !given["rate"] {
			return usageError{"apikey limit needs --daily, --monthly or --rate (the limits not given stay as they are)"}
		}
		dailyCap, err := parseCap("--daily", *daily)
		if err != nil {
			return err
		}
		monthlyCap, err := parseCap("--monthly", *monthly)
		if err != nil {
			return err
		}
		if *rate < 0 {
			return usageError{fmt.Sprintf("--rate %d: use 0 (off) or more requests per second", *rate)}
		}
		d, err := openDB(ctx, *path, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		k, err := findAPIKey(ctx, d, fs.Arg(0))
		if err != nil {
			return err
		}
		lim, rl := k.Limits, k.RateLimit
		if given["daily"] {
			lim.DailyCap = dailyCap
		}
		if given["monthly"] {
			lim.MonthlyCap = monthlyCap
		}
		if given["rate"] {
			rl = *rate
		}
		k, err = d.UpdateAPIKeyLimits(ctx, k.ID, lim, rl)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Limits of %s: %s\n", k.ID, describeLimits(k))
		return nil
	}
	return usageError{fmt.Sprintf("unknown apikey subcommand %q", sub)}
}

// findAPIKey finds a key by id or prefix. not_found.
func findAPIKey(ctx context.Context, d *db.DB, ref string) (billing.APIKey, error) {
	keys, err := d.FindAPIKeys(ctx)
	if err != nil {
		return billing.APIKey{}, err
	}
	for _, k := range keys {
		if k.ID == ref || k.Prefix == ref {
			return k, nil
		}
	}
	if len(ref) > 12 && strings.HasPrefix(ref, db.APIKeyPrefix) {
		ref = ref[:12] + "…" // a secret: never printed whole
	}
	return billing.APIKey{}, billing.Errorf(billing.CodeNotFound, "No API key with id or prefix %q.", ref)
}

func parseCaps(daily, monthly string) (billing.Limits, error) {
	var lim billing.Limits
	var err error
	if lim.DailyCap, err = parseCap("--daily", daily); err != nil {
		return lim, err
	}
	lim.MonthlyCap, err = parseCap("--monthly", monthly)
	return lim, err
}

// parseCap reads a spend cap flag: credits, zero or more; empty or "none"
// is no cap. A bad value is a usage error.
func parseCap(flag, v string) (*billing.Credits, error) {
	if v == "" || v == "none" {
		return nil, nil
	}
	c, err := billing.ParseCredits(v)
	if err != nil {
		return nil, usageError{fmt.Sprintf("%s %q: %s", flag, v, billing.ErrorMessage(err))}
	}
	if c < 0 {
		return nil, usageError{fmt.Sprintf("%s %q: a cap is zero or more credits (none removes it)", flag, v)}
	}
	return &c, nil
}

func describeLimits(k billing.APIKey) string {
	var parts []string
	if k.Limits.DailyCap != nil {
		parts = append(parts, "daily "+k.Limits.DailyCap.String())
	}
	if k.Limits.MonthlyCap != nil {
		parts = append(parts, "monthly "+k.Limits.MonthlyCap.String())
	}
	if k.RateLimit > 0 {
		parts = append(parts, fmt.Sprintf("%d req/s", k.RateLimit))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

const pricebookUsage = `Usage: tally pricebook <publish|show|import-costs> [flags]

  publish --file F   publish the JSON price book in F (- for stdin) as a new
                     immutable version; publishing an unchanged book is a no-op
  show [--version N] print the current (or a given) version as JSON
  import-costs       price AI models from their provider's costs at a margin
                     (tally pricebook import-costs --help)

A price book file looks like:
  {"currency": "usd",
   "features": [{"key": "chat.request", "name": "Chat request", "unit": "request", "credits": 1},
                {"key": "gpt-4o.tokens", "unit": "token", "credits": 2.5, "unit_size": 1000}],
   "packs": [{"id": "pack_1000", "credits": 1000, "price": {"amount": 1000, "currency": "usd"}}]}`

func cmdPriceBook(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, pricebookUsage)
		if len(args) == 0 {
			return usageError{"pricebook needs a subcommand"}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("pricebook "+sub, pricebookUsage, stderr)
	path := dbFlag(fs, getenv)
	switch sub {
	case "import-costs":
		return cmdImportCosts(ctx, fs, path, args, stdout, stderr)
	case "publish":
		file := fs.String("file", "", "JSON price book to publish (- for stdin)")
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		if *file == "" {
			return usageError{"pricebook publish needs --file"}
		}
		var r io.Reader = os.Stdin
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		// Read as the API reads POST /api/v1/price-books: the same file means
		// the same price book either way.
		var pb billing.PriceBook
		if err := handlers.DecodeJSON(r, &pb); err != nil {
			return fmt.Errorf("%s: %s", *file, billing.ErrorMessage(err))
		}
		d, err := openDB(ctx, *path, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		out, changed, err := d.PublishPriceBook(ctx, pb)
		if err != nil {
			return fmt.Errorf("%s: %s", *file, billing.ErrorMessage(err))
		}
		if !changed {
			fmt.Fprintf(stdout, "Unchanged: version %d is already this price book.\n", out.Version)
			return nil
		}
		if out.EffectiveAt != nil && out.EffectiveAt.After(out.PublishedAt) {
			fmt.Fprintf(stdout, "Scheduled price book version %d for %s: %d features, %d credit packs.\n", out.Version,
				out.EffectiveAt.UTC().Format(time.RFC3339), len(out.Features), len(out.Packs))
			return nil
		}
		fmt.Fprintf(stdout, "Published price book version %d: %d features, %d credit packs.\n", out.Version, len(out.Features), len(out.Packs))
		return nil
	case "show":
		v := fs.Int64("version", 0, "version to show, 1 or more (default: current)")
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		versionGiven := false
		fs.Visit(func(f *flag.Flag) { versionGiven = versionGiven || f.Name == "version" })
		if versionGiven && *v < 1 {
			return usageError{fmt.Sprintf("--version %d: price book versions start at 1 (leave --version out for the current one)", *v)}
		}
		d, err := openDB(ctx, *path, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		var pb *billing.PriceBook
		if *v > 0 {
			pb, err = d.PriceBookVersion(ctx, *v)
		} else {
			pb, err = d.CurrentPriceBook(ctx)
		}
		if err != nil {
			return err
		}
		if pb == nil {
			return fmt.Errorf("no price book has been published; use: tally pricebook publish --file F")
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(pb)
	}
	return usageError{fmt.Sprintf("unknown pricebook subcommand %q", sub)}
}

const backupUsage = `Usage: tally backup --to FILE [flags]

Writes a consistent copy of the database to FILE (which must not exist) while
Tally keeps serving, then checks the copy's integrity. To restore, stop Tally
and copy FILE over the database file (removing any -wal and -shm files next to
it). For continuous replication to object storage, run Litestream beside Tally.

On PostgreSQL (--db postgres://…) it runs pg_dump into a custom-format archive
and checks it with pg_restore --list; restore with
pg_restore --clean --if-exists --dbname URL FILE while Tally is stopped. Managed
PostgreSQL services also offer point-in-time recovery, which is better still.`

func cmdBackup(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlags("backup", backupUsage, stderr)
	path := dbFlag(fs, getenv)
	to := fs.String("to", "", "file to write the backup to (required; must not exist)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usageError{"backup needs --to FILE"}
	}
	start := time.Now()
	if err := db.Backup(ctx, *path, *to); err != nil {
		return err
	}
	st, _ := os.Stat(*to)
	fmt.Fprintf(stdout, "Backed up %s to %s (%.1f MB, integrity ok) in %s.\n", db.Redact(*path), *to, float64(st.Size())/(1<<20), time.Since(start).Round(time.Millisecond))
	return nil
}

const verifyUsage = `Usage: tally verify [flags]

Checks the ledger's invariants over the whole database, in one snapshot, while
Tally may keep serving: every balance equals the sum of its entries and of its
live lots less debt, held credits match the active holds, every lot gave away
what its burns record, and the daily rollups add up to the debits. Run it after
restoring a backup, or whenever in doubt. Exit code 0 when the books balance,
1 when something does not (each problem is printed).`

func cmdVerify(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlags("verify", verifyUsage, stderr)
	path := dbFlag(fs, getenv)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if _, err := os.Stat(*path); err != nil && !db.IsPostgresDSN(*path) {
		return fmt.Errorf("no database at %s: %w", *path, err)
	}
	d, err := openDB(ctx, *path, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	start := time.Now()
	problems, err := d.Verify(ctx)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d ledger invariant(s) broken in %s", len(problems), db.Redact(*path))
	}
	fmt.Fprintf(stdout, "The books balance: every ledger invariant holds in %s (checked in %s).\n", db.Redact(*path), time.Since(start).Round(time.Millisecond))
	return nil
}

const signoutUsage = `Usage: tally signout CUSTOMER [flags]

Ends every portal session of a customer (cus_ id or external_id) at once,
for example when a laptop is lost: every browser signed in as them is sent
to the start page at its next click, and their live balance streams close
within 15 seconds. The customer signs in again with a new link from your
product. Safe to run while a server uses the same database.`

func cmdSignOut(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlags("signout", signoutUsage, stderr)
	path := dbFlag(fs, getenv)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"signout takes one customer id or external_id"}
	}
	d, err := openDB(ctx, *path, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	n, err := d.EndCustomerSessions(ctx, fs.Arg(0), time.Now(), billing.SessionRevoked)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Ended %d portal session(s) of %s.\n", n, fs.Arg(0))
	return nil
}
