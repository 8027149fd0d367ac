package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	neturl "net/url"

	"github.com/jackc/pgx/v5"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

const benchUsage = `Usage: tally bench [flags]

Measures Tally on this machine. It starts 'tally serve' as a child process on
a temporary database, creates customers and an API key, and drives the API
with concurrent keep-alive clients, each request with a unique idempotency key:

  0. GET /healthz: HTTP alone (no key, no JSON, no database), for scale
  1. POST /api/v1/usage, one hot customer
  2. POST /api/v1/usage, spread over --customers customers
  3. POST /api/v1/usage/batch (--batch events per request), hot and spread
  4. POST /api/v1/holds + POST /api/v1/holds/{id}/capture

It then measures the raw limit of this machine's SQLite (one balance update
and one insert per debit, 100 per transaction, the same durability), and the
same loop with a UNIQUE index on an idempotency key, and prints requests or
debits/s, latency percentiles, errors, the server's peak RSS and the ratios.

With --db postgres://… it benches the PostgreSQL store instead, in a fresh
database it creates on that server and drops afterwards, with --instances
'tally serve' processes sharing it (clients spread over them; with two or
more, the spread phase runs again on the first instance alone), then runs the
spread phase on SQLite in the same run for comparison.

With --server-cpus N (Linux) the servers run on N of this machine's CPUs,
with GOMAXPROCS=N, and the load generator on the others, as if the clients
ran on a machine of their own: --server-cpus 1 shows what a one-core server
does. Without it, servers and clients share every CPU.

On a shared machine one phase can run while a neighbour is busy. With
--rounds N every phase runs N times, each round after an HTTP-only phase of
its own; each ratio is to its round's, and the targets are judged on the
median of the rounds (the worse middle one for an even N), printed with every
round's ratio and p99.
Exit code 1 if any request failed; 2 for bad flags.`

type benchConfig struct {
	Clients   int
	Duration  time.Duration
	Customers int
	Batch     int
	Dir       string
	JSON      bool
	PprofAddr string
	// DB is a postgres:// URL to bench the PostgreSQL store on (a fresh
	// database is created on that server and dropped after); empty means
	// SQLite in Dir.
	DB            string
	Instances     int
	CompareSQLite bool
	// ServerCPUs, when positive, pins the servers to that many CPUs and
	// the load generator to the rest (cpuSplit).
	ServerCPUs int
	// Rounds is how many times the phases run, each round with its own
	// HTTP-only phase; the ratios are then the rounds' medians.
	Rounds int
}

func cmdBench(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlags("bench", benchUsage, stderr)
	var cfg benchConfig
	fs.IntVar(&cfg.Clients, "clients", 64, "concurrent keep-alive clients")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long each phase runs")
	fs.IntVar(&cfg.Customers, "customers", 1000, "customers in the spread phase")
	fs.IntVar(&cfg.Batch, "batch", 100, "events per batch request")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the temporary databases (default: a new temp dir, removed after)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the results as JSON too")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "have the server serve its profiler here (to profile a phase)")
	fs.StringVar(&cfg.DB, "db", "", "a postgres:// URL: bench the PostgreSQL store in a fresh database created on that server (the user needs CREATEDB) and dropped after; default: SQLite in --dir")
	fs.IntVar(&cfg.Instances, "instances", 1, "tally serve processes sharing the database, clients spread over them (PostgreSQL only)")
	fs.BoolVar(&cfg.CompareSQLite, "compare-sqlite", true, "with --db postgres://…, run the spread /usage phase on SQLite too, in the same run")
	fs.IntVar(&cfg.Rounds, "rounds", 1, "run every phase this many times, each round against its own HTTP-only phase, and judge the targets on the median ratio")
	fs.IntVar(&cfg.ServerCPUs, "server-cpus", 0, "run the servers on this many CPUs (GOMAXPROCS too) and the load generator on the others (Linux; 0: all share every CPU)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if cfg.Clients < 1 || cfg.Customers < 1 || cfg.Batch < 1 || cfg.Batch > 1000 || cfg.Duration <= 0 || cfg.Rounds < 1 {
		return usageError{"--clients, --customers, --duration and --rounds must be positive; --batch 1 to 1000"}
	}
	if cfg.DB != "" && !db.IsPostgresDSN(cfg.DB) {
		return usageError{"--db takes a postgres:// URL (SQLite is benched in --dir)"}
	}
	if cfg.Instances < 1 || (cfg.Instances > 1 && cfg.DB == "") {
		return usageError{"--instances above 1 needs --db postgres://… (SQLite has one writer process)"}
	}
	if cfg.ServerCPUs < 0 {
		return usageError{"--server-cpus must be 0 (share every CPU) or a number of CPUs"}
	}
	return runBench(ctx, cfg, stdout)
}

