package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// runCLI runs the tally command line with an environment of its own.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestCLIUsageAndExitCodes(t *testing.T) {
	env := map[string]string{"TALLY_DB": filepath.Join(t.TempDir(), "t.db")}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, exitUsage, "Commands:"},
		{"help", []string{"--help"}, exitOK, "Commands:"},
		{"unknown", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"version", []string{"version"}, exitOK, "tally dev"},
		{"serve help", []string{"serve", "--help"}, exitOK, "-addr"},
		{"bad flag", []string{"serve", "--nope"}, exitUsage, "flag provided but not defined"},
		{"apikey help", []string{"apikey", "--help"}, exitOK, "create --name N"},
		{"apikey create without name", []string{"apikey", "create"}, exitUsage, "needs --name"},
		{"apikey bad scope", []string{"apikey", "create", "--name", "x", "--scope", "root"}, exitUsage, "not one of admin"},
		{"pricebook without file", []string{"pricebook", "publish"}, exitUsage, "needs --file"},
		{"revoke unknown", []string{"apikey", "revoke", "key_nope"}, exitError, "No API key"},
		{"signout without customer", []string{"signout"}, exitUsage, "one customer"},
		{"signout unknown customer", []string{"signout", "ghost"}, exitError, "ghost"},
		{"serve max-streams 0", []string{"serve", "--max-streams", "0"}, exitUsage, "--max-streams must be at least 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := runCLI(t, env, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, c.code, errs)
			}
			if !strings.Contains(out+errs, c.want) {
				t.Errorf("output lacks %q:\n%s%s", c.want, out, errs)
			}
		})
	}
}

// TestTopUsageLinesUp: every command's description starts in one column,
// and every command the usage lists runs (its --help exits 0, with a blank
// line before its flags).
func TestTopUsageLinesUp(t *testing.T) {
	_, list, _ := strings.Cut(topUsage, "Commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	col := -1
	for _, line := range strings.Split(list, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		at := strings.Index(line[2+len(name):], strings.TrimSpace(line[2+len(name):])) + 2 + len(name)
		if col < 0 {
			col = at
		} else if at != col {
			t.Errorf("%q: description starts at column %d, the others at %d", name, at, col)
		}
		_, errs, code := runCLI(t, map[string]string{"TALLY_DB": filepath.Join(t.TempDir(), "t.db")}, name, "--help")
		if code != exitOK {
			t.Errorf("tally %s --help: exit %d, stderr %q", name, code, errs)
		}
		if strings.Contains(errs, "Flags:") && !strings.Contains(errs, "\n\nFlags:\n") {
			t.Errorf("tally %s --help: no blank line between the description and its flags:\n%s", name, errs)
		}
	}
}

func TestCLIAPIKeyLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	env := map[string]string{"TALLY_DB": path}
	out, errs, code := runCLI(t, env, "apikey", "create", "--name", "prod app", "--scope", "metering")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if !strings.HasPrefix(secret, "tsk_") || len(secret) < 30 {
		t.Fatalf("last line %q is not a secret key", secret)
	}
	// Only a hash is stored: the secret appears nowhere in the database files.
	for _, f := range []string{path, path + "-wal"} {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s contains the secret in clear", f)
		}
	}
	out, _, _ = runCLI(t, env, "apikey", "list")
	if !strings.Contains(out, "prod app") || !strings.Contains(out, "metering") || strings.Contains(out, secret) {
		t.Fatalf("list:\n%s", out)
	}
	d, err := db.Open(context.Background(), path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := d.Authenticate(context.Background(), secret)
	if err != nil || k.Scope != "metering" {
		t.Fatalf("authenticate: %v %v", k, err)
	}
	d.Close()
	if _, errs, code := runCLI(t, env, "apikey", "limit", k.ID, "--daily", "100", "--rate", "5"); code != 0 {
		t.Fatalf("limit: %s", errs)
	}
	if _, errs, code := runCLI(t, env, "apikey", "revoke", k.Prefix); code != 0 {
		t.Fatalf("revoke: %s", errs)
	}
	out, _, _ = runCLI(t, env, "apikey", "list")
	if !strings.Contains(out, "revoked") || !strings.Contains(out, "daily 100, 5 req/s") {
		t.Fatalf("list after revoke:\n%s", out)
	}
	d, _ = db.Open(context.Background(), path, db.Options{})
	defer d.Close()
	if _, err := d.Authenticate(context.Background(), secret); billing.ErrorCode(err) != billing.CodeUnauthorized {
		t.Fatalf("revoked key still authenticates: %v", err)
	}
	// A portal key, for the backend that sends customers to the portal.
	out, errs, code = runCLI(t, env, "apikey", "create", "--name", "billing button", "--scope", "portal")
	if code != 0 || !strings.Contains(out, "scope portal") {
		t.Fatalf("create --scope portal: %d %s %s", code, out, errs)
	}
	if _, errs, code := runCLI(t, env, "apikey", "create", "--name", "x", "--scope", "root"); code != exitUsage || !strings.Contains(errs, "admin, metering, portal, read") {
		t.Fatalf("create --scope root: %d %s", code, errs)
	}
}

