package apply

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
)

// Observer receives what the applier did; metrics implement it. Methods are
// called from Run's goroutine and from the goroutine of the batch in flight,
// possibly at once: they must be safe for concurrent use and must not block.
type Observer interface {
	Applied(table change.Table, op change.Op, rows int)
	Committed(sourceTxns int, lsn pglogrepl.LSN, lastCommit time.Time, took time.Duration)
	Missing(table change.Table, op change.Op, rows int)
}

// Config configures an Applier.
type Config struct {
	// Name and Direction name the checkpoint row.
	Name, Direction string
	// Origin is the replication origin every applied transaction carries.
	Origin string
	// MaxRows bounds the rows of one target transaction made of several
	// source transactions, and the rows queued before a round trip.
	MaxRows int
	// MaxBytes bounds the bytes of the values queued before a round trip
	// (default 8 MiB), so that rows of megabytes go a few at a time.
	MaxBytes int64
	// Budget, if set, is the pipeline's byte budget: the applier gives back
	// what each event holds as it takes the event (change.Budget).
	Budget *change.Budget
	// MaxDelay bounds how long a target transaction stays open to group
	// small source transactions; 0 commits each source transaction alone.
	MaxDelay time.Duration
	// IdleCheckpoint and IdleBytes decide when a position reached without
	// changes (an idle stream, or one carrying only the bridge's own
	// transactions or unmapped tables) is written to the checkpoint, which
	// lets the slot advance. A position that passed none of the bridge's
	// own transactions is written within IdleCheckpoint (default 1s). One
	// that did waits until it has moved IdleBytes or the server asks for
	// it (an Urgent position): writing it on a timer would make the two
	// directions wake each other for ever, since each checkpoint write is
	// one of the bridge's transactions on the other side.
	IdleCheckpoint time.Duration
	IdleBytes      uint64
	// Catalog describes the tables written.
	Catalog  *catalog.Catalog
	Logger   *slog.Logger
	Observer Observer
	// OwnIdleWrites, if set, returns how far (in the WAL of the side read)
	// the bridge's own checkpoint-only transactions go: an idle position
	// not past it by more than a little is the bridge's own housekeeping
	// and is written lazily. Those transactions touch no published table,
	// so the stream cannot tell them by their origin.
	OwnIdleWrites func() pglogrepl.LSN
	// IdleWritten, if set, is called after a checkpoint-only transaction
	// with the WAL position of the side written just after it.
	IdleWritten func(pglogrepl.LSN)
	// Upserts, if set, makes inserts plain INSERTs into every table it
	// does not hold: a plain insert costs the server about a third less
	// than an upsert, and the stream's inserts meet no row on the target
	// unless someone else wrote it there (a target that held rows before
	// --skip-copy, foreign writes carried over at a flip). An insert that
	// does meet one fails with a Conflict error, which adds its table to
	// Upserts: the caller restarts from the checkpoint, and the replay
	// upserts. Without Upserts every insert with a key is an upsert.
	Upserts *TableSet
	// Ordered, if set, holds the tables whose changes are applied in the
	// source's exact order, never moved ahead of others in a target
	// transaction (see builder): a unique constraint on other columns than
	// the key failed on rows applied out of that order, and the Conflict
	// added the table. Without Ordered, every table without triggers that
	// fire for the bridge's writes may have its changes grouped.
	Ordered *TableSet
	// Rejects, if set, holds the changes the side written refused that are
	// to be left out (on_error: skip) or dead-lettered (deadletter).
	Rejects *Rejects
}

