package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/internal/failpoint"
	"github.com/cdcbridge/cdcbridge/replication"
	"github.com/cdcbridge/cdcbridge/snapshot"
	"github.com/cdcbridge/cdcbridge/transform"
)

// entryPlan is what a start of the pipeline decided about the mapping's
// entries, from their rows in cdcbridge.tables.
type entryPlan struct {
	// from gives, by entry name (transform.Spec.Entry, which change.Out
	// carries), the commit LSN from which that entry's changes are applied,
	// for the entries that start later than the pipeline: those whose copy
	// was taken after the checkpoint.
	from map[string]pglogrepl.LSN
	// add are the entries (indexes into the mapping) to copy now.
	add []int
	// redo are those of add whose earlier copy never committed: the parts
	// of a table it had committed are still on the side written.
	redo []int
}

// planEntries reconciles the entry rows of a direction that resumes from
// its checkpoint at start with the mapping, in one transaction under the
// direction's origin:
//
//   - a direction with a checkpoint but no entry rows was set up before the
//     rows existed: every entry is recorded as streaming, with no copy;
//   - a synced entry that the checkpoint has reached is marked streaming;
//   - the row of an entry no longer in the mapping is deleted, so that
//     adding the entry again copies it again (its changes are dropped
//     already, as the mapper no longer has it);
//   - an entry with no row, or one whose copy never committed (copying), is
//     new. It is copied (returned in add) when backfill is set; otherwise it
//     is recorded as streaming from the checkpoint, since the rows it would
//     copy reach the side written through the live direction's backfill.
//
// Every other entry keeps its row; one synced past start has its changes
// before that LSN dropped (see entryGate).
func planEntries(ctx context.Context, o Options, s *setup, start pglogrepl.LSN, backfill bool, log *slog.Logger) (*entryPlan, error) {
	m, dir, v := o.Mapping, o.Direction, o.view()
	ids := v.EntryIDs()
	rows, err := checkpoint.LoadEntries(ctx, s.write, m.Name, dir.String())
	if err != nil {
		return nil, classify(err)
	}
	plan := &entryPlan{from: map[string]pglogrepl.LSN{}}
	var removed, streaming []string
	if len(rows) == 0 {
		streaming = ids
		log.Info("recording the sync state of every entry (none was recorded yet); they stream from the checkpoint", "entries", len(ids), "lsn", start.String())
	} else {
		for id := range rows {
			if !slices.Contains(ids, id) {
				removed = append(removed, id)
			}
		}
		slices.Sort(removed)
		for i, id := range ids {
			r, ok := rows[id]
			switch {
			case ok && r.Phase != checkpoint.Copying:
				if r.LSN > start {
					plan.from[m.Tables[i].Name()] = r.LSN
				}
			case backfill:
				plan.add = append(plan.add, i)
				if ok {
					plan.redo = append(plan.redo, i)
				}
			default:
				streaming = append(streaming, id)
			}
		}
	}
	err = inTx(ctx, s.write, v.Origin, func(tx pgx.Tx) error {
		if err := checkpoint.PassEntries(ctx, tx, m.Name, dir.String(), start); err != nil {
			return err
		}
		if err := checkpoint.DeleteEntries(ctx, tx, m.Name, dir.String(), removed...); err != nil {
			return err
		}
		return checkpoint.SetEntries(ctx, tx, m.Name, dir.String(), checkpoint.Streaming, start, streaming...)
	})
	if err != nil {
		return nil, classify(err)
	}
	for _, id := range removed {
		log.Info("an entry is no longer in the mapping; its changes are no longer applied", "entry", id)
	}
	if len(rows) > 0 {
		for _, id := range streaming {
			log.Info("an entry new to the mapping streams from the checkpoint without a copy (the live direction copies it)", "entry", id, "lsn", start.String())
		}
	}
	return plan, nil
}

// backfill copies the entries added to a running mapping, under the
// snapshot of a temporary slot, while the pipeline streams the others.
type backfill struct {
	o       Options
	s       *setup
	entries []int // indexes into the mapping
	ids     []string
	// whole keeps each table read in one transaction on the side written
	// (another entry writes one of the tables written).
	whole bool
	slot  replication.CreatedSlot
	// done is closed when run returns; err is then its error (nil: every
	// new entry's copy has committed).
	done chan struct{}
	err  error
	log  *slog.Logger
}

