package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema holds the bridge's own tables on the side it writes to.
const Schema = "cdcbridge"

// SchemaDDL creates the bridge's schema unless it exists. CREATE SCHEMA
// IF NOT EXISTS alone would not do: it needs CREATE on the database even
// when the schema exists, and a role without it may be given the schema
// instead (owning it, or with USAGE and CREATE on it).
const SchemaDDL = `
DO $$BEGIN IF pg_catalog.to_regnamespace('cdcbridge') IS NULL THEN CREATE SCHEMA IF NOT EXISTS cdcbridge; END IF; END$$;`

// DDL creates the bridge's schema, checkpoint table and table of entry
// states; it is idempotent.
const DDL = SchemaDDL + `
CREATE TABLE IF NOT EXISTS cdcbridge.checkpoint (
	name        text        NOT NULL,
	direction   text        NOT NULL,
	lsn         pg_lsn      NOT NULL,
	source_system_id text   NOT NULL,
	slot        text        NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (name, direction)
);
ALTER TABLE cdcbridge.checkpoint ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'streaming';` + EntriesDDL

// Statement advances a checkpoint; the applier runs it inside the
// transaction that carries the changes up to the LSN. Arguments: name,
// direction, lsn (as text).
//
// It fails, and so aborts the transaction, unless it updated exactly one
// row: a checkpoint row deleted under a running daemon must not let changes
// commit without the position that covers them, or a restart would apply
// them again. (The failing cast depends on count(*), so the planner cannot
// fold it into an error for every call.) IsMissing recognises that error.
const Statement = `WITH u AS (
	UPDATE cdcbridge.checkpoint SET lsn = $3::pg_lsn, updated_at = now()
	WHERE name = $1 AND direction = $2 RETURNING 1)
SELECT CASE WHEN count(*) = 1 THEN 1 ELSE ('` + missingRow + `: ' || count(*))::int END FROM u`

// missingRow starts the text that Statement fails to cast when it did not
// update exactly one row.
const missingRow = "checkpoint rows updated"

// IsMissing reports whether err, the server's answer to Statement, means
// the checkpoint row was not there to update: it was deleted under the
// running daemon. The transaction that ran Statement is aborted by then, so
// nothing of it commits without its position.
func IsMissing(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == pgerrcode.InvalidTextRepresentation && strings.Contains(pg.Message, missingRow)
}

// State is one checkpoint row.
type State struct {
	Name      string
	Direction string
	LSN       pglogrepl.LSN
	SystemID  string
	Slot      string
	UpdatedAt time.Time
	// Copying is set while the initial copy runs. A checkpoint found in
	// this state belongs to a copy that was interrupted: its snapshot died
	// with it, so the copy has to start over.
	Copying bool
}

// Execer is what the functions here need of a connection or transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Ensure creates the schema and table when missing.
func Ensure(ctx context.Context, db Execer) error {
	if _, err := db.Exec(ctx, DDL); err != nil {
		return fmt.Errorf("creating the table cdcbridge.checkpoint: %w", err)
	}
	return nil
}

// ErrNone is returned by Load when there is no checkpoint yet.
var ErrNone = errors.New("no checkpoint")

// Load reads the checkpoint of a mapping and direction; ErrNone when there
// is none (or no checkpoint table yet).
func Load(ctx context.Context, db Execer, name, direction string) (State, error) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.checkpoint') IS NOT NULL`).Scan(&exists); err != nil {
		return State{}, fmt.Errorf("looking for cdcbridge.checkpoint: %w", err)
	}
	if !exists {
		return State{}, ErrNone
	}
	s := State{Name: name, Direction: direction}
	var state string
	err := db.QueryRow(ctx, `SELECT lsn, source_system_id, slot, updated_at, state FROM cdcbridge.checkpoint WHERE name = $1 AND direction = $2`,
		name, direction).Scan(&s.LSN, &s.SystemID, &s.Slot, &s.UpdatedAt, &state)
	s.Copying = state == "copying"
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, ErrNone
	}
	if err != nil {
		return State{}, fmt.Errorf("reading the checkpoint of %s %s: %w", name, direction, err)
	}
	return s, nil
}

// Create writes the first checkpoint of a direction, at the slot's
// consistent point. It fails if one exists already.
func Create(ctx context.Context, db Execer, s State) error {
	if err := Ensure(ctx, db); err != nil {
		return err
	}
	state := "streaming"
	if s.Copying {
		state = "copying"
	}
	_, err := db.Exec(ctx, `INSERT INTO cdcbridge.checkpoint (name, direction, lsn, source_system_id, slot, state) VALUES ($1, $2, $3::pg_lsn, $4, $5, $6)`,
		s.Name, s.Direction, s.LSN, s.SystemID, s.Slot, state)
	if err != nil {
		return fmt.Errorf("creating the checkpoint of %s %s: %w", s.Name, s.Direction, err)
	}
	return nil
}

