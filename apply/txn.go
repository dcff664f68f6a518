package apply

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/checkpoint"
)

// txn is the target transaction: its state, and what its commit records.
type txn struct {
	state     txState
	began     time.Time
	rows      int           // rows in it
	txns      int           // source transactions in it
	pending   pglogrepl.LSN // end LSN its commit will checkpoint
	pendingAt time.Time     // commit time of the source transaction that ends at pending
}

// srcState is where the stream of events stands in source transactions.
type srcState uint8

const (
	srcBetween  srcState = iota // between source transactions
	srcApplying                 // inside one whose changes are applied
	srcSkipping                 // inside one already on the target (its commit lies before start)
)

// txState is the state of the target transaction. A source transaction
// being skipped may come while one is open, so the two are kept apart.
type txState uint8

const (
	txNone           txState = iota // none open
	txOpen                          // BEGIN queued or sent: source transactions go into it
	txCheckpointOnly                // opened to write only the checkpoint of a position reached without changes
	txAborted                       // a batch failed, perhaps its COMMIT: the server's transaction, if any, is aborted and only a rollback follows
)

// open reports whether a target transaction is open to add to or commit.
func (s txState) open() bool { return s == txOpen || s == txCheckpointOnly }

func (a *Applier) begin() {
	a.tx.state = txOpen
	a.tx.began = time.Now()
	a.tx.rows, a.tx.txns = 0, 0
	a.tx.pending = 0
	clear(a.build.reordered)
	a.build.queue("BEGIN", item{kind: itemBegin})
}

// idleCheckpoint persists a position reached without changes, at most once
// per IdleCheckpoint unless it moved IdleBytes or force is set.
func (a *Applier) idleCheckpoint(ctx context.Context, force bool) error {
	if a.tx.state.open() || a.src != srcBetween || a.position <= a.reached() {
		return nil
	}
	// A position that passed only the bridge's own transactions (the other
	// direction's writes, or its checkpoints) is not written for its own
	// sake: each write would be one more of the bridge's transactions on
	// the other side, which would write one back, for ever. It waits for
	// real activity, IdleBytes of echo, or the server asking.
	own := a.ownSeen || (a.cfg.OwnIdleWrites != nil && a.position <= a.cfg.OwnIdleWrites()+ownSlack)
	moved := uint64(a.position - a.reached())
	if !force && moved < a.cfg.IdleBytes && (own || time.Since(a.lastCkpt) < a.cfg.IdleCheckpoint) {
		return nil
	}
	a.begin()
	a.tx.pending = a.position
	a.tx.pendingAt = time.Now()
	a.tx.state = txCheckpointOnly
	return a.commit(ctx)
}

// ownSlack is how far past the bridge's own idle writes a position may be
// and still count as their echo (other sessions' WAL in between included).
const ownSlack = 16 << 10

func (a *Applier) commit(ctx context.Context) error {
	if !a.tx.state.open() {
		return nil
	}
	if a.tx.pending == 0 {
		// Nothing complete to commit (cannot happen between transactions).
		return errors.New("internal error: committing a target transaction without a source position")
	}
	a.build.flushAll()
	a.build.queue("SELECT pg_replication_origin_xact_setup($1::pg_lsn, $2)", item{kind: itemOrigin}, a.tx.pending, a.tx.pendingAt)
	a.build.queue(checkpoint.Statement, item{kind: itemCheckpoint}, a.cfg.Name, a.cfg.Direction, a.tx.pending)
	a.build.queue("COMMIT", item{kind: itemCommit})
	walEnd := new(pglogrepl.LSN)
	idle := a.tx.state == txCheckpointOnly
	if idle && a.cfg.IdleWritten != nil {
		a.build.queue("SELECT pg_current_wal_insert_lsn()", item{kind: itemWALEnd, walEnd: walEnd})
	}
	began, pending, pendingAt, txns := a.tx.began, a.tx.pending, a.tx.pendingAt, a.tx.txns
	// Only once the COMMIT has succeeded does Flushed move.
	after := func() {
		a.flushed.Store(uint64(pending))
		if idle && a.cfg.IdleWritten != nil && *walEnd != 0 {
			a.cfg.IdleWritten(*walEnd)
		}
		if a.cfg.Observer != nil {
			a.cfg.Observer.Committed(txns, pending, pendingAt, time.Since(began))
		}
	}
	if err := a.sendThen(ctx, after); err != nil {
		return err
	}
	a.tx.state = txNone
	a.handed = pending
	a.lastCkpt = time.Now()
	a.ownSeen = false
	return nil
}

func (a *Applier) rollback() {
	if f := a.inflight; f != nil {
		f.cancel()
		a.learn(<-f.done)
		a.inflight = nil
	}
	a.build.items = a.build.items[:0]
	a.build.queued, a.build.bytes = 0, 0
	clear(a.build.open)
	a.build.open = a.build.open[:0]
	a.tx.state = txNone
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !a.conn.IsClosed() {
		a.conn.Exec(ctx, "ROLLBACK")
	}
}