// benchResult is one phase's figures.
type benchResult struct {
	Name     string        `json:"name"`
	Ops      int64         `json:"ops"`    // debits (events) done
	Errors   int64         `json:"errors"` // requests that failed
	Elapsed  time.Duration `json:"elapsed_ns"`
	PerSec   float64       `json:"per_sec"`
	P50, P95 time.Duration `json:"-"`
	P99, Max time.Duration `json:"-"`
	Unit     string        `json:"unit"`
	Round    int           `json:"round"` // 1, 2, ... (--rounds)
	// RequestP99 is the p99 of one request where an operation is two
	// (a hold and its capture); P99 is the pair's.
	RequestP99 time.Duration `json:"request_p99_ns,omitempty"`
}

func (r benchResult) line() string {
	l := fmt.Sprintf("%-34s %9.0f %-9s p50 %6.2f ms  p95 %6.2f ms  p99 %6.2f ms  max %7.2f ms  errors %d",
		r.Name, r.PerSec, r.Unit+"/s", ms(r.P50), ms(r.P95), ms(r.P99), ms(r.Max), r.Errors)
	if r.RequestP99 > 0 {
		l += fmt.Sprintf("  (one request: p99 %.2f ms)", ms(r.RequestP99))
	}
	return l
}

// percentile is the p-th fraction of lat, which it sorts.
func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, int(p*float64(len(lat))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runBench(ctx context.Context, cfg benchConfig, out io.Writer) error {
	dir := cfg.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "tally-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	target := filepath.Join(dir, "bench.db")
	pg := db.IsPostgresDSN(cfg.DB)
	if pg {
		// A fresh database on the given server, dropped afterwards.
		url, drop, err := pgBenchDatabase(ctx, cfg.DB)
		if err != nil {
			return err
		}
		defer drop()
		target = url
	}
	fmt.Fprintf(out, "tally bench: %d clients, %s per phase, database %s, %d instance(s)\n", cfg.Clients, cfg.Duration, db.Redact(target), cfg.Instances)
	var cpus *cpuSplit
	if cfg.ServerCPUs > 0 {
		var err error
		if cpus, err = splitCPUs(cfg.ServerCPUs); err != nil {
			return err
		}
		fmt.Fprintf(out, "CPUs: servers on %s (GOMAXPROCS=%d), load generator on %s\n", cpus.serverList, cpus.nServer, cpus.loadList)
	}

	// Set up customers, prices and a key before the server starts.
	fmt.Fprintf(out, "setup: %d customers with 10,000,000 credits each...\n", cfg.Customers+1)
	secret, err := benchSetup(ctx, target, cfg.Customers)
	if err != nil {
		return err
	}
	servers, addrs, err := startBenchServers(ctx, target, cfg.Instances, cfg.PprofAddr, cpus)
	if err != nil {
		return err
	}
	defer stopAll(servers)
	if cpus != nil {
		if err := cpus.pinSelf(); err != nil {
			return err
		}
	}
	for i, s := range servers {
		where := ""
		if cpus != nil {
			where = ", CPUs " + cpusAllowed(s.cmd.Process.Pid)
		}
		fmt.Fprintf(out, "server %d: pid %d at http://%s%s\n", i+1, s.cmd.Process.Pid, addrs[i], where)
	}
	if cpus != nil {
		fmt.Fprintf(out, "load generator: pid %d, CPUs %s\n", os.Getpid(), cpusAllowed(os.Getpid()))
	}
	fmt.Fprintln(out)

	// Clients are spread over the instances, worker w on instance w mod N.
	b := &bencher{addrs: addrs, auth: "Bearer " + secret, clients: cfg.Clients}

	var results []benchResult
	var failed int64
	phase := func(r benchResult) {
		results = append(results, r)
		failed += r.Errors
		fmt.Fprintln(out, r.line())
	}
	// Warm up connections and caches.
	b.run(ctx, "warm-up", time.Second, "debits", func(w, i int) (int, error) {
		return 1, b.post(w, "/api/v1/usage", fmt.Sprintf(`{"customer":"hot","feature":"chat.request","quantity":1,"idempotency_key":"warm-%d-%d"}`, w, i))
	})
	spreadName := fmt.Sprintf("POST /usage, %d customers", cfg.Customers)
	spread := func(b *bencher, name, tag string) benchResult {
		return b.run(ctx, name, cfg.Duration, "debits", func(w, i int) (int, error) {
			c := (w*7919 + i) % cfg.Customers
			return 1, b.post(w, "/api/v1/usage", fmt.Sprintf(`{"customer":"c%d","feature":"gpt-4o.tokens","quantity":%d,"idempotency_key":"%s-%d-%d"}`, c, 100+i%900, tag, w, i))
		})
	}
	// Each round runs every phase after an HTTP-only phase of its own, so a
	// phase is compared with what HTTP cost minutes, not a quarter of an
	// hour, before it; keys carry the round, so no request replays.
	ceilings := make([]benchResult, cfg.Rounds)
	for round := 1; round <= cfg.Rounds; round++ {
		if cfg.Rounds > 1 {
			fmt.Fprintf(out, "round %d of %d:\n", round, cfg.Rounds)
		}
		rk := func(tag string) string { return tag + "-" + strconv.Itoa(round) }
		inRound := func(r benchResult) benchResult { r.Round = round; return r }
		// What HTTP alone costs here: the same clients and connections, a route
		// with no key, no JSON and no database.
		ceilings[round-1] = inRound(b.run(ctx, "GET /healthz (HTTP only)", cfg.Duration, "requests", func(w, i int) (int, error) {
			return 1, b.get(w, "/healthz")
		}))
		phase(ceilings[round-1])
		phase(inRound(b.run(ctx, "POST /usage, 1 hot customer", cfg.Duration, "debits", func(w, i int) (int, error) {
			return 1, b.post(w, "/api/v1/usage", fmt.Sprintf(`{"customer":"hot","feature":"chat.request","quantity":1,"idempotency_key":"%s-%d-%d"}`, rk("hot"), w, i))
		})))
		phase(inRound(spread(b, spreadName, rk("spread"))))
		batch := func(name, tag string, customer func(w, i, j int) string) {
			phase(inRound(b.run(ctx, fmt.Sprintf("POST /usage/batch (%d/req), %s", cfg.Batch, name), cfg.Duration, "debits", func(w, i int) (int, error) {
				var sb strings.Builder
				sb.WriteString(`{"events":[`)
				for j := 0; j < cfg.Batch; j++ {
					if j > 0 {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, `{"customer":%q,"feature":"chat.request","quantity":1,"idempotency_key":"batch-%s-%d-%d-%d"}`, customer(w, i, j), tag, w, i, j)
				}
				sb.WriteString(`]}`)
				return cfg.Batch, b.postBatch(w, sb.String(), cfg.Batch)
			})))
		}
		batch("1 hot customer", rk("hot"), func(w, i, j int) string { return "hot" })
		batch(fmt.Sprintf("%d customers", cfg.Customers), rk("spread"), func(w, i, j int) string { return "c" + strconv.Itoa((w*131+i*17+j)%cfg.Customers) })
		// A pair's latency is its two requests'; each request's is kept too.
		reqLat := make([][]time.Duration, cfg.Clients)
		pairs := inRound(b.run(ctx, "POST /holds + capture", cfg.Duration, "captures", func(w, i int) (int, error) {
			var h struct {
				ID string `json:"id"`
			}
			c := (w*31 + i) % cfg.Customers
			t0 := time.Now()
			if err := b.postJSON(w, "/api/v1/holds", fmt.Sprintf(`{"customer":"c%d","credits":20,"ttl_seconds":60,"idempotency_key":"%s-%d-%d"}`, c, rk("hold"), w, i), &h); err != nil {
				return 0, err
			}
			t1 := time.Now()
			err := b.post(w, "/api/v1/holds/"+h.ID+"/capture", fmt.Sprintf(`{"feature":"gpt-4o.tokens","quantity":%d}`, 1000+i%5000))
			reqLat[w] = append(reqLat[w], t1.Sub(t0), time.Since(t1))
			return 1, err
		}))
		pairs.RequestP99 = percentile(slices.Concat(reqLat...), 0.99)
		phase(pairs)
	}
	// The spread phase the PostgreSQL comparisons use: the median round's.
	spreadAll := medianResult(results, spreadName)
	// With several instances, the same spread load on the first alone, in
	// the same run: what the second instance adds (or costs).
	var oneInstance *benchResult
	if len(addrs) > 1 {
		solo := &bencher{addrs: addrs[:1], auth: b.auth, clients: cfg.Clients}
		r := spread(solo, spreadName+", instance 1 alone", "solo")
		phase(r)
		oneInstance = &r
	}
	var rss int64
	for _, s := range servers {
		rss = max(rss, s.peakRSS())
	}
	stopAll(servers)

	report := map[string]any{"peak_rss_bytes": rss, "clients": cfg.Clients, "instances": cfg.Instances,
		"store": map[bool]string{false: "sqlite", true: "postgres"}[pg]}
	var raw, rawKey float64
	var sqliteSpread, sqliteCeiling *benchResult
	if !pg {
		fmt.Fprintln(out, "\nraw SQLite limit: one UPDATE + one INSERT per debit, 100 per transaction, WAL, synchronous=FULL...")
		if raw, err = rawSQLiteLimit(ctx, filepath.Join(dir, "raw.db"), cfg.Duration, false); err != nil {
			return err
		}
		fmt.Fprintf(out, "%-34s %9.0f debits/s\n", "raw SQLite", raw)
		// The same loop, with the entry carrying a client's idempotency key under
		// a UNIQUE index (keys from 64 interleaved sequences, as the clients'):
		// the one index no debit can do without, for comparison.
		if rawKey, err = rawSQLiteLimit(ctx, filepath.Join(dir, "raw-key.db"), cfg.Duration, true); err != nil {
			return err
		}
		fmt.Fprintf(out, "%-34s %9.0f debits/s\n", "raw SQLite + UNIQUE key index", rawKey)
		report["raw_sqlite_per_sec"], report["raw_sqlite_key_index_per_sec"] = raw, rawKey
	} else if cfg.CompareSQLite {
		// The same spread load on the embedded SQLite store, same machine,
		// same run, with its own HTTP-only phase.
		fmt.Fprintln(out, "\nthe same spread load on SQLite, for comparison:")
		path := filepath.Join(dir, "compare.db")
		sec, err := benchSetup(ctx, path, cfg.Customers)
		if err != nil {
			return err
		}
		srv, addrs, err := startBenchServers(ctx, path, 1, "", cpus)
		if err != nil {
			return err
		}
		sb := &bencher{addrs: addrs, auth: "Bearer " + sec, clients: cfg.Clients}
		sb.run(ctx, "warm-up", time.Second, "debits", func(w, i int) (int, error) {
			return 1, sb.post(w, "/api/v1/usage", fmt.Sprintf(`{"customer":"hot","feature":"chat.request","quantity":1,"idempotency_key":"warm-%d-%d"}`, w, i))
		})
		c := sb.run(ctx, "SQLite: GET /healthz (HTTP only)", cfg.Duration, "requests", func(w, i int) (int, error) { return 1, sb.get(w, "/healthz") })
		phase(c)
		r := spread(sb, "SQLite: "+spreadName, "sqlite")
		phase(r)
		stopAll(srv)
		sqliteSpread, sqliteCeiling = &r, &c
	}
	fmt.Fprintf(out, "\nserver peak RSS: %.1f MB\n", float64(rss)/(1<<20))
	if !pg {
		for _, g := range byPhase(results) { // the median round of each phase
			if r := medianResult(results, g[0].Name); r.Unit == "debits" {
				fmt.Fprintf(out, "%-34s %5.1f%% of the raw limit, %5.1f%% with the key index\n", r.Name, 100*r.PerSec/raw, 100*r.PerSec/rawKey)
			}
		}
	}
	if cfg.Rounds == 1 {
		fmt.Fprintf(out, "\nagainst this run's HTTP-only phase (GET /healthz, %.0f requests/s):\n", ceilings[0].PerSec)
	} else {
		var hz []string
		for _, c := range ceilings {
			hz = append(hz, fmt.Sprintf("%.0f", c.PerSec))
		}
		fmt.Fprintf(out, "\nagainst each round's HTTP-only phase (GET /healthz: %s requests/s), the median of %d rounds:\n", strings.Join(hz, ", "), cfg.Rounds)
	}
	ratios := map[string]any{}
	for _, g := range byPhase(results) {
		name := g[0].Name
		if strings.HasPrefix(name, "SQLite: ") || strings.HasPrefix(name, "GET /healthz") {
			continue
		}
		var rs []float64
		var p99s, reqP99s []time.Duration
		for _, r := range g {
			if r.RequestP99 > 0 {
				reqP99s = append(reqP99s, r.RequestP99)
			}
			perReq := r.PerSec // debits or captures per second
			if strings.Contains(name, "/batch") {
				perReq /= float64(cfg.Batch) // requests, each of cfg.Batch debits
			}
			c := ceilings[len(ceilings)-1] // a phase outside the rounds: the last one's
			if r.Round >= 1 {
				c = ceilings[r.Round-1]
			}
			rs = append(rs, perReq/c.PerSec)
			p99s = append(p99s, r.P99)
		}
		ratio, p99 := median(rs, true), median(p99s, false)
		verdict := ""
		if target, ok := healthzTargets[name]; ok && !pg {
			verdict = fmt.Sprintf("target >= %.2f: %s", target, metOrNot(ratio >= target))
		} else if name == spreadName && !pg {
			verdict = fmt.Sprintf("target >= %.2f: %s", spreadTarget, metOrNot(ratio >= spreadTarget))
		}
		p99Verdict := fmt.Sprintf("target < 25: %s", metOrNot(p99 < 25*time.Millisecond))
		if len(reqP99s) > 0 {
			// The target is judged on the pair, two requests; one request's p99 is shown beside it.
			p99Verdict += fmt.Sprintf("; one request %.1f ms", ms(median(reqP99s, false)))
		}
		if strings.Contains(name, "/batch") {
			p99Verdict = fmt.Sprintf("per request of %d debits", cfg.Batch) // one debit's target does not apply
		}
		each := ""
		if len(rs) > 1 {
			var parts []string
			for k := range rs {
				parts = append(parts, fmt.Sprintf("%.2f/%.1f", rs[k], ms(p99s[k])))
			}
			each = "   rounds (ratio/p99 ms): " + strings.Join(parts, " ")
		}
		fmt.Fprintf(out, "%-42s %5.2f x HTTP-only   p99 %6.1f ms (%s)   %s%s\n", name, ratio, ms(p99), p99Verdict, verdict, each)
		ratios[name] = map[string]any{"median": ratio, "rounds": rs}
	}
	report["ratios_to_http_only"] = ratios
	if sqliteSpread != nil {
		fmt.Fprintf(out, "\nSQLite in the same run: %s at %.0f debits/s (%.2f x its HTTP-only phase)\n",
			spreadName, sqliteSpread.PerSec, sqliteSpread.PerSec/sqliteCeiling.PerSec)
		one := spreadAll
		if oneInstance != nil {
			one = *oneInstance
			all := spreadAll.PerSec / sqliteSpread.PerSec
			fmt.Fprintf(out, "PostgreSQL, %d instances / SQLite, %s: %.2f\n", cfg.Instances, spreadName, all)
			report["postgres_instances_vs_sqlite_spread"] = all
		}
		ratio := one.PerSec / sqliteSpread.PerSec
		fmt.Fprintf(out, "PostgreSQL, one instance / SQLite, %s: %.2f (target >= %.2f: %s)\n",
			spreadName, ratio, pgVsSQLiteTarget, metOrNot(ratio >= pgVsSQLiteTarget))
		report["postgres_vs_sqlite_spread"] = ratio
	}
	if oneInstance != nil {
		ratio := spreadAll.PerSec / oneInstance.PerSec
		fmt.Fprintf(out, "%d instances / instance 1 alone, %s: %.2f (target >= %.2f: %s)\n",
			len(addrs), spreadName, ratio, twoInstancesTarget, metOrNot(ratio >= twoInstancesTarget))
		report["instances_vs_one"] = ratio
	}
	if cfg.JSON {
		report["phases"] = results
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.Encode(report)
	}
	if failed > 0 {
		return fmt.Errorf("%d requests failed", failed)
	}
	return nil
}

// The PostgreSQL store's targets (issue 15): one instance at half SQLite's
// spread /usage rate or better, two instances at 80% of one's or better.
const (
	pgVsSQLiteTarget   = 0.50
	twoInstancesTarget = 0.80
)

// pgBenchDatabase creates a fresh database on the PostgreSQL server at url
// and returns its URL and a function that drops it.
func pgBenchDatabase(ctx context.Context, url string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", nil, fmt.Errorf("bench: %s: %w", db.Redact(url), err)
	}
	name := fmt.Sprintf("tally_bench_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("bench: creating a database for the run (the user needs CREATEDB): %w", err)
	}
	u, err := neturl.Parse(url)
	if err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "bench: dropping %s: %v\n", name, err)
		}
		conn.Close(context.Background())
	}
	return u.String(), drop, nil
}

