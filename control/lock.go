package control

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/dbconn"
)

// daemonLock is the lock name of a mapping's daemon, beside the two
// directions' names.
const daemonLock = "daemon"

// LockDaemon takes the daemon lock of a mapping on conn, a connection to
// the target, waiting up to wait (see checkpoint.Lock). A daemon holds it
// for its life; a flip command takes it for a moment to learn whether a
// daemon runs. checkpoint.ErrLocked: another holds it.
func LockDaemon(ctx context.Context, db DB, name string, wait time.Duration) error {
	return checkpoint.Lock(ctx, db, name, daemonLock, wait)
}

// WaitDaemonLock waits, for as long as it takes, for the daemon lock of a
// mapping on conn (a connection to the target), as a standby daemon does:
// the server grants it the moment the daemon holding it lets go or its
// session ends. While it waits, its session shows in pg_locks as not
// granted (see DaemonSessions). It returns when the lock is held, ctx ends
// or the connection fails.
func WaitDaemonLock(ctx context.Context, db DB, name string) error {
	if _, err := db.Exec(ctx, `SELECT pg_advisory_lock($1)`, checkpoint.LockKey(name, daemonLock)); err != nil {
		return fmt.Errorf("waiting for the daemon lock: %w", err)
	}
	return nil
}

// DaemonSession is a session of a daemon of a mapping on the target: the
// one that holds the daemon lock (active), or one that waits for it (a
// standby).
type DaemonSession struct {
	PID    int
	Active bool
	// Client is the daemon's address as the target sees it ("local" for
	// a Unix socket); Since, when its session began.
	Client string
	Since  time.Time
}

// DaemonSessions lists the daemons of a mapping that hold or wait for its
// daemon lock, the active one first.
func DaemonSessions(ctx context.Context, db *pgx.Conn, name string) ([]DaemonSession, error) {
	rows, err := db.Query(ctx, `SELECT l.pid, l.granted, coalesce(host(a.client_addr), 'local'), a.backend_start
		FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
		  AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 AND l.objsubid = 1
		ORDER BY l.granted DESC, a.backend_start`, checkpoint.LockKey(name, daemonLock))
	if err != nil {
		return nil, fmt.Errorf("reading the daemons of %s: %w", name, err)
	}
	var out []DaemonSession
	var s DaemonSession
	_, err = pgx.ForEachRow(rows, []any{&s.PID, &s.Active, &s.Client, &s.Since}, func() error {
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the daemons of %s: %w", name, err)
	}
	return out, nil
}

// LockDirection takes the lock of direction dir of a mapping on conn, the
// connection that writes the side dir writes, waiting up to wait (see
// checkpoint.Lock): it is held as long as that connection can write.
func LockDirection(ctx context.Context, db DB, name string, dir config.Direction, wait time.Duration) error {
	return checkpoint.Lock(ctx, db, name, dir.String(), wait)
}

// LockDirections takes the locks of both directions, each on the side it
// writes, without waiting, and returns their release.
// checkpoint.ErrLocked: a daemon runs a direction.
func LockDirections(ctx context.Context, m *config.Mapping) (func(), error) {
	var conns []*pgx.Conn
	release := func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}
	for _, d := range []config.Direction{config.Forward, config.Reverse} {
		v := m.View(d)
		conn, err := dbconn.Connect(ctx, v.WriteSide.DSN, v.WriteName)
		if err != nil {
			release()
			return nil, err
		}
		conns = append(conns, conn)
		if err := LockDirection(ctx, conn, m.Name, d, 0); err != nil {
			release()
			return nil, err
		}
	}
	return release, nil
}
