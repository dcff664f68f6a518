package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/internal/failpoint"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/replication"
	"github.com/cdcbridge/cdcbridge/snapshot"
	"github.com/cdcbridge/cdcbridge/transform"
)

// resume finds the LSN to start streaming from: the checkpoint, checked
// against the slot and the source; or, on a first start, the consistent
// point of a new slot, after the initial copy of every mapped table under
// the slot's snapshot.
func resume(ctx context.Context, o Options, s *setup, readDSN, writeDSN config.DSN, slot string, log *slog.Logger) (pglogrepl.LSN, error) {
	m, dir, v := o.Mapping, o.Direction, o.view()
	sysid, err := replication.SystemID(ctx, s.read)
	if err != nil {
		return 0, classify(err)
	}
	info, err := replication.InspectSlot(ctx, s.read, slot)
	if err != nil {
		return 0, classify(err)
	}
	if info.Active {
		return 0, &fault.RetryableError{Err: fmt.Errorf("the replication slot %s is in use by process %d (a previous connection not yet gone, or another daemon)", slot, info.ActivePID)}
	}
	st, err := checkpoint.Load(ctx, s.write, m.Name, dir.String())
	if err == nil && st.Copying {
		// The snapshot of an interrupted copy died with its connection: the
		// copy starts over, from empty tables (they were empty when it began).
		log.Warn("the initial copy was interrupted; emptying the tables it wrote and starting it over")
		if err := discardCopy(ctx, v, s.write); err != nil {
			return 0, classify(err)
		}
		err = checkpoint.ErrNone
	}
	if errors.Is(err, checkpoint.ErrNone) {
		return firstStart(ctx, o, s, readDSN, writeDSN, slot, sysid, info.Exists, log)
	}
	if err != nil {
		return 0, classify(err)
	}
	start, err := checkpoint.Resume(st, checkpoint.Slot{Exists: info.Exists, ConfirmedFlushLSN: info.ConfirmedFlushLSN, WALStatus: info.WALStatus, Active: info.Active, ActivePID: info.ActivePID}, sysid)
	if err != nil {
		return 0, &fault.FatalError{Err: err}
	}
	log.Info("resuming after the checkpoint", "lsn", start.String(), "slot_confirmed", info.ConfirmedFlushLSN.String())
	// Only the live direction copies the entries added to the mapping: the
	// other one's side written is the live side, which the live direction
	// fills (under a copy origin that this direction's stream skips).
	backfill := o.Mode == Live && !o.Draining && !o.SkipCopy
	if s.plan, err = planEntries(ctx, o, s, start, backfill, log); err != nil {
		return 0, err
	}
	return start, nil
}

