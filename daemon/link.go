package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/fault"
)

// stateLink is the daemon's connection to the target, where the state row
// and the daemon lock live. It is opened again, with backoff and jitter,
// when the target restarts.
type stateLink struct {
	m       *config.Mapping
	wait    time.Duration
	conn    *pgx.Conn
	backoff time.Duration
	next    time.Time
	// standby, if set, makes a first open that finds another daemon
	// holding the lock wait for it as a standby instead of failing; it is
	// called once the wait begins, with the error that says who holds it.
	standby func(held error)
}

// open connects and takes the daemon lock. Another daemon holding the lock
// is a fault.FatalError; other errors are worth a retry.
func (l *stateLink) open(ctx context.Context) error { return l.openAs(ctx, false) }

// openAs is open; with first, a lock held by another daemon makes this one
// its standby (see standby) rather than an error.
func (l *stateLink) openAs(ctx context.Context, first bool) error {
	l.close()
	l.next = time.Now().Add(fault.Jitter(l.backoff))
	l.backoff = min(max(2*l.backoff, 250*time.Millisecond), 5*time.Second)
	conn, err := dbconn.Connect(ctx, l.m.Target.DSN, "target")
	if err != nil {
		return err
	}
	// One daemon per mapping: the lock also keeps a flip or cleanup command
	// from acting behind a daemon's back while it starts.
	wait := l.wait
	standby := first && l.standby != nil
	if standby {
		wait = 0
	}
	err = control.LockDaemon(ctx, conn, l.m.Name, wait)
	if standby && errors.Is(err, checkpoint.ErrLocked) {
		l.standby(err)
		err = control.WaitDaemonLock(ctx, conn, l.m.Name)
	}
	if err != nil {
		conn.Close(context.Background())
		if errors.Is(err, checkpoint.ErrLocked) {
			return &fault.FatalError{Err: fmt.Errorf("another cdcbridge daemon runs mapping %s: %w", l.m.Name, err)}
		}
		return l.m.Redact(err)
	}
	l.conn, l.backoff = conn, 0
	return nil
}

// broken reports whether the connection is gone.
func (l *stateLink) broken() bool { return l.conn == nil || l.conn.IsClosed() }

// due reports whether the backoff since the last attempt has passed.
func (l *stateLink) due() bool { return !time.Now().Before(l.next) }

func (l *stateLink) close() {
	if l.conn != nil {
		l.conn.Close(context.Background())
		l.conn = nil
	}
}
