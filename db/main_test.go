package db_test

import (
	"context"
	"testing"

	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/internal/storetest"
)

// TestMain picks the store (TALLY_TEST_DB=postgres: a throw-away PostgreSQL
// cluster, see internal/storetest); every test opens storetest.DSN(t).
func TestMain(m *testing.M) {
	storetest.Main(m, func(dsn string) error {
		d, err := db.Open(context.Background(), dsn, db.Options{})
		if err != nil {
			return err
		}
		return d.Close()
	})
}
