package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/fence"
	"github.com/cdcbridge/cdcbridge/replication"
)

// Cleanup drops what the bridge made for a mapping: both slots and
// publications, the replication origins on both sides, the fences on both
// sides (whether or not the mapping has fence: true now), and the
// checkpoint and state rows. A publication the bridge did not make (the
// mapping names it, or another role owns it) is kept, and the output says
// so. It refuses while a daemon runs the mapping.
func Cleanup(ctx context.Context, m *config.Mapping, w io.Writer) error {
	release, err := control.LockDirections(ctx, m)
	if errors.Is(err, checkpoint.ErrLocked) {
		return &fault.FatalError{Err: fmt.Errorf("a daemon is running mapping %s: stop it first (%w)", m.Name, err)}
	}
	if err != nil {
		return err
	}
	defer release()
	for _, dir := range []config.Direction{config.Forward, config.Reverse} {
		v := m.View(dir)
		readDSN, writeDSN := v.ReadSide.DSN, v.WriteSide.DSN
		readSide, writeSide := v.ReadName, v.WriteName
		read, err := dbconn.Connect(ctx, readDSN, readSide)
		if err != nil {
			return err
		}
		info, err := replication.InspectSlot(ctx, read, v.Slot)
		if err == nil && info.Active {
			read.Close(ctx)
			return &fault.FatalError{Err: fmt.Errorf("the slot %s is in use by process %d on the %s: stop what streams from it first", v.Slot, info.ActivePID, readSide)}
		}
		if err == nil && info.Exists {
			if err := replication.DropSlot(ctx, read, v.Slot); err != nil {
				read.Close(ctx)
				return err
			}
			fmt.Fprintf(w, "dropped slot %s on the %s\n", v.Slot, readSide)
		}
		kept, err := replication.DropPublication(ctx, read, v.Publication, v.PublicationGiven)
		if err != nil {
			read.Close(ctx)
			return err
		}
		if kept != "" {
			fmt.Fprintf(w, "kept publication %s on the %s: %s\n", v.Publication, readSide, kept)
		} else {
			fmt.Fprintf(w, "dropped publication %s on the %s (if it existed)\n", v.Publication, readSide)
		}
		read.Close(ctx)

		write, err := dbconn.Connect(ctx, writeDSN, writeSide)
		if err != nil {
			return err
		}
		if _, err := write.Exec(ctx, `SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1 OR roname ~ ('^' || $1 || '_copy[0-9]+$')`, v.Origin); err != nil {
			write.Close(ctx)
			if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == pgerrcode.InsufficientPrivilege {
				err = fmt.Errorf("%w; as a superuser run GRANT EXECUTE ON FUNCTION pg_replication_origin_drop(text) TO %s", err, pgx.Identifier{write.Config().User}.Sanitize())
			}
			return fmt.Errorf("dropping the replication origin %s on the %s: %w", v.Origin, writeSide, err)
		}
		fmt.Fprintf(w, "dropped replication origin %s on the %s (if it existed)\n", v.Origin, writeSide)
		if err := checkpoint.Delete(ctx, write, m.Name, dir.String()); err != nil {
			write.Close(ctx)
			return err
		}
		fmt.Fprintf(w, "deleted the %s checkpoint on the %s\n", dir, writeSide)
		write.Close(ctx)
	}
	if err := fence.Remove(ctx, m, w); err != nil {
		return err
	}
	state, err := dbconn.Connect(ctx, m.Target.DSN, "target")
	if err != nil {
		return err
	}
	defer state.Close(context.Background())
	if err := control.Delete(ctx, state, m.Name); err != nil {
		return err
	}
	if err := control.ClearHalts(ctx, state, m.Name); err != nil {
		return err
	}
	fmt.Fprintln(w, "deleted the bridge state on the target")
	for _, side := range []struct {
		name string
		dsn  config.DSN
	}{{"source", m.Source.DSN}, {"target", m.Target.DSN}} {
		conn, err := dbconn.Connect(ctx, side.dsn, side.name)
		if err != nil {
			return err
		}
		err = dropSchemaIfUnused(ctx, conn, side.name, w)
		conn.Close(context.Background())
		if err != nil {
			return err
		}
	}
	return nil
}

// dropSchemaIfUnused drops the bridge's schema once none of its tables
// holds a row: no other mapping keeps state there, and no dead letter waits
// to be read.
func dropSchemaIfUnused(ctx context.Context, conn *pgx.Conn, side string, w io.Writer) error {
	rows, err := conn.Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = to_regnamespace($1) AND c.relkind IN ('r', 'p') ORDER BY 1`, checkpoint.Schema)
	if err != nil {
		return fmt.Errorf("listing the tables of schema %s on the %s: %w", checkpoint.Schema, side, err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("listing the tables of schema %s on the %s: %w", checkpoint.Schema, side, err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL`, checkpoint.Schema).Scan(&exists); err != nil || !exists {
		return err
	}
	var used []string
	for _, t := range tables {
		var any bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t+")").Scan(&any); err != nil {
			return fmt.Errorf("reading %s on the %s: %w", t, side, err)
		}
		if any {
			used = append(used, t)
		}
	}
	if len(used) > 0 {
		fmt.Fprintf(w, "kept the schema %s on the %s: %s still hold rows (other mappings, or dead letters to read)\n", checkpoint.Schema, side, strings.Join(used, ", "))
		return nil
	}
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+checkpoint.Schema+" CASCADE"); err != nil {
		return fmt.Errorf("dropping the schema %s on the %s: %w", checkpoint.Schema, side, err)
	}
	fmt.Fprintf(w, "dropped the schema %s on the %s, which held nothing more\n", checkpoint.Schema, side)
	return nil
}