func benchSetup(ctx context.Context, path string, customers int) (string, error) {
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		return "", err
	}
	defer d.Close()
	if _, _, err := d.PublishPriceBook(ctx, DemoPriceBook()); err != nil {
		return "", err
	}
	_, secret, err := d.CreateAPIKey(ctx, "bench", billing.ScopeAdmin, billing.Limits{}, 0)
	if err != nil {
		return "", err
	}
	var items []db.BackfillItem
	for i := -1; i < customers; i++ {
		ext := "c" + strconv.Itoa(i)
		if i < 0 {
			ext = "hot"
		}
		if _, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: ext}); err != nil {
			return "", err
		}
		items = append(items, db.BackfillItem{At: time.Now(), Grant: &billing.GrantRequest{Customer: ext, Credits: billing.CreditsOf(10_000_000), Source: billing.SourcePurchase}})
	}
	for _, err := range d.Backfill(ctx, items) {
		if err != nil {
			return "", err
		}
	}
	return secret, nil
}

type benchServer struct {
	cmd  *exec.Cmd
	once sync.Once
}

// startBenchServers starts n 'tally serve' processes on one database and
// returns them with their addresses (host:port).
func startBenchServers(ctx context.Context, dsn string, n int, pprofAddr string, cpus *cpuSplit) ([]*benchServer, []string, error) {
	var servers []*benchServer
	var addrs []string
	for i := 0; i < n; i++ {
		pp := ""
		if i == 0 {
			pp = pprofAddr // the first instance's profile
		}
		s, base, err := startBenchServer(ctx, dsn, pp, cpus)
		if err != nil {
			stopAll(servers)
			return nil, nil, err
		}
		servers = append(servers, s)
		addrs = append(addrs, strings.TrimPrefix(base, "http://"))
	}
	return servers, addrs, nil
}

