package pipeline

import (
	"context"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/control"
)

// holdStage is the middle stage of an armed pipeline. Positions pass to the
// applier, which checkpoints them (so the slot can advance); the first
// foreign transaction stops that: from its Begin on nothing passes, and the
// foreign transactions are only counted, so the checkpoint stays before the
// first of them.
func holdStage(ctx context.Context, o Options, in <-chan change.Event, out chan<- change.Event, budget *change.Budget) error {
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
		ev.Release(budget)
		if ev.Kind != change.EvCommit {
			continue
		}
		if held.Txns == 0 {
			held.First, held.FirstAt = ev.Txn.FinalLSN, ev.Txn.CommitTime
			r := o.view().ReadName
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
