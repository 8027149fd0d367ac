package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIWhileServing: CLI commands write to the database a server is
// using; the server sees their effects (a new API key, a new price book
// version, a revoked key) without a restart.
func TestCLIWhileServing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.db")
	admin := setupCrashDB(t, path, 1, 1000)
	base, stop := serveInProcess(t, serveConfig{DB: path})
	defer stop()
	env := map[string]string{"TALLY_DB": path}

	c := &apiClient{http: &http.Client{Timeout: 10 * time.Second}, base: base, secret: admin}
	if s, _, m, err := c.post("/api/v1/usage", "", `{"customer":"c0","feature":"chat.request","quantity":1}`); err != nil || s != 201 || m["price_version"].(float64) != 1 {
		t.Fatalf("before: %d %v %v", s, m, err)
	}

	// A key created by the CLI works on the running server at once.
	out, errs, code := runCLI(t, env, "apikey", "create", "--name", "from the cli", "--scope", "metering")
	if code != 0 {
		t.Fatalf("apikey create: %s", errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	key := lines[len(lines)-1]
	ck := &apiClient{http: c.http, base: base, secret: key}
	if s, _, m, err := ck.post("/api/v1/usage", "", `{"customer":"c0","feature":"chat.request","quantity":1}`); err != nil || s != 201 {
		t.Fatalf("new CLI key: %d %v %v", s, m, err)
	}

	// A price book published by the CLI prices the next debit.
	pb := DemoPriceBook()
	pb.Features[0].Credits *= 2
	b, _ := json.Marshal(pb)
	file := filepath.Join(dir, "p.json")
	os.WriteFile(file, b, 0o644)
	if _, errs, code := runCLI(t, env, "pricebook", "publish", "--file", file); code != 0 {
		t.Fatalf("publish: %s", errs)
	}
	s, _, m, err := c.post("/api/v1/usage", "", `{"customer":"c0","feature":"chat.request","quantity":1}`)
	if err != nil || s != 201 || m["price_version"].(float64) != 2 || m["credits_charged"].(float64) != 2 {
		t.Fatalf("after the CLI published version 2: %d %v %v", s, m, err)
	}

	// A key revoked by the CLI stops working within the 2 s key cache.
	if _, errs, code := runCLI(t, env, "apikey", "revoke", key[:12]); code != 0 {
		t.Fatalf("revoke: %s", errs)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, _, _, err := ck.post("/api/v1/usage", "", `{"customer":"c0","feature":"chat.request","quantity":1}`)
		if err == nil && s == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked key still works after 5 s (status %d)", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
