package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/replication"
	"github.com/cdcbridge/cdcbridge/transform"
)

// setup is what a start of the pipeline resolved.
type setup struct {
	read, write       *pgx.Conn
	readCat, writeCat *catalog.Catalog
	mapper            *transform.Mapper
	// scripts are the compiled transforms every Mapper of the start
	// shares (nil: each Mapper compiles them).
	scripts *transform.Scripts
	start   pglogrepl.LSN
	// plan is what the start decided about the mapping's entries (nil on
	// a first start: every entry starts with the pipeline).
	plan *entryPlan
}

func runOnce(ctx context.Context, o Options) (err error) {
	m, dir, v := o.Mapping, o.Direction, o.view()
	log := o.Logger.With("component", "pipeline", "direction", dir.String())
	readDSN, writeDSN := v.ReadSide.DSN, v.WriteSide.DSN
	readSide, writeSide := v.ReadName, v.WriteName

	s := &setup{}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if s.read != nil {
			s.read.Close(cctx)
		}
		if s.write != nil {
			s.write.Close(cctx)
		}
	}()
	if s.read, err = dbconn.Connect(ctx, readDSN, readSide); err != nil {
		return err
	}
	if s.write, err = dbconn.Connect(ctx, writeDSN, writeSide); err != nil {
		return err
	}
	// The daemon lock lives on the applier's connection: it is held exactly
	// as long as this pipeline can write.
	if err := control.LockDirection(ctx, s.write, m.Name, dir, o.LockWait); err != nil {
		if errors.Is(err, checkpoint.ErrLocked) {
			return &fault.FatalError{Err: err}
		}
		return err
	}
	// Every runtime of this start runs the same compiled scripts.
	scripts := o.Scripts
	if scripts == nil {
		scripts = CompileScripts(m)
	}
	s.scripts = scripts
	resolved, probs := check.Preflight(ctx, m, dir, s.read, s.write, scripts)
	if len(probs) > 0 {
		return &fault.FatalError{Err: &finding.ConfigError{Findings: probs}}
	}
	s.readCat, s.writeCat, s.mapper = resolved.ReadCat, resolved.WriteCat, resolved.Mapper
	slot, pub := v.Slot, v.Publication
	if err := replication.EnsurePublication(ctx, s.read, pub, v.ReadTables(), v.PublicationGiven); err != nil {
		return classify(err)
	}
	if err := checkpoint.Ensure(ctx, s.write); err != nil {
		return classify(err)
	}
	if s.start, err = resume(ctx, o, s, readDSN, writeDSN, slot, log); err != nil {
		return err
	}
	// Everything before the start is applied: a transaction the stream
	// sends again from before it is skipped by the applier, and must not
	// count as waiting either.
	o.state.Applied(s.start)
	// Entries new to the mapping are copied while the others stream (see
	// entryGate for how the two meet).
	var bf *backfill
	if s.plan != nil && len(s.plan.add) > 0 {
		if bf, err = prepareBackfill(ctx, o, s, s.plan, log); err != nil {
			return err
		}
		defer bf.close()
	}
	gate := newEntryGate(s.plan, transform.Specs(v), bf)

	// Extra runtimes for the transform stage (see transform.Workers).
	mappers := []*transform.Mapper{s.mapper}
	if o.Mode == Live {
		for len(mappers) < transform.Workers(m) {
			mp, err := transform.New(transform.Specs(v), transform.Options{Func: v.Func, Timeout: m.TransformTimeout,
				Read: s.readCat, Write: s.writeCat, Logger: o.Logger, Scripts: s.scripts})
			if err != nil {
				return &fault.FatalError{Err: err}
			}
			mappers = append(mappers, mp)
		}
	}
	// The events between the stream and the applier hold at most this
	// many bytes, whatever their number (change.Budget).
	budget := change.NewBudget(eventBytes)
	applier := apply.New(s.write, apply.Config{
		Name: m.Name, Direction: dir.String(), Origin: v.Origin,
		MaxRows: m.Batch.MaxRows, MaxDelay: m.Batch.MaxDelay,
		Catalog: s.writeCat, Logger: o.Logger, Observer: observer(o), Upserts: o.upserts, Ordered: o.ordered, Rejects: o.rejects, Budget: budget,
		OwnIdleWrites: func() pglogrepl.LSN { return o.Echoes.Echo(dir) },
		IdleWritten:   func(l pglogrepl.LSN) { o.Echoes.Wrote(dir, l) },
	}, s.start)
	if err := applier.Prepare(ctx); err != nil {
		return classify(err)
	}
	stream := replication.NewStream(replication.StreamConfig{
		ConnString:  readDSN.ConnString(),
		Slot:        slot,
		Publication: pub,
		SkipOrigin:  m.OwnsOrigin,
		// A publication made by the tables' owner may hold more tables.
		KeepTable: tableSet(v.ReadTables()),
		OnStart: func(pglogrepl.LSN) {
			o.report.streamed.CompareAndSwap(0, time.Now().UnixNano())
			o.state.SetStreaming(true)
		},
		Budget: budget,
		Logger: o.Logger,
	})

	log.Info("streaming", "mode", o.Mode.String(), "slot", slot, "start_lsn", s.start.String(), "read", readDSN.String(), "write", writeDSN.String())
	if o.Started != nil {
		o.Started(s.start)
	}
	defer o.state.SetStreaming(false)

	// Stages: stream -> events -> transform -> outs -> apply. The stream
	// never closes events; its goroutine does once the stream has returned,
	// and the transform stage closes outs, so on shutdown the applier drains
	// what arrived, commits the complete transactions and rolls back a
	// partial one. The applier and the transform stage run under a context
	// that outlives ctx (a stop must not cut a transaction in half); the
	// stream and the copy under one that ends with ctx. The first error of
	// any goroutine ends both, and Wait returns it once all have returned.
	events := make(chan change.Event, 1024)
	outs := make(chan change.Event, 1024)
	g, applyCtx := errgroup.WithContext(context.WithoutCancel(ctx))
	streamCtx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()
	defer context.AfterFunc(applyCtx, cancelStream)()

	if bf != nil {
		// Not ready while entries are being copied, as during an initial copy.
		o.state.SetCopying(true)
		g.Go(func() error {
			defer o.state.SetCopying(false)
			// A stop abandons the copy (run then returns ctx.Err()): the
			// next start does it again.
			if err := bf.run(streamCtx); err != nil {
				if !errors.Is(err, context.Canceled) {
					return classify(err)
				}
				return nil
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(events)
		err := stream.Run(streamCtx, s.start, events, applier.Flushed)
		if streamCtx.Err() == nil {
			return classify(fmt.Errorf("streaming from the %s: %w", readSide, readDSN.Redact(err)))
		}
		return nil
	})
	g.Go(func() error {
		defer close(outs)
		if o.Mode == Armed {
			return holdStage(applyCtx, o, events, outs, budget)
		}
		st := transformStage(o, mappers, gate)
		st.Budget = budget
		return st.Run(applyCtx, events, outs)
	})
	g.Go(func() error {
		// The applier has stopped: nothing more can be applied, so the
		// stream stops too (it may be blocked sending to a full channel).
		defer cancelStream()
		err := applier.Run(applyCtx, outs)
		if err != nil && o.rereads.first(err) {
			err = &staleCatalog{Err: err}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return classify(writeDSN.Redact(err))
		}
		return nil
	})
	g.Go(func() error {
		monitor(streamCtx, o, s.read, slot, applier)
		return nil
	})
	firstErr := g.Wait()
	if applier.Flushed() > s.start {
		o.report.applied.Store(true)
	}
	if firstErr == nil && ctx.Err() == nil {
		return errors.New("the pipeline stopped without an error")
	}
	if firstErr == nil {
		log.Info("stopped", "checkpoint", applier.Flushed().String())
	}
	return firstErr
}

// eventBytes bounds the bytes of the events on their way from the stream
// to the applier: enough for the stages to work ahead on small rows, and a
// few dozen rows of a megabyte.
const eventBytes = 16 << 20

// transformStage is the transform stage of a live pipeline. The gate (nil
// when no entry is being or was lately copied) drops what an entry's copy
// holds and holds back what must wait for a copy in progress; see
// entryGate. A failure that the catalogs read again may cure, the first of
// its kind, ends the stage with a staleCatalog.
func transformStage(o Options, mappers []*transform.Mapper, gate *entryGate) *transform.Stage {
	st := &transform.Stage{
		Mappers: mappers, Mapping: o.Mapping, Direction: o.Direction,
		Logger: o.Logger, Metrics: o.Metrics, Committed: o.Applied, HaltAt: o.rejects.HaltsAt,
		Restart: func(err error) error {
			if o.rereads.first(err) {
				return &staleCatalog{Err: err}
			}
			return nil
		},
	}
	st.Gate = receiving{state: o.state, gate: gate}
	return st
}

// receiving is the transform.Gate of a live pipeline: it records each
// transaction that passes its Begin in the direction's state (received,
// not yet applied: what cdcbridge_lag_seconds measures the age of), then
// leaves the decision to the entries' gate (nil when no entry is being or
// was lately copied). A transaction that the entries' gate holds back
// waits as received.
type receiving struct {
	state *metrics.DirectionHealth
	gate  *entryGate
}

func (r receiving) Begin(ctx context.Context, txn *change.Txn) bool {
	r.state.Received(txn.FinalLSN, txn.CommitTime)
	if r.gate == nil {
		return true
	}
	return r.gate.Begin(ctx, txn)
}

func (r receiving) Filter(ch *change.Change, outs []change.Out) []change.Out {
	if r.gate == nil {
		return outs
	}
	return r.gate.Filter(ch, outs)
}

func observer(o Options) apply.Observer {
	return metrics.ApplyObserver{M: o.Metrics, Direction: o.Direction.String(), State: o.state}
}

// tableSet reports whether a table is one of tables.
func tableSet(tables []change.Table) func(change.Table) bool {
	set := make(map[change.Table]bool, len(tables))
	for _, t := range tables {
		set[t] = true
	}
	return func(t change.Table) bool { return set[t] }
}