func stopAll(servers []*benchServer) {
	for _, s := range servers {
		s.stop()
	}
}

// startBenchServer starts one 'tally serve'; with cpus, on the servers' CPUs.
func startBenchServer(ctx context.Context, dbPath, pprofAddr string, cpus *cpuSplit) (*benchServer, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"serve", "--db", dbPath, "--addr", addr, "--log-requests=false", "--log-level", "warn"}
	if pprofAddr != "" {
		args = append(args, "--pprof-addr", pprofAddr)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	start := cmd.Start
	if cpus != nil {
		start = func() error { return cpus.start(cmd) }
	}
	if err := start(); err != nil {
		return nil, "", err
	}
	s := &benchServer{cmd: cmd}
	base := "http://" + addr
	for i := 0; i < 100; i++ {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, base, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, "", fmt.Errorf("the bench server did not become ready")
}

// peakRSS is the server's high-water resident set size (VmHWM), in bytes.
func (s *benchServer) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (s *benchServer) stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
		}
	})
}

// bencher drives the API over raw keep-alive HTTP/1.1 connections, one per
// client: a load generator must cost little CPU, or on a small machine it
// measures itself (Go's http.Client costs about as much per request as the
// server does).
type bencher struct {
	addrs   []string // worker w talks to addrs[w % len(addrs)]
	auth    string
	clients int
	conns   []*benchConn
}

type benchConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	buf  []byte
}

func (b *bencher) conn(w int) *benchConn {
	if b.conns == nil {
		b.conns = make([]*benchConn, b.clients)
	}
	if b.conns[w] == nil {
		b.conns[w] = &benchConn{addr: b.addrs[w%len(b.addrs)]}
	}
	return b.conns[w]
}

// roundTrip sends one request (a POST, or a GET when auth is empty) and
// returns the status and body. It reconnects once if the server closed the
// idle connection.
func (c *benchConn) roundTrip(auth, path, body string) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		if c.c == nil {
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				return 0, nil, err
			}
			c.c, c.r = conn, bufio.NewReaderSize(conn, 64<<10)
		}
		if auth == "" {
			c.buf = append(c.buf[:0], "GET "...)
			c.buf = append(c.buf, path...)
			c.buf = append(c.buf, " HTTP/1.1\r\nHost: bench\r\n\r\n"...)
		} else {
			c.buf = append(c.buf[:0], "POST "...)
			c.buf = append(c.buf, path...)
			c.buf = append(c.buf, " HTTP/1.1\r\nHost: bench\r\nAuthorization: "...)
			c.buf = append(c.buf, auth...)
			c.buf = append(c.buf, "\r\nContent-Type: application/json\r\nContent-Length: "...)
			c.buf = strconv.AppendInt(c.buf, int64(len(body)), 10)
			c.buf = append(c.buf, "\r\n\r\n"...)
			c.buf = append(c.buf, body...)
		}
		status, resp, err := c.send()
		if err == nil || attempt > 0 {
			return status, resp, err
		}
		c.c.Close()
		c.c = nil
	}
}