// firstStart creates the slot and copies the tables. Nothing was ever
// applied in this direction (every apply writes the checkpoint), so a slot
// left by an earlier first start that died before its checkpoint can go.
func firstStart(ctx context.Context, o Options, s *setup, readDSN, writeDSN config.DSN, slot, sysid string, slotExists bool, log *slog.Logger) (pglogrepl.LSN, error) {
	m, dir, v := o.Mapping, o.Direction, o.view()
	copying := !o.SkipCopy && o.Mode == Live
	if copying {
		// Not ready until the copy is done and the stream has caught up.
		o.state.SetCopying(true)
		defer o.state.SetCopying(false)
		if err := requireEmpty(ctx, v.WriteTables(), s.write, v.WriteName); err != nil {
			return 0, err
		}
	}
	if slotExists {
		if err := replication.DropSlot(ctx, s.read, slot); err != nil {
			return 0, classify(err)
		}
	}
	created, err := replication.CreateSlot(ctx, readDSN.ConnString(), slot, copying)
	if err != nil {
		return 0, classify(readDSN.Redact(err))
	}
	// The exported snapshot lives as long as the slot's connection.
	defer created.Close(context.WithoutCancel(ctx))
	// Without a copy every entry streams from the consistent point; with
	// one, the entries are recorded when it is done.
	err = inTx(ctx, s.write, v.Origin, func(tx pgx.Tx) error {
		if err := checkpoint.Create(ctx, tx, checkpoint.State{Name: m.Name, Direction: dir.String(), LSN: created.ConsistentPoint,
			SystemID: sysid, Slot: slot, Copying: copying}); err != nil {
			return err
		}
		if copying {
			return nil
		}
		return checkpoint.SetEntries(ctx, tx, m.Name, dir.String(), checkpoint.Streaming, created.ConsistentPoint, v.EntryIDs()...)
	})
	if err != nil {
		return 0, classify(err)
	}
	log.Info("created the replication slot", "slot", slot, "lsn", created.ConsistentPoint.String(), "initial_copy", copying)
	if !copying {
		if o.Mode == Armed && o.Hold != nil {
			log.Info("waiting for the live direction to stream before reading its initial copy back")
			select {
			case <-o.Hold:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return created.ConsistentPoint, nil
	}
	dirName := dir.String()
	specs := transform.Specs(v)
	st, err := snapshot.Copy(ctx, snapshot.Options{
		ReadConnString:  readDSN.ConnString(),
		WriteConnString: writeDSN.ConnString(),
		Snapshot:        created.SnapshotName,
		Tables:          v.ReadTables(),
		Origin:          v.CopyOrigin,
		ReadCat:         s.readCat,
		WriteCat:        s.writeCat,
		Specs:           specs,
		NewMapper: func() (*transform.Mapper, error) {
			return transform.New(specs, transform.Options{Func: v.Func, Timeout: m.TransformTimeout,
				Read: s.readCat, Write: s.writeCat, Logger: o.Logger, Scripts: s.scripts})
		},
		Copied:        func(change.Table) { failpoint.Hit("initial-copy-table-committed") },
		Progress:      copyProgress(o),
		ProgressEvery: o.CopyProgressEvery,
		Logger:        o.Logger,
	})
	if err != nil {
		return 0, classify(m.Redact(err))
	}
	err = inTx(ctx, s.write, v.Origin, func(tx pgx.Tx) error {
		if err := checkpoint.FinishCopy(ctx, tx, m.Name, dirName); err != nil {
			return err
		}
		return checkpoint.SetEntries(ctx, tx, m.Name, dirName, checkpoint.Synced, created.ConsistentPoint, v.EntryIDs()...)
	})
	if err != nil {
		return 0, classify(err)
	}
	rate := float64(st.Rows) / max(st.Took.Seconds(), 1e-9)
	log.Info("initial copy done; streaming from the slot's consistent point", "rows", st.Rows, "written", st.Written,
		"seconds", st.Took.Seconds(), "rows_per_second", int64(rate), "lsn", created.ConsistentPoint.String())
	return created.ConsistentPoint, nil
}

// inTx runs fn in one transaction on conn tagged with the replication
// origin, as every transaction of the bridge is.
func inTx(ctx context.Context, conn *pgx.Conn, origin string, fn func(pgx.Tx) error) error {
	return apply.WithOrigin(ctx, conn, origin, func() error {
		return pgx.BeginFunc(ctx, conn, fn)
	})
}

// requireEmpty refuses an initial copy into tables that hold rows.
func requireEmpty(ctx context.Context, tables []change.Table, conn *pgx.Conn, side string) error {
	var fs []finding.Finding
	for _, t := range tables {
		var has bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t.String()+")").Scan(&has); err != nil {
			return classify(fmt.Errorf("checking that %s is empty: %w", t, err))
		}
		if has {
			fs = append(fs, finding.Finding{Where: side + " table " + t.String(),
				Message: "holds rows, and the initial copy needs empty tables",
				Fix:     "TRUNCATE it on the " + side + " to copy everything afresh, or, if it already holds every row as of now, start with --skip-copy"})
		}
	}
	if len(fs) > 0 {
		return &fault.FatalError{Err: &finding.ConfigError{Findings: fs}}
	}
	return nil
}

// discardCopy empties the tables an interrupted copy wrote and forgets its
// checkpoint, in one transaction. The transaction carries the direction's
// replication origin: emptying those tables is the bridge's own write, and
// the direction reading this side (armed, or live after a flip) must skip
// it, never take it for a client's truncate and carry it back.
func discardCopy(ctx context.Context, v config.View, conn *pgx.Conn) error {
	return apply.WithOrigin(ctx, conn, v.Origin, func() error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := truncate(ctx, tx, v.WriteTables()); err != nil {
				return err
			}
			return checkpoint.Delete(ctx, tx, v.Mapping().Name, v.Direction.String())
		})
	})
}

// emptyTables empties the tables of an interrupted copy in one
// transaction under the replication origin, for the reason discardCopy
// gives.
func emptyTables(ctx context.Context, conn *pgx.Conn, origin string, tables []change.Table) error {
	return inTx(ctx, conn, origin, func(tx pgx.Tx) error { return truncate(ctx, tx, tables) })
}

func truncate(ctx context.Context, tx pgx.Tx, tables []change.Table) error {
	if len(tables) == 0 {
		return nil
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
		return fmt.Errorf("emptying the tables of the interrupted copy: %w", err)
	}
	return nil
}

// copyProgress sets the initial-copy gauges from the copy's reports.
func copyProgress(o Options) func(snapshot.Progress) {
	if o.Metrics == nil {
		return nil
	}
	return func(p snapshot.Progress) {
		t := metrics.TableLabel(p.Table)
		o.Metrics.SnapshotRows.WithLabelValues(t).Set(float64(p.Rows))
		o.Metrics.SnapshotBytes.WithLabelValues(t).Set(float64(p.Bytes))
		o.Metrics.SnapshotEstimate.WithLabelValues(t).Set(float64(p.Estimated))
	}
}