// TestCLISignOut ends a customer's portal sessions from the command line,
// as an operator does when a customer reports a lost laptop.
func TestCLISignOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var ids []string
	for range 2 {
		id, err := d.StartCustomerSession(ctx, billing.CustomerSession{CustomerID: c.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}, false)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	d.Close()
	out, errs, code := runCLI(t, map[string]string{"TALLY_DB": path}, "signout", "acme")
	if code != 0 || !strings.Contains(out, "Ended 2 portal session(s) of acme") {
		t.Fatalf("signout: %d %q %q", code, out, errs)
	}
	d, err = db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, id := range ids {
		if s, err := d.FindCustomerSession(ctx, id); err != nil || s.EndReason != billing.SessionRevoked || s.Live(time.Now(), time.Hour) {
			t.Fatalf("session after signout: %+v, %v", s, err)
		}
	}
}

func TestCLIPriceBookPublish(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"TALLY_DB": filepath.Join(dir, "t.db")}
	file := filepath.Join(dir, "prices.json")
	b, _ := json.Marshal(DemoPriceBook())
	os.WriteFile(file, b, 0o644)
	out, errs, code := runCLI(t, env, "pricebook", "publish", "--file", file)
	if code != 0 || !strings.Contains(out, "version 1") {
		t.Fatalf("publish: %d %s %s", code, out, errs)
	}
	out, _, _ = runCLI(t, env, "pricebook", "publish", "--file", file)
	if !strings.Contains(out, "Unchanged") {
		t.Fatalf("second publish: %s", out)
	}
	os.WriteFile(file, []byte(`{"features":[{"key":"x","credits":1.0005}]}`), 0o644)
	_, errs, code = runCLI(t, env, "pricebook", "publish", "--file", file)
	if code != exitError || !strings.Contains(errs, "three decimals") {
		t.Fatalf("bad book: %d %s", code, errs)
	}
	// Read as the API reads it: a field given twice, or in another case, is
	// refused rather than one of them silently winning.
	for body, want := range map[string]string{
		`{"features":[{"key":"x","credits":1,"credits":1000}]}`: `Duplicate field "features[0].credits"`,
		`{"features":[{"key":"x","Credits":1000}]}`:             `Unknown field "features[0].Credits"`,
	} {
		os.WriteFile(file, []byte(body), 0o644)
		_, errs, code = runCLI(t, env, "pricebook", "publish", "--file", file)
		if code != exitError || !strings.Contains(errs, want) {
			t.Fatalf("book %s: %d %s, want %q", body, code, errs, want)
		}
	}
	out, _, code = runCLI(t, env, "pricebook", "show")
	if code != 0 || !strings.Contains(out, `"gpt-4o.tokens"`) {
		t.Fatalf("show: %s", out)
	}
	out, _, _ = runCLI(t, env, "migrate")
	if want := fmt.Sprintf("schema version %d, up to date", latestMigration(t)); !strings.Contains(out, want) {
		t.Fatalf("migrate: %s, want %q", out, want)
	}
}

