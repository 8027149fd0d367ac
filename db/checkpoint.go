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
// the writer or for readers) after the writer commits, at most once every
// checkpointEvery; an idle Tally never wakes it. The writer keeps an
// automatic checkpoint only as a backstop, at walBackstopPages, in case
// this one falls behind.
//
// Small and often, not large and rare: a checkpoint ends with an fsync of
// the database file, and the writer's fsyncs of the WAL wait behind it on
// the disk. Every 100 ms, under a spread load, a checkpoint copied a few
// thousand pages and its fsync took 7-17 ms, 1% of the commits beside it
// took 10-50 ms, and the spread phase's p99 crept from 14 to 23-33 ms as the
// ledger grew; every 25 ms it stays at 17-22 ms (docs/BENCHMARKS.md,
// "Checkpoints small and often").
//
// Durability does not depend on it: every commit is already fsynced in the
// WAL (synchronous=FULL), and a crash mid-checkpoint is recovered by SQLite.
const (
	checkpointEvery  = 25 * time.Millisecond
	checkpointRetry  = time.Second // after a failed pass
	walBackstopPages = 16384       // 64 MiB of 4 KiB pages
)

type checkpointer struct {
	db     *sql.DB
	log    *slog.Logger
	dirty  atomic.Bool   // the writer committed since the last pass
	wake   chan struct{} // a commit since the checkpointer last looked (buffered, 1)
	passes atomic.Int64  // checkpoints run (tests)
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
	err    error
}

func startCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	c := &checkpointer{db: db, log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed tells the checkpointer the writer committed. It never blocks.
func (c *checkpointer) committed() {
	c.dirty.Store(true)
	select {
	case c.wake <- struct{}{}:
	default: // already told
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		// Wait for a commit, then for the pause after the last pass to end.
		select {
		case <-c.stop:
			return
		case <-c.wake:
		}
		select {
		case <-c.stop:
			return
		case <-pause.C:
		}
		if !c.dirty.Swap(false) {
			pause.Reset(0)
			continue
		}
		var busy, frames, copied int
		err := c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		if err != nil {
			// The next commit's pass, a second from now (or the writer's
			// backstop), tries again.
			c.log.Warn("WAL checkpoint failed", "err", err)
			c.dirty.Store(true)
			pause.Reset(checkpointRetry)
			continue
		}
		pause.Reset(checkpointEvery)
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
