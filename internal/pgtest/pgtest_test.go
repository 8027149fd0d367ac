package pgtest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestClusterStartsServesAndIsRemoved(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir
	defer c.Stop()
	if err := c.CreateDB(ctx, "tally_test"); err != nil {
		t.Fatal(err)
	}
	out, err := c.Psql(ctx, "tally_test", "CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t VALUES (1), (2); SELECT count(*) FROM t")
	if err != nil || out != "2" {
		t.Fatalf("psql: %q %v", out, err)
	}
	if !strings.Contains(c.DSN("tally_test"), "127.0.0.1") {
		t.Errorf("DSN %s", c.DSN("tally_test"))
	}
	c.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster folder %s left behind (%v)", dir, err)
	}
	c.Stop() // twice is fine
}
