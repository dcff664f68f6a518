package pipeline

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/deadletter"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/transform"
)

// newRejects makes the set of the changes the side written refused that
// the mapping's error policy passes: none under halt.
func newRejects(o Options) *apply.Rejects {
	r := &apply.Rejects{}
	if o.Mapping.OnError == config.PolicyDeadletter {
		name, dir := o.Mapping.Name, o.Direction
		r.Deadletter = func(out *change.Out, cause string) change.Out {
			return deadletter.FromOut(name, dir, out, cause)
		}
	}
	return r
}

// reject applies the error policy to a change the side written refused
// (apply.Rejected): under skip or deadletter it is recorded, logged and
// counted, and the pipeline applies again from the checkpoint without it
// (handled, nil). Under halt, or once more than max_consecutive_errors
// changes in a row were refused, the direction halts just before the
// change's source transaction: two replays from the checkpoint find that
// transaction (apply.ErrReplay) and then commit everything before it
// (apply.Halted), which ends the pipeline with the error (handled, the
// error to return). Any other error is not handled here.
func (o Options) reject(err error, log *slog.Logger) (stop error, handled bool) {
	var halted *apply.Halted
	if errors.As(err, &halted) {
		return &fault.FatalError{Err: halted.Err}, true
	}
	if errors.Is(err, apply.ErrReplay) {
		return nil, true
	}
	var hb *transform.HaltBefore
	if errors.As(err, &hb) {
		if !o.rejects.HaltAtTxn(hb.Final, hb.Err) {
			return &fault.FatalError{Err: hb.Err}, true
		}
		log.Info("a change failed to transform; applying again from the checkpoint to halt just before its source transaction", "lsn", hb.Final.String())
		return nil, true
	}
	ae, ok := apply.Rejected(err)
	if !ok {
		return nil, false
	}
	policy := o.Mapping.OnError
	var halt error
	streak := 1
	if policy != config.PolicySkip && policy != config.PolicyDeadletter {
		halt = fmt.Errorf("%w; halting before this change's source transaction: every transaction before it is applied, nothing at or after it (on_error: halt); fix the side written or the transform and start again", err)
	} else {
		limit := o.Mapping.MaxConsecutiveErrors
		if limit <= 0 {
			limit = config.DefaultMaxConsecutiveErrors
		}
		streak = o.rejects.Add(ae, err.Error())
		if streak > limit {
			halt = fmt.Errorf("%w; %d changes in a row were refused by the side written, more than max_consecutive_errors (%d): halting before this change's source transaction, nothing at or after it applied (on_error: %s); fix the side written or the transform and start again", err, streak, limit, policy)
		}
	}
	if halt != nil {
		if !o.rejects.Halt(ae, halt) {
			return &fault.FatalError{Err: halt}, true
		}
		log.Info("the side written refused a change; applying again from the checkpoint to halt just before its source transaction",
			"table", ae.Table.String(), "key", ae.Key, "lsn", ae.LSN.String())
		return nil, true
	}
	where := "skipped (on_error: skip)"
	if policy == config.PolicyDeadletter {
		where = "written to cdcbridge.deadletter instead (on_error: deadletter)"
	}
	log.Error("the side written refused a change; it is "+where+", applying again from the checkpoint",
		"table", ae.Table.String(), "key", ae.Key, "lsn", ae.LSN.String(), "error", err.Error(), "in_a_row", streak)
	if o.Metrics != nil {
		o.Metrics.Skipped.WithLabelValues(o.Direction.String(), ae.Table.String()).Inc()
	}
	return nil, true
}
