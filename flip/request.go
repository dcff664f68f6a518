package flip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/fault"
)

// Request flips the mapping to the direction that is not live. When a
// daemon runs (it holds the locks of the directions), the flip is handed to
// it through the state and Request waits up to timeout for its answer;
// otherwise Request takes the locks and flips by itself.
//
// gap is how far past the old live side's sequences the new live side's are
// set when Request flips by itself (the daemon uses its own setting).
func Request(ctx context.Context, m *config.Mapping, policy control.ForeignPolicy, timeout time.Duration, gap int64, log *slog.Logger) (Result, error) {
	state, err := dbconn.Connect(ctx, m.Target.DSN, "target")
	if err != nil {
		return Result{}, err
	}
	defer state.Close(context.Background())
	st, err := control.Load(ctx, state, m.Name)
	if err != nil {
		return Result{}, err
	}
	to := st.Live.Opposite()
	id, err := control.RequestFlip(ctx, state, m.Name, to, policy, timeout)
	if err != nil {
		return Result{}, err
	}
	// Is a daemon there to carry it out? It holds the mapping's daemon lock
	// on the target for its life.
	err = control.LockDaemon(ctx, state, m.Name, 0)
	var locks func()
	if err == nil {
		locks, err = control.LockDirections(ctx, m)
	}
	if err == nil {
		defer locks()
		sync := func(ctx context.Context, from config.Direction) error { return SyncSequences(ctx, m, from, gap) }
		return CarryOut(ctx, m, to, policy, id, sync, log)
	}
	if !errors.Is(err, checkpoint.ErrLocked) {
		return Result{}, err
	}
	// The request is the daemon's to carry out until the deadline. Past
	// it, a request the daemon has not begun is withdrawn (and would have
	// expired anyway): a flip the operator gave up on must never happen
	// later by surprise. One the daemon has begun is waited for.
	deadline := time.Now().Add(timeout)
	for {
		st, err := control.Load(ctx, state, m.Name)
		if err != nil {
			return Result{}, err
		}
		if st.AnsweredID >= id {
			return Result{OK: st.AnswerOK, To: to, Point: st.FlipLSN, Message: st.Answer}, nil
		}
		if time.Now().After(deadline) && st.ClaimedID < id {
			msg := fmt.Sprintf("withdrawn: the daemon did not take the flip request up within %s", timeout)
			withdrawn, err := control.Withdraw(context.WithoutCancel(ctx), state, m.Name, id, msg)
			if err != nil {
				return Result{}, err
			}
			if withdrawn {
				return Result{}, &fault.RetryableError{Err: fmt.Errorf("the daemon did not take the flip request up within %s (is it running and connected to the target?); the request is withdrawn and will not be carried out later: ask again with `cdcbridge flip`", timeout)}
			}
			continue // claimed or answered meanwhile
		}
		if time.Now().After(deadline) && st.ClaimedID >= id {
			// Begun: is the daemon that began it still there?
			if err := control.LockDaemon(ctx, state, m.Name, 0); err == nil {
				AnswerInterrupted(context.WithoutCancel(ctx), state, m.Name, id)
				return Result{}, &fault.RetryableError{Err: errors.New("the daemon stopped while carrying out the flip; `cdcbridge status` shows the live direction: ask again once a daemon runs")}
			} else if !errors.Is(err, checkpoint.ErrLocked) {
				return Result{}, err
			}
		}
		if time.Now().After(deadline.Add(claimedWait)) {
			return Result{}, fmt.Errorf("the daemon began the flip but has not finished it within %s; `cdcbridge status` shows its outcome", timeout+claimedWait)
		}
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// AnswerInterrupted answers flip request id as interrupted: the daemon
// that claimed it stopped while carrying it out, and the flip did not take
// effect (a flip that did is answered as it is recorded). It is not carried
// out later: the operator asks again.
func AnswerInterrupted(ctx context.Context, db control.DB, name string, id int64) error {
	return control.Answer(ctx, db, name, id, false, "interrupted: the daemon stopped while carrying out this flip, which did not take effect; ask again")
}

// claimedWait is how much longer than its timeout the flip command
// waits for a flip that the daemon has begun.
const claimedWait = 2 * time.Minute
