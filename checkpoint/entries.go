package checkpoint

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// EntriesDDL creates the table of per-entry sync states, on the side a
// direction writes. It is idempotent and part of DDL.
//
// A row says from which source transaction on the changes of one mapping
// entry are applied: those whose commit LSN is at or past lsn. It is
// written in the same transaction as the data it describes (the rows an
// entry's copy wrote), so after a crash it never claims a copy that is not
// there, nor misses one that is.
const EntriesDDL = `
CREATE TABLE IF NOT EXISTS cdcbridge.tables (
	name       text        NOT NULL,
	direction  text        NOT NULL,
	entry      text        NOT NULL,
	state      text        NOT NULL CHECK (state IN ('copying', 'synced', 'streaming')),
	lsn        pg_lsn      NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (name, direction, entry)
);`

// Phase is where one mapping entry stands in a direction.
type Phase string

const (
	// Copying: a copy of the entry's rows runs under a snapshot taken at
	// LSN and has not committed. A start that finds an entry in this phase
	// knows the copy died with nothing of it written, and copies again.
	Copying Phase = "copying"
	// Synced: the copy taken at LSN is committed. Changes committed before
	// LSN are in it and are not applied; those at or after it are.
	Synced Phase = "synced"
	// Streaming: every change committed at or after LSN is applied, and
	// the checkpoint has passed LSN.
	Streaming Phase = "streaming"
)

// Entry is the sync state of one mapping entry in one direction.
type Entry struct {
	// ID names the entry stably across edits of the mapping file (its
	// tables, not its position).
	ID        string
	Phase     Phase
	LSN       pglogrepl.LSN
	UpdatedAt time.Time
}

// Querier is a connection or transaction that also runs queries.
type Querier interface {
	Execer
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// LoadEntries reads the entry states of a mapping and direction, by ID.
// Without the table (nothing recorded yet) the map is empty.
func LoadEntries(ctx context.Context, db Querier, name, direction string) (map[string]Entry, error) {
	out := map[string]Entry{}
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.tables') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("looking for cdcbridge.tables: %w", err)
	}
	if !exists {
		return out, nil
	}
	rows, err := db.Query(ctx, `SELECT entry, state, lsn, updated_at FROM cdcbridge.tables WHERE name = $1 AND direction = $2`, name, direction)
	if err != nil {
		return nil, fmt.Errorf("reading the entry states of %s %s: %w", name, direction, err)
	}
	var (
		e     Entry
		phase string
	)
	if _, err := pgx.ForEachRow(rows, []any{&e.ID, &phase, &e.LSN, &e.UpdatedAt}, func() error {
		e.Phase = Phase(phase)
		out[e.ID] = e
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the entry states of %s %s: %w", name, direction, err)
	}
	return out, nil
}

// SetEntries records the given entries as being in phase from lsn on,
// replacing what was recorded for them.
func SetEntries(ctx context.Context, db Execer, name, direction string, phase Phase, lsn pglogrepl.LSN, ids ...string) error {
	for _, id := range ids {
		_, err := db.Exec(ctx, `INSERT INTO cdcbridge.tables (name, direction, entry, state, lsn) VALUES ($1, $2, $3, $4, $5::pg_lsn)
			ON CONFLICT (name, direction, entry) DO UPDATE SET state = excluded.state, lsn = excluded.lsn, updated_at = now()`,
			name, direction, id, string(phase), lsn)
		if err != nil {
			return fmt.Errorf("recording %s as %s at %s in %s %s: %w", id, phase, lsn, name, direction, err)
		}
	}
	return nil
}

// PassEntries marks the synced entries whose LSN the checkpoint at has
// reached as streaming.
func PassEntries(ctx context.Context, db Execer, name, direction string, at pglogrepl.LSN) error {
	_, err := db.Exec(ctx, `UPDATE cdcbridge.tables SET state = 'streaming', updated_at = now()
		WHERE name = $1 AND direction = $2 AND state = 'synced' AND lsn <= $3::pg_lsn`, name, direction, at)
	if err != nil {
		return fmt.Errorf("marking the synced entries of %s %s as streaming: %w", name, direction, err)
	}
	return nil
}

// DeleteEntries forgets the given entries, so that adding one to the
// mapping again copies it again.
func DeleteEntries(ctx context.Context, db Execer, name, direction string, ids ...string) error {
	for _, id := range ids {
		if _, err := db.Exec(ctx, `DELETE FROM cdcbridge.tables WHERE name = $1 AND direction = $2 AND entry = $3`, name, direction, id); err != nil {
			return fmt.Errorf("forgetting the entry %s of %s %s: %w", id, name, direction, err)
		}
	}
	return nil
}
