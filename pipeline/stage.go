package pipeline

import (
	"context"
	"fmt"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/deadletter"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/transform"
)

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
