package main

import (
	"encoding/json"
	"os/exec"
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
