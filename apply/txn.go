package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
)

// item describes a queued statement, for errors and row counts.
type item struct {
	kind   itemKind
	run    *run
	trunc  []change.Table
	walEnd *pglogrepl.LSN
}

// itemKind says what a queued statement does.
type itemKind uint8

const (
	itemBegin      itemKind = iota + 1 // BEGIN of a target transaction
	itemRows                           // a run of rows (item.run)
	itemTruncate                       // a TRUNCATE of item.trunc
	itemOrigin                         // tagging the transaction with the origin and the source commit
	itemCheckpoint                     // the checkpoint row's update
	itemCommit                         // COMMIT
	itemWALEnd                         // reading into item.walEnd the WAL position after a checkpoint-only commit
)

// String names the kind as errors show it.
func (k itemKind) String() string {
	switch k {
	case itemBegin:
		return "begin"
	case itemRows:
		return "rows"
	case itemTruncate:
		return "truncate"
	case itemOrigin:
		return "origin"
	case itemCheckpoint:
		return "checkpoint"
	case itemCommit:
		return "commit"
	case itemWALEnd:
		return "walend"
	}
	return fmt.Sprintf("itemKind(%d)", uint8(k))
}

func (a *Applier) begin() {
	a.open = true
	a.txStart = time.Now()
	a.txRows, a.txTxns = 0, 0
	a.pending = 0
	a.queue("BEGIN", item{kind: itemBegin})
}

func (a *Applier) queue(sql string, it item, args ...any) {
	a.batch.Queue(sql, args...)
	a.items = append(a.items, it)
}

// idleCheckpoint persists a position reached without changes, at most once
// per IdleCheckpoint unless it moved IdleBytes or force is set.
func (a *Applier) idleCheckpoint(ctx context.Context, force bool) error {
	if a.open || a.inSrc || a.position <= a.reached() {
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
	a.pending = a.position
	a.pendingAt = time.Now()
	a.idleCommit = true
	return a.commit(ctx)
}

// ownSlack is how far past the bridge's own idle writes a position may be
// and still count as their echo (other sessions' WAL in between included).
const ownSlack = 16 << 10

func (a *Applier) commit(ctx context.Context) error {
	if !a.open {
		return nil
	}
	if a.pending == 0 {
		// Nothing complete to commit (cannot happen between transactions).
		return errors.New("internal error: committing a target transaction without a source position")
	}
	a.flushRun()
	a.queue("SELECT pg_replication_origin_xact_setup($1::text::pg_lsn, $2)", item{kind: itemOrigin}, a.pending.String(), a.pendingAt)
	a.queue(checkpoint.Statement, item{kind: itemCheckpoint}, a.cfg.Name, a.cfg.Direction, a.pending.String())
	a.queue("COMMIT", item{kind: itemCommit})
	walEnd := new(pglogrepl.LSN)
	if a.idleCommit && a.cfg.IdleWritten != nil {
		a.queue("SELECT pg_current_wal_insert_lsn()::text", item{kind: itemWALEnd, walEnd: walEnd})
	}
	idle, began, pending, pendingAt, txns := a.idleCommit, a.txStart, a.pending, a.pendingAt, a.txTxns
	a.idleCommit = false
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
	a.open = false
	a.handed = pending
	a.lastCkpt = time.Now()
	a.ownSeen = false
	return nil
}

func (a *Applier) rollback() {
	if f := a.inflight; f != nil {
		f.cancel()
		<-f.done
		a.inflight = nil
	}
	a.batch = &pgx.Batch{}
	a.items = a.items[:0]
	a.queued = 0
	a.cur = nil
	a.open = false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !a.conn.IsClosed() {
		a.conn.Exec(ctx, "ROLLBACK")
	}
}
