package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// serveInProcess runs serve() on a free port and returns its base URL and
// a stop function that waits for it.
func serveInProcess(t *testing.T, cfg serveConfig) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, ln, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	}()
	base := "http://" + ln.Addr().String()
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	return base, func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
}

// TestRetryStorm: 64 clients whose requests time out and are retried two or
// three times with the same key. Every key must end up as exactly one debit.
func TestRetryStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a few thousand requests")
	}
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 1, 1_000_000)
	base, stop := serveInProcess(t, serveConfig{DB: path})
	defer stop()
	const clients, perClient = 64, 15
	timeouts := []time.Duration{500 * time.Microsecond, 3 * time.Millisecond, 30 * time.Second}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]string{}
	timedOut := 0
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				key := fmt.Sprintf("storm-%d-%d", w, i)
				for try, to := range timeouts {
					c := &apiClient{http: &http.Client{Timeout: to}, base: base, secret: secret}
					status, _, m, err := c.post("/api/v1/usage", key, `{"customer":"c0","feature":"chat.request","quantity":1}`)
					if err != nil {
						mu.Lock()
						timedOut++
						mu.Unlock()
						if try == len(timeouts)-1 {
							t.Errorf("%s: %v", key, err)
						}
						continue
					}
					if status != 201 {
						t.Errorf("%s: status %d %v", key, status, m)
					}
					mu.Lock()
					ids[key] = m["id"].(string)
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	stop()
	t.Logf("%d client timeouts retried", timedOut)
	if timedOut == 0 {
		t.Log("no request timed out on this machine; the storm only tested plain retries")
	}
	if len(ids) != clients*perClient {
		t.Fatalf("%d keys answered, want %d", len(ids), clients*perClient)
	}
	raw, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var debits, distinct int
	raw.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM entries WHERE type = 'debit'`).Scan(&debits, &distinct)
	if debits != clients*perClient || distinct != debits {
		t.Fatalf("%d debits (%d distinct keys) for %d keys: a retry was applied twice", debits, distinct, clients*perClient)
	}
	openVerified(t, path)
}

// TestSlowClientsAreCut: a client that sends its request too slowly is
// disconnected by the read timeout instead of holding a connection forever.
func TestSlowClientsAreCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	setupCrashDB(t, path, 1, 10)
	base, stop := serveInProcess(t, serveConfig{DB: path, ReadTimeout: 300 * time.Millisecond})
	defer stop()
	for _, partial := range []string{
		"POST /api/v1/usage HTTP/1.1\r\nHost: x\r\n",                             // headers never end
		"POST /api/v1/usage HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", // body never ends
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.Write([]byte(partial))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(bufio.NewReader(conn))
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("server kept a slow client (%q) for 5 s", partial)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Fatalf("slow client cut after %s", el)
		}
	}
}

// TestStorageFaults fills the disk under a running Tally: writes answer 503
// storage_unavailable and write nothing, reads keep working, and writes work
// again once space is freed. It needs root (it mounts a small tmpfs) and is
// skipped otherwise.
func TestStorageFaults(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	path := filepath.Join(mnt, "t.db")
	secret := setupCrashDB(t, path, 1, 1000)
	base, stop := serveInProcess(t, serveConfig{DB: path})
	defer stop()
	c := &apiClient{http: &http.Client{Timeout: 10 * time.Second}, base: base, secret: secret}
	usage := func(key string) (int, map[string]any) {
		status, _, m, err := c.post("/api/v1/usage", key, `{"customer":"c0","feature":"chat.request","quantity":1,"metadata":{"pad":"`+strings.Repeat("x", 400)+`"}}`)
		if err != nil {
			t.Fatal(err)
		}
		return status, m
	}
	balance := func() billing.Credits {
		req, _ := http.NewRequest("GET", base+"/api/v1/customers/c0/balance", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b billing.Balance
		if err := jsonDecode(resp.Body, &b); err != nil || resp.StatusCode != 200 {
			t.Fatalf("balance: %d %v", resp.StatusCode, err)
		}
		return b.Balance
	}
	if s, m := usage("before"); s != 201 {
		t.Fatalf("before the fault: %d %v", s, m)
	}

	t.Run("disk full", func(t *testing.T) {
		filler := filepath.Join(mnt, "filler")
		f, _ := os.Create(filler)
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
		before := balance()
		refused, acked := 0, 0
		for i := 0; i < 400 && refused == 0; i++ {
			s, m := usage(fmt.Sprintf("full-%d", i))
			switch s {
			case 201:
				acked++
			case 503:
				refused++
				e := m["error"].(map[string]any)
				if e["type"] != billing.CodeStorageUnavailable || !strings.Contains(e["message"].(string), "disk is full") {
					t.Fatalf("disk full answered %v", m)
				}
				if _, leaked := e["cause"]; leaked {
					t.Fatal("the storage error's cause reached the client")
				}
				// The client retries the same key. The disk is still full, so
				// most often it is refused again; but a checkpoint between the
				// two may have made room in the WAL, and then it is written,
				// once (the balance check below counts it).
				switch s, _ := usage(fmt.Sprintf("full-%d", i)); s {
				case 503:
				case 201:
					acked++
				default:
					t.Fatalf("retry while full: %d", s)
				}
			default:
				t.Fatalf("disk full answered %d %v", s, m)
			}
		}
		if refused == 0 {
			t.Fatal("no write was refused with the disk full")
		}
		after := balance()
		os.Remove(filler)
		// Recovery: the next writes succeed, and the balance moved only by
		// the debits that were acknowledged.
		if s, m := usage("after-full"); s != 201 {
			t.Fatalf("after the disk was freed: %d %v", s, m)
		}
		// Nothing of a refused request was written: the balance moved by
		// exactly the debits acknowledged (1 credit each).
		if after != before-billing.CreditsOf(int64(acked)) || balance() != after-billing.CreditsOf(1) {
			t.Fatalf("balance before %v, during %v (%d debits acknowledged), after %v", before, after, acked, balance())
		}
	})

	stop()
	openVerified(t, path)
}

// TestReadOnlyDatabase makes the database files immutable (chattr +i, which
// refuses writes even through open descriptors) under a running Tally:
// writes answer 503 and write nothing, reads keep working, and writes work
// again once the files are writable. Needs root and a file system with
// chattr (ext4); skipped otherwise.
func TestReadOnlyDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	secret := setupCrashDB(t, path, 1, 1000)
	base, stop := serveInProcess(t, serveConfig{DB: path})
	defer stop()
	c := &apiClient{http: &http.Client{Timeout: 10 * time.Second}, base: base, secret: secret}
	usage := func(key string) (int, map[string]any) {
		status, _, m, err := c.post("/api/v1/usage", key, `{"customer":"c0","feature":"chat.request","quantity":1}`)
		if err != nil {
			t.Fatal(err)
		}
		return status, m
	}
	if s, m := usage("before"); s != 201 {
		t.Fatalf("before the fault: %d %v", s, m)
	}
	files := []string{path, path + "-wal"}
	if out, err := exec.Command("chattr", append([]string{"+i"}, files...)...).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v %s", err, out)
	}
	defer exec.Command("chattr", append([]string{"-i"}, files...)...).Run()
	s, m := usage("ro-1")
	if s != 503 || m["error"].(map[string]any)["type"] != billing.CodeStorageUnavailable {
		exec.Command("chattr", append([]string{"-i"}, files...)...).Run()
		t.Fatalf("read-only database answered %d %v", s, m)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/customers/c0/balance", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reads while read-only: %v %v", resp, err)
	}
	var b billing.Balance
	jsonDecode(resp.Body, &b)
	resp.Body.Close()
	if b.Balance != billing.CreditsOf(999) {
		t.Fatalf("balance while read-only = %v, want 999 (the refused debit wrote nothing)", b.Balance)
	}
	if out, err := exec.Command("chattr", append([]string{"-i"}, files...)...).CombinedOutput(); err != nil {
		t.Fatalf("chattr -i: %v %s", err, out)
	}
	if s, m := usage("ro-1"); s != 201 {
		t.Fatalf("after the files are writable again: %d %v", s, m)
	}
	stop()
	d := openVerified(t, path)
	bal, _ := d.Balance(context.Background(), "c0")
	if bal.Balance != billing.CreditsOf(998) {
		t.Fatalf("final balance %v, want 998", bal.Balance)
	}
}
