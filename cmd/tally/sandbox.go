package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

const sandboxUsage = `Usage: tally sandbox advance --days N [--hours H]

Moves the payment sandbox's test clock forward and lives through what it
passes: every sandbox subscription whose period ends renews (its invoice
paid, its credits granted once, the previous period's credits rolled over
or expired), a scheduled downgrade takes effect, a cancellation ends it.
Real time, sessions and Stripe subscriptions are not affected. Running it
twice renews nothing twice.`

// cmdSandbox runs `tally sandbox advance`.
func cmdSandbox(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlags("sandbox advance", sandboxUsage, stderr)
	path := dbFlag(fs, getenv)
	days := fs.Int("days", 0, "days to move the test clock forward")
	hours := fs.Int("hours", 0, "hours to move it forward (added to --days)")
	if len(args) == 0 || args[0] != "advance" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fs.Usage()
			return nil
		}
		fs.Usage()
		return usageError{"sandbox takes one subcommand: advance"}
	}
	if err := parseNoArgs(fs, args[1:]); err != nil {
		return err
	}
	if *days < 0 || *hours < 0 || *days > 36600 {
		return usageError{"--days and --hours must be zero or more (and --days at most 36600)"}
	}
	d, err := openDB(ctx, *path, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	res, err := d.AdvanceSandbox(ctx, time.Duration(*days)*24*time.Hour+time.Duration(*hours)*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Sandbox clock: %s. Renewed %d period(s), ended %d subscription(s).\n",
		res.Now.Format("2 Jan 2006 15:04 MST"), res.Renewed, res.Canceled)
	return nil
}
