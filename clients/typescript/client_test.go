package typescript

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-billing/tally/internal/testserver"
)

// TestTypeScriptClient builds the TypeScript client with tsc (from
// node_modules: .ci/setup installs it) and runs its node tests against a
// real `tally serve --demo`.
func TestTypeScriptClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts tally serve, runs node")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: skipping the TypeScript client's tests")
	}
	tsc := filepath.Join("node_modules", ".bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Fatalf("%s is missing: run .ci/setup (npm ci in clients/typescript)", tsc)
	}
	s := testserver.Start(t)
	out := s.CLI(t, "apikey", "create", "--name", "widget", "--scope", "portal", "--allowed-origin", "https://app.example")
	lines := strings.Split(strings.TrimSpace(out), "\n")

	build := exec.Command(tsc, "-p", "tsconfig.json")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
	run := exec.Command(node, "--test", "test/")
	run.Env = append(os.Environ(), "TALLY_URL="+s.URL, "TALLY_KEY="+s.Key, "TALLY_PORTAL_KEY="+lines[len(lines)-1])
	res, err := run.CombinedOutput()
	t.Logf("node --test:\n%s", res)
	if err != nil {
		t.Fatalf("node --test: %v", err)
	}
	if !strings.Contains(string(res), "# fail 0") || strings.Contains(string(res), "# pass 0") {
		t.Fatalf("node --test did not pass every test")
	}
}
