package apply

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/change"
)

// Rejected reports whether err is a change the side written refused
// because of its values (a CHECK or NOT NULL violation, a value out of
// range, a trigger that raised) and the row at fault is known: a change
// that an error policy may skip or dead-letter. A statement that failed as
// a whole, with no single row to blame, is not one.
func Rejected(err error) (*Error, bool) {
	var ae *Error
	var pg *pgconn.PgError
	if !errors.As(err, &ae) || !errors.As(err, &pg) || !rowError(pg.Code) {
		return nil, false
	}
	if ae.Rows > 1 || ae.LSN == 0 || ae.Op == change.Truncate {
		return nil, false
	}
	return ae, true
}

// Rejects holds, for the life of a pipeline, the changes the side written
// refused and that the mapping's error policy lets pass (skip or
// deadletter). The pipeline adds each one after the failure rolled its
// target transaction back, and restarts from the checkpoint; the applier
// then leaves the change out of the replay, or writes it to the dead-letter
// table instead when Deadletter is set. Safe for concurrent use.
type Rejects struct {
	// Deadletter, when set, turns a rejected change into the row it writes
	// to the dead-letter table in its place (in the same target
	// transaction, so with the checkpoint that passes the change).
	Deadletter func(o *change.Out, cause string) change.Out

	// used is set once anything is recorded: until then every change
	// passes without taking mu (the common case, on the hot path).
	used atomic.Bool

	mu sync.Mutex
	m  map[rejectKey]string // the change's error, as logged
	// halt: the change the direction halts before (on_error: halt, or one
	// too many in a row), with its error; haltTxn, the commit LSN of its
	// source transaction once a replay has met it.
	halt    *rejectKey
	haltErr error
	haltTxn pglogrepl.LSN
	// lastMet is the LSN of the latest rejected change the applier met;
	// goodAfter, of the first change after it that it applied, 0 if none.
	lastMet, goodAfter pglogrepl.LSN
	streak             int
}

type rejectKey struct {
	lsn   pglogrepl.LSN
	table change.Table
}

// Add records the change e names as rejected with the error text cause,
// and returns how many changes in a row have now been rejected: 1 when a
// change was applied between the last one rejected and this one.
func (r *Rejects) Add(e *Error, cause string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.used.Store(true)
	if r.m == nil {
		r.m = map[rejectKey]string{}
	}
	r.m[rejectKey{e.LSN, e.Table}] = cause
	if r.lastMet != 0 && r.lastMet < e.LSN && (r.goodAfter == 0 || r.goodAfter >= e.LSN) {
		r.streak++
	} else {
		r.streak = 1
	}
	return r.streak
}

// meet is called by the applier for each change it is about to apply: it
// reports whether the change was rejected (and so is left out), with the
// error it was rejected with.
func (r *Rejects) meet(o *change.Out) (cause string, rejected bool) {
	if r == nil || !r.used.Load() {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cause, rejected = r.m[rejectKey{o.LSN, o.Table}]
	switch {
	case rejected && o.LSN >= r.lastMet:
		if o.LSN > r.lastMet {
			r.goodAfter = 0
		}
		r.lastMet = o.LSN
	case !rejected && o.LSN > r.lastMet && (r.goodAfter == 0 || o.LSN < r.goodAfter):
		r.goodAfter = o.LSN
	}
	return cause, rejected
}

// Halt records the change e names as the one the direction halts before,
// with the error to halt with. The pipeline then applies again from the
// checkpoint: the replay learns which source transaction holds the change
// (ErrReplay), and the next one commits every transaction before it and
// returns Halted. It reports false when a halt is already recorded.
func (r *Rejects) Halt(e *Error, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.halt != nil {
		return false
	}
	r.used.Store(true)
	r.halt, r.haltErr = &rejectKey{e.LSN, e.Table}, err
	return true
}

// ErrReplay is returned by an applier that met the change the direction
// halts before and learned its source transaction: the pipeline applies
// again from the checkpoint, to stop just before that transaction.
var ErrReplay = errors.New("the change to halt before is found; applying again from the checkpoint to stop just before its transaction")

// Halted is returned by an applier that committed every source
// transaction before the one holding the change to halt before.
type Halted struct{ Err error }

func (h *Halted) Error() string { return h.Err.Error() }
func (h *Halted) Unwrap() error { return h.Err }

// haltsAt reports whether the source transaction with commit LSN final is
// the one the direction halts before, and the error to halt with.
func (r *Rejects) haltsAt(final pglogrepl.LSN) (error, bool) {
	if r == nil || !r.used.Load() {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.haltTxn == 0 || r.haltTxn != final {
		return nil, false
	}
	return r.haltErr, true
}

// haltsOn reports whether o is the change to halt before, and records the
// source transaction that holds it.
func (r *Rejects) haltsOn(o *change.Out, txn pglogrepl.LSN) bool {
	if r == nil || !r.used.Load() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.halt == nil || *r.halt != (rejectKey{o.LSN, o.Table}) {
		return false
	}
	r.haltTxn = txn
	return true
}

// HaltAtTxn records the source transaction with commit LSN final as the
// one the direction halts before, with the error to halt with: the next
// replay from the checkpoint commits every transaction before it and ends
// with Halted. It reports false when a halt is already recorded.
func (r *Rejects) HaltAtTxn(final pglogrepl.LSN, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.halt != nil || r.haltTxn != 0 {
		return false
	}
	r.used.Store(true)
	r.haltTxn, r.haltErr = final, err
	return true
}

// HaltsAt reports whether the direction halts just before the source
// transaction with commit LSN final.
func (r *Rejects) HaltsAt(final pglogrepl.LSN) bool {
	_, ok := r.haltsAt(final)
	return ok
}
