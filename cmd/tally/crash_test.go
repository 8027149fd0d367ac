package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// tallyBinary builds cmd/tally once per test run, for tests that need a
// real process to kill.
func tallyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tally-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "tally")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// openVerified opens the database file once the server using it stopped,
// reports every broken ledger invariant as a test error and returns it for
// further checks; it is closed when the test ends.
func openVerified(t *testing.T, path string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	problems, err := d.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error("invariant:", p)
	}
	return d
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a tally server process.
type proc struct {
	cmd  *exec.Cmd
	base string
	out  *bytes.Buffer
}

func startTally(t *testing.T, bin, dbPath, addr string, extra ...string) *proc {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"serve", "--db", dbPath, "--addr", addr, "--log-requests=false", "--log-level", "warn", "--sweep-interval", "200ms"}, extra...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, base: "http://" + addr, out: &out}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	t.Fatalf("tally did not become ready:\n%s", out.String())
	return nil
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *proc) term(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tally exited with %v after SIGTERM:\n%s", err, p.out.String())
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("tally did not stop on SIGTERM")
	}
}

// setupCrashDB prepares a database with prices, a key and customers.
func setupCrashDB(t *testing.T, path string, customers int, credits int64) string {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, _, err := d.PublishPriceBook(ctx, DemoPriceBook()); err != nil {
		t.Fatal(err)
	}
	_, secret, err := d.CreateAPIKey(ctx, "crash", billing.ScopeAdmin, billing.Limits{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < customers; i++ {
		ext := "c" + strconv.Itoa(i)
		if _, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: ext}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Grant(ctx, billing.GrantRequest{Customer: ext, Credits: billing.CreditsOf(credits), Source: billing.SourcePurchase}); err != nil {
			t.Fatal(err)
		}
	}
	return secret
}

// setLowBalanceLine sets every crash-test customer's low-balance line to
// th, so a load crosses it back and forth and the outbox has threshold
// events to lose or double.
func setLowBalanceLine(t *testing.T, path string, customers int, th billing.Credits) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := 0; i < customers; i++ {
		id, err := d.ResolveCustomer(ctx, "c"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.UpdateCustomerSettings(ctx, id, billing.CustomerSettings{LowBalanceThreshold: &th}); err != nil {
			t.Fatal(err)
		}
	}
}

// outboxConsumer reads the outbox of the database file from its own
// process-side handle while the server writes, saving its cursor after each
// read as a real consumer does; seen counts how often each seq reached it.
type outboxConsumer struct {
	d    *db.DB
	mu   sync.Mutex
	seen map[int64]int
}

const consumerName = "crash-test"

// poll delivers everything after the stored cursor and saves the cursor.
func (c *outboxConsumer) poll(ctx context.Context) error {
	cur, err := c.d.EventCursor(ctx, consumerName)
	if err != nil {
		return err
	}
	evs, err := c.d.FindEvents(ctx, db.EventFilter{After: cur, Limit: 500})
	if err != nil || len(evs) == 0 {
		return err
	}
	c.mu.Lock()
	for _, e := range evs {
		c.seen[e.Seq]++
	}
	c.mu.Unlock()
	return c.d.SaveEventCursor(ctx, consumerName, evs[len(evs)-1].Seq)
}

// checkOutbox: every event the ledger committed reached the consumer
// exactly once across the kill, seqs have no gaps, and each customer's
// threshold events are exactly the crossings its entries make.
func checkOutbox(t *testing.T, path string, c *outboxConsumer, threshold billing.Credits) (crossings int) {
	t.Helper()
	ctx := context.Background()
	for {
		before := len(c.seen)
		if err := c.poll(ctx); err != nil {
			t.Fatal(err)
		}
		if len(c.seen) == before {
			break
		}
	}
	last, err := c.d.LastEventSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= last; seq++ {
		if n := c.seen[seq]; n != 1 {
			t.Errorf("event %d reached the consumer %d times, want once", seq, n)
		}
	}
	raw, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n int
	raw.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n)
	if int64(n) != last {
		t.Errorf("%d events with seqs up to %d: a gap", n, last)
	}
	rows, err := raw.Query(`SELECT customer_id, balance_after, held_delta FROM entries ORDER BY customer_id, id`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	prev, held, announced := map[string]billing.Credits{}, map[string]billing.Credits{}, map[string]bool{}
	started := map[string]bool{}
	for rows.Next() {
		var cus string
		var bal, hd billing.Credits
		if err := rows.Scan(&cus, &bal, &hd); err != nil {
			t.Fatal(err)
		}
		held[cus] += hd
		avail := bal - held[cus]
		if started[cus] { // the first entry is the setup's grant, before the line was set
			for _, e := range billing.BalanceEvents(cus, prev[cus], avail, threshold, announced[cus]) {
				want[cus] = append(want[cus], e.Type)
				announced[cus] = e.Type != billing.EventBalanceRecovered
			}
		}
		started[cus], prev[cus] = true, avail
	}
	rows.Close()
	got := map[string][]string{}
	rows, err = raw.Query(`SELECT customer_id, type FROM events WHERE type IN ('balance.low', 'balance.depleted', 'balance.recovered') ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var cus, typ string
		rows.Scan(&cus, &typ)
		got[cus] = append(got[cus], typ)
	}
	rows.Close()
	for cus := range started {
		crossings += len(want[cus])
		if fmt.Sprint(got[cus]) != fmt.Sprint(want[cus]) {
			t.Errorf("customer %s: threshold events %v, want the crossings of its entries %v", cus, got[cus], want[cus])
		}
	}
	t.Logf("outbox: %d events, %d threshold crossings, each delivered once across the kill", last, crossings)
	return crossings
}

// ack is what a client was told: the request with this key succeeded.
type ack struct {
	path, body string
	id         string // debit id, or hold id for holds
	via        int    // the index of the client (the instance) that acknowledged it
}

// crashLoad is the crash tests' load: workers write until halted, mostly
// debits, a hold every fifth request (captured half the time) and a grant
// every tenth (which keeps balances around the low-balance line, crossing
// it both ways). Each request is retried under its key up to 3 times, as
// clients do; worker w goes through clients[w % len(clients)]. Every write
// answered 201 is kept in acks.
type crashLoad struct {
	mu   sync.Mutex
	acks map[string]ack
	stop chan struct{}
	wg   sync.WaitGroup
}

func startCrashLoad(seed uint64, workers int, clients []*apiClient) *crashLoad {
	l := &crashLoad{acks: map[string]ack{}, stop: make(chan struct{})}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			via := w % len(clients)
			c := clients[via]
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				cust := "c" + strconv.Itoa(r.IntN(8))
				key := fmt.Sprintf("w%d-%d", w, i)
				path, body := "/api/v1/usage", fmt.Sprintf(`{"customer":%q,"feature":"chat.request","quantity":%d}`, cust, 1+r.IntN(3))
				if i%5 == 4 {
					path, body = "/api/v1/holds", fmt.Sprintf(`{"customer":%q,"credits":5,"ttl_seconds":30}`, cust)
				}
				if i%10 == 7 {
					path, body = "/api/v1/grants", fmt.Sprintf(`{"customer":%q,"credits":20,"source":"promo"}`, cust)
				}
				for try := 0; try < 3; try++ {
					status, _, m, err := c.post(path, key, body)
					if err != nil {
						continue // the server may be dead; the outcome is unknown
					}
					if status == 201 {
						id, _ := m["id"].(string)
						l.mu.Lock()
						l.acks[key] = ack{path: path, body: body, id: id, via: via}
						l.mu.Unlock()
						if path == "/api/v1/holds" && r.IntN(2) == 0 {
							c.post("/api/v1/holds/"+id+"/capture", "cap-"+key, `{"feature":"chat.request","quantity":2}`)
						}
					}
					break
				}
			}
		}()
	}
	return l
}

// acknowledged is how many writes were acknowledged so far.
func (l *crashLoad) acknowledged() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// halt stops the workers and waits for them; acks is final after it.
func (l *crashLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

type apiClient struct {
	http   *http.Client
	base   string
	secret string
}

func (c *apiClient) post(path, key, body string) (int, http.Header, map[string]any, error) {
	req, _ := http.NewRequest("POST", c.base+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+c.secret)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	var m map[string]any
	json.Unmarshal(data, &m)
	return resp.StatusCode, resp.Header, m, nil
}

// TestCrashRecovery kills Tally with SIGKILL at random moments while clients
// debit, retry, hold and capture, then restarts it and checks that every
// acknowledged write is there exactly once and the books balance.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills real processes")
	}
	rounds := 10
	if v, err := strconv.Atoi(os.Getenv("TALLY_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	bin := tallyBinary(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (set TALLY_CRASH_ROUNDS to change the number of rounds)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	crossings := 0
	for round := 0; round < rounds; round++ {
		killAfter := time.Duration(150+rng.IntN(1200)) * time.Millisecond
		t.Run(fmt.Sprintf("round%d_kill_after_%s", round, killAfter), func(t *testing.T) {
			crossings += crashRound(t, bin, killAfter, rng.Uint64())
		})
	}
	if crossings == 0 {
		t.Error("no round crossed a low-balance line: the outbox check proved nothing")
	}
}

func crashRound(t *testing.T, bin string, killAfter time.Duration, seed uint64) (crossings int) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tally.db")
	secret := setupCrashDB(t, path, 8, 2000)
	setLowBalanceLine(t, path, 8, billing.CreditsOf(2000-10))
	addr := freeAddr(t)
	p := startTally(t, bin, path, addr)
	c := &apiClient{http: &http.Client{Timeout: 5 * time.Second}, base: p.base, secret: secret}

	// A consumer of the outbox in this process, reading while the server
	// writes and is killed.
	cd, err := db.Open(context.Background(), path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cd.Close()
	consumer := &outboxConsumer{d: cd, seen: map[int64]int{}}
	consumerStop := make(chan struct{})
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for {
			select {
			case <-consumerStop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := consumer.poll(context.Background()); err != nil {
				t.Errorf("consumer: %v", err)
				return
			}
		}
	}()

	load := startCrashLoad(seed, 16, []*apiClient{c})
	time.Sleep(killAfter)
	p.kill9()
	load.halt()
	acks := load.acks
	close(consumerStop)
	<-consumerDone

	start := time.Now()
	p = startTally(t, bin, path, addr)
	t.Logf("%d acknowledged writes before SIGKILL; restart took %s", len(acks), time.Since(start).Round(time.Millisecond))
	c.base = p.base
	for key, a := range acks {
		status, hdr, m, err := c.post(a.path, key, a.body)
		if err != nil {
			t.Fatalf("replay %s: %v", key, err)
		}
		if status != 201 || hdr.Get("Idempotent-Replayed") != "true" || m["id"] != a.id {
			t.Errorf("acknowledged %s %s (id %s) replays as %d %v replayed=%q: lost or doubled", a.path, key, a.id, status, m["id"], hdr.Get("Idempotent-Replayed"))
		}
	}
	p.term(t)

	crossings = checkOutbox(t, path, consumer, billing.CreditsOf(2000-10))
	openVerified(t, path)
	// Exactly once: one entry per acknowledged key.
	raw, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for key := range acks {
		var n int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM entries WHERE idempotency_key = ?`, key).Scan(&n); err != nil || n != 1 {
			t.Errorf("key %s: %d entries (%v)", key, n, err)
		}
	}
	var integrity string
	raw.QueryRow(`PRAGMA integrity_check`).Scan(&integrity)
	if integrity != "ok" {
		t.Errorf("integrity_check: %s", integrity)
	}
	return crossings
}