// Applier writes events to one target connection. Constructing it does no
// I/O; Prepare sets up the session, Run applies.
type Applier struct {
	cfg     Config
	conn    *pgx.Conn
	log     *slog.Logger
	flushed atomic.Uint64
	// start: source transactions whose commit record lies before it are
	// already on the target and are skipped.
	start pglogrepl.LSN

	src srcState // where the stream stands in source transactions
	// txnFinal is the commit LSN of the source transaction last begun.
	txnFinal pglogrepl.LSN
	tx       txn     // the target transaction
	build    builder // what the next round trip sends
	// position is the latest position reached without changes and not yet
	// checkpointed; ownSeen, that the bridge's own transactions were
	// skipped since the last checkpoint; lastCkpt, when the last commit,
	// and so checkpoint, was handed to a sender.
	position pglogrepl.LSN
	ownSeen  bool
	lastCkpt time.Time
	// inflight is the batch on its way to the server, if any: the
	// connection is its sender's until it is done. handed is the position
	// of the last commit handed to a sender (Flushed once it succeeds).
	inflight *inflight
	handed   pglogrepl.LSN
}

// New returns an Applier that writes through conn and resumes after start.
func New(conn *pgx.Conn, cfg Config, start pglogrepl.LSN) *Applier {
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 5000
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 8 << 20
	}
	if cfg.MaxDelay < 0 {
		cfg.MaxDelay = 0
	}
	if cfg.IdleCheckpoint <= 0 {
		cfg.IdleCheckpoint = time.Second
	}
	if cfg.IdleBytes == 0 {
		cfg.IdleBytes = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Applier{cfg: cfg, conn: conn, start: start, log: cfg.Logger.With("component", "apply"),
		build: newBuilder()}
	a.flushed.Store(uint64(start))
	a.lastCkpt = time.Now()
	return a
}

// Flushed returns the end LSN of the last source transaction (or idle
// position) that is committed on the target. Safe for concurrent use.
func (a *Applier) Flushed() pglogrepl.LSN { return pglogrepl.LSN(a.flushed.Load()) }

// reached is the position this applier's commits cover once the one in
// flight succeeds: what a new idle checkpoint must pass.
func (a *Applier) reached() pglogrepl.LSN { return max(a.handed, a.Flushed()) }

// Run applies events until in is closed (it then commits what is complete
// and returns nil) or ctx ends (it then commits the complete source
// transactions of the open target transaction, rolls back a partial one and
// returns ctx.Err()). Any other error leaves nothing half-applied: the open
// target transaction is rolled back, and Flushed stays at the last commit
// that succeeded (one handed to the server before the failure may still).
func (a *Applier) Run(ctx context.Context, in <-chan change.Event) (err error) {
	defer func() {
		if err == nil {
			return
		}
		// A commit handed off before the failure is still good; nothing
		// may outlive Run on the connection either way.
		a.waitAtMost(stopWait)
		if a.tx.state != txNone {
			a.rollback()
		}
	}()
	idle := time.NewTicker(min(a.cfg.IdleCheckpoint, time.Second))
	defer idle.Stop()
	linger := min(2*time.Millisecond, a.cfg.MaxDelay)
	for {
		var (
			ev change.Event
			ok bool
		)
		if a.tx.state.open() && a.src == srcBetween {
			// Between source transactions with a target transaction open:
			// keep grouping while events keep coming, commit when they pause.
			wait := linger
			if left := a.cfg.MaxDelay - time.Since(a.tx.began); left < wait {
				wait = max(left, 0)
			}
			timer := time.NewTimer(wait)
			select {
			case ev, ok = <-in:
				timer.Stop()
			case err := <-a.sent():
				timer.Stop()
				if err := a.finish(err); err != nil {
					return err
				}
				continue
			case <-timer.C:
				if err := a.commit(ctx); err != nil {
					return err
				}
				continue
			case <-ctx.Done():
				timer.Stop()
				return a.stop(ctx.Err())
			}
		} else {
			select {
			case ev, ok = <-in:
			case err := <-a.sent():
				if err := a.finish(err); err != nil {
					return err
				}
				continue
			case <-idle.C:
				if err := a.idleCheckpoint(ctx, false); err != nil {
					return err
				}
				continue
			case <-ctx.Done():
				return a.stop(ctx.Err())
			}
		}
		if !ok {
			return a.stop(nil)
		}
		if err := a.handle(ctx, ev); err != nil {
			return err
		}
	}
}

