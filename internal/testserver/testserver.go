// Package testserver starts a real `tally serve` for the client libraries'
// tests: the binary built from this module once per test process, a demo
// database in a temporary directory, a free local port.
package testserver

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// DemoKey is the admin key `tally serve --demo` creates (local use only).
const DemoKey = "tsk_demo_local_only_do_not_deploy"

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// root is the module's root directory (this file is internal/testserver/).
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func build() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tally-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "tally")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/tally")
		cmd.Dir = root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tally: %v\n%s", err, out)
		}
	})
	return binary, buildErr
}

// Server is a running `tally serve --demo`.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	DB   string // the database file
	Key  string // the demo admin key
	Log  *bytes.Buffer
	Bin  string
	proc *exec.Cmd
}

// Start builds tally (once) and serves a fresh demo database on a free
// port until the test ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := build()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{URL: "http://" + addr, DB: filepath.Join(t.TempDir(), "tally.db"), Key: DemoKey, Log: &bytes.Buffer{}, Bin: bin}
	args := append([]string{"serve", "--demo", "--db", s.DB, "--addr", addr, "--log-requests=false"}, extra...)
	s.proc = exec.Command(bin, args...)
	s.proc.Stdout, s.proc.Stderr = s.Log, s.Log
	s.proc.Env = append(os.Environ(), "TALLY_STRIPE_SECRET_KEY=")
	if err := s.proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.proc.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { s.proc.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.proc.Process.Kill()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(s.URL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tally serve did not become ready: %v\n%s", err, s.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CLI runs a tally subcommand on the server's database.
func (s *Server) CLI(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.Bin, args...)
	cmd.Env = append(os.Environ(), "TALLY_DB="+s.DB)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tally %v: %v\n%s", args, err, out)
	}
	return string(out)
}