func (c *benchConn) send() (int, []byte, error) {
	if _, err := c.c.Write(c.buf); err != nil {
		return 0, nil, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	length := -1
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && (h[0] == 'C' || h[0] == 'c') && strings.EqualFold(string(h[:15]), "Content-Length:") {
			length, _ = strconv.Atoi(strings.TrimSpace(string(h[15:])))
		}
	}
	if length < 0 {
		return 0, nil, fmt.Errorf("response without Content-Length")
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return status, body, nil
}

func (b *bencher) postJSON(w int, path, body string, v any) error {
	status, data, err := b.conn(w).roundTrip(b.auth, path, body)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return fmt.Errorf("%s: %d %s", path, status, bytes.TrimSpace(data))
	}
	if v != nil {
		return json.Unmarshal(data, v)
	}
	return nil
}

func (b *bencher) post(w int, path, body string) error { return b.postJSON(w, path, body, nil) }

func (b *bencher) get(w int, path string) error {
	status, data, err := b.conn(w).roundTrip("", path, "")
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%s: %d %s", path, status, bytes.TrimSpace(data))
	}
	return err
}

// postBatch sends a batch of n events and checks that each was created. It
// counts the per-event statuses in the answer rather than decoding it: on a
// small machine a load generator that decodes every answer measures itself.
func (b *bencher) postBatch(w int, body string, n int) error {
	status, data, err := b.conn(w).roundTrip(b.auth, "/api/v1/usage/batch", body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("/api/v1/usage/batch: %d %s", status, bytes.TrimSpace(data))
	}
	if created := bytes.Count(data, []byte(`"status":201`)); created != n {
		return fmt.Errorf("batch: %d of %d events created: %.300s", created, n, data)
	}
	return nil
}