// prepareBackfill checks that the tables the new entries write are empty,
// creates the temporary slot whose snapshot the copy reads (its consistent
// point S is where the new entries' changes start), and records the
// entries as copying at S. The caller runs it (run) and closes it.
func prepareBackfill(ctx context.Context, o Options, s *setup, plan *entryPlan, log *slog.Logger) (*backfill, error) {
	m, dir, v := o.Mapping, o.Direction, o.view()
	all := v.EntryIDs()
	b := &backfill{o: o, s: s, entries: plan.add, done: make(chan struct{}), log: log.With("component", "backfill")}
	var written []change.Table
	for _, i := range plan.add {
		b.ids = append(b.ids, all[i])
		if t := m.Tables[i].Writes(dir); !slices.Contains(written, t) {
			written = append(written, t)
		}
	}
	// A table that only the new entries write is theirs alone until their
	// copy commits: the copy may cut it into parts, each committed on its
	// own, and what the parts of an interrupted copy left is emptied here.
	// A table that another entry writes as well is copied in one
	// transaction per table read, and never emptied by the bridge.
	for i, e := range m.Tables {
		if !slices.Contains(plan.add, i) && slices.Contains(written, e.Writes(dir)) {
			b.whole = true
		}
	}
	if len(plan.redo) > 0 && !b.whole {
		var redo []change.Table
		for _, i := range plan.redo {
			if t := m.Tables[i].Writes(dir); !slices.Contains(redo, t) {
				redo = append(redo, t)
			}
		}
		b.log.Warn("the copy of entries new to the mapping was interrupted; emptying the tables it wrote and starting it over")
		if err := emptyTables(ctx, s.write, v.Origin, redo); err != nil {
			return nil, classify(err)
		}
	}
	if err := requireEmpty(ctx, written, s.write, v.WriteName); err != nil {
		return nil, err
	}
	readDSN := v.ReadSide.DSN
	var err error
	b.slot, err = replication.CreateTemporarySlot(ctx, readDSN.ConnString(), v.Slot+"_sync")
	if err != nil {
		return nil, classify(readDSN.Redact(err))
	}
	for _, i := range plan.add {
		plan.from[m.Tables[i].Name()] = b.slot.ConsistentPoint
	}
	err = inTx(ctx, s.write, v.Origin, func(tx pgx.Tx) error {
		return checkpoint.SetEntries(ctx, tx, m.Name, dir.String(), checkpoint.Copying, b.slot.ConsistentPoint, b.ids...)
	})
	if err != nil {
		b.close()
		return nil, classify(err)
	}
	b.log.Info("copying the entries new to the mapping while the others stream", "entries", strings.Join(b.ids, ", "),
		"lsn", b.slot.ConsistentPoint.String())
	return b, nil
}

// at is the consistent point of the backfill's snapshot.
func (b *backfill) at() pglogrepl.LSN { return b.slot.ConsistentPoint }

// close ends the snapshot; the server drops the temporary slot with it.
func (b *backfill) close() { b.slot.Close(context.Background()) }

// run copies the new entries' read tables through those entries alone and
// records each entry as synced at S in the transaction that writes its
// rows. It returns nil once all are committed, or the first error (nothing
// of an uncommitted table remains); ctx ending abandons the copy, which the
// next start does again. done is closed when it returns.
func (b *backfill) run(ctx context.Context) (err error) {
	defer func() {
		b.err = err
		if err == nil && ctx.Err() != nil {
			b.err = ctx.Err()
		}
		close(b.done)
	}()
	o, s := b.o, b.s
	m, dir, v := o.Mapping, o.Direction, o.view()
	all := transform.Specs(m.View(dir))
	var specs []transform.Spec
	var reads []change.Table
	idsByRead := map[change.Table][]string{}
	names := make([]string, len(b.entries))
	for k, i := range b.entries {
		specs = append(specs, all[i])
		t := m.Tables[i].Reads(dir)
		if !slices.Contains(reads, t) {
			reads = append(reads, t)
		}
		idsByRead[t] = append(idsByRead[t], b.ids[k])
		names[k] = m.Tables[i].Name()
	}
	readDSN, writeDSN := v.ReadSide.DSN, v.WriteSide.DSN
	var partBytes int64 // the default
	if b.whole {
		partBytes = -1
	}
	st, err := snapshot.Copy(ctx, snapshot.Options{
		ReadConnString:  readDSN.ConnString(),
		WriteConnString: writeDSN.ConnString(),
		Snapshot:        b.slot.SnapshotName,
		Tables:          reads,
		Origin:          v.CopyOrigin,
		ReadCat:         s.readCat,
		WriteCat:        s.writeCat,
		Specs:           specs,
		PartBytes:       partBytes,
		NewMapper: func() (*transform.Mapper, error) {
			return transform.New(specs, transform.Options{Func: v.Func, Timeout: m.TransformTimeout,
				Read: s.readCat, Write: s.writeCat, Logger: o.Logger, Scripts: s.scripts})
		},
		Commit: func(ctx context.Context, tx pgx.Tx, read change.Table) error {
			if err := checkpoint.SetEntries(ctx, tx, m.Name, dir.String(), checkpoint.Synced, b.at(), idsByRead[read]...); err != nil {
				return err
			}
			failpoint.Hit("backfill-before-commit")
			return nil
		},
		Progress:      copyProgress(o),
		ProgressEvery: o.CopyProgressEvery,
		Logger:        o.Logger,
	})
	b.close()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("copying the entries new to the mapping (%s); nothing of an entry whose copy failed was kept, and the next start copies it again: %w",
			strings.Join(names, "; "), m.Redact(err))
	}
	failpoint.Hit("backfill-copied")
	b.log.Info("copied the entries new to the mapping; their changes from the snapshot on are applied", "rows", st.Rows, "written", st.Written,
		"seconds", st.Took.Seconds(), "lsn", b.at().String())
	return nil
}

