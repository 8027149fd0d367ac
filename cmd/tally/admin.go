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

const adminUsage = `Usage: tally admin <create|list> [flags]

  create --email E --role R   add a member of staff to the admin console (/admin)
  list                        list the admin console's staff

Roles: owner (everything, and manages admins), admin (billing actions:
grants, deductions, limits), support (reads everything, changes nothing).

The password is read from standard input (its first line) when that is not
a terminal, for scripts:
  echo "$PASSWORD" | tally admin create --email ops@example.com --role admin
and otherwise asked for twice, without echo. At least 12 characters.

Exit codes: 0 created, 1 refused (e-mail taken, password too short...),
2 wrong command line.`

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
	fs := newFlags("admin "+sub, adminUsage, stderr)
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
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", a.ID, a.Email, a.Role)
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
