package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/deadletter"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/replication"
	"github.com/cdcbridge/cdcbridge/transform"
)

// Options configures Run.
type Options struct {
	Mapping   *config.Mapping
	Direction config.Direction
	Logger    *slog.Logger
	// Metrics and Health may be nil.
	Metrics *metrics.Metrics
	Health  *metrics.Health
	// MaxBackoff caps the wait between restarts after retryable errors
	// (default 5s: a database that comes back is streamed from within
	// seconds, and a connection attempt every few seconds costs it nothing).
	MaxBackoff time.Duration
	// SkipCopy starts a first run from the new slot's position without the
	// initial copy: for a target that already holds the rows.
	SkipCopy bool
	// Started, if set, is called each time the pipeline is streaming, with
	// the LSN it started from.
	Started func(start pglogrepl.LSN)
	// LockWait is how long a start waits for the daemon lock of its
	// direction when another process holds it (default 15s): a flip or
	// cleanup command holds it for moments, a second daemon for good.
	LockWait time.Duration
	// Mode is Live (apply every change) or Armed (apply nothing; keep the
	// slot and checkpoint just behind the first foreign write).
	Mode Mode
	// Draining marks a Live direction that is not the live one in the
	// bridge state: the side it reads was live before the last flip and
	// may still take late writes. It copies no entry added to the mapping
	// (the live direction's copy fills its side written); it records such
	// an entry as streaming from its checkpoint.
	Draining bool
	// Foreign, if set, is called in Armed mode when the stream holds foreign
	// writes, with what is known so far.
	Foreign func(control.ForeignWrites)
	// Applied, if set, is called in Live mode with the commit time of each
	// source transaction that reached the applier.
	Applied func(commit time.Time)

	// upserts: the tables whose inserts met rows already on the target,
	// kept across restarts of the pipeline (see apply.Config.Upserts).
	upserts *apply.Upserts
	// rereads: the failures for which the catalogs were read again.
	rereads *rereads
	// report is filled in by a run for Run (see backoff).
	report *runReport
}

// Mode says what a pipeline does with the changes it reads.
type Mode uint8

const (
	// Live applies every change: the direction traffic flows in.
	Live Mode = iota
	// Armed applies nothing. It reads the side that is not live, advances
	// the slot and checkpoint past the bridge's own transactions and idle
	// stretches, and holds at the first foreign write (a client writing to
	// a mapped table of the side that should not be taking writes), so that
	// a flip can still carry that write over or, on the operator's word,
	// skip it. Nothing is lost either way.
	Armed
)

func (m Mode) String() string {
	if m == Armed {
		return "armed"
	}
	return "live"
}

// ownIdleWrites remembers, per mapping and side, how far in that side's WAL
// the checkpoint-only transactions of this process's appliers go, so that
// the direction reading that side can tell its echo from real activity.
var ownIdleWrites sync.Map // "name/side" -> *atomic.Uint64

