package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/internal/pgtest"
	"golang.org/x/crypto/bcrypt"
)

// One throw-away PostgreSQL cluster serves every test of this package that
// needs one (started on first use, stopped by TestMain); each test gets a
// database of its own.
var (
	pgOnce    sync.Once
	pgCluster *pgtest.Cluster
	pgErr     error
	pgSeq     atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgCluster.Stop()
	os.Exit(code)
}

// pgDatabase returns the URL of a new, empty database. Without PostgreSQL
// installed the test is skipped, unless TALLY_REQUIRE_POSTGRES is set (as
// .ci/run sets it, after .ci/setup installed it), where it fails.
func pgDatabase(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	pgOnce.Do(func() { pgCluster, pgErr = pgtest.Start(context.Background()) })
	if errors.Is(pgErr, pgtest.ErrUnavailable) && os.Getenv("TALLY_REQUIRE_POSTGRES") == "" {
		t.Skip(pgErr)
	}
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	name := fmt.Sprintf("cli_%d", pgSeq.Add(1))
	if err := pgCluster.CreateDB(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return pgCluster.DSN(name)
}

func sqlOpenSQLite(path string) (*sql.DB, error) {
	return sql.Open("sqlite", path+"?_pragma=query_only(1)")
}

// pgCount runs a counting query on the database at dsn.
func pgCount(t *testing.T, dsn, query string, args ...any) int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestMigrateDataToPostgres moves a demo installation (customers, months of
// usage, lots, holds, top-ups, plans, notifications) from SQLite into
// PostgreSQL with the CLI, and checks every row arrived, the books balance,
// every balance reads the same, and the target keeps working (its id
// sequences start past the copied ids).
func TestMigrateDataToPostgres(t *testing.T) {
	dsn := pgDatabase(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tally.db")
	src, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seedDemo(ctx, src, io.Discard, true); err != nil {
		t.Fatal(err)
	}
	customers, _, err := src.FindCustomers(ctx, billing.CustomerFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(customers) < 3 {
		t.Fatalf("the demo seeded %d customers", len(customers))
	}
	want := map[string]billing.Balance{}
	for _, c := range customers {
		b, err := src.Balance(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		want[c.ID] = b
	}
	src.Close()

	// Wrong command lines are usage errors and touch nothing.
	for _, args := range [][]string{
		{"migrate-data", "--to", dsn},
		{"migrate-data", "--from", "sqlite:" + path, "--to", "sqlite:/tmp/x.db"},
		{"migrate-data", "--from", dsn, "--to", dsn},
	} {
		if _, _, code := runCLI(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}

	out, errs, code := runCLI(t, nil, "migrate-data", "--from", "sqlite:"+path, "--to", dsn)
	if code != exitOK || !strings.Contains(out, "The books balance on the target") {
		t.Fatalf("migrate-data: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "entries") || !strings.Contains(out, "rows") {
		t.Errorf("no progress per table:\n%s", out)
	}

	// Every table holds as many rows on both sides.
	raw, err := sqlOpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	nonEmpty := 0
	for _, table := range tables {
		var n int64
		if err := raw.QueryRow(`SELECT COUNT(*) FROM "` + table + `"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if got := pgCount(t, dsn, `SELECT COUNT(*) FROM "`+table+`"`); got != n {
			t.Errorf("table %s: %d rows in PostgreSQL, %d in SQLite", table, got, n)
		}
		if n > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 10 {
		t.Errorf("only %d tables held rows: the demo data proves little", nonEmpty)
	}

	// Every balance reads the same, and the target takes new writes.
	pg, err := db.Open(ctx, dsn, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for id, w := range want {
		got, err := pg.Balance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Balance != w.Balance || got.Available != w.Available || got.Held != w.Held || len(got.Lots) != len(w.Lots) {
			t.Errorf("%s: balance %v available %v held %v lots %d on PostgreSQL; %v %v %v %d on SQLite",
				id, got.Balance, got.Available, got.Held, len(got.Lots), w.Balance, w.Available, w.Held, len(w.Lots))
		}
	}
	maxID := pgCount(t, dsn, `SELECT MAX(id) FROM entries`)
	c, _, err := pg.CreateCustomer(ctx, billing.CustomerInput{ExternalID: "after-the-move"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := pg.Grant(ctx, billing.GrantRequest{Customer: c.ID, Credits: billing.CreditsOf(10), Source: billing.SourcePromo})
	if err != nil {
		t.Fatalf("a grant after the move: %v", err)
	}
	if id, _ := strconv.ParseInt(strings.TrimPrefix(g.ID, "ent_"), 10, 64); id <= maxID {
		t.Errorf("the first entry after the move is %s, not past the copied ids (max %d)", g.ID, maxID)
	}

	// A second move into the now-used target is refused and changes nothing.
	before := pgCount(t, dsn, `SELECT COUNT(*) FROM entries`)
	if _, errs, code := runCLI(t, nil, "migrate-data", "--from", path, "--to", dsn); code != exitError || !strings.Contains(errs, "empty database") {
		t.Errorf("a second move: exit %d, %s", code, errs)
	}
	if after := pgCount(t, dsn, `SELECT COUNT(*) FROM entries`); after != before {
		t.Errorf("the refused move changed the target: %d entries, then %d", before, after)
	}
}

// TestBackupAndVerifyPostgres backs up a PostgreSQL installation with
// `tally backup` (pg_dump), restores the archive into a new database and
// verifies the books there; the password never reaches the output.
func TestBackupAndVerifyPostgres(t *testing.T) {
	dsn := pgDatabase(t)
	ctx := context.Background()
	d, err := db.Open(ctx, dsn, db.Options{})
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
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: c.ID, Credits: billing.CreditsOf(50), Source: billing.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	q := billing.QuantityOf(3)
	if _, err := d.Debit(ctx, billing.UsageRequest{Customer: c.ID, Feature: "chat.request", Quantity: &q}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	env := map[string]string{"TALLY_DB": dsn}
	if out, errs, code := runCLI(t, env, "verify"); code != exitOK || !strings.Contains(out, "The books balance") {
		t.Fatalf("verify on PostgreSQL: exit %d\n%s%s", code, out, errs)
	}
	archive := filepath.Join(t.TempDir(), "tally.dump")
	// A password in the URL (the test cluster trusts local users, so any
	// password is accepted) must not be printed.
	withPW := strings.Replace(dsn, "tally@", "tally:s3cret-pw@", 1)
	out, errs, code := runCLI(t, map[string]string{"TALLY_DB": withPW}, "backup", "--to", archive)
	if code != exitOK || !strings.Contains(out, "Backed up") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out+errs, "s3cret-pw") {
		t.Errorf("the password reached the output:\n%s%s", out, errs)
	}
	if _, _, code := runCLI(t, env, "backup", "--to", archive); code != exitError {
		t.Errorf("a backup over an existing file: exit %d", code)
	}
	// Restore into a fresh database and check the books there.
	restored := pgDatabase(t)
	restore, err := exec.LookPath("pg_restore")
	if err != nil {
		bin, _ := pgtest.BinDir()
		restore = filepath.Join(bin, "pg_restore")
	}
	if b, err := exec.Command(restore, "--no-owner", "--dbname", restored, archive).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, b)
	}
	if out, errs, code := runCLI(t, map[string]string{"TALLY_DB": restored}, "verify"); code != exitOK || !strings.Contains(out, "The books balance") {
		t.Fatalf("verify of the restored copy: exit %d\n%s%s", code, out, errs)
	}
	if got := pgCount(t, restored, `SELECT COUNT(*) FROM entries`); got != 2 {
		t.Errorf("the restored copy holds %d entries, want 2", got)
	}
}

// TestBenchPostgresTwoInstances runs a short `tally bench --db postgres://…
// --instances 2`: every phase works on both instances without a failed
// request, the first instance alone is measured in the same run, SQLite is
// measured beside it, and the database the bench created is dropped.
func TestBenchPostgresTwoInstances(t *testing.T) {
	if raceEnabled {
		t.Skip("a benchmark under the race detector measures the detector")
	}
	dsn := pgDatabase(t)
	out, err := exec.Command(tallyBinary(t), "bench", "--db", dsn, "--instances", "2", "--duration", "300ms", "--clients", "4",
		"--customers", "10", "--batch", "10", "--dir", t.TempDir(), "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("tally bench: %v\n%s", err, out)
	}
	text := string(out)
	for _, line := range []string{"2 instance(s)", "instance 1 alone", "SQLite: POST /usage, 10 customers", "PostgreSQL, one instance / SQLite", "PostgreSQL, 2 instances / SQLite", "2 instances / instance 1 alone", `"postgres_vs_sqlite_spread"`} {
		if !strings.Contains(text, line) {
			t.Errorf("output lacks %q:\n%s", line, text)
		}
	}
	if strings.Contains(text, "first error") {
		t.Errorf("a phase had errors:\n%s", text)
	}
	if n := pgCount(t, dsn, `SELECT COUNT(*) FROM pg_database WHERE datname LIKE 'tally_bench_%'`); n != 0 {
		t.Errorf("%d bench databases left behind", n)
	}
}

// TestTwoInstancesPostgres runs two `tally serve` processes on one
// PostgreSQL database, with clients spread over both: a balance is never
// overdrawn across them, an idempotency key sent to both at once debits
// once, a hold made on one is captured on the other, and the books balance.
func TestTwoInstancesPostgres(t *testing.T) {
	dsn := pgDatabase(t)
	bin := tallyBinary(t)
	secret := setupCrashDB(t, dsn, 2, 100) // c0 and c1, 100 credits each
	func() {
		d, err := db.Open(context.Background(), dsn, db.Options{PasswordCost: bcrypt.MinCost})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.CreateAdmin(context.Background(), "owner@pg.test", "a-long-enough-password", billing.RoleOwner); err != nil {
			t.Fatal(err)
		}
	}()
	a := startTally(t, bin, dsn, freeAddr(t))
	b := startTally(t, bin, dsn, freeAddr(t))
	t.Cleanup(func() { a.cmd.Process.Kill(); b.cmd.Process.Kill() }) // after a failure; a no-op once stopped
	cl := func(p *proc) *apiClient {
		return &apiClient{http: &http.Client{Timeout: 10 * time.Second}, base: p.base, secret: secret}
	}
	clients := []*apiClient{cl(a), cl(b)}

	// 60 debits of 5 credits (chat.request costs 1 credit; quantity 5) for
	// 100 credits, from 12 goroutines over both instances: exactly 20 pass.
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 12; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				status, _, m, err := clients[(w+i)%2].post("/api/v1/usage", fmt.Sprintf("od-%d-%d", w, i), `{"customer":"c0","feature":"chat.request","quantity":5}`)
				switch {
				case err != nil:
					t.Errorf("debit: %v", err)
				case status == 201:
					ok.Add(1)
				case status == 402:
					refused.Add(1)
				default:
					t.Errorf("debit: %d %v", status, m)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 20 || refused.Load() != 40 {
		t.Errorf("%d debits passed and %d were refused; want 20 and 40 (100 credits, 5 each)", ok.Load(), refused.Load())
	}

	// One key, both instances, at once, many times: one entry.
	ids := make(chan string, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, m, err := clients[i%2].post("/api/v1/usage", "same-key", `{"customer":"c1","feature":"chat.request","quantity":2}`)
			if err != nil || status != 201 {
				t.Errorf("same key: %d %v %v", status, m, err)
				return
			}
			ids <- m["id"].(string)
		}()
	}
	wg.Wait()
	close(ids)
	first := ""
	for id := range ids {
		if first == "" {
			first = id
		}
		if id != first {
			t.Errorf("one key gave two debits: %s and %s", first, id)
		}
	}
	if n := pgCount(t, dsn, `SELECT COUNT(*) FROM entries WHERE idempotency_key = 'same-key'`); n != 1 {
		t.Errorf("%d entries for one key", n)
	}

	// A hold made on one instance is captured on the other.
	status, _, m, err := clients[0].post("/api/v1/holds", "hold-1", `{"customer":"c1","credits":10,"ttl_seconds":60}`)
	if err != nil || status != 201 {
		t.Fatalf("hold: %d %v %v", status, m, err)
	}
	status, _, m, err = clients[1].post("/api/v1/holds/"+m["id"].(string)+"/capture", "cap-1", `{"feature":"chat.request","quantity":4}`)
	if err != nil || status != 200 || m["status"] != "captured" {
		t.Fatalf("capture on the other instance: %d %v %v", status, m, err)
	}
	// Sessions work on any instance: a portal sign-in link minted on one
	// and opened on the other, then the portal on the first; an admin who
	// signs in on one is signed in on the other.
	status, _, m, err = clients[0].post("/api/v1/portal-sessions", "ps-1", `{"customer":"c1","return_url":"https://pixel.example/app"}`)
	if err != nil || status != 201 {
		t.Fatalf("portal session: %d %v %v", status, m, err)
	}
	link := strings.Replace(m["url"].(string), a.base, b.base, 1)
	browser := newJarClient(t)
	if resp := browser.get(t, link); resp.status != 200 || !strings.Contains(resp.body, `data-testid="balance"`) {
		t.Errorf("the sign-in link on the other instance: %d %.300s", resp.status, resp.body)
	}
	if resp := browser.get(t, a.base+"/portal"); resp.status != 200 || !strings.Contains(resp.body, `data-testid="balance"`) {
		t.Errorf("the portal on the first instance with the second's session: %d %.300s", resp.status, resp.body)
	}
	staff := newJarClient(t)
	tok := staff.csrf(t, a.base+"/admin/sign-in")
	resp := staff.postForm(t, a.base+"/admin/sign-in", url.Values{"_csrf": {tok}, "email": {"owner@pg.test"}, "password": {"a-long-enough-password"}})
	if resp.status != 200 || !strings.Contains(resp.url, "/admin/customers") {
		t.Fatalf("admin sign-in on the first instance: %d at %s", resp.status, resp.url)
	}
	if resp := staff.get(t, b.base+"/admin/customers"); resp.status != 200 || !strings.Contains(resp.url, "/admin/customers") || !strings.Contains(resp.body, "c1") {
		t.Errorf("the admin console on the other instance: %d at %s", resp.status, resp.url)
	}

	a.term(t)
	b.term(t)
	d := openVerified(t, dsn)
	bal, err := d.Balance(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if bal.Balance != billing.CreditsOf(100-2-4) || bal.Held != 0 {
		t.Errorf("c1: balance %v held %v, want 94 and 0", bal.Balance, bal.Held)
	}
}

// TestCrashRecoveryTwoInstancesPostgres is the crash test on PostgreSQL
// with two instances: clients spread over both, one instance is killed with
// SIGKILL under load and then the other; after restarting both, every
// acknowledged write replays (through the other instance than the one that
// acknowledged it) as itself, each key is in the ledger exactly once, and
// the books balance.
func TestCrashRecoveryTwoInstancesPostgres(t *testing.T) {
	if raceEnabled {
		t.Skip("runs in the plain test step; under -race the servers are built without it anyway")
	}
	pgDatabase(t) // skips without PostgreSQL
	bin := tallyBinary(t)
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("TALLY_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = min(v, 5)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	for round := 0; round < rounds; round++ {
		killAfter := time.Duration(200+rng.IntN(1000)) * time.Millisecond
		t.Run(fmt.Sprintf("round%d_kill_after_%s", round, killAfter), func(t *testing.T) {
			pgCrashRound(t, bin, pgDatabase(t), killAfter, rng.Uint64())
		})
	}
}

func pgCrashRound(t *testing.T, bin, dsn string, killAfter time.Duration, seed uint64) {
	secret := setupCrashDB(t, dsn, 8, 2000)
	addrs := []string{freeAddr(t), freeAddr(t)}
	procs := []*proc{startTally(t, bin, dsn, addrs[0]), startTally(t, bin, dsn, addrs[1])}
	clients := []*apiClient{
		{http: &http.Client{Timeout: 5 * time.Second}, base: procs[0].base, secret: secret},
		{http: &http.Client{Timeout: 5 * time.Second}, base: procs[1].base, secret: secret},
	}
	load := startCrashLoad(seed, 16, clients)
	// The kill comes killAfter after the load is under way (20 writes
	// acknowledged), so every round kills a busy pair.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && load.acknowledged() < 20; time.Sleep(10 * time.Millisecond) {
	}
	time.Sleep(killAfter)
	procs[0].kill9() // one instance dies; the other keeps serving its clients
	time.Sleep(killAfter / 2)
	procs[1].kill9()
	load.halt()
	acks := load.acks

	procs = []*proc{startTally(t, bin, dsn, addrs[0]), startTally(t, bin, dsn, addrs[1])}
	t.Logf("%d acknowledged writes before both were killed", len(acks))
	if len(acks) == 0 {
		t.Fatal("nothing was acknowledged: the round proves nothing")
	}
	for key, a := range acks {
		other := clients[1-a.via]
		other.base = procs[1-a.via].base
		status, hdr, m, err := other.post(a.path, key, a.body)
		if err != nil {
			t.Fatalf("replay %s: %v", key, err)
		}
		if status != 201 || hdr.Get("Idempotent-Replayed") != "true" || m["id"] != a.id {
			t.Errorf("acknowledged %s %s (id %s) replays as %d %v replayed=%q: lost or doubled", a.path, key, a.id, status, m["id"], hdr.Get("Idempotent-Replayed"))
		}
	}
	procs[0].term(t)
	procs[1].term(t)
	openVerified(t, dsn)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for key := range acks {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT COUNT(*) FROM entries WHERE idempotency_key = $1`, key).Scan(&n); err != nil || n != 1 {
			t.Errorf("key %s: %d entries (%v)", key, n, err)
		}
	}
}

// jarClient is a browser without JavaScript: cookies kept, redirects followed.
type jarClient struct{ c *http.Client }

type jarResponse struct {
	status    int
	url, body string
}

func newJarClient(t *testing.T) *jarClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &jarClient{c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (j *jarClient) do(t *testing.T, req *http.Request) jarResponse {
	t.Helper()
	resp, err := j.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return jarResponse{status: resp.StatusCode, url: resp.Request.URL.String(), body: string(body)}
}

func (j *jarClient) get(t *testing.T, u string) jarResponse {
	req, _ := http.NewRequest("GET", u, nil)
	return j.do(t, req)
}

func (j *jarClient) postForm(t *testing.T, u string, form url.Values) jarResponse {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", u[:strings.Index(u[len("http://"):], "/")+len("http://")])
	return j.do(t, req)
}

var csrfMeta = regexp.MustCompile(`name="csrf-token" content="([^"]+)"`)

// csrf reads the CSRF token of the page at u.
func (j *jarClient) csrf(t *testing.T, u string) string {
	t.Helper()
	r := j.get(t, u)
	m := csrfMeta.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no CSRF token on %s (%d)", u, r.status)
	}
	return m[1]
}