// FinishCopy marks the initial copy of a direction complete: from here on
// the checkpoint is a streaming position.
func FinishCopy(ctx context.Context, db Execer, name, direction string) error {
	tag, err := db.Exec(ctx, `UPDATE cdcbridge.checkpoint SET state = 'streaming', updated_at = now() WHERE name = $1 AND direction = $2 AND state = 'copying'`, name, direction)
	if err != nil {
		return fmt.Errorf("finishing the initial copy of %s %s: %w", name, direction, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("finishing the initial copy of %s %s: its checkpoint row is gone or not copying", name, direction)
	}
	return nil
}

// Delete removes a checkpoint and the entry states that go with it
// (cleanup, or an interrupted initial copy): without the checkpoint they
// mean nothing, and a new first start records them afresh.
func Delete(ctx context.Context, db Execer, name, direction string) error {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.tables') IS NOT NULL`).Scan(&exists); err != nil {
		return err
	}
	if exists {
		if _, err := db.Exec(ctx, `DELETE FROM cdcbridge.tables WHERE name = $1 AND direction = $2`, name, direction); err != nil {
			return fmt.Errorf("deleting the entry states of %s %s: %w", name, direction, err)
		}
	}
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.checkpoint') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return err
	}
	_, err := db.Exec(ctx, `DELETE FROM cdcbridge.checkpoint WHERE name = $1 AND direction = $2`, name, direction)
	return err
}

// Slot is what Resume needs to know about the replication slot.
type Slot struct {
	Exists            bool
	ConfirmedFlushLSN pglogrepl.LSN
	WALStatus         string
	Active            bool
	ActivePID         int
}

// RefusalError explains why a stream must not start.
type RefusalError struct {
	Reason string
	Fix    string
}

func (e *RefusalError) Error() string {
	if e.Fix == "" {
		return "refusing to start: " + e.Reason
	}
	return "refusing to start: " + e.Reason + "; " + e.Fix
}

// Resume checks that streaming from the checkpoint's LSN on the given slot
// and source loses nothing and repeats nothing, and returns the LSN to
// start from.
func Resume(s State, slot Slot, systemID string) (pglogrepl.LSN, error) {
	if s.SystemID != systemID {
		return 0, &RefusalError{
			Reason: fmt.Sprintf("the source's system identifier is %s but the checkpoint of %s %s was taken from %s: this is not the database the bridge was following (restored from a backup, or the DSN points elsewhere)", systemID, s.Name, s.Direction, s.SystemID),
			Fix:    "point the mapping at the original source, or start over with `cdcbridge cleanup` and a fresh initial copy",
		}
	}
	if !slot.Exists {
		return 0, &RefusalError{
			Reason: fmt.Sprintf("the replication slot %s is missing on the source but the checkpoint is at %s: the changes after it are gone and a new slot would silently skip them", s.Slot, s.LSN),
			Fix:    "re-synchronise the target (`cdcbridge cleanup`, empty the target tables, start again for an initial copy)",
		}
	}
	if slot.WALStatus == "lost" {
		return 0, &RefusalError{
			Reason: fmt.Sprintf("the replication slot %s was invalidated (wal_status lost, usually max_slot_wal_keep_size): WAL after the checkpoint %s is gone", s.Slot, s.LSN),
			Fix:    "re-synchronise the target (`cdcbridge cleanup`, empty the target tables, start again for an initial copy) and raise max_slot_wal_keep_size",
		}
	}
	if slot.ConfirmedFlushLSN > s.LSN {
		return 0, &RefusalError{
			Reason: fmt.Sprintf("the replication slot %s has confirmed %s but the checkpoint on the target is at %s: the changes between them were acknowledged without being applied here (another consumer of the slot, or a target restored from an older backup)", s.Slot, slot.ConfirmedFlushLSN, s.LSN),
			Fix:    "re-synchronise the target; do not share the bridge's slot with other consumers",
		}
	}
	return s.LSN, nil
}

// LockKey is the advisory lock key that keeps a second daemon off the same
// mapping and direction.
func LockKey(name, direction string) int64 {
	h := fnv.New64a()
	h.Write([]byte("cdcbridge\x00" + name + "\x00" + direction))
	return int64(h.Sum64())
}

// ErrLocked means another daemon runs the same mapping and direction.
var ErrLocked = errors.New("another cdcbridge daemon is running this mapping and direction")

// Lock takes the session-level advisory lock of a mapping and direction on
// conn, waiting up to wait for a holder to let go (a flip or cleanup
// command holds it for moments; a daemon holds it for its life). It is held
// until the connection closes.
func Lock(ctx context.Context, db Execer, name, direction string, wait time.Duration) error {
	ok, err := tryLock(ctx, db, LockKey(name, direction))
	if err != nil {
		return fmt.Errorf("taking the daemon lock: %w", err)
	}
	for deadline := time.Now().Add(wait); !ok && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if ok, err = tryLock(ctx, db, LockKey(name, direction)); err != nil {
			return fmt.Errorf("taking the daemon lock: %w", err)
		}
	}
	if !ok {
		var pid *int
		db.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1 LIMIT 1`, LockKey(name, direction)).Scan(&pid)
		if pid != nil {
			return fmt.Errorf("%w (its connection is backend pid %d on the target); stop it first", ErrLocked, *pid)
		}
		return fmt.Errorf("%w; stop it first", ErrLocked)
	}
	return nil
}

func tryLock(ctx context.Context, db Execer, key int64) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok)
	return ok, err
}
