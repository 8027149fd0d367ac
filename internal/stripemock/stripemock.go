// Package stripemock starts stripe-mock (Stripe's own API mock) for tests
// of any package: the payments client's and the handlers' Stripe paths.
package stripemock

import (
	"bufio"
	"bytes"
	"context"
	"go/build"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary finds stripe-mock: $STRIPE_MOCK, then PATH, then
// $(go env GOPATH)/bin, where .ci/setup installs it.
func binary() string {
	if p := os.Getenv("STRIPE_MOCK"); p != "" {
		return p
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(dir, "bin", "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// Start runs stripe-mock (Stripe's own API mock) on free ports of
// 127.0.0.1 and returns its HTTP base URL once it answers. It skips the test
// when stripe-mock is not installed, unless TALLY_REQUIRE_STRIPE_MOCK=1
// (then it fails: CI should not pass on a skipped Stripe suite).
func Start(t testing.TB, secretKey string) string {
	t.Helper()
	bin := binary()
	if bin == "" {
		msg := "stripe-mock is not installed: run .ci/setup, or go install github.com/stripe/stripe-mock@v0.203.0 (or set STRIPE_MOCK to its path)"
		if os.Getenv("TALLY_REQUIRE_STRIPE_MOCK") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Port 0 for both listeners: stripe-mock prints the addresses it got.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	addr := make(chan string, 1)
	var logMu sync.Mutex
	var logBuf bytes.Buffer
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			logBuf.WriteString(line + "\n")
			logMu.Unlock()
			if a, ok := strings.CutPrefix(line, "Listening for HTTP at address: "); ok {
				select {
				case addr <- strings.TrimSpace(a):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(30 * time.Second):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("stripe-mock did not say where it listens within 30s; its output:\n%s", logBuf.String())
	}

	// Wait until it answers an authenticated request.
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/v1/customers/cus_ready", nil)
		req.Header.Set("Authorization", "Bearer "+secretKey)
		res, err := http.DefaultClient.Do(req)
		status := 0
		if err == nil {
			res.Body.Close()
			if status = res.StatusCode; status == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock at %s does not answer GET /v1/customers/cus_ready with 200: status %d, error %v", base, status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
