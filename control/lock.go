package control

import (
	"context"
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
