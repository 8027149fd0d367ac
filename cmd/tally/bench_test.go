package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchCommand runs a short `tally bench` end to end, in two rounds:
// every phase of each must do work without a single failed request (so no
// key of round 2 replayed one of round 1), both raw loops must run, and
// each ratio is the worse of its two rounds', each to its own round's
// HTTP-only phase.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and drives it for a few seconds")
	}
	out, err := exec.Command(tallyBinary(t), "bench", "--duration", "300ms", "--clients", "4",
		"--customers", "10", "--batch", "10", "--dir", t.TempDir(), "--json", "--rounds", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("tally bench: %v\n%s", err, out)
	}
	text := string(out)
	i := strings.Index(text, "\n{")
	if i < 0 {
		t.Fatalf("no JSON in the output:\n%s", text)
	}
	var res struct {
		Phases []struct {
			Name   string  `json:"name"`
			Ops    int64   `json:"ops"`
			Errors int64   `json:"errors"`
			PerSec float64 `json:"per_sec"`
			Unit   string  `json:"unit"`
			Round  int     `json:"round"`
			ReqP99 int64   `json:"request_p99_ns"`
		} `json:"phases"`
		Ratios map[string]struct {
			Median float64   `json:"median"`
			Rounds []float64 `json:"rounds"`
		} `json:"ratios_to_http_only"`
		Raw    float64 `json:"raw_sqlite_per_sec"`
		RawKey float64 `json:"raw_sqlite_key_index_per_sec"`
		RSS    int64   `json:"peak_rss_bytes"`
	}
	if err := json.Unmarshal([]byte(text[i+1:]), &res); err != nil {
		t.Fatalf("JSON: %v\n%s", err, text[i+1:])
	}
	want := []string{"GET /healthz", "POST /usage, 1 hot", "POST /usage, 10 customers", "POST /usage/batch (10/req), 1 hot",
		"POST /usage/batch (10/req), 10 customers", "POST /holds + capture"}
	if len(res.Phases) != 2*len(want) {
		t.Fatalf("%d phases, want %d:\n%s", len(res.Phases), 2*len(want), text)
	}
	for j, p := range res.Phases {
		if !strings.HasPrefix(p.Name, want[j%len(want)]) || p.Round != 1+j/len(want) || p.Ops == 0 || p.Errors != 0 || p.PerSec <= 0 {
			t.Errorf("phase %d: %+v, want %q in round %d with work done and no errors", j, p, want[j%len(want)], 1+j/len(want))
		}
		// Only the pair phase, two requests an operation, reports one request's p99 too.
		if pairs := strings.HasPrefix(p.Name, "POST /holds"); pairs != (p.ReqP99 > 0) {
			t.Errorf("phase %q: one request's p99 %d ns", p.Name, p.ReqP99)
		}
	}
	if len(res.Ratios) != len(want)-1 {
		t.Errorf("ratios for %d phases, want %d: %+v", len(res.Ratios), len(want)-1, res.Ratios)
	}
	for k := 1; k < len(want); k++ {
		p1, p2 := res.Phases[k], res.Phases[len(want)+k]
		r, ok := res.Ratios[p1.Name]
		perReq := func(rate float64) float64 {
			if strings.Contains(p1.Name, "/batch") {
				return rate / 10
			}
			return rate
		}
		r1, r2 := perReq(p1.PerSec)/res.Phases[0].PerSec, perReq(p2.PerSec)/res.Phases[len(want)].PerSec
		near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
		if !ok || len(r.Rounds) != 2 || !near(r.Rounds[0], r1) || !near(r.Rounds[1], r2) || !near(r.Median, min(r1, r2)) {
			t.Errorf("%s: ratios %+v, want rounds %.4f and %.4f (each to its round's /healthz), median the lower", p1.Name, r, r1, r2)
		}
	}
	if res.Raw <= 0 || res.RawKey <= 0 || res.RSS <= 0 {
		t.Errorf("raw %v, raw with key index %v, peak RSS %d", res.Raw, res.RawKey, res.RSS)
	}
	for _, line := range []string{"round 1 of 2:\n", "round 2 of 2:\n", "of the raw limit", "against each round's HTTP-only phase", "the median of 2 rounds", "rounds (ratio/p99 ms): ", "(one request: p99 ", "; one request ", "x HTTP-only", "target >= 0.50", "target >= 0.40", "target >= 0.20"} {
		if !strings.Contains(text, line) {
			t.Errorf("output lacks %q:\n%s", line, text)
		}
	}
}

