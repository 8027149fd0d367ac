// Package pgtest starts a throw-away PostgreSQL cluster for tests: initdb
// into a temporary folder, a free port on 127.0.0.1, a socket in the same
// folder, and everything removed afterwards. Nothing depends on a server set
// up by hand; .ci/setup installs PostgreSQL from Debian's packages when it is
// missing.
//
// PostgreSQL refuses to run as root, so when the tests run as root the
// cluster runs as the unprivileged "postgres" user (created by Debian's
// package) through runuser.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Cluster is a running throw-away cluster.
type Cluster struct {
	Dir  string // data directory's parent (removed by Stop)
	Port int
	User string // the database superuser tests connect as

	bin   string // folder of initdb, pg_ctl and postgres
	runAs string // OS user the server runs as ("" = this process's)
}

// ErrUnavailable is returned when no PostgreSQL binaries are installed.
var ErrUnavailable = errors.New("pgtest: PostgreSQL is not installed (initdb not found); run .ci/setup")

// BinDir finds the folder holding initdb and pg_ctl: $TALLY_PG_BIN, the
// PATH, or the newest /usr/lib/postgresql/N/bin (Debian's layout, which does
// not put them on the PATH).
func BinDir() (string, error) {
	if d := os.Getenv("TALLY_PG_BIN"); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrUnavailable
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts a cluster in a new temporary folder. The
// caller must Stop it. settings are extra server settings ("fsync=off"...),
// each passed as -c.
func Start(ctx context.Context, settings ...string) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tally-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, User: "tally", bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root needs the unprivileged postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.runAs = "postgres"
	}
	fail := func(err error) (*Cluster, error) {
		c.Stop()
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run(ctx, "initdb", "-D", data, "-U", c.User, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		return fail(fmt.Errorf("pgtest: initdb: %v: %s", err, out))
	}
	if c.Port, err = freePort(); err != nil {
		return fail(err)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=200 -c shared_buffers=64MB", c.Port, dir)
	for _, s := range settings {
		opts += " -c " + s
	}
	if out, err := c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return fail(fmt.Errorf("pgtest: pg_ctl start: %v: %s\n%s", err, out, log))
	}
	return c, nil
}

// DSN is a connection string for database name (created with CreateDB).
func (c *Cluster) DSN(name string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", c.User, c.Port, name)
}

// Stop stops the server and removes its folder. Safe to call twice.
func (c *Cluster) Stop() {
	if c == nil || c.Dir == "" {
		return
	}
	data := filepath.Join(c.Dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.run(ctx, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		cancel()
	}
	os.RemoveAll(c.Dir)
	c.Dir = ""
}

// run runs one of the cluster's programs, as the cluster's OS user.
func (c *Cluster) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return bytes.TrimSpace(out.Bytes()), err
}

// Psql runs SQL through psql as the superuser (for setup a test needs
// before it has a connection, such as CREATE DATABASE).
func (c *Cluster) Psql(ctx context.Context, db, sql string) (string, error) {
	out, err := c.run(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", c.User, "-d", db, "-tA", "-c", sql)
	return strings.TrimSpace(string(out)), err
}

// CreateDB creates an empty database.
func (c *Cluster) CreateDB(ctx context.Context, name string) error {
	if _, err := c.Psql(ctx, "postgres", `CREATE DATABASE "`+strings.ReplaceAll(name, `"`, `""`)+`"`); err != nil {
		return fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
