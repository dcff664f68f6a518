package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/change"
)

// inflight is a batch sent and read by its own goroutine, so that the
// applier builds the next batch while the server executes this one. There
// is never more than one: the next send waits for it.
//
// A batch in flight is not cut short when the applier's context ends: on
// a stop, complete source transactions still commit (stop gives it
// stopWait); only giving up (rollback) cancels it.
type inflight struct {
	done   chan error
	after  func() // run on the applier's goroutine once the batch succeeded
	cancel context.CancelFunc
}

// stopWait bounds how long a stop waits for the batch in flight.
const stopWait = 30 * time.Second

// waitAtMost waits for the batch in flight, cancelling it after d.
func (a *Applier) waitAtMost(d time.Duration) error {
	if f := a.inflight; f != nil {
		t := time.AfterFunc(d, f.cancel)
		defer t.Stop()
	}
	return a.wait()
}

// send hands every queued statement to a sender, to run in one round trip
// while the applier goes on; the error of a batch in flight is returned by
// the next send, wait or Run.
func (a *Applier) send(ctx context.Context) error { return a.sendThen(ctx, nil) }

func (a *Applier) sendThen(ctx context.Context, after func()) error {
	a.build.flushAll()
	if len(a.build.items) == 0 {
		return nil
	}
	if err := a.wait(); err != nil {
		return err
	}
	items := a.build.items
	a.build.items, a.build.queued, a.build.bytes = nil, 0, 0
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &inflight{done: make(chan error, 1), after: after, cancel: cancel}
	a.inflight = f
	go func() {
		defer cancel()
		f.done <- a.exec(ictx, items)
	}()
	return nil
}

// wait waits for the batch in flight, if any.
func (a *Applier) wait() error {
	if a.inflight == nil {
		return nil
	}
	return a.finish(<-a.inflight.done)
}

// finish takes the result of the batch in flight.
func (a *Applier) finish(err error) error {
	f := a.inflight
	a.inflight = nil
	if err != nil {
		a.tx.state = txAborted
		a.learn(err)
		return err
	}
	if f.after != nil {
		f.after()
	}
	return nil
}

// sent is the channel the batch in flight reports on, nil when none is.
func (a *Applier) sent() <-chan error {
	if a.inflight == nil {
		return nil
	}
	return a.inflight.done
}

// exec runs the queued statements and reads their results, on the
// sender's goroutine: the statements between two COPYs as one pipelined
// batch, each COPY on its own. The first failure ends it.
func (a *Applier) exec(ctx context.Context, items []item) error {
	for from := 0; from < len(items); {
		if items[from].kind == itemCopy {
			r := items[from].run
			tag, err := a.conn.PgConn().CopyFrom(ctx, &copyReader{r: r}, items[from].sql)
			if err != nil {
				return a.failure(ctx, items, from, err)
			}
			a.applied(r, tag)
			from++
			continue
		}
		to := from + 1
		for to < len(items) && items[to].kind != itemCopy {
			to++
		}
		if err := a.execBatch(ctx, items, from, to); err != nil {
			return err
		}
		from = to
	}
	return nil
}

// execBatch runs items[from:to] as one pipelined batch.
func (a *Applier) execBatch(ctx context.Context, items []item, from, to int) error {
	br := a.conn.SendBatch(ctx, batchOf(items[from:to]))
	failed, failErr := -1, error(nil)
	for i := from; i < to; i++ {
		it := items[i]
		if it.kind == itemWALEnd {
			if err := br.QueryRow().Scan(it.walEnd); err != nil {
				*it.walEnd = 0
			}
			continue
		}
		tag, err := br.Exec()
		if err != nil {
			if failed < 0 {
				failed, failErr = i, err
			}
			continue
		}
		if it.kind == itemRows {
			a.applied(it.run, tag)
		}
	}
	closeErr := br.Close()
	if failed >= 0 {
		return a.failure(ctx, items, failed, failErr)
	}
	if closeErr != nil {
		return fmt.Errorf("applying to the target: %w", closeErr)
	}
	return nil
}

// applied counts a run's rows once its statement succeeded, and warns of
// rows to change that were not there.
func (a *Applier) applied(r *run, tag pgconn.CommandTag) {
	if a.cfg.Observer != nil {
		a.cfg.Observer.Applied(r.table, r.op, r.n)
		if r.merged > 0 {
			a.cfg.Observer.Applied(r.table, change.Update, r.merged)
		}
	}
	if (r.op == change.Update || r.op == change.Delete) && int(tag.RowsAffected()) < r.n {
		missing := r.n - int(tag.RowsAffected())
		a.log.Warn("rows to change were not on the target", "table", r.table.String(), "op", r.op.String(),
			"missing", missing, "lsn", r.lsn.String(), "first_key", r.firstKey)
		if a.cfg.Observer != nil {
			a.cfg.Observer.Missing(r.table, r.op, missing)
		}
	}
}

// learn takes from the failure of a batch what outlives it: a plain insert
// that met a row (a Conflict) makes its table's inserts upserts. Every
// result of a sender passes here, on the applier's goroutine, which is so
// the only one that changes Upserts.
func (a *Applier) learn(err error) {
	var c *Conflict
	switch {
	case !errors.As(err, &c):
	case c.Ordered && a.cfg.Ordered != nil:
		a.cfg.Ordered.Add(c.Table)
	case !c.Ordered && a.cfg.Upserts != nil:
		a.cfg.Upserts.Add(c.Table)
	}
}

// failure explains the first statement of a batch that failed, once the
// batch is closed and the connection free again. The target transaction
// is aborted by then: nothing of it can commit.
func (a *Applier) failure(ctx context.Context, items []item, failed int, err error) error {
	it := items[failed]
	row := -1
	switch it.kind {
	case itemRows:
		row = a.findRow(ctx, items, failed, err)
	case itemCopy:
		row = copyRow(err, it.run.n)
	}
	if r := it.run; (it.kind == itemRows || it.kind == itemCopy) && it.reordered && a.cfg.Ordered != nil && isOrderViolation(err) {
		// Perhaps only the order the rows went in: apply the table in the
		// source's order and try again.
		c := &Conflict{Table: r.table, Key: r.firstKey, LSN: r.lsn, Ordered: true, Err: err}
		if row >= 0 {
			c.Key, c.LSN = r.rowKey(row), r.lsns[row]
		}
		return c
	}
	if r := it.run; (it.kind == itemRows || it.kind == itemCopy) && r.op == change.Insert && !r.upsert && len(r.keyCols) > 0 && isUniqueViolation(err) && a.cfg.Upserts != nil {
		c := &Conflict{Table: r.table, Key: r.firstKey, LSN: r.lsn, Err: err}
		if row >= 0 {
			c.Key, c.LSN = r.rowKey(row), r.lsns[row]
		}
		return c
	}
	return a.explain(it, err, row)
}
