package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// serveForTest runs serve on ln with cfg until the test ends, and returns
// its log. It waits until /healthz answers.
func serveForTest(t *testing.T, cfg serveConfig, ln net.Listener) *syncBuffer {
	t.Helper()
	logs := &syncBuffer{b: &bytes.Buffer{}}
	log := slog.New(slog.NewTextHandler(logs, nil))
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, log, &syncBuffer{b: &bytes.Buffer{}}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for i := 0; ; i++ {
		resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
		if err == nil {
			resp.Body.Close()
			return logs
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned %v\n%s", err, logs.String())
		default:
		}
		if i > 300 {
			t.Fatalf("serve did not answer: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveBriefly runs serve on ln for at most two seconds without --demo, and
// returns its error (nil if it served).
func serveBriefly(path string, ln net.Listener) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return serve(ctx, serveConfig{DB: path, ShutdownGrace: time.Second}, ln, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeWildcardAddrLinks: serving on every interface (0.0.0.0, [::],
// :PORT) without --base-url gives portal sign-in links to a host a browser
// can reach (127.0.0.1), not http://[::]:PORT, and warns to set --base-url.
func TestServeWildcardAddrLinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "acme"}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := d.CreateAPIKey(ctx, "portal", billing.ScopePortal, billing.Limits{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	logs := serveForTest(t, serveConfig{DB: path}, ln)
	req, _ := http.NewRequest("POST", "http://127.0.0.1:"+port+"/api/v1/portal-sessions",
		strings.NewReader(`{"customer":"acme","return_url":"https://app.example/"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if want := "http://127.0.0.1:" + port + "/portal/session/"; !strings.HasPrefix(body.URL, want) {
		t.Errorf("sign-in link %q, want it to start with %s", body.URL, want)
	}
	log := logs.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "--base-url") || !strings.Contains(log, "TALLY_BASE_URL") {
		t.Errorf("no warning naming --base-url and TALLY_BASE_URL:\n%s", log)
	}
	if strings.Contains(log, "url=http://[::]") || strings.Contains(log, "url=http://0.0.0.0") {
		t.Errorf("the log gives a wildcard URL:\n%s", log)
	}
}

// TestCLIAPIKeyLimitKeepsOthers: `apikey limit` changes only the limits it
// is given; "none" removes one; no flags at all is a wrong command line.
func TestCLIAPIKeyLimitKeepsOthers(t *testing.T) {
	env := map[string]string{"TALLY_DB": filepath.Join(t.TempDir(), "t.db")}
	out, errs, code := runCLI(t, env, "apikey", "create", "--name", "app", "--scope", "metering")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	id := strings.Fields(strings.TrimPrefix(out, "Created API key "))[0]
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"--daily", "5", "--monthly", "100", "--rate", "2"}, "daily 5, monthly 100, 2 req/s"},
		{[]string{"--rate", "3"}, "daily 5, monthly 100, 3 req/s"},
		{[]string{"--daily", "7"}, "daily 7, monthly 100, 3 req/s"},
		{[]string{"--monthly", "none"}, "daily 7, 3 req/s"},
		{[]string{"--rate", "0"}, "daily 7"},
		{[]string{"--daily", "none"}, "none"},
	}
	for _, s := range steps {
		out, errs, code := runCLI(t, env, append([]string{"apikey", "limit", id}, s.args...)...)
		if code != 0 || !strings.Contains(out, "Limits of "+id+": "+s.want+"\n") {
			t.Fatalf("limit %v: exit %d, %q %q; want limits %q", s.args, code, out, errs, s.want)
		}
	}
	runCLI(t, env, "apikey", "limit", id, "--daily", "9")
	if _, errs, code := runCLI(t, env, "apikey", "limit", id); code != exitUsage || !strings.Contains(errs, "--daily") {
		t.Fatalf("limit without flags: exit %d, %q", code, errs)
	}
	if out, _, _ := runCLI(t, env, "apikey", "list"); !strings.Contains(out, "daily 9") {
		t.Fatalf("limit without flags changed the limits:\n%s", out)
	}
}

// TestServeDemoCredentialsWithoutDemo: a database that holds the published
// demo key and staff accounts, served without --demo, logs a warning that
// says how to remove them on a loopback address, and is refused (exit 1) on
// any other address.
func TestServeDemoCredentialsWithoutDemo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{PasswordCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	k, err := d.EnsureAPIKey(ctx, "Demo key (local only)", billing.ScopeAdmin, demoAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := seedDemoAdmins(ctx, d, io.Discard, "http://127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	d.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := serveForTest(t, serveConfig{DB: path}, ln).String()
	for _, want := range []string{"level=WARN", "demo", "tally apikey revoke " + k.ID, demoOwnerEmail} {
		if !strings.Contains(log, want) {
			t.Errorf("loopback: the log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, demoOwnerPassword) {
		t.Errorf("the log prints a demo password:\n%s", log)
	}

	wild, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	err = serveBriefly(path, wild)
	if err == nil || !strings.Contains(err.Error(), "--demo") || !strings.Contains(err.Error(), "demo credentials") {
		t.Fatalf("serving demo credentials on every interface: %v", err)
	}
	if code := exitCode(err, io.Discard); code != exitError {
		t.Fatalf("exit code %d, want %d", code, exitError)
	}

	// Once the demo key is revoked, only the staff accounts are reported.
	if out, errs, code := runCLI(t, map[string]string{"TALLY_DB": path}, "apikey", "revoke", k.ID); code != 0 {
		t.Fatalf("revoke: %d %s %s", code, out, errs)
	}
	wild, err = net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	err = serveBriefly(path, wild)
	if err == nil || strings.Contains(err.Error(), "apikey revoke") || !strings.Contains(err.Error(), demoSupportEmail) {
		t.Fatalf("demo staff only: %v", err)
	}
}

// TestCLIExitCodesAndArguments: a wrong command line exits 2 with a
// message, as the README says (0 success, 1 failed, 2 wrong command line),
// and no argument is silently ignored.
func TestCLIExitCodesAndArguments(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"TALLY_DB": filepath.Join(dir, "t.db")}
	out, errs, code := runCLI(t, env, "apikey", "create", "--name", "app", "--scope", "metering")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	id := strings.Fields(strings.TrimPrefix(out, "Created API key "))[0]
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"apikey", "create", "--name", "x", "--scope", "superuser"}, exitUsage, "admin, metering, portal, read"},
		{[]string{"apikey", "limit", id, "--rate", "-1"}, exitUsage, "--rate"},
		{[]string{"apikey", "limit", id, "--daily", "-5"}, exitUsage, "--daily"},
		{[]string{"apikey", "limit", id, "--monthly", "-5"}, exitUsage, "--monthly"},
		{[]string{"apikey", "create", "--name", "x", "--scope", "read", "--daily", "-5"}, exitUsage, "--daily"},
		{[]string{"apikey", "create", "--name", "x", "--scope", "read", "--rate", "-1"}, exitUsage, "--rate"},
		{[]string{"apikey", "create", "--name", "prod", "app", "--scope", "metering"}, exitUsage, `unexpected argument "app"`},
		{[]string{"apikey", "list", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"migrate", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"verify", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"version", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"backup", "--to", filepath.Join(dir, "copy.db"), "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"pricebook", "show", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"pricebook", "publish", "--file", filepath.Join(dir, "prices.json"), "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"admin", "list", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"migrate-data", "--from", "a.db", "--to", "postgres://x/y", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"bench", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"pricebook", "import-costs", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"pricebook", "show", "--version", "-1"}, exitUsage, "--version"},
		{[]string{"pricebook", "show", "--version", "0"}, exitUsage, "--version"},
		{[]string{"version", "--help"}, exitOK, "Usage: tally version"},
	}
	for _, c := range cases {
		out, errs, code := runCLI(t, env, c.args...)
		if code != c.code || !strings.Contains(out+errs, c.want) {
			t.Errorf("tally %s: exit %d, want %d with %q\n%s%s", strings.Join(c.args, " "), code, c.code, c.want, out, errs)
		}
	}
	if out, _, _ := runCLI(t, env, "apikey", "list"); strings.Contains(out, "prod") || strings.Contains(out, "\tx\t") {
		t.Errorf("a refused create made a key:\n%s", out)
	}
	// Every command the top-level help says takes --db does.
	if !strings.Contains(topUsage, "migrate-data takes --from and --to") {
		t.Errorf("the top-level help says every command takes --db:\n%s", topUsage)
	}
	// sandbox --help prints like the others: the description, then its flags, on stderr.
	out, errs, code = runCLI(t, env, "sandbox", "--help")
	if code != exitOK || out != "" || !strings.Contains(errs, "\n\nFlags:\n") || !strings.Contains(errs, "-db") || !strings.Contains(errs, "-days") {
		t.Errorf("sandbox --help: exit %d\nstdout %q\nstderr %q", code, out, errs)
	}
}

// TestCLIRevoke: revoking a revoked key says so; a key can be revoked by
// its secret (after a leak), which is never printed back.
func TestCLIRevoke(t *testing.T) {
	env := map[string]string{"TALLY_DB": filepath.Join(t.TempDir(), "t.db")}
	out, errs, code := runCLI(t, env, "apikey", "create", "--name", "app", "--scope", "metering")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	id := strings.Fields(strings.TrimPrefix(out, "Created API key "))[0]
	out, errs, code = runCLI(t, env, "apikey", "revoke", secret)
	if code != 0 || !strings.Contains(out, "Revoked "+id) || strings.Contains(out+errs, secret) {
		t.Fatalf("revoke by secret: %d %q %q", code, out, errs)
	}
	out, errs, code = runCLI(t, env, "apikey", "revoke", id)
	if code != 0 || !strings.Contains(out, id+" (app) was already revoked") || strings.HasPrefix(out, "Revoked") {
		t.Fatalf("revoke twice: %d %q %q", code, out, errs)
	}
	unknown := "tsk_" + strings.Repeat("a", 32)
	_, errs, code = runCLI(t, env, "apikey", "revoke", unknown)
	if code != exitError || strings.Contains(errs, unknown) || !strings.Contains(errs, "No API key") {
		t.Fatalf("revoke an unknown secret: %d %q", code, errs)
	}
}

// TestCLIAPIKeyCreateNeedsScope: a key's scope is chosen, never an admin key
// by default.
func TestCLIAPIKeyCreateNeedsScope(t *testing.T) {
	env := map[string]string{"TALLY_DB": filepath.Join(t.TempDir(), "t.db")}
	out, errs, code := runCLI(t, env, "apikey", "create", "--name", "production app")
	if code != exitUsage || !strings.Contains(errs, "--scope") || !strings.Contains(errs, "admin, metering, portal, read") {
		t.Fatalf("create without --scope: exit %d\n%s%s", code, out, errs)
	}
	if out, _, _ := runCLI(t, env, "apikey", "list"); !strings.Contains(out, "No API keys yet") || !strings.Contains(out, "--scope") {
		t.Fatalf("a key was made, or the hint lacks --scope:\n%s", out)
	}
	if _, errs, _ := runCLI(t, env, "apikey", "--help"); strings.Contains(errs, "[--scope S]") {
		t.Errorf("the help shows --scope as optional:\n%s", errs)
	}
}

// TestServeStartupLog: the startup log names the database by its absolute
// path, and warns when no price book is published (every usage call would
// be refused) with the command that publishes one.
func TestServeStartupLog(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := serveForTest(t, serveConfig{DB: "t.db"}, ln).String()
	abs := filepath.Join(dir, "t.db")
	if !strings.Contains(log, "db="+abs+" ") {
		t.Errorf("the log does not name the database %s:\n%s", abs, log)
	}
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "tally pricebook publish --file") {
		t.Errorf("no warning that no price book is published:\n%s", log)
	}

	// With a price book, no such warning.
	ctx := context.Background()
	d, err := db.Open(ctx, abs, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PublishPriceBook(ctx, DemoPriceBook()); err != nil {
		t.Fatal(err)
	}
	d.Close()
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if log := serveForTest(t, serveConfig{DB: abs}, ln).String(); strings.Contains(log, "pricebook publish") {
		t.Errorf("a warning with a price book published:\n%s", log)
	}
}

// TestCLIAllowedOriginNeedsPortalScope: only a key that can mint embed
// tokens (portal, or admin which includes it) may list allowed origins.
func TestCLIAllowedOriginNeedsPortalScope(t *testing.T) {
	env := map[string]string{"TALLY_DB": filepath.Join(t.TempDir(), "t.db")}
	for _, scope := range []string{billing.ScopeMetering, billing.ScopeRead} {
		out, errs, code := runCLI(t, env, "apikey", "create", "--name", "w-"+scope, "--scope", scope, "--allowed-origin", "https://app.example.com")
		if code != exitUsage || !strings.Contains(errs, "--allowed-origin") || !strings.Contains(errs, "portal") {
			t.Errorf("--scope %s --allowed-origin: exit %d\n%s%s", scope, code, out, errs)
		}
	}
	if out, _, _ := runCLI(t, env, "apikey", "list"); strings.Contains(out, "w-") {
		t.Errorf("a refused create made a key:\n%s", out)
	}
	for _, scope := range []string{billing.ScopePortal, billing.ScopeAdmin} {
		if _, errs, code := runCLI(t, env, "apikey", "create", "--name", "w-"+scope, "--scope", scope, "--allowed-origin", "https://app.example.com"); code != 0 {
			t.Errorf("--scope %s --allowed-origin: exit %d %s", scope, code, errs)
		}
	}
}
