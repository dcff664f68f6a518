package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/replication"
)

// ReplicaRole makes the session write as a replica, as PostgreSQL's own
// apply worker does: the side written has already run its triggers and
// foreign-key checks for these rows on the side they came from, so its
// ordinary triggers and foreign-key triggers do not fire again (triggers
// marked ENABLE REPLICA or ENABLE ALWAYS still do). Without it a copy of
// tables that reference each other fails in whatever order they are
// copied, and triggers such as "set last_updated = now()" rewrite the
// replicated values.
//
// Setting it needs a superuser, or on PostgreSQL 15 and later
// GRANT SET ON PARAMETER session_replication_role; the error says so.
func ReplicaRole(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == pgerrcode.InsufficientPrivilege {
			return &PrivilegeError{Err: err, Fix: fmt.Sprintf(
				"the bridge writes as a replica (session_replication_role = replica) so that triggers and foreign keys do not act twice on replicated rows; "+
					"as a superuser run GRANT SET ON PARAMETER session_replication_role TO %s",
				pgx.Identifier{conn.Config().User}.Sanitize())}
		}
		return fmt.Errorf("setting session_replication_role = replica: %w", err)
	}
	return nil
}

// PrivilegeError is a privilege the bridge's role lacks, with the GRANT
// that fixes it. Retrying cannot help.
type PrivilegeError struct {
	Err error
	Fix string
}

func (e *PrivilegeError) Error() string { return e.Err.Error() + "; " + e.Fix }
func (e *PrivilegeError) Unwrap() error { return e.Err }

// WithOrigin runs fn with the session of conn tagged by the replication
// origin (created when missing), so that every transaction fn commits
// carries it and the direction reading this side skips it as the bridge's
// own write. The origin is released afterwards, whatever fn returned. One
// session at a time may use an origin.
func WithOrigin(ctx context.Context, conn *pgx.Conn, origin string, fn func() error) error {
	if err := EnsureOrigin(ctx, conn, origin); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_replication_origin_session_setup($1)", origin); err != nil {
		return fmt.Errorf("taking the replication origin %s (is another daemon using it?): %w", origin, err)
	}
	ferr := fn()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(rctx, "SELECT pg_replication_origin_session_reset()"); err != nil && ferr == nil {
		return fmt.Errorf("releasing the replication origin %s: %w", origin, err)
	}
	return ferr
}

// Prepare sets up the target session: durable commits, the text formats the
// values travel in, writing as a replica (see ReplicaRole), and the
// replication origin (created when missing).
func (a *Applier) Prepare(ctx context.Context) error {
	if _, err := a.conn.Exec(ctx, "SET synchronous_commit = on"); err != nil {
		return fmt.Errorf("setting up the target session (synchronous_commit): %w", err)
	}
	if err := replication.SetTextForm(ctx, a.conn); err != nil {
		return fmt.Errorf("setting up the target session: %w", err)
	}
	if err := ReplicaRole(ctx, a.conn); err != nil {
		return err
	}
	if err := EnsureOrigin(ctx, a.conn, a.cfg.Origin); err != nil {
		return err
	}
	if _, err := a.conn.Exec(ctx, "SELECT pg_replication_origin_session_setup($1)", a.cfg.Origin); err != nil {
		return fmt.Errorf("taking the replication origin %s (is another daemon using it?): %w", a.cfg.Origin, err)
	}
	return nil
}

// EnsureOrigin creates the named replication origin if it does not exist.
func EnsureOrigin(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, `SELECT pg_replication_origin_create($1) WHERE pg_replication_origin_oid($1) IS NULL`, name); err != nil {
		return fmt.Errorf("creating the replication origin %s: %w", name, err)
	}
	return nil
}