// stop finishes on cancel or end of input: complete source transactions are
// committed, a partial one is rolled back.
func (a *Applier) stop(cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// What is in flight finishes first: it may be the commit of complete
	// source transactions.
	if err := a.waitAtMost(stopWait); err != nil {
		return err
	}
	if a.tx.state.open() {
		if a.src != srcBetween {
			a.rollback()
		} else if err := a.commit(ctx); err != nil {
			return err
		}
	}
	if err := a.idleCheckpoint(ctx, true); err != nil {
		return err
	}
	if err := a.waitAtMost(stopWait); err != nil {
		return err
	}
	return cause
}

func (a *Applier) handle(ctx context.Context, ev change.Event) error {
	ev.Release(a.cfg.Budget)
	switch ev.Kind {
	case change.EvBegin:
		if cause, ok := a.cfg.Rejects.haltsAt(ev.Txn.FinalLSN); ok && ev.Txn.FinalLSN >= a.start {
			// Everything before this transaction goes in; it and what
			// follows wait for the fix.
			if err := a.commit(ctx); err != nil {
				return err
			}
			if err := a.waitAtMost(stopWait); err != nil {
				return err
			}
			return &Halted{Err: cause}
		}
		a.txnFinal = ev.Txn.FinalLSN
		if ev.Txn.FinalLSN < a.start {
			a.src = srcSkipping
			a.log.Debug("skipping a transaction already applied", "lsn", ev.Txn.FinalLSN.String(), "xid", ev.Txn.Xid)
			return nil
		}
		a.src = srcApplying
		if !a.tx.state.open() {
			a.begin()
		}
	case change.EvChange:
		if a.src == srcSkipping {
			return nil
		}
		if a.src != srcApplying {
			return fmt.Errorf("a change at %s arrived outside a transaction", ev.LSN)
		}
		for i := range ev.Outs {
			o := &ev.Outs[i]
			if a.cfg.Rejects.haltsOn(o, a.txnFinal) {
				return ErrReplay
			}
			if cause, rejected := a.cfg.Rejects.meet(o); rejected {
				if a.cfg.Rejects.Deadletter == nil {
					continue
				}
				d := a.cfg.Rejects.Deadletter(o, cause)
				o = &d
			}
			if err := a.add(o); err != nil {
				return err
			}
		}
		if a.build.queued >= a.cfg.MaxRows || a.build.bytes >= a.cfg.MaxBytes {
			// A large source transaction: send what is queued to bound
			// memory, but keep the target transaction open.
			if err := a.send(ctx); err != nil {
				return err
			}
		}
	case change.EvCommit:
		skipped := a.src == srcSkipping
		a.src = srcBetween
		if skipped {
			return nil
		}
		a.tx.pending = ev.Txn.EndLSN
		a.tx.pendingAt = ev.Txn.CommitTime
		a.tx.txns++
		if a.tx.rows >= a.cfg.MaxRows || time.Since(a.tx.began) >= a.cfg.MaxDelay {
			return a.commit(ctx)
		}
	case change.EvPosition:
		if ev.Own {
			a.ownSeen = true
		}
		if a.src != srcBetween || ev.LSN <= a.reached() || ev.LSN < a.start {
			return nil
		}
		if a.tx.state.open() {
			if ev.LSN > a.tx.pending {
				a.tx.pending = ev.LSN
			}
			return nil
		}
		// Written by the idle ticker, which gives the other direction's
		// applier time to record its own idle writes first (see
		// OwnIdleWrites), or at once when it is a large advance or the
		// server waits for it.
		a.position = ev.LSN
		if ev.Urgent || uint64(a.position-a.reached()) >= a.cfg.IdleBytes {
			return a.idleCheckpoint(ctx, ev.Urgent)
		}
		return nil
	}
	return nil
}
