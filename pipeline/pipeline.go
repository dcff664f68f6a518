package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/transform"
)

// Options configures Run.
type Options struct {
	Mapping   *config.Mapping
	Direction config.Direction
	Logger    *slog.Logger
	// Metrics and Health may be nil. The pipeline keeps its direction's
	// state in Health (Metrics.Health when nil): streaming, copying,
	// halted, and the transactions received and not yet applied.
	Metrics *metrics.Metrics
	Health  *metrics.Health
	// CopyProgressEvery is how often an initial copy (or the copy of
	// entries added to the mapping) logs its progress per table (default
	// 10s).
	CopyProgressEvery time.Duration
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
	// Hold, if set, delays the first start of an Armed direction (one with
	// no checkpoint yet): its slot is created at once, so that it holds
	// every write from then on, but it streams only once Hold is closed.
	// The daemon closes it when the live direction streams, so that the
	// live direction's initial copy is not read back (to be skipped by its
	// origin) while it runs, on the same machine. Later starts ignore it.
	Hold <-chan struct{}
	// Foreign, if set, is called in Armed mode when the stream holds foreign
	// writes, with what is known so far.
	Foreign func(control.ForeignWrites)
	// Applied, if set, is called in Live mode with the commit time of each
	// source transaction that reached the applier.
	Applied func(commit time.Time)
	// Scripts, if set, are the mapping's transforms compiled once (see
	// CompileScripts), shared by every runtime of the pipeline: the
	// transform stage's, the initial copy's and the backfill's. The daemon
	// compiles them once for both directions. nil compiles them at each
	// start.
	Scripts *transform.Scripts
	// Echoes, if set, is shared with the pipeline of the other direction,
	// so that each tells the other's checkpoint-only transactions from
	// real activity; the daemon hands both directions its own. nil: the
	// pipeline makes one of its own (it then sees no other's).
	Echoes *EchoTracker

	// upserts: the tables whose inserts met rows already on the target,
	// kept across restarts of the pipeline (see apply.Config.Upserts).
	upserts *apply.TableSet
	// ordered: the tables whose changes keep the source's exact order in
	// a target transaction (see apply.Config.Ordered), kept likewise.
	ordered *apply.TableSet
	// rereads: the failures for which the catalogs were read again.
	rereads *rereads
	// rejects: the changes the side written refused that the error
	// policy passes (see apply.Config.Rejects), kept likewise.
	rejects *apply.Rejects
	// report is filled in by a run for Run (see backoff).
	report *runReport
	// state is the direction's in Health.
	state *metrics.DirectionHealth
}

// view is the mapping seen from the pipeline's direction.
func (o Options) view() config.View { return o.Mapping.View(o.Direction) }

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
	log := o.Logger.With("component", "pipeline", "direction", o.Direction.String())
	if o.Metrics != nil {
		live := 0.0
		if o.Mode == Live {
			live = 1
		}
		o.Metrics.Direction.WithLabelValues(o.Direction.String()).Set(live)
	}
	if o.Echoes == nil {
		o.Echoes = &EchoTracker{}
	}
	if o.Health == nil {
		if o.Metrics != nil {
			o.Health = o.Metrics.Health
		} else {
			o.Health = &metrics.Health{}
		}
	}
	o.state = o.Health.Direction(o.Direction.String())
	o.state.SetApplying(o.Mode == Live)
	o.state.SetHalted(false)
	// What a stopped pipeline received and did not apply is received again
	// by the next one. A halted direction keeps it: it waits, and its lag
	// grows.
	o.state.ClearBacklog()
	o.upserts = &apply.TableSet{}
	o.ordered = &apply.TableSet{}
	o.rereads = &rereads{}
	o.rejects = newRejects(o)
	var wait backoff
	for {
		o.report = &runReport{}
		err := runOnce(ctx, o)
		if ctx.Err() != nil {
			o.state.ClearBacklog()
			return nil
		}
		err = o.Mapping.Redact(err)
		var conflict *apply.Conflict
		if errors.As(err, &conflict) && conflict.Ordered {
			// Not a failure: the table's changes keep the source's order
			// now, and the replay from the checkpoint applies them so.
			log.Info("a unique constraint failed on changes grouped out of the source's order; that table's changes keep the source's order from now on, applying again from the checkpoint",
				"table", conflict.Table.String(), "key", conflict.Key, "lsn", conflict.LSN.String(), "error", conflict.Err.Error())
			continue
		}
		if errors.As(err, &conflict) {
			// Not a failure: the table's inserts are upserts now, and the
			// replay from the checkpoint applies what was rolled back.
			log.Info("an insert met a row already on the target; its table's inserts are upserts from now on, applying again from the checkpoint",
				"table", conflict.Table.String(), "key", conflict.Key, "lsn", conflict.LSN.String())
			continue
		}
		if rejected, ok := o.reject(err, log); ok {
			if rejected != nil {
				// Halted just before a bad change's transaction.
				o.state.SetHalted(true)
				return rejected
			}
			continue
		}
		var stale *staleCatalog
		if errors.As(err, &stale) {
			log.Info("a change does not fit the tables as they were when the pipeline started (changed since?); reading them again and applying again from the checkpoint",
				"error", stale.Err.Error())
			continue
		}
		if !Retryable(err) {
			// Halted: nothing at or after the failed change is applied.
			o.state.SetHalted(true)
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
			o.state.ClearBacklog()
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

// CompileScripts compiles the transforms of m once, for the pipelines of
// both directions (forward and backward are defined by the same files). It
// returns nil when a script cannot be read or compiled: then each start
// compiles the scripts again, and its checks report the error as they
// report every other problem of the mapping, with the same text.
func CompileScripts(m *config.Mapping) *transform.Scripts {
	scripts, err := transform.Compile(transform.Specs(m.View(config.Forward)))
	if err != nil {
		return nil
	}
	return scripts
}
