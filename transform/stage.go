package transform

import (
	"context"
	"fmt"
	"github.com/jackc/pglogrepl"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/deadletter"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/metrics"
)

// Stage is the transform stage of a pipeline: it reads the events of one
// direction's stream, maps every change through its Mappers, applies the
// mapping's error policy (on_error) to the changes that fail, and sends the
// events on, each change replaced by its writes.
//
// The contract of Run:
//   - Order is kept: events leave in the order they arrived, whatever the
//     number of Mappers (several map ahead, see Workers).
//   - Run never closes out; the caller closes it once Run has returned (the
//     applier then drains what arrived). Run returns when in is closed, when
//     ctx ends (nil: the caller stops), when the Gate stops it (nil), or at
//     the first error.
//   - A change that fails halts the stage under on_error: halt: Run returns
//     a *fault.FatalError before sending the failed change's transaction on,
//     so nothing at or after it is applied. Under skip the change is logged,
//     counted and dropped; under deadletter it is replaced by a row of
//     cdcbridge.deadletter (a row that cannot be built halts); once more
//     than the mapping's MaxConsecutiveErrors changes in a row have failed,
//     the stage halts as under halt (the count starts again at each change
//     that maps, and at each start of the stage). Restart, if
//     set, sees each failure first and may stop the stage with an error of
//     its own instead.
//   - A change none of whose writes survives (none mapped, skipped, or all
//     dropped by the Gate) is not sent; Begin, Commit and Position events
//     are, and Committed is called for each Commit.
//   - Run owns every goroutine it starts (with several Mappers, one per
//     Mapper and one that deals the events out to them) and waits for all
//     of them before it returns, whatever it returns: none outlives Run,
//     and none reads in after Run has returned.
type Stage struct {
	// Mappers map the changes; with more than one they map ahead of the
	// stage, each on a goroutine of its own. At least one is needed.
	Mappers []*Mapper
	// Mapping gives the error policy (OnError) and, under deadletter, the
	// rows' entry names; Direction is the direction mapped.
	Mapping   *config.Mapping
	Direction config.Direction
	// Logger receives the failures that are skipped or dead-lettered.
	Logger *slog.Logger
	// Metrics, if set, counts failures and skipped changes.
	Metrics *metrics.Metrics
	// Gate, if set, may hold a transaction back or stop the stage at its
	// Begin, and drops writes from a mapped change.
	Gate Gate
	// Restart, if set, is asked about each failure before the policy
	// applies: a non-nil error it returns ends Run with that error (a
	// typed signal for the caller, such as a replay with fresh catalogs).
	Restart func(error) error
	// Committed, if set, is called with the commit time of each
	// transaction sent on.
	Committed func(commit time.Time)
	// Budget, if set, is the pipeline's byte budget: an event the stage
	// does not send on gives back what it holds (change.Budget).
	Budget *change.Budget

	// HaltAt, if set, is asked at each Begin whether the direction halts
	// just before that source transaction (by its commit LSN): the stage
	// then sends the Begin on and stops, and the applier, meeting it,
	// commits what came before and ends with the halt (apply.Halted).
	HaltAt func(final pglogrepl.LSN) bool

	// failing counts the changes in a row that failed to map.
	failing int
}

// HaltBefore is the error of a stage that halts on a change it cannot map:
// Final is the commit LSN of the change's source transaction, before which
// the pipeline can stop with every earlier transaction applied (HaltAt).
type HaltBefore struct {
	Final pglogrepl.LSN
	Err   error
}

func (h *HaltBefore) Error() string { return h.Err.Error() }
func (h *HaltBefore) Unwrap() error { return h.Err }

// Gate decides, beside the mapping, what passes the stage. It is used from
// the stage's goroutine only.
type Gate interface {
	// Begin is called with each transaction before its Begin passes; false
	// stops the stage (Run returns nil).
	Begin(ctx context.Context, txn *change.Txn) bool
	// Filter returns the writes of a mapped change that pass.
	Filter(ch *change.Change, outs []change.Out) []change.Out
}

// Run runs the stage until in is closed, ctx ends or it halts; see Stage.
func (s *Stage) Run(ctx context.Context, in <-chan change.Event, out chan<- change.Event) error {
	if len(s.Mappers) == 1 {
		for ev := range in {
			var outs []change.Out
			var err error
			if ev.Kind == change.EvChange {
				outs, err = s.Mappers[0].Map(ev.Change)
			}
			if done, err := s.passOn(ctx, ev, outs, err, out); done || err != nil {
				return err
			}
		}
		return nil
	}
	// Several runtimes map ahead; what they return passes on in order.
	// Their goroutines are cancelled, then waited for, on every return.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for c := range mapAhead(ctx, &wg, s.Mappers, in) {
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil
		}
		for i, ev := range c.evs {
			if done, err := s.passOn(ctx, ev, c.outs[i], c.errs[i], out); done || err != nil {
				return err
			}
		}
	}
	return nil
}

