package db

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Live updates across instances (PostgreSQL). A batch that changed wallets
// or wrote events sends NOTIFY inside its transaction (so it is delivered
// at COMMIT, and never for a batch rolled back); every instance LISTENs on a
// dedicated connection and wakes its own subscribers (notify.go) and event
// consumers (signalEvents). An instance hears its own notifications too: a
// second, harmless wake of what its commit already woke.

const (
	walletChannel = "tally_wallets" // payload: customer ids, comma-separated
	eventChannel  = "tally_events"  // payload: empty
	maxNotify     = 7000            // bytes of ids per NOTIFY (PostgreSQL allows 8,000)
)

// pgListener owns the LISTEN connection.
type pgListener struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startListener connects and listens; the connection is re-made if it drops.
func startListener(ctx context.Context, d *DB, dsn string) (*pgListener, error) {
	conn, err := listenConn(ctx, dsn)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &pgListener{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			err := listenLoop(lctx, d, conn)
			conn.Close(context.Background())
			if lctx.Err() != nil {
				return
			}
			d.log.Warn("db: LISTEN connection lost; reconnecting", "err", err)
			for {
				select {
				case <-lctx.Done():
					return
				case <-time.After(time.Second):
				}
				if conn, err = listenConn(lctx, dsn); err == nil {
					break
				}
			}
			// What was committed while we were away: wake everyone once.
			d.notifyAll()
			d.signalEvents()
		}
	}()
	return l, nil
}

func listenConn(ctx context.Context, dsn string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+walletChannel+"; LISTEN "+eventChannel); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

func listenLoop(ctx context.Context, d *DB, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case walletChannel:
			ids := map[string]bool{}
			for _, id := range strings.Split(n.Payload, ",") {
				if id != "" {
					ids[id] = true
				}
			}
			d.notify(ids)
		case eventChannel:
			d.signalEvents()
		}
	}
}

func (l *pgListener) close() {
	l.cancel()
	<-l.done
}

// notifyAll wakes every subscriber.
func (d *DB) notifyAll() {
	s := &d.subs
	s.mu.Lock()
	ids := make(map[string]bool, len(s.subs))
	for id := range s.subs {
		ids[id] = true
	}
	s.mu.Unlock()
	d.notify(ids)
}

var notifyBufs = sync.Pool{New: func() any { return new(strings.Builder) }}

// pgNotify sends the batch's notifications inside its transaction.
func (t *Tx) pgNotify(events bool) error {
	if len(t.touched) > 0 {
		b := notifyBufs.Get().(*strings.Builder)
		defer func() { b.Reset(); notifyBufs.Put(b) }()
		send := func() error {
			if b.Len() == 0 {
				return nil
			}
			_, err := t.w.execArgs(`SELECT pg_notify('`+walletChannel+`', ?)`, b.String())
			b.Reset()
			return err
		}
		for id := range t.touched {
			if b.Len()+len(id)+1 > maxNotify {
				if err := send(); err != nil {
					return err
				}
			}
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(id)
		}
		if err := send(); err != nil {
			return err
		}
	}
	if events {
		if _, err := t.w.exec(`SELECT pg_notify('` + eventChannel + `', '')`); err != nil {
			return err
		}
	}
	return nil
}
