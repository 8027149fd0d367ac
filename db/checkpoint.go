package db

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// A checkpoint copies the pages committed to the WAL back into the database
// file and fsyncs it. SQLite runs one automatically in whichever connection
// commits when the WAL passes 1,000 pages; for Tally that is the writer, so
// every batch queued behind it would wait out the copy and the fsync. The
// checkpointer takes that work off the writer's path: a goroutine with a
// connection of its own runs a PASSIVE checkpoint (one that never waits for
// the writer or for readers) every checkpointEvery when something was
// committed since its last pass. The writer keeps an automatic checkpoint
// only as a backstop, at walBackstopPages, in case this one falls behind.
//
// Durability does not depend on it: every commit is already fsynced in the
// WAL (synchronous=FULL), and a crash mid-checkpoint is recovered by SQLite.
const (
	checkpointEvery  = 100 * time.Millisecond
	walBackstopPages = 16384 // 64 MiB of 4 KiB pages
)

type checkpointer struct {
	db     *sql.DB
	log    *slog.Logger
	dirty  atomic.Bool  // the writer committed since the last pass
	passes atomic.Int64 // checkpoints run (tests)
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
	err    error
}

func startCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	c := &checkpointer{db: db, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if !c.dirty.Swap(false) {
			continue
		}
		var busy, frames, copied int
		err := c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		if err != nil {
			// The next commit's pass (or the writer's backstop) tries again.
			c.log.Warn("WAL checkpoint failed", "err", err)
			c.dirty.Store(true)
			continue
		}
		c.passes.Add(1)
	}
}

// close stops the checkpointer and closes its connection. Closing twice
// is harmless, as closing the DB twice is.
func (c *checkpointer) close() error {
	c.closed.Do(func() {
		close(c.stop)
		<-c.done
		c.err = c.db.Close()
	})
	return c.err
}