// TestServeDemoAndShutdown runs the real wiring on port 0: demo seeding,
// the demo key, an API call, then a graceful stop that leaves the books
// balanced.
func TestServeDemoAndShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 90 days of demo data")
	}
	path := filepath.Join(t.TempDir(), "t.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		done <- serve(ctx, serveConfig{DB: path, Demo: true, ShutdownGrace: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}, ln, log, &syncBuffer{b: &out})
	}()
	base := "http://" + ln.Addr().String()
	var resp *http.Response
	for i := 0; i < 300; i++ {
		req, _ := http.NewRequest("GET", base+"/api/v1/customers/lumen-studio/balance", nil)
		req.Header.Set("Authorization", "Bearer "+demoAPIKey)
		resp, err = http.DefaultClient.Do(req)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	var bal billing.Balance
	json.NewDecoder(resp.Body).Decode(&bal)
	resp.Body.Close()
	if resp.StatusCode != 200 || bal.Balance <= 0 || bal.Balance > billing.CreditsOf(100) {
		t.Fatalf("near-zero demo customer: %d %+v", resp.StatusCode, bal)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	for _, want := range []string{"Demo API key", demoAPIKey, "Acme Robotics", "100%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("startup output lacks %q", want)
		}
	}
	d := openVerified(t, path)
	cs, _, _ := d.FindCustomers(context.Background(), billing.CustomerFilter{})
	if len(cs) != 3 {
		t.Fatalf("%d demo customers", len(cs))
	}

	// After a restart the sandbox has forgotten the demo's payments; a
	// refund of one asked it for a payment it did not know, after taking
	// the credits. It now recalls them from the ledger's records.
	var paid string
	for _, c := range cs {
		tus, err := d.FindTopUps(context.Background(), c.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, tu := range tus {
			if tu.Status == billing.TopUpSucceeded && tu.PaymentID != "" && tu.RefundableUntil != nil && tu.RefundableUntil.After(time.Now()) {
				paid = tu.ID
			}
		}
	}
	d.Close()
	if paid == "" {
		t.Fatal("the demo has no refundable purchase")
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() {
		done2 <- serve(ctx2, serveConfig{DB: path, ShutdownGrace: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}, ln2, log, io.Discard)
	}()
	defer func() { cancel2(); <-done2 }()
	var refunded map[string]any
	for i := 0; i < 300; i++ {
		req, _ := http.NewRequest("POST", "http://"+ln2.Addr().String()+"/api/v1/topups/"+paid+"/refund", nil)
		req.Header.Set("Authorization", "Bearer "+demoAPIKey)
		resp, err = http.DefaultClient.Do(req)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&refunded)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || refunded["status"] != "refunded" {
		t.Fatalf("refund of a demo purchase after a restart: %d %v", resp.StatusCode, refunded)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func TestCLIVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	env := map[string]string{"TALLY_DB": path}
	if _, errs, code := runCLI(t, env, "verify"); code != exitError || !strings.Contains(errs, "no database") {
		t.Fatalf("verify without a database: exit %d, %q", code, errs)
	}
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PublishPriceBook(ctx, DemoPriceBook()); err != nil {
		t.Fatal(err)
	}
	c, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: c.ID, Credits: billing.CreditsOf(10), Source: billing.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	q := billing.QuantityOf(3)
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: c.ID, Feature: "chat.request", Quantity: &q}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if out, errs, code := runCLI(t, env, "verify"); code != exitOK || !strings.Contains(out, "The books balance") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	// Break the books behind Tally's back: the wallet no longer matches its entries.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE wallets SET balance = balance + 1000 WHERE customer_id = ?`, c.ID); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	out, errs, code := runCLI(t, env, "verify")
	if code != exitError || !strings.Contains(out, "balance != sum of entries") || !strings.Contains(errs, "invariant(s) broken") {
		t.Fatalf("verify of broken books: exit %d\n%s%s", code, out, errs)
	}
}

// latestMigration is the version of the newest file in db/migrations.
func latestMigration(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("../../db/migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	slices.Sort(files)
	n, err := strconv.Atoi(strings.SplitN(filepath.Base(files[len(files)-1]), "_", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Provider costs in LiteLLM's layout priced at a margin: a draft to stdout
// (with the table on stderr), then published; a model without token prices
// and a bad margin are refused with their exit codes.
func TestCLIImportCosts(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"TALLY_DB": filepath.Join(dir, "t.db")}
	file := filepath.Join(dir, "prices.json")
	b, _ := json.Marshal(DemoPriceBook())
	os.WriteFile(file, b, 0o644)
	if _, errs, code := runCLI(t, env, "pricebook", "publish", "--file", file); code != 0 {
		t.Fatal(errs)
	}
	costs := filepath.Join("..", "..", "billing", "testdata", "litellm_small.json")
	out, errs, code := runCLI(t, env, "pricebook", "import-costs", "--file", costs, "--models", "gpt-4o,claude-3-5-sonnet-20241022", "--margin", "60", "--pack", "pack_1000")
	if code != 0 || !strings.Contains(errs, "MARGIN AT PACK_1000") || !strings.Contains(errs, "60.0%") {
		t.Fatalf("draft: %d\n%s", code, errs)
	}
	var draft billing.PriceBook
	if err := json.Unmarshal([]byte(out), &draft); err != nil {
		t.Fatalf("the draft is not a price book: %v\n%s", err, out)
	}
	f, ok := draft.Feature("claude-3-5-sonnet-20241022")
	if !ok || len(f.Dimensions) != 3 || f.Dimensions[0].Credits != 750 || f.Dimensions[0].Cost == nil {
		t.Fatalf("claude in the draft: %+v", f)
	}
	if v, _, _ := runCLI(t, env, "pricebook", "show"); strings.Contains(v, "claude") {
		t.Fatal("a draft was published")
	}
	out, _, code = runCLI(t, env, "pricebook", "import-costs", "--file", costs, "--models", "gpt-4o", "--margin", "62.5", "--publish")
	if code != 0 || !strings.Contains(out, "Published price book version 2") {
		t.Fatalf("publish: %d %s", code, out)
	}
	if _, errs, code := runCLI(t, env, "pricebook", "import-costs", "--file", costs, "--models", "dall-e-3", "--margin", "60"); code != exitError || !strings.Contains(errs, "no token prices") {
		t.Errorf("an image model: %d %s", code, errs)
	}
	if _, errs, code := runCLI(t, env, "pricebook", "import-costs", "--file", costs, "--models", "gpt-4o", "--margin", "100"); code != exitUsage {
		t.Errorf("a 100%% margin: %d %s", code, errs)
	}
}