// passOn applies the error policy and the gate to one mapped event and
// sends it on. It reports done when the stage is to stop.
func (s *Stage) passOn(ctx context.Context, ev change.Event, outs []change.Out, err error, out chan<- change.Event) (done bool, _ error) {
	sent := false
	defer func() {
		if !sent {
			ev.Release(s.Budget)
		}
	}()
	if ev.Kind == change.EvBegin && s.Gate != nil && !s.Gate.Begin(ctx, ev.Txn) {
		return true, nil
	}
	if ev.Kind == change.EvBegin && s.HaltAt != nil && s.HaltAt(ev.Txn.FinalLSN) {
		select {
		case out <- ev:
			sent = true
		case <-ctx.Done():
		}
		return true, nil
	}
	if ev.Kind == change.EvChange {
		if err != nil && s.Restart != nil {
			if rerr := s.Restart(err); rerr != nil {
				return true, rerr
			}
		}
		if err == nil {
			s.failing = 0
		} else {
			log := s.Logger.With("component", "transform", "direction", s.Direction.String())
			table := ""
			if ev.Change.Rel != nil {
				table = metrics.TableLabel(ev.Change.Rel.Table)
			}
			if s.Metrics != nil {
				s.Metrics.TransformErrors.WithLabelValues(s.Direction.String(), table).Inc()
			}
			s.failing++
			if limit := s.Mapping.MaxConsecutiveErrors; s.Mapping.OnError != config.PolicyHalt && limit > 0 && s.failing > limit {
				return true, &fault.FatalError{Err: &HaltBefore{Final: ev.Txn.FinalLSN, Err: fmt.Errorf("%w; %d changes in a row failed to transform, more than max_consecutive_errors (%d): halting just before this change's source transaction, nothing at or after it applied (on_error: %s); fix the transform and reload", err, s.failing, limit, s.Mapping.OnError)}}
			}
			switch s.Mapping.OnError {
			case config.PolicySkip:
				log.Error("transform failed; the change is skipped (on_error: skip)", "error", err.Error(), "lsn", ev.Change.LSN.String())
				if s.Metrics != nil {
					s.Metrics.Skipped.WithLabelValues(s.Direction.String(), table).Inc()
				}
				return false, nil
			case config.PolicyDeadletter:
				d, derr := deadletter.Row(s.Mapping, s.Direction, ev.Change, err)
				if derr != nil {
					return true, &fault.FatalError{Err: derr}
				}
				log.Error("transform failed; the change goes to cdcbridge.deadletter (on_error: deadletter)", "error", err.Error(), "lsn", ev.Change.LSN.String())
				if s.Metrics != nil {
					s.Metrics.Skipped.WithLabelValues(s.Direction.String(), table).Inc()
				}
				outs = []change.Out{d}
			default:
				return true, &fault.FatalError{Err: &HaltBefore{Final: ev.Txn.FinalLSN, Err: fmt.Errorf("%w; halting just before this change's source transaction, nothing at or after it applied (on_error: halt); fix the transform and reload", err)}}
			}
		}
		if s.Gate != nil {
			outs = s.Gate.Filter(ev.Change, outs)
		}
		ev.Change = nil
		ev.Outs = outs
		if len(outs) == 0 {
			return false, nil
		}
	}
	if ev.Kind == change.EvCommit && s.Committed != nil {
		s.Committed(ev.Txn.CommitTime)
	}
	select {
	case out <- ev:
		sent = true
	case <-ctx.Done():
		return true, nil
	}
	return false, nil
}

// Workers is how many JavaScript runtimes map the changes of one
// direction at once: one per CPU, up to 4, when any entry has a script (a
// runtime runs one call at a time, and the scripts are most of the CPU a
// change costs); 1 when no entry has one. Each runtime has its own globals,
// as the initial copy's workers do: a script must not count on state kept
// between calls.
func Workers(m *config.Mapping) int {
	for _, e := range m.Tables {
		if e.Transform != "" {
			return min(runtime.GOMAXPROCS(0), 4)
		}
	}
	return 1
}

// chunk is a run of consecutive events, mapped by one runtime.
type chunk struct {
	evs  []change.Event
	outs [][]change.Out // of each EvChange
	errs []error
	done chan struct{} // closed once mapped
}

// chunkSize caps a chunk; a chunk takes only the events already waiting,
// so a lone change is not held back for others.
const chunkSize = 256

// mapAhead maps the changes read from in on the given runtimes at once and
// hands the chunks on in stream order; a chunk's done is closed once every
// change in it is mapped. The returned channel is closed after in is, or
// once ctx ends; each runtime's goroutine ends after the chunk it is
// mapping then. Every goroutine it starts is added to wg: the caller
// cancels ctx and then waits on wg, so that none outlives it.
func mapAhead(ctx context.Context, wg *sync.WaitGroup, mappers []*Mapper, in <-chan change.Event) <-chan *chunk {
	ordered := make(chan *chunk, 2*len(mappers))
	work := make([]chan *chunk, len(mappers))
	for i, mp := range mappers {
		work[i] = make(chan *chunk, 1)
		wg.Go(func() {
			for c := range work[i] {
				for j := range c.evs {
					if c.evs[j].Kind == change.EvChange {
						c.outs[j], c.errs[j] = mp.Map(c.evs[j].Change)
					}
				}
				close(c.done)
			}
		})
	}
	wg.Go(func() {
		defer close(ordered)
		defer func() {
			for _, w := range work {
				close(w)
			}
		}()
		for next := 0; ; next = (next + 1) % len(work) {
			// Waiting on in heeds ctx too: in may stay open after the
			// stage has stopped, and the stage waits for this goroutine.
			var ev change.Event
			var ok bool
			select {
			case ev, ok = <-in:
			case <-ctx.Done():
				return
			}
			if !ok {
				return
			}
			c := &chunk{evs: []change.Event{ev}}
			closed := false
		fill:
			for len(c.evs) < chunkSize {
				select {
				case ev, ok := <-in:
					if !ok {
						closed = true
						break fill
					}
					c.evs = append(c.evs, ev)
				default:
					break fill
				}
			}
			c.outs, c.errs, c.done = make([][]change.Out, len(c.evs)), make([]error, len(c.evs)), make(chan struct{})
			select {
			case work[next] <- c:
			case <-ctx.Done():
				return
			}
			select {
			case ordered <- c:
			case <-ctx.Done():
				return
			}
			if closed {
				return
			}
		}
	})
	return ordered
}
