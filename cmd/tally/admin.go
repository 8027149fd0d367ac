package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tally-billing/tally/billing"
	"golang.org/x/term"
)

const adminUsage = `Usage: tally admin <create|list|disable|enable|role> [flags]

  create --email E --role R   add a member of staff to the admin console (/admin)
  list                        list the admin console's staff, with their status
  disable EMAIL [--reason R]  stop them signing in; every session of theirs ends now
  enable EMAIL [--reason R]   let a disabled member of staff sign in again
  role EMAIL ROLE [--reason R]
                              give them another role (at their next page)

Roles: owner (everything, and manages admins), admin (billing actions:
grants, deductions, limits), support (reads everything, changes nothing).

The password is read from standard input (its first line) when that is not
a terminal, for scripts:
  echo "$PASSWORD" | tally admin create --email ops@example.com --role admin
and otherwise asked for twice, without echo. At least 12 characters.

The last active owner can't be disabled or given another role. Each
change is in the audit log (actor system:cli) with the reason.

Exit codes: 0 done, 1 refused (e-mail taken, password too short, no such
admin, the last active owner, already so...), 2 wrong command line.`

// adminSubUsage is each subcommand's --help.
var adminSubUsage = map[string]string{
	"disable": `Usage: tally admin disable EMAIL [--reason R] [--db D]

Disables a member of staff: they can't sign in to the admin console (the
sign-in answers as for a wrong password) and every session of theirs ends
at once. The last active owner can't be disabled. Undo with 'tally admin
enable EMAIL'.

Exit codes: 0 disabled, 1 refused (no such admin, already disabled, the
last active owner), 2 wrong command line.`,
	"enable": `Usage: tally admin enable EMAIL [--reason R] [--db D]

Lets a disabled member of staff sign in again, with their password and role.

Exit codes: 0 enabled, 1 refused (no such admin, not disabled), 2 wrong
command line.`,
	"role": `Usage: tally admin role EMAIL ROLE [--reason R] [--db D]

Gives a member of staff another role: owner (everything, and manages
admins), admin (billing actions) or support (reads everything, changes
nothing). It applies to their next page. The last active owner can't be
given another role.

Exit codes: 0 changed, 1 refused (no such admin, already that role, the
last active owner), 2 wrong command line (ROLE not one of owner, admin,
support).`,
}

// cmdAdmin manages the admin console's staff. stdin is where the password
// comes from (os.Stdin in main; a reader in tests).
func cmdAdmin(ctx context.Context, args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, adminUsage)
		if len(args) == 0 {
			return usageError{"admin needs a subcommand"}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	usage := adminUsage
	if u, ok := adminSubUsage[sub]; ok {
		usage = u
	}
	fs := newFlags("admin "+sub, usage, stderr)
	path := dbFlag(fs, getenv)
	switch sub {
	case "create":
		email := fs.String("email", "", "the admin's e-mail address, their sign-in name (required)")
		role := fs.String("role", "", "owner, admin or support (required)")
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		if *email == "" || *role == "" {
			return usageError{"admin create needs --email and --role"}
		}
		if !billing.ValidRole(*role) {
			return usageError{fmt.Sprintf("--role %q is not one of %s", *role, strings.Join(billing.Roles(), ", "))}
		}
		if _, err := billing.CheckAdminEmail(*email); err != nil {
			return usageError{"--email: " + billing.ErrorMessage(err)}
		}
		pw, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if err := billing.CheckAdminPassword(pw); err != nil {
			return errors.New(billing.ErrorMessage(err))
		}
		d, err := openDB(ctx, *path, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		// The admin and the audit record of their creation commit together.
		a, err := d.CreateAdmin(billing.WithAudit(ctx, billing.AuditRecord{Actor: billing.SystemActor("cli"), Action: billing.AuditAdminCreated}),
			*email, pw, *role)
		if err != nil {
			return errors.New(billing.ErrorMessage(err))
		}
		fmt.Fprintf(stdout, "Created admin %s (%s, role %s). They sign in at /admin/sign-in.\n", a.ID, a.Email, a.Role)
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
		admins, err := d.FindAdmins(ctx)
		if err != nil {
			return err
		}
		if len(admins) == 0 {
			fmt.Fprintln(stdout, "No admins yet. Add one with: tally admin create --email E --role owner")
		}
		for _, a := range admins {
			status := a.Status()
			if !a.Active() {
				status += " " + a.DisabledAt.UTC().Format("2006-01-02 15:04 MST")
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", a.ID, a.Email, a.Role, status)
		}
		return nil
	case "disable", "enable", "role":
		reason := fs.String("reason", "", "why, kept in the audit log")
		if err := parse(fs, args); err != nil {
			return err
		}
		want := 1
		if sub == "role" {
			want = 2
		}
		if fs.NArg() != want {
			if sub == "role" {
				return usageError{"admin role takes an e-mail and a role: tally admin role EMAIL owner|admin|support"}
			}
			return usageError{fmt.Sprintf("admin %s takes one e-mail address: tally admin %s EMAIL", sub, sub)}
		}
		if sub == "role" && !billing.ValidRole(fs.Arg(1)) {
			return usageError{fmt.Sprintf("role %q is not one of %s", fs.Arg(1), strings.Join(billing.Roles(), ", "))}
		}
		if len(*reason) > 500 {
			return usageError{"--reason: keep it under 500 characters"}
		}
		d, err := openDB(ctx, *path, stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		a, err := d.FindAdminByEmail(ctx, fs.Arg(0))
		if err != nil {
			return errors.New(billing.ErrorMessage(err))
		}
		by := billing.SystemActor("cli")
		switch sub {
		case "disable":
			a, n, err := d.DisableAdmin(ctx, a.ID, by, *reason)
			if err != nil {
				return errors.New(billing.ErrorMessage(err))
			}
			fmt.Fprintf(stdout, "Disabled %s (%s): they can't sign in; %d sessions ended.\n", a.Email, a.ID, n)
		case "enable":
			if a, err = d.EnableAdmin(ctx, a.ID, by, *reason); err != nil {
				return errors.New(billing.ErrorMessage(err))
			}
			fmt.Fprintf(stdout, "Enabled %s (%s, role %s): they can sign in again.\n", a.Email, a.ID, a.Role)
		default:
			before := a.Role
			if a, err = d.SetAdminRole(ctx, a.ID, fs.Arg(1), by, *reason); err != nil {
				return errors.New(billing.ErrorMessage(err))
			}
			fmt.Fprintf(stdout, "%s (%s) is now %s (was %s).\n", a.Email, a.ID, a.Role, before)
		}
		return nil
	}
	return usageError{fmt.Sprintf("unknown admin subcommand %q", sub)}
}

// readPassword reads a new password: asked twice without echo on a
// terminal, else the first line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password (at least 12 characters): ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ; nothing was created")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input (pipe it in, or run in a terminal to be asked)")
	}
	return line, nil
}