func ownIdle(name, side string) *atomic.Uint64 {
	v, _ := ownIdleWrites.LoadOrStore(name+"/"+side, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

// sides returns the DSNs of the side read and the side written.
func sides(m *config.Mapping, dir config.Direction) (read, write config.DSN) {
	if dir == config.Reverse {
		return m.Target.DSN, m.Source.DSN
	}
	return m.Source.DSN, m.Target.DSN
}

// Run runs a direction until ctx ends (then it returns nil after a clean
// stop) or a fatal error.
func Run(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.LockWait == 0 {
		o.LockWait = 15 * time.Second
	}
	log := o.Logger.With("component", "bridge", "direction", o.Direction.String())
	if o.Metrics != nil {
		live := 0.0
		if o.Mode == Live {
			live = 1
		}
		o.Metrics.Direction.WithLabelValues(o.Direction.String()).Set(live)
	}
	o.upserts = &apply.Upserts{}
	o.rereads = &rereads{}
	var wait backoff
	for {
		o.report = &runReport{}
		err := runOnce(ctx, o)
		if ctx.Err() != nil {
			return nil
		}
		err = o.Mapping.Redact(err)
		var conflict *apply.Conflict
		if errors.As(err, &conflict) {
			// Not a failure: the table's inserts are upserts now, and the
			// replay from the checkpoint applies what was rolled back.
			log.Info("an insert met a row already on the target; its table's inserts are upserts from now on, applying again from the checkpoint",
				"table", conflict.Table.String(), "key", conflict.Key, "lsn", conflict.LSN.String())
			continue
		}
		var stale *staleCatalog
		if errors.As(err, &stale) {
			log.Info("a change does not fit the tables as they were when the pipeline started (changed since?); reading them again and applying again from the checkpoint",
				"error", stale.Err.Error())
			continue
		}
		if !fault.Retryable(err) {
			return err
		}
		wait.ran(o.report)
		d := wait.next(o.MaxBackoff)
		log.Warn("pipeline stopped; restarting from the checkpoint", "error", err.Error(), "retry_in", d.Round(time.Millisecond).String())
		if o.Metrics != nil {
			o.Metrics.Restarts.WithLabelValues(o.Direction.String()).Inc()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// runReport is what Run learns from one run of the pipeline.
type runReport struct {
	streamed atomic.Int64 // when the stream came up (unix ns), 0 if it never did
	applied  atomic.Bool  // the checkpoint moved: changes were applied
}

// backoff spaces the restarts of a pipeline. The wait doubles from
// firstRetry up to the cap while the pipeline fails before streaming (a
// database that is down), and starts again from firstRetry once a run has
// streamed and either applied changes or streamed for stableStream: a fault
// after any stretch of healthy streaming costs a fraction of a second plus
// the time the database needs, whatever came before it. A run that fails
// soon after it came up without applying anything (an error that recurs at
// every start) does not reset it, so such a loop is not let spin. Each wait
// is jittered, so that the two directions and several daemons do not retry
// in step.
type backoff struct{ d time.Duration }

const (
	firstRetry   = 500 * time.Millisecond
	stableStream = 2 * time.Second
)

// ran takes in how the last run went.
func (b *backoff) ran(r *runReport) {
	at := r.streamed.Load()
	if at != 0 && (r.applied.Load() || time.Since(time.Unix(0, at)) >= stableStream) {
		b.d = 0
	}
}

// next returns the wait before the next start.
func (b *backoff) next(limit time.Duration) time.Duration {
	if b.d == 0 {
		b.d = firstRetry
	} else {
		b.d = min(2*b.d, limit)
	}
	return fault.Jitter(b.d)
}

// setup is what a start of the pipeline resolved.
type setup struct {
	read, write       *pgx.Conn
	readCat, writeCat *catalog.Catalog
	mapper            *transform.Mapper
	start             pglogrepl.LSN
	// plan is what the start decided about the mapping's entries (nil on
	// a first start: every entry starts with the pipeline).
	plan *entryPlan
}

func runOnce(ctx context.Context, o Options) (err error) {
	m, dir := o.Mapping, o.Direction
	log := o.Logger.With("component", "bridge", "direction", dir.String())
	readDSN, writeDSN := sides(m, dir)
	readSide, writeSide := dbconn.SideNames(dir)

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
	resolved, probs := check.Preflight(ctx, m, dir, s.read, s.write)
	if len(probs) > 0 {
		return &fault.FatalError{Err: &finding.ConfigError{Findings: probs}}
	}
	s.readCat, s.writeCat, s.mapper = resolved.ReadCat, resolved.WriteCat, resolved.Mapper
	slot, pub := m.SlotName(dir), m.PublicationName(dir)
	if err := replication.EnsurePublication(ctx, s.read, pub, m.SourceTables(dir)); err != nil {
		return fault.Classify(err)
	}
	if err := checkpoint.Ensure(ctx, s.write); err != nil {
		return fault.Classify(err)
	}
	if s.start, err = resume(ctx, o, s, readDSN, writeDSN, slot, log); err != nil {
		return err
	}
	// Entries new to the mapping are copied while the others stream (see
	// entryGate for how the two meet).
	var bf *backfill
	if s.plan != nil && len(s.plan.add) > 0 {
		if bf, err = prepareBackfill(ctx, o, s, s.plan, log); err != nil {
			return err
		}
		defer bf.close()
	}
	gate := newEntryGate(s.plan, transform.Specs(m, dir), bf)

	// Extra runtimes for the transform stage (see transformWorkers).
	mappers := []*transform.Mapper{s.mapper}
	if o.Mode == Live {
		for len(mappers) < transformWorkers(m) {
			mp, err := transform.New(transform.Specs(m, dir), transform.Options{Func: transform.FuncName(dir), Timeout: m.TransformTimeout,
				Read: s.readCat, Write: s.writeCat, Logger: o.Logger})
			if err != nil {
				return &fault.FatalError{Err: err}
			}
			mappers = append(mappers, mp)
		}
	}
	applier := apply.New(s.write, apply.Config{
		Name: m.Name, Direction: dir.String(), Origin: m.OriginName(dir),
		MaxRows: m.Batch.MaxRows, MaxDelay: m.Batch.MaxDelay,
		Catalog: s.writeCat, Logger: o.Logger, Observer: observer(o), Upserts: o.upserts,
		OwnIdleWrites: func() pglogrepl.LSN { return pglogrepl.LSN(ownIdle(m.Name, readSide).Load()) },
		IdleWritten: func(l pglogrepl.LSN) {
			w := ownIdle(m.Name, writeSide)
			for {
				cur := w.Load()
				if uint64(l) <= cur || w.CompareAndSwap(cur, uint64(l)) {
					return
				}
			}
		},
	}, s.start)
	if err := applier.Prepare(ctx); err != nil {
		return fault.Classify(err)
	}
	stream := replication.NewStream(replication.StreamConfig{
		ConnString:  readDSN.ConnString(),
		Slot:        slot,
		Publication: pub,
		SkipOrigin:  m.OwnsOrigin,
		OnStart:     func(pglogrepl.LSN) { o.report.streamed.CompareAndSwap(0, time.Now().UnixNano()) },
		Logger:      o.Logger,
	})

	log.Info("streaming", "mode", o.Mode.String(), "slot", slot, "start_lsn", s.start.String(), "read", readDSN.String(), "write", writeDSN.String())
	if o.Started != nil {
		o.Started(s.start)
	}
	if o.Metrics != nil {
		o.Metrics.Streaming.WithLabelValues(dir.String()).Set(1)
		defer o.Metrics.Streaming.WithLabelValues(dir.String()).Set(0)
	}
	if o.Health != nil && o.Mode == Live {
		// Not ready while entries are being copied, as during an initial copy.
		if bf == nil {
			o.Health.SetReady(true)
		}
		defer o.Health.SetReady(false)
	}

	// Stages: stream -> events -> transform -> outs -> apply. The stream
	// never closes events; this function does once the stream has returned,
	// and the transform stage closes outs, so on shutdown the applier drains
	// what arrived, commits the complete transactions and rolls back a
	// partial one.
	events := make(chan change.Event, 1024)
	outs := make(chan change.Event, 1024)
	applyCtx, cancelApply := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelApply()
	streamCtx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		if err == nil {
			return
		}
		errOnce.Do(func() { firstErr = err })
		cancelStream()
		cancelApply()
	}
	if bf != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A stop abandons the copy (run then returns ctx.Err()): the
			// next start does it again.
			if err := bf.run(streamCtx); err != nil {
				if !errors.Is(err, context.Canceled) {
					fail(fault.Classify(err))
				}
				return
			}
			if o.Health != nil {
				o.Health.SetReady(true)
			}
		}()
	}
	wg.Add(4)
	go func() {
		defer wg.Done()
		defer close(events)
		err := stream.Run(streamCtx, s.start, events, applier.Flushed)
		if streamCtx.Err() == nil {
			fail(fault.Classify(fmt.Errorf("streaming from the %s: %w", readSide, readDSN.Redact(err))))
		}
	}()
	go func() {
		defer wg.Done()
		defer close(outs)
		if o.Mode == Armed {
			fail(holdStage(applyCtx, o, events, outs))
			return
		}
		fail(transformStage(applyCtx, o, mappers, gate, events, outs))
	}()
	go func() {
		defer wg.Done()
		err := applier.Run(applyCtx, outs)
		if err != nil && o.rereads.first(err) {
			err = &staleCatalog{Err: err}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			fail(fault.Classify(writeDSN.Redact(err)))
		}
		// The applier has stopped: nothing more can be applied, so the
		// stream stops too (it may be blocked sending to a full channel).
		cancelStream()
	}()
	go func() {
		defer wg.Done()
		monitor(streamCtx, o, s.read, slot, applier)
	}()
	wg.Wait()
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

func observer(o Options) apply.Observer {
	if o.Metrics == nil {
		return nil
	}
	return metrics.ApplyObserver{M: o.Metrics, Direction: o.Direction.String()}
}

func sideName(dir config.Direction) string {
	r, _ := dbconn.SideNames(dir)
	return r
}

// transformStage maps every change through the transform. A failure halts
// (returns it) or, under the skip and deadletter policies, is logged and
// counted and the change is dropped or recorded. The gate (nil when no entry
// is being or was lately copied) drops what an entry's copy holds and holds
// back what must wait for a copy in progress; see entryGate.
func transformStage(ctx context.Context, o Options, mappers []*transform.Mapper, gate *entryGate, in <-chan change.Event, out chan<- change.Event) error {
	if len(mappers) == 1 {
		for ev := range in {
			var outs []change.Out
			var err error
			if ev.Kind == change.EvChange {
				outs, err = mappers[0].Map(ev.Change)
			}
			if done, err := passOn(ctx, o, gate, ev, outs, err, out); done || err != nil {
				return err
			}
		}
		return nil
	}
	// Several runtimes map ahead; what they return passes on in order.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for c := range mapAhead(ctx, mappers, in) {
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil
		}
		for i, ev := range c.evs {
			if done, err := passOn(ctx, o, gate, ev, c.outs[i], c.errs[i], out); done || err != nil {
				return err
			}
		}
	}
	return nil
}

// passOn applies the error policy and the gate to one mapped event and
// sends it on. It reports done when the stage is to stop.
func passOn(ctx context.Context, o Options, gate *entryGate, ev change.Event, outs []change.Out, err error, out chan<- change.Event) (done bool, _ error) {
	if ev.Kind == change.EvBegin && !gate.begin(ctx, ev.Txn) {
		return true, nil
	}
	if ev.Kind == change.EvChange {
		if err != nil && o.rereads.first(err) {
			return true, &staleCatalog{Err: err}
		}
		if err != nil {
			log := o.Logger.With("component", "transform", "direction", o.Direction.String())
			table := ""
			if ev.Change.Rel != nil {
				table = ev.Change.Rel.Table.String()
			}
			if o.Metrics != nil {
				o.Metrics.TransformErrors.WithLabelValues(o.Direction.String(), table).Inc()
			}
			switch o.Mapping.OnError {
			case config.PolicySkip:
				log.Error("transform failed; the change is skipped (on_error: skip)", "error", err.Error(), "lsn", ev.Change.LSN.String())
				if o.Metrics != nil {
					o.Metrics.Skipped.WithLabelValues(o.Direction.String(), table).Inc()
				}
				return false, nil
			case config.PolicyDeadletter:
				d, derr := deadletter.Row(o.Mapping, o.Direction, ev.Change, err)
				if derr != nil {
					return true, &fault.FatalError{Err: derr}
				}
				log.Error("transform failed; the change goes to cdcbridge.deadletter (on_error: deadletter)", "error", err.Error(), "lsn", ev.Change.LSN.String())
				if o.Metrics != nil {
					o.Metrics.Skipped.WithLabelValues(o.Direction.String(), table).Inc()
				}
				outs = []change.Out{d}
			default:
				return true, &fault.FatalError{Err: fmt.Errorf("%w; nothing at or after this change was applied (on_error: halt); fix the transform and restart", err)}
			}
		}
		outs = gate.filter(ev.Change, outs)
		ev.Change = nil
		ev.Outs = outs
		if len(outs) == 0 {
			return false, nil
		}
	}
	if ev.Kind == change.EvCommit && o.Applied != nil {
		o.Applied(ev.Txn.CommitTime)
	}
	select {
	case out <- ev:
	case <-ctx.Done():
		return true, nil
	}
	return false, nil
}

// holdStage is the middle stage of an armed pipeline. Positions pass to the
// applier, which checkpoints them (so the slot can advance); the first
// foreign transaction stops that: from its Begin on nothing passes, and the
// foreign transactions are only counted, so the checkpoint stays before the
// first of them.
func holdStage(ctx context.Context, o Options, in <-chan change.Event, out chan<- change.Event) error {
	log := o.Logger.With("component", "armed", "direction", o.Direction.String())
	var held control.ForeignWrites
	for ev := range in {
		if held.Txns == 0 && ev.Kind == change.EvPosition {
			select {
			case out <- ev:
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if ev.Kind != change.EvCommit {
			continue
		}
		if held.Txns == 0 {
			held.First, held.FirstAt = ev.Txn.FinalLSN, ev.Txn.CommitTime
			r, _ := dbconn.SideNames(o.Direction)
			log.Warn("the "+r+" is taking writes on mapped tables while traffic should flow the other way; holding the "+o.Direction.String()+" slot before them so a flip can carry them over",
				"first_lsn", held.First.String(), "first_at", held.FirstAt, "xid", ev.Txn.Xid)
		}
		held.Txns++
		if o.Foreign != nil {
			o.Foreign(held)
		}
	}
	return nil
}

// staleCatalog: a change failed in a way that tables altered since the
// pipeline started explain (a column added to the side written, a type
// changed). The pipeline restarts at once, reading the catalogs again; the
// same failure a second time is handled as any other.
type staleCatalog struct{ Err error }

func (e *staleCatalog) Error() string { return e.Err.Error() }
func (e *staleCatalog) Unwrap() error { return e.Err }

// rereads remembers, for the life of a pipeline, the failures that made it
// read the catalogs again: one re-read per mapping entry and column (or
// target table and SQLSTATE), so that a failure that is not about the
// catalogs costs one restart, not one per change.
type rereads struct {
	mu   sync.Mutex
	seen map[string]bool
}

// first reports whether err is about the tables' shape and is the first of
// its kind: then the caller re-reads the catalogs.
func (r *rereads) first(err error) bool {
	if r == nil {
		return false
	}
	var key string
	var te *transform.Error
	var ae *apply.Error
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &te) && te.Column != "" && te.Stack == "":
		key = "transform\x00" + te.Entry + "\x00" + te.Column
	case errors.As(err, &ae) && errors.As(err, &pg) && (pg.Code == pgerrcode.UndefinedColumn || pg.Code == pgerrcode.DatatypeMismatch || pg.Code == pgerrcode.UndefinedTable):
		// undefined column, datatype mismatch, undefined table
		key = "apply\x00" + ae.Table.String() + "\x00" + pg.Code + "\x00" + pg.ColumnName
	default:
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[key] {
		return false
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[key] = true
	return true
}
