package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

func runAdminCLI(t *testing.T, path, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cmdAdmin(context.Background(), args, func(k string) string {
		if k == "TALLY_DB" {
			return path
		}
		return ""
	}, strings.NewReader(stdin), &out, &errb)
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestCLIAdminCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	for _, c := range []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"help", "", []string{"--help"}, exitOK, "Roles: owner"},
		{"no subcommand", "", nil, exitUsage, "Roles: owner"},
		{"create help", "", []string{"create", "--help"}, exitOK, "-email"},
		{"without flags", "", []string{"create"}, exitUsage, "needs --email and --role"},
		{"bad role", "", []string{"create", "--email", "a@b.test", "--role", "root"}, exitUsage, `--role "root" is not one of owner, admin, support`},
		{"bad e-mail", "", []string{"create", "--email", "nope", "--role", "admin"}, exitUsage, "--email"},
		{"no password", "", []string{"create", "--email", "a@b.test", "--role", "admin"}, exitError, "no password on standard input"},
		{"short password", "short\n", []string{"create", "--email", "a@b.test", "--role", "admin"}, exitError, "at least 12 characters"},
		{"created", "a long enough password\n", []string{"create", "--email", "Ops@B.test", "--role", "owner"}, exitOK, "Created admin adm_"},
		{"taken", "a long enough password\n", []string{"create", "--email", "ops@b.test", "--role", "admin"}, exitError, "already exists"},
		{"unknown subcommand", "", []string{"delete"}, exitUsage, "unknown admin subcommand"},
		{"list", "", []string{"list"}, exitOK, "ops@b.test\towner"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := runAdminCLI(t, path, c.stdin, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, c.code, errs)
			}
			if !strings.Contains(out+errs, c.want) {
				t.Errorf("output lacks %q:\n%s%s", c.want, out, errs)
			}
		})
	}
	d := openVerified(t, path)
	a, err := d.AuthenticateAdmin(context.Background(), "ops@b.test", "a long enough password")
	if err != nil || a.Role != billing.RoleOwner {
		t.Fatalf("the created admin signs in: %+v %v", a, err)
	}
	recs, _, err := d.FindAudit(context.Background(), billing.AuditFilter{Action: billing.AuditAdminCreated})
	if err != nil || len(recs) != 1 || recs[0].Actor != billing.SystemActor("cli") {
		t.Fatalf("audit: %+v %v", recs, err)
	}
}

// serve --demo seeds an owner and a support account and prints how to
// sign in; the printed credentials work, and a second start finds them.
func TestDemoAdmins(t *testing.T) {
	d := openVerified(t, filepath.Join(t.TempDir(), "t.db"))
	ctx := context.Background()
	for range 2 {
		var out bytes.Buffer
		if err := seedDemoAdmins(ctx, d, &out, "http://127.0.0.1:8080"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"/admin/sign-in", demoOwnerEmail, demoOwnerPassword, demoSupportEmail, demoSupportPassword} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	}
	a, err := d.AuthenticateAdmin(ctx, demoOwnerEmail, demoOwnerPassword)
	if err != nil || a.Role != billing.RoleOwner {
		t.Fatalf("demo owner: %+v %v", a, err)
	}
	s, err := d.AuthenticateAdmin(ctx, demoSupportEmail, demoSupportPassword)
	if err != nil || s.Role != billing.RoleSupport {
		t.Fatalf("demo support: %+v %v", s, err)
	}
}

// admin disable / enable / role: exit 0 done, 1 refused, 2 a wrong command
// line; --help for each; list shows who is disabled; a disabled admin
// can't sign in and their sessions ended; the last owner stays.
func TestCLIAdminDisableEnableRole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	for _, x := range []struct{ email, role string }{{"boss@b.test", "owner"}, {"ops@b.test", "admin"}} {
		if _, errs, code := runAdminCLI(t, path, "a long enough password\n", "create", "--email", x.email, "--role", x.role); code != exitOK {
			t.Fatalf("create %s: %d %s", x.email, code, errs)
		}
	}
	d := openVerified(t, path)
	ctx := context.Background()
	ops, err := d.FindAdminByEmail(ctx, "ops@b.test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	session, err := d.StartAdminSession(ctx, billing.AdminSession{AdminID: ops.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"disable help", []string{"disable", "--help"}, exitOK, "Usage: tally admin disable EMAIL"},
		{"enable help", []string{"enable", "--help"}, exitOK, "Usage: tally admin enable EMAIL"},
		{"role help", []string{"role", "--help"}, exitOK, "Usage: tally admin role EMAIL ROLE"},
		{"disable without e-mail", []string{"disable"}, exitUsage, "admin disable takes one e-mail address"},
		{"disable two e-mails", []string{"disable", "a@b.test", "c@b.test"}, exitUsage, "takes one e-mail address"},
		{"role without role", []string{"role", "ops@b.test"}, exitUsage, "takes an e-mail and a role"},
		{"role bad role", []string{"role", "ops@b.test", "root"}, exitUsage, `role "root" is not one of owner, admin, support`},
		{"bad flag", []string{"disable", "ops@b.test", "--force"}, exitUsage, "flag provided but not defined"},
		{"disable unknown", []string{"disable", "nobody@b.test"}, exitError, "No admin with e-mail nobody@b.test"},
		{"disable the last owner", []string{"disable", "boss@b.test"}, exitError, "last active owner"},
		{"demote the last owner", []string{"role", "boss@b.test", "admin"}, exitError, "last active owner"},
		{"disable", []string{"disable", "OPS@b.test", "--reason", "left"}, exitOK, "Disabled ops@b.test"},
		{"disable again", []string{"disable", "ops@b.test"}, exitError, "already disabled"},
		{"list shows disabled", []string{"list"}, exitOK, "ops@b.test\tadmin\tdisabled "},
		{"role of a disabled admin", []string{"role", "ops@b.test", "support"}, exitOK, "ops@b.test (" + ops.ID + ") is now support (was admin)"},
		{"enable", []string{"enable", "ops@b.test"}, exitOK, "Enabled ops@b.test"},
		{"enable again", []string{"enable", "ops@b.test"}, exitError, "already active"},
		{"same role", []string{"role", "ops@b.test", "support"}, exitError, "already a support"},
		{"list shows active", []string{"list"}, exitOK, "boss@b.test\towner\tactive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := runAdminCLI(t, path, "", c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, c.code, errs)
			}
			if !strings.Contains(out+errs, c.want) {
				t.Errorf("output lacks %q:\n%s%s", c.want, out, errs)
			}
		})
	}
	if s, err := d.FindAdminSession(ctx, session); err != nil || s.EndReason != billing.SessionRevoked {
		t.Fatalf("ops's session after disable: %+v %v, want revoked", s, err)
	}
	for action, n := range map[string]int{billing.AuditAdminDisabled: 1, billing.AuditAdminEnabled: 1, billing.AuditAdminRoleChanged: 1} {
		recs, _, err := d.FindAudit(ctx, billing.AuditFilter{Action: action})
		if err != nil || len(recs) != n || recs[0].Actor != billing.SystemActor("cli") {
			t.Errorf("%s audit: %+v %v", action, recs, err)
		}
	}
}