// entryGate is the transform.Gate of a live pipeline. It sits in the
// transform stage, between the mapping of each event
// and its hand-off to the applier, and sees every event in stream order.
// It is what makes an entry's copy and the stream meet exactly:
//
//   - The outs of an entry listed in from are dropped when their source
//     transaction commits before from[entry]: the entry's copy, taken at
//     that LSN, holds them. A truncate keeps only the tables written by
//     entries that apply at that point.
//   - While a copy runs, the Begin of the first transaction that commits
//     at or after the copy's snapshot waits until the copy has committed,
//     so that nothing the copy does not hold is applied before it. Until
//     then the other entries stream up to that point, which was "now" when
//     the copy started. When the copy fails or is abandoned (the pipeline
//     stops), or ctx ends, nothing more passes: Begin returns false and the
//     stage stops, leaving the applier to commit what came before.
//
// A gate with nothing in from and no copy running passes every event as it
// is. It is used from one goroutine.
type entryGate struct {
	from  map[string]pglogrepl.LSN
	specs []transform.Spec
	// copy is the copy running, nil once it has committed or when none was
	// started.
	copy *backfill
}

func newEntryGate(plan *entryPlan, specs []transform.Spec, b *backfill) *entryGate {
	if plan == nil || (len(plan.from) == 0 && b == nil) {
		return nil
	}
	return &entryGate{from: plan.from, specs: specs, copy: b}
}

// Begin waits, if a copy is running and the transaction commits at or
// after its snapshot, for the copy to commit. It returns false when the
// copy did not commit, or ctx ended first.
func (g *entryGate) Begin(ctx context.Context, txn *change.Txn) bool {
	if g == nil || g.copy == nil || txn.FinalLSN < g.copy.at() {
		return true
	}
	select {
	case <-g.copy.done:
		if g.copy.err != nil {
			return false
		}
		g.copy = nil
		return true
	case <-ctx.Done():
		return false
	}
}

// Filter drops the outs of ch that an entry's copy holds.
func (g *entryGate) Filter(ch *change.Change, outs []change.Out) []change.Out {
	if g == nil || len(g.from) == 0 || ch == nil || ch.Txn == nil {
		return outs
	}
	final := ch.Txn.FinalLSN
	dropped := false
	kept := make([]change.Out, 0, len(outs))
	for _, o := range outs {
		if o.Op == change.Truncate {
			tables := g.truncated(ch, o.Truncate, final)
			if len(tables) < len(o.Truncate) {
				dropped = true
			}
			if len(tables) == 0 {
				continue
			}
			o.Truncate = tables
		} else if from, ok := g.from[o.Entry]; ok && final < from {
			dropped = true
			continue
		}
		kept = append(kept, o)
	}
	if !dropped {
		return outs
	}
	return kept
}

// truncated returns the tables of a truncate that some entry applying at
// final writes from one of the truncated tables read.
func (g *entryGate) truncated(ch *change.Change, tables []change.Table, final pglogrepl.LSN) []change.Table {
	var out []change.Table
	for _, t := range tables {
		for _, s := range g.specs {
			if s.Write != t || !truncates(ch, s.Read) {
				continue
			}
			if from, ok := g.from[s.Entry]; !ok || final >= from {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

func truncates(ch *change.Change, t change.Table) bool {
	for _, r := range ch.Truncated {
		if r.Table == t {
			return true
		}
	}
	return false
}
