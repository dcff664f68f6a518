package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
)

// Observer receives what the applier did; metrics implement it. Methods are
// called from the applier's goroutine and must not block.
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
	Upserts *Upserts
}

// Upserts is the set of tables whose inserts are upserts. It outlives the
// Applier (one per pipeline, kept across restarts). Safe for concurrent use.
type Upserts struct {
	mu     sync.Mutex
	tables map[change.Table]bool
}

// Has reports whether inserts into t are upserts.
func (u *Upserts) Has(t change.Table) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.tables[t]
}

// Add makes inserts into t upserts from now on.
func (u *Upserts) Add(t change.Table) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tables == nil {
		u.tables = map[change.Table]bool{}
	}
	u.tables[t] = true
}

// Conflict is a plain insert that met a row already on the target. Nothing
// of its target transaction is committed; the table's inserts are upserts
// from now on, so applying again from the checkpoint succeeds.
type Conflict struct {
	Table change.Table
	Key   string
	LSN   pglogrepl.LSN
	Err   error
}

func (e *Conflict) Error() string {
	return fmt.Sprintf("an insert into %s at source LSN %s met a row already on the target (%s); its inserts are upserts from now on: %v", e.Table, e.LSN, e.Key, e.Err)
}

func (e *Conflict) Unwrap() error { return e.Err }

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

	open       bool // a target transaction is open (BEGIN queued or sent)
	inSrc      bool // inside a source transaction
	skipping   bool // the current source transaction is already applied
	txStart    time.Time
	batch      *pgx.Batch
	items      []item
	queued     int // rows queued in batch
	txRows     int // rows in the open target transaction
	txTxns     int
	pending    pglogrepl.LSN // end LSN the open transaction will checkpoint
	pendingAt  time.Time
	position   pglogrepl.LSN // latest idle position not yet checkpointed
	ownSeen    bool          // the bridge's own transactions were skipped since the last checkpoint
	idleCommit bool          // the open transaction is a checkpoint-only one
	lastCkpt   time.Time
	cur        *run
	sqlCache   map[string]string
	// inflight is the batch on its way to the server, if any: the
	// connection is its sender's until it is done. handed is the position
	// of the last commit handed to a sender (Flushed once it succeeds).
	inflight *inflight
	handed   pglogrepl.LSN
	// aborted: a batch failed, which may have been a commit; its
	// transaction is left open and aborted on the server.
	aborted bool
}

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

// item describes a queued statement, for errors and row counts.
type item struct {
	kind   string // "begin", "rows", "truncate", "origin", "checkpoint", "commit", "walend"
	run    *run
	trunc  []change.Table
	walEnd *pglogrepl.LSN
}

// New returns an Applier that writes through conn and resumes after start.
func New(conn *pgx.Conn, cfg Config, start pglogrepl.LSN) *Applier {
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 5000
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
		batch: &pgx.Batch{}, sqlCache: map[string]string{}}
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

// Prepare sets up the target session: durable commits, the text formats the
// values travel in, writing as a replica (see ReplicaRole), and the
// replication origin (created when missing).
func (a *Applier) Prepare(ctx context.Context) error {
	for _, s := range []string{
		"SET synchronous_commit = on",
		"SET DateStyle = ISO, YMD",
		"SET IntervalStyle = postgres",
		"SET TimeZone = 'UTC'",
		"SET extra_float_digits = 3",
		"SET bytea_output = hex",
	} {
		if _, err := a.conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("setting up the target session (%s): %w", s, err)
		}
	}
	if err := ReplicaRole(ctx, a.conn); err != nil {
		return err
	}
	if err := EnsureOrigin(ctx, a.conn, a.cfg.Origin); err != nil {
		return err
	}
	if _, err := a.conn.Exec(ctx, "SELECT pg_replication_origin_session_setup($1)", a.cfg.Origin); err != nil {
		return fmt.Errorf("taking the replication origin %s (is another daemon using it?): %w", a.cfg.Origin, err)
	}
	return nil
}

// EnsureOrigin creates the named replication origin if it does not exist.
func EnsureOrigin(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, `SELECT pg_replication_origin_create($1) WHERE pg_replication_origin_oid($1) IS NULL`, name); err != nil {
		return fmt.Errorf("creating the replication origin %s: %w", name, err)
	}
	return nil
}

