package control

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
)

// Halt says why a direction of a mapping stopped before a bad change: it
// waits, with the daemon up, for the transform or the side written to be
// fixed and the mapping reloaded. Table, Key and LSN are those of the
// change when the error names them.
type Halt struct {
	Direction config.Direction
	Reason    string
	Table     string
	Key       string
	LSN       pglogrepl.LSN
	At        time.Time
}

const haltDDL = `
CREATE SCHEMA IF NOT EXISTS cdcbridge;
CREATE TABLE IF NOT EXISTS cdcbridge.halts (
	name       text NOT NULL,
	direction  text NOT NULL,
	reason     text NOT NULL,
	table_name text,
	key        text,
	lsn        pg_lsn,
	halted_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (name, direction)
)`

// RecordHalt records h for `cdcbridge status`, replacing the direction's
// earlier halt, if any.
func RecordHalt(ctx context.Context, db DB, name string, h Halt) error {
	if _, err := db.Exec(ctx, haltDDL); err != nil {
		return fmt.Errorf("creating cdcbridge.halts: %w", err)
	}
	var lsn *pglogrepl.LSN
	if h.LSN != 0 {
		lsn = &h.LSN
	}
	_, err := db.Exec(ctx, `INSERT INTO cdcbridge.halts (name, direction, reason, table_name, key, lsn)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6::pg_lsn)
		ON CONFLICT (name, direction) DO UPDATE SET reason = excluded.reason, table_name = excluded.table_name,
			key = excluded.key, lsn = excluded.lsn, halted_at = now()`,
		name, h.Direction.String(), h.Reason, h.Table, h.Key, lsn)
	if err != nil {
		return fmt.Errorf("recording the halt: %w", err)
	}
	return nil
}

// ClearHalts forgets the halts of a mapping (its directions run again).
func ClearHalts(ctx context.Context, db DB, name string) error {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.halts') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("clearing the halts: %w", err)
	}
	if !exists {
		return nil
	}
	if _, err := db.Exec(ctx, `DELETE FROM cdcbridge.halts WHERE name = $1`, name); err != nil {
		return fmt.Errorf("clearing the halts: %w", err)
	}
	return nil
}

// Halts returns the recorded halts of a mapping, none when there is no
// table of halts.
func Halts(ctx context.Context, db *pgx.Conn, name string) ([]Halt, error) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('cdcbridge.halts') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT direction, reason, coalesce(table_name, ''), coalesce(key, ''), coalesce(lsn, '0/0'), halted_at
		FROM cdcbridge.halts WHERE name = $1 ORDER BY direction`, name)
	if err != nil {
		return nil, err
	}
	var out []Halt
	var h Halt
	var dir string
	_, err = pgx.ForEachRow(rows, []any{&dir, &h.Reason, &h.Table, &h.Key, &h.LSN, &h.At}, func() error {
		d, err := config.ParseDirection(dir)
		if err != nil {
			return err
		}
		h.Direction = d
		out = append(out, h)
		return nil
	})
	return out, err
}