// run drives op from b.clients goroutines for d and collects latencies.
func (b *bencher) run(ctx context.Context, name string, d time.Duration, unit string, op func(worker, i int) (int, error)) benchResult {
	var ops, errs atomic.Int64
	lat := make([][]time.Duration, b.clients)
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < b.clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				n, err := op(w, i)
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil {
					if errs.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
					continue
				}
				ops.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return percentile(all, p) }
	r := benchResult{Name: name, Ops: ops.Load(), Errors: errs.Load(), Elapsed: elapsed, PerSec: float64(ops.Load()) / elapsed.Seconds(),
		P50: pct(0.50), P95: pct(0.95), P99: pct(0.99), Unit: unit}
	if len(all) > 0 {
		r.Max = all[len(all)-1]
	}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "%s: first error: %s\n", name, e)
	}
	return r
}

// rawSQLiteLimit measures what this machine's SQLite does with the least
// work a debit can be: one balance UPDATE and one entry INSERT, 100 debits
// per transaction, WAL and synchronous=FULL, from one goroutine. With key,
// each entry also carries an idempotency key under a UNIQUE index.
func rawSQLiteLimit(ctx context.Context, path string, d time.Duration, key bool) (float64, error) {
	conn, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	schema := []string{
		`CREATE TABLE balances (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)`,
		`CREATE TABLE entries (id INTEGER PRIMARY KEY, account INTEGER NOT NULL, amount INTEGER NOT NULL, balance_after INTEGER NOT NULL, created_at INTEGER NOT NULL, idempotency_key TEXT)`,
		`INSERT INTO balances (id, balance) VALUES (1, 1000000000000)`,
	}
	if key {
		schema = append(schema, `CREATE UNIQUE INDEX entries_key ON entries (idempotency_key)`)
	}
	for _, q := range schema {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return 0, err
		}
	}
	upd, err := conn.PrepareContext(ctx, `UPDATE balances SET balance = balance - 1 WHERE id = 1`)
	if err != nil {
		return 0, err
	}
	ins, err := conn.PrepareContext(ctx, `INSERT INTO entries (account, amount, balance_after, created_at, idempotency_key) VALUES (1, -1, ?, ?, ?)`)
	if err != nil {
		return 0, err
	}
	n := 0
	var k any
	start := time.Now()
	for time.Since(start) < d {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		for i := 0; i < 100; i++ {
			if _, err := tx.Stmt(upd).Exec(); err != nil {
				return 0, err
			}
			if key {
				k = "raw-" + strconv.Itoa(n%64) + "-" + strconv.Itoa(n/64)
			}
			if _, err := tx.Stmt(ins).Exec(n, time.Now().UnixMicro(), k); err != nil {
				return 0, err
			}
			n++
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// The money kernel's speed targets, as ratios to the same run's HTTP-only
// phase: a debit (or a hold and its capture, two requests) against what an
// empty route costs on the same machine and clients.
var healthzTargets = map[string]float64{
	"POST /usage, 1 hot customer": 0.50,
	"POST /holds + capture":       0.20,
}

// spreadTarget is the target of the spread /usage phase, whose name carries
// the number of customers.
const spreadTarget = 0.40

// byPhase groups results by phase name, in the order the phases first ran.
func byPhase(results []benchResult) [][]benchResult {
	var groups [][]benchResult
	at := map[string]int{}
	for _, r := range results {
		k, ok := at[r.Name]
		if !ok {
			k = len(groups)
			at[r.Name] = k
			groups = append(groups, nil)
		}
		groups[k] = append(groups[k], r)
	}
	return groups
}

// median is the middle value. With an even count it is the worse of the
// two middle ones, so a target is never met by counting in a better round:
// the lower of two rates (higherIsBetter), the higher of two latencies.
func median[T float64 | time.Duration](xs []T, higherIsBetter bool) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if higherIsBetter {
		return s[(len(s)-1)/2]
	}
	return s[len(s)/2]
}

// medianResult is the median round of phase name by rate.
func medianResult(results []benchResult, name string) benchResult {
	var g []benchResult
	for _, r := range results {
		if r.Name == name {
			g = append(g, r)
		}
	}
	slices.SortFunc(g, func(a, b benchResult) int { return cmp.Compare(a.PerSec, b.PerSec) })
	return g[(len(g)-1)/2]
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