// Run applies events until in is closed (it then commits what is complete
// and returns nil) or ctx ends (it then commits the complete source
// transactions of the open target transaction, rolls back a partial one and
// returns ctx.Err()). Any other error leaves nothing half-applied: the open
// target transaction is rolled back, and Flushed stays where it was.
func (a *Applier) Run(ctx context.Context, in <-chan change.Event) (err error) {
	defer func() {
		if err == nil {
			return
		}
		// A commit handed off before the failure is still good; nothing
		// may outlive Run on the connection either way.
		a.waitAtMost(stopWait)
		if a.open || a.aborted {
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
		if a.open && !a.inSrc {
			// Between source transactions with a target transaction open:
			// keep grouping while events keep coming, commit when they pause.
			wait := linger
			if left := a.cfg.MaxDelay - time.Since(a.txStart); left < wait {
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
	if a.open {
		if a.inSrc {
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

// waitAtMost waits for the batch in flight, cancelling it after d.
func (a *Applier) waitAtMost(d time.Duration) error {
	if f := a.inflight; f != nil {
		t := time.AfterFunc(d, f.cancel)
		defer t.Stop()
	}
	return a.wait()
}

func (a *Applier) handle(ctx context.Context, ev change.Event) error {
	switch ev.Kind {
	case change.EvBegin:
		a.inSrc = true
		a.skipping = ev.Txn.FinalLSN < a.start
		if a.skipping {
			a.log.Debug("skipping a transaction already applied", "lsn", ev.Txn.FinalLSN, "xid", ev.Txn.Xid)
			return nil
		}
		if !a.open {
			a.begin()
		}
	case change.EvChange:
		if a.skipping {
			return nil
		}
		if !a.inSrc {
			return fmt.Errorf("a change at %s arrived outside a transaction", ev.LSN)
		}
		for i := range ev.Outs {
			if err := a.add(&ev.Outs[i]); err != nil {
				return err
			}
		}
		if a.queued >= a.cfg.MaxRows {
			// A large source transaction: send what is queued to bound
			// memory, but keep the target transaction open.
			if err := a.send(ctx); err != nil {
				return err
			}
		}
	case change.EvCommit:
		a.inSrc = false
		if a.skipping {
			a.skipping = false
			return nil
		}
		a.pending = ev.Txn.EndLSN
		a.pendingAt = ev.Txn.CommitTime
		a.txTxns++
		if a.txRows >= a.cfg.MaxRows || time.Since(a.txStart) >= a.cfg.MaxDelay {
			return a.commit(ctx)
		}
	case change.EvPosition:
		if ev.Own {
			a.ownSeen = true
		}
		if a.inSrc || ev.LSN <= a.reached() || ev.LSN < a.start {
			return nil
		}
		if a.open {
			if ev.LSN > a.pending {
				a.pending = ev.LSN
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

func (a *Applier) begin() {
	a.open = true
	a.txStart = time.Now()
	a.txRows, a.txTxns = 0, 0
	a.pending = 0
	a.queue("BEGIN", item{kind: "begin"})
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
	a.queue("SELECT pg_replication_origin_xact_setup($1::text::pg_lsn, $2)", item{kind: "origin"}, a.pending.String(), a.pendingAt)
	a.queue(checkpoint.Statement, item{kind: "checkpoint"}, a.cfg.Name, a.cfg.Direction, a.pending.String())
	a.queue("COMMIT", item{kind: "commit"})
	walEnd := new(pglogrepl.LSN)
	if a.idleCommit && a.cfg.IdleWritten != nil {
		a.queue("SELECT pg_current_wal_insert_lsn()::text", item{kind: "walend", walEnd: walEnd})
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

// send hands every queued statement to a sender, to run in one round trip
// while the applier goes on; the error of a batch in flight is returned by
// the next send, wait or Run.
func (a *Applier) send(ctx context.Context) error { return a.sendThen(ctx, nil) }

func (a *Applier) sendThen(ctx context.Context, after func()) error {
	a.flushRun()
	if len(a.items) == 0 {
		return nil
	}
	if err := a.wait(); err != nil {
		return err
	}
	b, items := a.batch, a.items
	a.batch, a.items, a.queued = &pgx.Batch{}, nil, 0
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &inflight{done: make(chan error, 1), after: after, cancel: cancel}
	a.inflight = f
	go func() {
		defer cancel()
		f.done <- a.exec(ictx, b, items)
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
		a.aborted = true
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

// exec runs a batch and reads its results, on the sender's goroutine.
func (a *Applier) exec(ctx context.Context, b *pgx.Batch, items []item) error {
	br := a.conn.SendBatch(ctx, b)
	failed, failErr := -1, error(nil)
	for i, it := range items {
		if it.kind == "walend" {
			var text string
			if err := br.QueryRow().Scan(&text); err == nil {
				*it.walEnd, _ = pglogrepl.ParseLSN(text)
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
		switch it.kind {
		case "rows":
			r := it.run
			if a.cfg.Observer != nil {
				a.cfg.Observer.Applied(r.table, r.op, r.n)
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
	}
	closeErr := br.Close()
	if failed >= 0 {
		return a.failure(ctx, b, items, failed, failErr)
	}
	if closeErr != nil {
		return fmt.Errorf("applying to the target: %w", closeErr)
	}
	return nil
}

// failure explains the first statement of a batch that failed, once the
// batch is closed and the connection free again. The target transaction
// is aborted by then: nothing of it can commit.
func (a *Applier) failure(ctx context.Context, b *pgx.Batch, items []item, failed int, err error) error {
	it := items[failed]
	row := -1
	if it.kind == "rows" {
		row = a.findRow(ctx, b, items, failed, err)
	}
	if r := it.run; it.kind == "rows" && r.op == change.Insert && !r.upsert && len(r.keyCols) > 0 && isUniqueViolation(err) && a.cfg.Upserts != nil {
		a.cfg.Upserts.Add(r.table)
		c := &Conflict{Table: r.table, Key: r.firstKey, LSN: r.lsn, Err: err}
		if row >= 0 {
			c.Key, c.LSN = r.rowKey(row), r.lsns[row]
		}
		return c
	}
	return a.explain(it, err, row)
}

// run is a growing statement: rows of one op, table and column set.
type run struct {
	op      change.Op
	table   change.Table
	info    *catalog.Table
	cols    []string // columns written (insert, update)
	keyCols []string // key columns (update, delete; insert when upserting)
	upsert  bool
	// fullRow: one update or delete of a table without a key, keyCols
	// being every column of the old row (see addFullRow).
	fullRow  bool
	sig      string
	keys     map[string]struct{}
	params   []pgtype.FlatArray[[]byte] // update/delete: key columns first; nil is NULL
	n        int
	entry    string
	lsn      pglogrepl.LSN
	firstKey string
	// lsns holds the LSN of each row's change, in the order of params.
	lsns []pglogrepl.LSN
}

func (a *Applier) add(o *change.Out) error {
	a.txRows++
	if o.Op == change.Truncate {
		a.flushRun()
		if len(o.Truncate) == 0 {
			return nil
		}
		names := make([]string, len(o.Truncate))
		for i, t := range o.Truncate {
			names[i] = t.String()
		}
		// Never CASCADE, whatever the source did: the source's truncate
		// lists every table its cascade reached, and those that are mapped
		// are all here. A cascade on the target could only reach tables
		// outside the mapping, which are not the bridge's to empty; a table
		// there that references one of these makes the truncate fail, as in
		// PostgreSQL's apply worker.
		sql := "TRUNCATE " + strings.Join(names, ", ")
		if o.RestartIdentity {
			sql += " RESTART IDENTITY"
		}
		a.queue(sql, item{kind: "truncate", trunc: o.Truncate})
		if a.cfg.Observer != nil {
			for _, t := range o.Truncate {
				a.cfg.Observer.Applied(t, change.Truncate, 1)
			}
		}
		return nil
	}
	info := a.cfg.Catalog.Table(o.Table)
	if info == nil {
		return &Error{Entry: o.Entry, Table: o.Table, Op: o.Op, LSN: o.LSN, Err: errors.New("the table is not in the target catalog")}
	}
	if o.FullRow && o.Op != change.Insert {
		return a.addFullRow(o, info)
	}
	cols, vals := o.Cols, o.Vals
	keyCols, key := o.KeyCols, o.Key
	if o.Op == change.Insert {
		keyCols = info.Key
		if len(keyCols) == 0 {
			keyCols = o.KeyCols
		}
		key = make([]change.Value, len(keyCols))
		for i, k := range keyCols {
			v, ok := o.Lookup(k)
			if !ok || v.Kind != change.Text {
				keyCols, key = nil, nil // no complete key: a plain insert
				break
			}
			key[i] = v
		}
	}
	if o.Op == change.Update {
		// Do not SET key columns to the value they already have: identity
		// columns that are GENERATED ALWAYS refuse any update but DEFAULT.
		cols, vals = nil, nil
		for i, c := range o.Cols {
			if j := indexOf(keyCols, c); j >= 0 && o.Vals[i].Equal(key[j]) {
				continue
			}
			cols = append(cols, c)
			vals = append(vals, o.Vals[i])
		}
		if len(cols) == 0 {
			return nil // nothing changes
		}
	}
	if len(keyCols) == 0 && o.Op != change.Insert {
		return &Error{Entry: o.Entry, Table: o.Table, Op: o.Op, LSN: o.LSN, Err: errors.New("no key to find the target row by: give the target table a primary key or a unique index on NOT NULL columns, set key: in the mapping, or set REPLICA IDENTITY FULL on the table read")}
	}
	r := a.cur
	var sig string
	if r != nil && r.op == o.Op && r.table == o.Table && slices.Equal(r.cols, cols) && slices.Equal(r.keyCols, keyCols) {
		sig = r.sig // the common case, a run going on: no need to spell it out
	} else {
		sig = sigOf(o.Op, o.Table, cols, keyCols)
	}
	k := keyString(key)
	if r != nil && (r.sig != sig || (k != "" && hasKey(r.keys, k)) || (o.Op == change.Update && hasNewKey(r, keyCols, cols, vals))) {
		a.flushRun()
		r = nil
	}
	if r == nil {
		upsert := o.Op == change.Insert && len(keyCols) > 0 && (a.cfg.Upserts == nil || a.cfg.Upserts.Has(o.Table))
		r = &run{op: o.Op, table: o.Table, info: info, cols: cols, keyCols: keyCols, upsert: upsert,
			sig: sig, keys: map[string]struct{}{}, entry: o.Entry, lsn: o.LSN, firstKey: describeKey(keyCols, key)}
		if r.firstKey == "" {
			r.firstKey = describeKey(cols, vals)
		}
		switch o.Op {
		case change.Insert:
			r.params = make([]pgtype.FlatArray[[]byte], len(cols))
		case change.Update:
			r.params = make([]pgtype.FlatArray[[]byte], len(keyCols)+len(cols))
		case change.Delete:
			r.params = make([]pgtype.FlatArray[[]byte], len(keyCols))
		}
		a.cur = r
	}
	if k != "" {
		r.keys[k] = struct{}{}
	}
	p := 0
	if o.Op != change.Insert {
		for _, v := range key {
			r.params[p] = append(r.params[p], text(v))
			p++
		}
	}
	if o.Op != change.Delete {
		for _, v := range vals {
			r.params[p] = append(r.params[p], text(v))
			p++
		}
	}
	r.lsns = append(r.lsns, o.LSN)
	r.n++
	a.queued++
	return nil
}

// addFullRow queues an update or delete of a table without a key as a
// statement of its own that changes one row whose columns all match the
// old row: runs over unnest() cannot do that, since a join reaches every
// copy of a duplicated row, and each change must reach exactly one.
func (a *Applier) addFullRow(o *change.Out, info *catalog.Table) error {
	var cols []string
	var vals []change.Value
	if o.Op == change.Update {
		// Columns that keep their value are not SET: GENERATED ALWAYS
		// identity columns refuse any update but DEFAULT.
		for i, c := range o.Cols {
			if j := indexOf(o.KeyCols, c); j >= 0 && o.Vals[i].Equal(o.Key[j]) {
				continue
			}
			cols = append(cols, c)
			vals = append(vals, o.Vals[i])
		}
		if len(cols) == 0 {
			return nil // nothing changes
		}
	}
	a.flushRun()
	r := &run{op: o.Op, table: o.Table, info: info, cols: cols, keyCols: o.KeyCols, fullRow: true, n: 1,
		sig: "\x00full" + sigOf(o.Op, o.Table, cols, o.KeyCols), entry: o.Entry, lsn: o.LSN, firstKey: describeKey(o.KeyCols, o.Key)}
	sql := a.sqlCache[r.sig]
	if sql == "" {
		sql = buildFullRowSQL(r, a.cfg.Catalog)
		a.sqlCache[r.sig] = sql
	}
	args := make([]any, 0, len(vals)+len(o.Key))
	for _, v := range vals {
		args = append(args, text(v))
	}
	for _, v := range o.Key {
		args = append(args, text(v))
	}
	a.queue(sql, item{kind: "rows", run: r}, args...)
	a.queued++
	return nil
}

// hasNewKey reports whether an update's new key values collide with a key
// already in the run (so that a chain of key changes stays ordered).
func hasNewKey(r *run, keyCols, cols []string, vals []change.Value) bool {
	nk := make([]change.Value, len(keyCols))
	changed := false
	for i, kc := range keyCols {
		j := indexOf(cols, kc)
		if j < 0 {
			return false
		}
		nk[i] = vals[j]
		changed = true
	}
	return changed && hasKey(r.keys, keyString(nk))
}

func hasKey(m map[string]struct{}, k string) bool { _, ok := m[k]; return ok }

func indexOf(s []string, x string) int {
	for i, y := range s {
		if y == x {
			return i
		}
	}
	return -1
}

func text(v change.Value) []byte {
	if v.Kind != change.Text {
		return nil // NULL; an absent value never reaches a statement
	}
	if v.Data == nil {
		return []byte{} // the empty string, not NULL
	}
	// Values are never written to once made, so the bytes travel as they
	// are, without a copy.
	return v.Data
}

func keyString(key []change.Value) string {
	if len(key) == 0 {
		return ""
	}
	var b strings.Builder
	for _, v := range key {
		b.WriteByte(byte('0' + v.Kind))
		b.Write(v.Data)
		b.WriteByte(0)
	}
	return b.String()
}

func describeKey(cols []string, key []change.Value) string {
	if len(cols) > 4 {
		cols = cols[:4]
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		if i < len(key) {
			parts[i] = c + "=" + key[i].String()
		}
	}
	return strings.Join(parts, ", ")
}

func sigOf(op change.Op, t change.Table, cols, keyCols []string) string {
	var b strings.Builder
	b.WriteByte(byte(op))
	b.WriteString(t.Schema)
	b.WriteByte(0)
	b.WriteString(t.Name)
	for _, c := range cols {
		b.WriteByte(1)
		b.WriteString(c)
	}
	for _, c := range keyCols {
		b.WriteByte(2)
		b.WriteString(c)
	}
	return b.String()
}

// flushRun queues the current run as one statement.
func (a *Applier) flushRun() {
	r := a.cur
	if r == nil {
		return
	}
	a.cur = nil
	ck := r.sig
	if r.upsert {
		ck += "\x00upsert"
	}
	sql := a.sqlCache[ck]
	if sql == "" {
		sql = buildSQL(r)
		a.sqlCache[ck] = sql
	}
	args := make([]any, len(r.params))
	for i := range r.params {
		args[i] = r.params[i]
	}
	a.queue(sql, item{kind: "rows", run: r}, args...)
}

// checkpointMissingError: the checkpoint row vanished under the daemon. The
// transaction was rolled back, so nothing is applied without its position.
type checkpointMissingError struct {
	name, direction string
	err             error
}

func (e *checkpointMissingError) Error() string {
	return fmt.Sprintf("the checkpoint row %s/%s is missing from cdcbridge.checkpoint on the target (was it deleted?); nothing was committed", e.name, e.direction)
}

func (e *checkpointMissingError) Unwrap() error { return e.err }

// isUniqueViolation reports a unique_violation (23505).
func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}
