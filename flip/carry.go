package flip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/fence"
	"github.com/cdcbridge/cdcbridge/internal/failpoint"
	"github.com/cdcbridge/cdcbridge/replication"
)

// Result says what a flip did or why it did not.
type Result struct {
	OK      bool
	To      config.Direction
	Point   pglogrepl.LSN // where the new live direction starts
	Foreign control.ForeignWrites
	Message string
}

// foreignWrites counts the foreign transactions that a stopped slot holds,
// by peeking at its changes through the real decoder.
func foreignWrites(ctx context.Context, conn *pgx.Conn, m *config.Mapping, dir config.Direction, from, upto pglogrepl.LSN) (control.ForeignWrites, error) {
	var fw control.ForeignWrites
	v := m.View(dir)
	rows, err := conn.Query(ctx, `SELECT lsn, data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)`,
		v.Slot, v.Publication)
	if err != nil {
		return fw, fmt.Errorf("reading what the %s slot holds: %w", dir, err)
	}
	defer rows.Close()
	dec := replication.NewDecoder(m.OwnsOrigin)
	// Writes to tables the direction does not read are not foreign: a
	// publication made by the tables' owner may hold more tables.
	read := map[change.Table]bool{}
	for _, t := range v.ReadTables() {
		read[t] = true
	}
	dec.OnlyTables(func(t change.Table) bool { return read[t] })
	for rows.Next() {
		var lsn pglogrepl.LSN
		var data []byte
		if err := rows.Scan(&lsn, &data); err != nil {
			return fw, err
		}
		evs, err := dec.Decode(lsn, data)
		if err != nil {
			return fw, err
		}
		for _, ev := range evs {
			// The slot may confirm less than the checkpoint: what lies before
			// the checkpoint is already decided.
			// Commits from the flip point on are not held writes: the new
			// live direction streams them whatever the policy.
			if ev.Kind == change.EvCommit && ev.Txn.FinalLSN >= from && ev.Txn.FinalLSN < upto {
				if fw.Txns == 0 {
					fw.First, fw.FirstAt = ev.Txn.FinalLSN, ev.Txn.CommitTime
				}
				fw.Txns++
			}
		}
	}
	return fw, rows.Err()
}