// TestBenchServerCPUs: --server-cpus 1 runs the server on one CPU and the
// load generator on the others, and says so from what the kernel reports
// for each process; a split that leaves the load generator nothing is a
// usage error (exit 2).
func TestBenchServerCPUs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and drives it for a few seconds")
	}
	if runtime.GOOS != "linux" || runtime.NumCPU() < 2 {
		t.Skip("needs Linux and two CPUs")
	}
	out, err := exec.Command(tallyBinary(t), "bench", "--server-cpus", "1", "--duration", "300ms", "--clients", "4",
		"--customers", "10", "--batch", "10", "--dir", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("tally bench --server-cpus 1: %v\n%s", err, out)
	}
	text := string(out)
	m := regexp.MustCompile(`CPUs: servers on (\d+) \(GOMAXPROCS=1\), load generator on ([\d,]+)\n`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no CPU split in the output:\n%s", text)
	}
	for _, want := range []string{", CPUs " + m[1] + "\n", "load generator: pid "} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	// The kernel's list for the load generator names no server CPU.
	lg := regexp.MustCompile(`load generator: pid \d+, CPUs (\S+)\n`).FindStringSubmatch(text)
	if lg == nil || lg[1] == m[1] || strings.HasPrefix(lg[1], m[1]+"-") || strings.HasPrefix(lg[1], m[1]+",") {
		t.Errorf("load generator's CPUs %v overlap the server's %q:\n%s", lg, m[1], text)
	}
	if !strings.Contains(text, "x HTTP-only") { // (a failed request would have made it exit 1)
		t.Errorf("the ratios are missing:\n%s", text)
	}

	out, err = exec.Command(tallyBinary(t), "bench", "--server-cpus", strconv.Itoa(runtime.NumCPU())).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "leaves no CPU for the load generator") {
		t.Errorf("--server-cpus %d: %v\n%s", runtime.NumCPU(), err, out)
	}
}

// TestBenchMedianIsTheWorseMiddle: with an odd number of rounds the
// median is the middle one; with an even number, the worse of the two
// middle ones, so a target is never met by counting in a better round.
func TestBenchMedianIsTheWorseMiddle(t *testing.T) {
	if got := median([]float64{0.40, 0.20, 0.30}, true); got != 0.30 {
		t.Errorf("rates 0.40 0.20 0.30: median %v, want 0.30", got)
	}
	if got := median([]float64{0.40, 0.30}, true); got != 0.30 {
		t.Errorf("rates 0.40 0.30: median %v, want the lower, 0.30", got)
	}
	if got := median([]time.Duration{20 * time.Millisecond, 30 * time.Millisecond}, false); got != 30*time.Millisecond {
		t.Errorf("latencies 20 and 30 ms: median %v, want the higher, 30ms", got)
	}
	rs := []benchResult{{Name: "a", PerSec: 3, Round: 1}, {Name: "b", PerSec: 1, Round: 1}, {Name: "a", PerSec: 1, Round: 2}, {Name: "b", PerSec: 2, Round: 2}}
	if g := byPhase(rs); len(g) != 2 || g[0][0].Name != "a" || len(g[0]) != 2 || g[1][1].Round != 2 {
		t.Errorf("byPhase: %+v", g)
	}
	if r := medianResult(rs, "a"); r.Round != 2 {
		t.Errorf("medianResult of a: round %d, want 2 (the lower rate)", r.Round)
	}
}
