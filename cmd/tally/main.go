// Command tally serves Tally, the prepaid-credits billing portal, and
// manages its database from the command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exit codes
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line was wrong
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// usageError marks a wrong command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "tally:", ue.msg)
		fmt.Fprintln(stderr, "Run 'tally --help' for usage.")
		return exitUsage
	}
	fmt.Fprintln(stderr, "tally:", err)
	return exitError
}

const topUsage = `Tally: prepaid credits for AI products (wallet, metering API, customer portal).

Usage:
  tally <command> [flags]

Commands:
  serve         serve the API, the customer portal and the admin console (--demo seeds demo data)
  migrate       apply database migrations and print the schema version
  apikey        create, list, revoke or limit API keys
  pricebook     publish or show price books
  admin         add, list, disable, enable or change the role of the admin console's staff
  signout       end every portal session of a customer (all their browsers)
  backup        write a consistent copy of the database while Tally serves
  verify        check the ledger's invariants (balances, lots, holds, rollups)
  migrate-data  copy a SQLite installation into PostgreSQL, then verify it
  bench         measure the API's throughput and latency on this machine, as ratios to HTTP alone
  sandbox       advance the payment sandbox's test clock (subscriptions renew)
  version       print the version

Every command takes --help. The commands that open a database take --db
(env TALLY_DB, default ./tally.db): a SQLite file, or a postgres:// URL for
PostgreSQL. migrate-data takes --from and --to instead; bench's --db is a
PostgreSQL server to bench (by default it benches SQLite in a directory of
its own).
Run 'tally <command> --help' for a command's flags.
`

// env is how commands read TALLY_* variables.
type env func(string) string

func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return usageError{"no command given"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return nil
	case "serve":
		return cmdServe(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, getenv, stdout, stderr)
	case "apikey":
		return cmdAPIKey(ctx, rest, getenv, stdout, stderr)
	case "pricebook":
		return cmdPriceBook(ctx, rest, getenv, stdout, stderr)
	case "signout":
		return cmdSignOut(ctx, rest, getenv, stdout, stderr)
	case "admin":
		return cmdAdmin(ctx, rest, getenv, os.Stdin, stdout, stderr)
	case "backup":
		return cmdBackup(ctx, rest, getenv, stdout, stderr)
	case "verify":
		return cmdVerify(ctx, rest, getenv, stdout, stderr)
	case "migrate-data":
		return cmdMigrateData(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return cmdBench(ctx, rest, getenv, stdout, stderr)
	case "sandbox":
		return cmdSandbox(ctx, rest, getenv, stdout, stderr)
	case "version":
		return cmdVersion(rest, stdout, stderr)
	case "--version":
		fmt.Fprintln(stdout, "tally", version)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

const versionUsage = `Usage: tally version

Prints the version of this binary (tally --version does too).`

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", versionUsage, stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, versionUsage) } // no flags to list
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "tally", version)
	return nil
}

// newFlags makes a flag set whose --help prints a description and the flags.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", strings.TrimSpace(usage))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, which may come before or after positional arguments
// (`tally apikey revoke key_1 --db x.db`); a bad flag is a usage error and
// --help is not an error. The positional arguments are left in fs.Args().
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}

// parseNoArgs is parse for a command that takes no positional arguments:
// one given is a usage error, not silently ignored.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func envOr(getenv env, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envBool(getenv env, key string, def bool) bool {
	if v := getenv(key); v != "" {
		b, err := strconv.ParseBool(v)
		if err == nil {
			return b
		}
	}
	return def
}

func envInt(getenv env, key string, def int) int {
	if v := getenv(key); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envDuration(getenv env, key string, def time.Duration) time.Duration {
	if v := getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func dbFlag(fs *flag.FlagSet, getenv env) *string {
	return fs.String("db", envOr(getenv, "TALLY_DB", "./tally.db"), "SQLite database file, or a postgres:// URL (env TALLY_DB)")
}

// newLogger builds the slog logger from --log-level and --log-format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: use debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("--log-format %q: use text or json", format)}
}
