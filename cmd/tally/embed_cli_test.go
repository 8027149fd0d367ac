package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIAllowedOrigins: apikey create --allowed-origin (repeatable) stores
// the origins normalised and the listing shows them; a URL with a path is
// refused and creates no key.
func TestCLIAllowedOrigins(t *testing.T) {
	env := map[string]string{"TALLY_DB": filepath.Join(t.TempDir(), "t.db")}
	out, errs, code := runCLI(t, env, "apikey", "create", "--name", "widget", "--scope", "portal",
		"--allowed-origin", "https://App.Example.com:443", "--allowed-origin", "http://localhost:3000")
	if code != 0 || !strings.Contains(out, "Allowed origins for the balance widget: http://localhost:3000, https://app.example.com") {
		t.Fatalf("create: %d\n%s%s", code, out, errs)
	}
	out, _, _ = runCLI(t, env, "apikey", "list")
	if !strings.Contains(out, "ALLOWED ORIGINS") || !strings.Contains(out, "http://localhost:3000 https://app.example.com") {
		t.Fatalf("list:\n%s", out)
	}
	_, errs, code = runCLI(t, env, "apikey", "create", "--name", "bad", "--scope", "portal", "--allowed-origin", "https://app.example.com/billing")
	if code == 0 || !strings.Contains(errs, "no path") {
		t.Fatalf("an origin with a path: %d %s", code, errs)
	}
	if out, _, _ = runCLI(t, env, "apikey", "list"); strings.Contains(out, "bad") {
		t.Fatalf("a refused create made a key:\n%s", out)
	}
}