// CarryOut makes direction `to` live. Its pipeline must not be running (the
// daemon stops its armed pipeline first; the flip command holds the daemon
// locks). Every step is idempotent, so a flip cut short by a crash is
// finished by running it again, which the daemon does on restart while the
// request is unanswered.
func CarryOut(ctx context.Context, m *config.Mapping, to config.Direction, policy control.ForeignPolicy, requestID int64, sync SequenceSync, log *slog.Logger) (Result, error) {
	res := Result{To: to}
	v := m.View(to)
	readDSN, writeDSN := v.ReadSide.DSN, v.WriteSide.DSN
	readSide, writeSide := v.ReadName, v.WriteName
	read, err := dbconn.Connect(ctx, readDSN, readSide)
	if err != nil {
		return res, err
	}
	defer read.Close(context.Background())
	write, err := dbconn.Connect(ctx, writeDSN, writeSide)
	if err != nil {
		return res, err
	}
	defer write.Close(context.Background())
	state, err := dbconn.Connect(ctx, m.Target.DSN, "target")
	if err != nil {
		return res, err
	}
	defer state.Close(context.Background())

	st, err := control.Ensure(ctx, state, m.Name, config.Forward)
	if err != nil {
		return res, err
	}
	if st.Live == to {
		res.OK, res.Point = true, st.FlipLSN
		res.Message = fmt.Sprintf("%s is already the live direction (since %s)", to, st.FlipLSN)
		return res, control.Answer(ctx, state, m.Name, requestID, true, res.Message)
	}
	if err := replication.EnsurePublication(ctx, read, v.Publication, v.ReadTables(), v.PublicationGiven); err != nil {
		return res, err
	}
	if err := checkpoint.Ensure(ctx, write); err != nil {
		return res, err
	}
	ck, err := checkpoint.Load(ctx, write, m.Name, to.String())
	if errors.Is(err, checkpoint.ErrNone) {
		// The direction was never armed: its slot starts now, and nothing
		// written before can be told apart any more.
		sysid, err := replication.SystemID(ctx, read)
		if err != nil {
			return res, err
		}
		if info, err := replication.InspectSlot(ctx, read, v.Slot); err == nil && info.Exists && !info.Active {
			replication.DropSlot(ctx, read, v.Slot)
		}
		created, err := replication.CreateSlot(ctx, readDSN.ConnString(), v.Slot, false)
		if err != nil {
			return res, readDSN.Redact(err)
		}
		created.Close(ctx)
		ck = checkpoint.State{Name: m.Name, Direction: to.String(), LSN: created.ConsistentPoint, SystemID: sysid, Slot: v.Slot}
		if err := checkpoint.Create(ctx, write, ck); err != nil {
			return res, err
		}
	} else if err != nil {
		return res, err
	}
	// The flip point: everything that committed on the read side before it
	// is flushed, so the peek below sees every foreign write that the new
	// live direction would otherwise start after.
	point, err := replication.FlushedPoint(ctx, read, 30*time.Second)
	if err != nil {
		return res, err
	}
	// The armed pipeline of `to` has just stopped; its walsender may hold
	// the slot a moment longer, and a peek needs it free.
	if err := replication.WaitSlotFree(ctx, read, v.Slot, 10*time.Second); err != nil {
		return res, err
	}
	if res.Foreign, err = foreignWrites(ctx, read, m, to, ck.LSN, point); err != nil {
		return res, err
	}
	if res.Foreign.Txns > 0 {
		switch policy {
		case control.Refuse:
			res.Message = fmt.Sprintf("the %s took %d foreign transaction(s) on mapped tables since %s (the first at LSN %s) while traffic was to flow the other way; "+
				"if they are live traffic, carry them over with `cdcbridge flip --include-target-writes`; if they were test writes, start at the flip point with `cdcbridge flip --discard-target-writes`",
				readSide, res.Foreign.Txns, res.Foreign.FirstAt.UTC().Format(time.RFC3339), res.Foreign.First)
			return res, control.Answer(ctx, state, m.Name, requestID, false, res.Message)
		case control.IncludeWrites:
			point = ck.LSN // everything from the held position on, foreign writes included
		}
	}
	if point > ck.LSN {
		if err := checkpoint.MoveTo(ctx, write, m.Name, to.String(), point); err != nil {
			return res, err
		}
	}
	res.Point = max(point, ck.LSN)
	failpoint.Hit("flip-after-checkpoint")
	if sync != nil {
		if err := sync(ctx, to.Opposite()); err != nil {
			return res, fmt.Errorf("syncing sequences at the flip: %w", err)
		}
	}
	// With a fence, the side becoming live takes client writes before the
	// flip is recorded and answered, that is before traffic moves there.
	// The side that was live stays open until it has drained.
	if err := fence.Lift(ctx, m, to, log); err != nil {
		return res, err
	}
	failpoint.Hit("flip-fence-lifted")
	res.OK = true
	res.Message = fmt.Sprintf("flipped: %s is live from %s LSN %s", to, readSide, res.Point)
	if res.Foreign.Txns > 0 {
		if policy == control.IncludeWrites {
			res.Message += fmt.Sprintf(", carrying over %d foreign transaction(s)", res.Foreign.Txns)
		} else {
			res.Message += fmt.Sprintf(", skipping %d foreign transaction(s) as asked", res.Foreign.Txns)
		}
	}
	if err := control.RecordFlip(ctx, state, m.Name, to, res.Point, requestID, res.Message); err != nil {
		return res, err
	}
	log.Info("flipped", "live", to.String(), "point", res.Point.String(), "foreign_txns", res.Foreign.Txns, "policy", string(policy))
	return res, nil
}
