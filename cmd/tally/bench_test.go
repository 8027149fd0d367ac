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
)

// TestBenchCommand runs a short `tally bench` end to end: every phase must
// do work without a single failed request, and both raw loops must run.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and drives it for a few seconds")
	}
	out, err := exec.Command(tallyBinary(t), "bench", "--duration", "300ms", "--clients", "4",
		"--customers", "10", "--batch", "10", "--dir", t.TempDir(), "--json").CombinedOutput()
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
		} `json:"phases"`
		Raw    float64 `json:"raw_sqlite_per_sec"`
		RawKey float64 `json:"raw_sqlite_key_index_per_sec"`
		RSS    int64   `json:"peak_rss_bytes"`
	}
	if err := json.Unmarshal([]byte(text[i+1:]), &res); err != nil {
		t.Fatalf("JSON: %v\n%s", err, text[i+1:])
	}
	want := []string{"GET /healthz", "POST /usage, 1 hot", "POST /usage, 10 customers", "POST /usage/batch (10/req), 1 hot",
		"POST /usage/batch (10/req), 10 customers", "POST /holds + capture"}
	if len(res.Phases) != len(want) {
		t.Fatalf("%d phases, want %d:\n%s", len(res.Phases), len(want), text)
	}
	for j, p := range res.Phases {
		if !strings.HasPrefix(p.Name, want[j]) || p.Ops == 0 || p.Errors != 0 || p.PerSec <= 0 {
			t.Errorf("phase %d: %+v, want %q with work done and no errors", j, p, want[j])
		}
	}
	if res.Raw <= 0 || res.RawKey <= 0 || res.RSS <= 0 {
		t.Errorf("raw %v, raw with key index %v, peak RSS %d", res.Raw, res.RawKey, res.RSS)
	}
	for _, line := range []string{"of the raw limit", "against this run's HTTP-only phase", "x HTTP-only", "target >= 0.50", "target >= 0.40", "target >= 0.20"} {
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
