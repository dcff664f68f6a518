package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const schema = `
CREATE SCHEMA "Shop Schema";
CREATE TABLE "Shop Schema"."Order" (
	"Id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	"select" text,
	code char(5),
	amount numeric(12,2),
	qty int,
	total numeric GENERATED ALWAYS AS (amount * qty) STORED,
	big text
);
CREATE TABLE items (a int, b text NOT NULL, PRIMARY KEY (a, b));
CREATE TABLE bag (n int, j json, p point, c char(3), id int GENERATED ALWAYS AS IDENTITY);
CREATE TABLE parted (a int, b text) PARTITION BY LIST (a);
CREATE TABLE parted1 PARTITION OF parted FOR VALUES IN (1);
CREATE TABLE parted2 PARTITION OF parted FOR VALUES IN (2);
CREATE TABLE checked (id int PRIMARY KEY, qty int NOT NULL CHECK (qty > 0), note text UNIQUE);
CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.note = 'keep' THEN
		RAISE EXCEPTION 'row % is kept', OLD.id;
	END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER keep BEFORE DELETE ON checked FOR EACH ROW EXECUTE FUNCTION keep();
ALTER TABLE checked ENABLE ALWAYS TRIGGER keep;
`

type harness struct {
	t    *testing.T
	conn *pgx.Conn // the applier's
	q    *pgx.Conn // for assertions
	a    *Applier
	in   chan change.Event
	done chan error
}

var order = change.Table{Schema: "Shop Schema", Name: "Order"}
var items = change.Table{Schema: "public", Name: "items"}
var bag = change.Table{Schema: "public", Name: "bag"}
var parted = change.Table{Schema: "public", Name: "parted"}
var checked = change.Table{Schema: "public", Name: "checked"}

// newHarness starts an applier on a fresh database with the tables of
// schema; opts change its Config.
func newHarness(t *testing.T, start pglogrepl.LSN, opts ...func(*Config)) *harness {
	dsn := pgtest.Target(t).NewDB(t)
	conn := pgtest.Connect(t, dsn)
	q := pgtest.Connect(t, dsn)
	pgtest.MustExec(t, q, schema)
	ctx := context.Background()
	if err := checkpoint.Create(ctx, q, checkpoint.State{Name: "t", Direction: "forward", LSN: start, SystemID: "1", Slot: "s"}); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(ctx, q, []change.Table{order, items, bag, parted, checked})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Name: "t", Direction: "forward", Origin: "cdcbridge_t_forward", Catalog: cat, MaxRows: 3, IdleCheckpoint: 50 * time.Millisecond, IdleBytes: 1 << 30}
	for _, o := range opts {
		o(&cfg)
	}
	a := New(conn, cfg, start)
	if err := a.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, conn: conn, q: q, a: a, in: make(chan change.Event, 16), done: make(chan error, 1)}
	go func() { h.done <- a.Run(context.Background(), h.in) }()
	return h
}

func v(s string) change.Value { return change.TextValue(s) }

// txn sends one source transaction of outs and returns its end LSN.
func (h *harness) txn(final pglogrepl.LSN, outs ...change.Out) pglogrepl.LSN {
	txn := &change.Txn{Xid: uint32(final), FinalLSN: final, CommitTime: time.Now(), EndLSN: final + 8}
	h.in <- change.Event{Kind: change.EvBegin, Txn: txn}
	for _, o := range outs {
		h.in <- change.Event{Kind: change.EvChange, Txn: txn, Outs: []change.Out{o}, LSN: final - 1}
	}
	h.in <- change.Event{Kind: change.EvCommit, Txn: txn}
	return txn.EndLSN
}

func (h *harness) waitFlushed(lsn pglogrepl.LSN) {
	h.t.Helper()
	waitUntil(h.t, "flushed to "+lsn.String(), func() bool { return h.a.Flushed() >= lsn }, h.done)
}

// waitUntil polls cond until it holds, failing the test when the applier
// stops (done) or after 10s.
func waitUntil(t *testing.T, what string, cond func() bool, done chan error) {
	t.Helper()
	pgtest.WaitFor(t, 10*time.Second, what, func() bool {
		if cond() {
			return true
		}
		select {
		case err := <-done:
			t.Fatalf("applier stopped while waiting for %s: %v", what, err)
		default:
		}
		return false
	})
}

func (h *harness) rows(sql string) string {
	h.t.Helper()
	var s string
	if err := h.q.QueryRow(context.Background(), "SELECT coalesce(string_agg(r::text, ' ' ORDER BY r::text), '') FROM ("+sql+") r").Scan(&s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) checkpointLSN() pglogrepl.LSN {
	st, err := checkpoint.Load(context.Background(), h.q, "t", "forward")
	if err != nil {
		h.t.Fatal(err)
	}
	return st.LSN
}

func ins(t change.Table, cols []string, vals ...change.Value) change.Out {
	return change.Out{Op: change.Insert, Table: t, Cols: cols, Vals: vals}
}

func TestApplyOps(t *testing.T) {
	h := newHarness(t, 0x1000)
	oc := []string{"Id", "select", "code", "amount", "qty"}
	end := h.txn(0x2000,
		ins(order, oc, v("1"), v("a"), v("ab"), v("1.50"), v("2")),
		ins(order, oc, v("2"), v("b"), v("abcde"), v("2.00"), v("3")),
		ins(order, oc, v("3"), change.Value{Kind: change.Null}, v("x"), v("1"), v("1")),
		ins(order, oc, v("4"), v("d"), v("x"), v("1"), v("1")),
		// the same key again in one transaction: upsert of the latest image
		ins(order, oc, v("1"), v("a2"), v("ab"), v("1.50"), v("4")),
	)
	h.waitFlushed(end)
	if got, want := h.rows(`SELECT "Id", "select", code, amount, qty, total FROM "Shop Schema"."Order"`),
		`(1,a2,"ab   ",1.50,4,6.00) (2,b,abcde,2.00,3,6.00) (3,,"x    ",1.00,1,1.00) (4,d,"x    ",1.00,1,1.00)`; got != want {
		t.Fatalf("after inserts:\n got %s\nwant %s", got, want)
	}
	if h.checkpointLSN() != end {
		t.Fatalf("checkpoint %s, want %s", h.checkpointLSN(), end)
	}
	end = h.txn(0x3000,
		// partial update: only qty
		change.Out{Op: change.Update, Table: order, Cols: []string{"qty"}, Vals: []change.Value{v("10")}, KeyCols: []string{"Id"}, Key: []change.Value{v("2")}},
		// the key column with its own value is not written (GENERATED ALWAYS refuses it)
		change.Out{Op: change.Update, Table: order, Cols: []string{"Id", "select"}, Vals: []change.Value{v("3"), v("c")}, KeyCols: []string{"Id"}, Key: []change.Value{v("3")}},
		change.Out{Op: change.Delete, Table: order, KeyCols: []string{"Id"}, Key: []change.Value{v("4")}},
		ins(items, []string{"a", "b"}, v("1"), v("x")),
		ins(items, []string{"a", "b"}, v("1"), v("y")),
		// key change on a composite key
		change.Out{Op: change.Update, Table: items, Cols: []string{"a", "b"}, Vals: []change.Value{v("2"), v("x")}, KeyCols: []string{"a", "b"}, Key: []change.Value{v("1"), v("x")}},
		// and the new key changes again in the same transaction
		change.Out{Op: change.Update, Table: items, Cols: []string{"a", "b"}, Vals: []change.Value{v("3"), v("x")}, KeyCols: []string{"a", "b"}, Key: []change.Value{v("2"), v("x")}},
	)
	h.waitFlushed(end)
	if got, want := h.rows(`SELECT "Id", "select", qty FROM "Shop Schema"."Order"`), `(1,a2,4) (2,b,10) (3,c,1)`; got != want {
		t.Fatalf("after updates:\n got %s\nwant %s", got, want)
	}
	if got, want := h.rows(`SELECT * FROM items`), `(1,y) (3,x)`; got != want {
		t.Fatalf("items:\n got %s\nwant %s", got, want)
	}
	end = h.txn(0x4000, change.Out{Op: change.Truncate, Truncate: []change.Table{items}})
	h.waitFlushed(end)
	if got := h.rows(`SELECT * FROM items`); got != "" {
		t.Fatalf("items after truncate: %s", got)
	}
	// The applied transactions carry the origin, and its progress follows the checkpoint.
	var progress string
	if err := h.q.QueryRow(context.Background(), `SELECT coalesce(pg_replication_origin_progress('cdcbridge_t_forward', true)::text, '')`).Scan(&progress); err != nil {
		t.Fatal(err)
	}
	if progress != end.String() {
		t.Fatalf("origin progress %s, want %s", progress, end)
	}
	close(h.in)
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
}

func TestApplyErrorRollsBackWholeTransaction(t *testing.T) {
	h := newHarness(t, 0x1000)
	end := h.txn(0x2000, ins(items, []string{"a", "b"}, v("1"), v("x")))
	h.waitFlushed(end)
	h.txn(0x3000,
		ins(items, []string{"a", "b"}, v("2"), v("y")),
		ins(items, []string{"a", "b"}, v("3"), change.Value{Kind: change.Null}),
	)
	var err error
	select {
	case err = <-h.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no error from a NOT NULL violation")
	}
	var ae *Error
	if !errors.As(err, &ae) || ae.Table != items || !strings.Contains(err.Error(), "a=3") {
		t.Fatalf("error = %v; want an *Error naming the table and key", err)
	}
	if got := h.rows(`SELECT * FROM items`); got != "(1,x)" {
		t.Fatalf("a failed transaction left rows behind: %s", got)
	}
	if h.a.Flushed() != end || h.checkpointLSN() != end {
		t.Fatalf("flushed %s checkpoint %s, want both %s", h.a.Flushed(), h.checkpointLSN(), end)
	}
}

func TestApplySkipsWhatIsBeforeStartAndCheckpointsIdlePositions(t *testing.T) {
	h := newHarness(t, 0x5000)
	// A transaction whose commit lies before the start was applied before.
	h.txn(0x4000, ins(items, []string{"a", "b"}, v("1"), v("old")))
	end := h.txn(0x6000, ins(items, []string{"a", "b"}, v("2"), v("new")))
	h.waitFlushed(end)
	if got := h.rows(`SELECT * FROM items`); got != "(2,new)" {
		t.Fatalf("rows %s: the transaction before the start was applied again", got)
	}
	h.in <- change.Event{Kind: change.EvPosition, LSN: 0x9000}
	h.waitFlushed(0x9000)
	if h.checkpointLSN() != 0x9000 {
		t.Fatalf("idle position not checkpointed: %s", h.checkpointLSN())
	}
}

func TestApplyLargeTransactionIsOneTargetTransaction(t *testing.T) {
	h := newHarness(t, 0x1000)
	txn := &change.Txn{FinalLSN: 0x2000, CommitTime: time.Now(), EndLSN: 0x2008}
	h.in <- change.Event{Kind: change.EvBegin, Txn: txn}
	for i := 0; i < 20; i++ {
		h.in <- change.Event{Kind: change.EvChange, Txn: txn, Outs: []change.Out{ins(items, []string{"a", "b"}, v(strings.Repeat("1", 1)+string(rune('0'+i%10))), v(string(rune('a'+i))))}}
	}
	// MaxRows is 3: batches have been sent (the applier's session holds
	// the lock its inserts take), but nothing is visible before the commit.
	pid := h.conn.PgConn().PID()
	waitUntil(t, "the applier's inserts into items", func() bool {
		return h.rows(fmt.Sprintf(`SELECT count(*) FROM pg_locks WHERE pid = %d AND relation = 'items'::regclass AND mode = 'RowExclusiveLock' AND granted`, pid)) == "(1)"
	}, h.done)
	if got := h.rows(`SELECT count(*) FROM items`); got != "(0)" {
		t.Fatalf("part of an uncommitted source transaction is visible: %s", got)
	}
	h.in <- change.Event{Kind: change.EvCommit, Txn: txn}
	h.waitFlushed(0x2008)
	if got := h.rows(`SELECT count(*) FROM items`); got != "(20)" {
		t.Fatalf("rows = %s, want 20", got)
	}
}

// A checkpoint row deleted under the applier stops it before anything is
// committed without its position.
func TestApplyRefusesToCommitWithoutItsCheckpoint(t *testing.T) {
	h := newHarness(t, 0x1000)
	end := h.txn(0x2000, ins(items, []string{"a", "b"}, v("1"), v("x")))
	h.waitFlushed(end)
	pgtest.MustExec(t, h.q, `DELETE FROM cdcbridge.checkpoint`)
	h.txn(0x3000, ins(items, []string{"a", "b"}, v("2"), v("y")))
	select {
	case err := <-h.done:
		if err == nil || !strings.Contains(err.Error(), "checkpoint row t/forward is missing") {
			t.Fatalf("error = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the applier went on without its checkpoint row")
	}
	if got := h.rows(`SELECT * FROM items`); got != "(1,x)" {
		t.Fatalf("rows committed without a checkpoint: %s", got)
	}
	if h.a.Flushed() != end {
		t.Fatalf("flushed %s, want %s", h.a.Flushed(), end)
	}
}

// The bytes queued bound a round trip as the rows do: rows of hundreds of
// kilobytes go to the server a few at a time, inside the one target
// transaction, not all at its commit.
func TestApplyBytesBoundARoundTrip(t *testing.T) {
	h := newHarness(t, 0x1000, func(c *Config) { c.MaxRows = 1 << 20; c.MaxBytes = 1 << 20 })
	txn := &change.Txn{FinalLSN: 0x2000, CommitTime: time.Now(), EndLSN: 0x2008}
	h.in <- change.Event{Kind: change.EvBegin, Txn: txn}
	for i := range 8 {
		h.in <- change.Event{Kind: change.EvChange, Txn: txn, Outs: []change.Out{ins(order, []string{"Id", "big"}, v(fmt.Sprint(i)), v(strings.Repeat("x", 300<<10)))}}
	}
	pid := h.conn.PgConn().PID()
	waitUntil(t, "the applier's inserts before the commit", func() bool {
		return h.rows(fmt.Sprintf(`SELECT count(*) FROM pg_locks WHERE pid = %d AND relation = '"Shop Schema"."Order"'::regclass AND mode = 'RowExclusiveLock' AND granted`, pid)) == "(1)"
	}, h.done)
	h.in <- change.Event{Kind: change.EvCommit, Txn: txn}
	h.waitFlushed(0x2008)
	if got := h.rows(`SELECT count(*), sum(length(big)) FROM "Shop Schema"."Order"`); got != fmt.Sprintf("(8,%d)", 8*300<<10) {
		t.Fatalf("rows = %s", got)
	}
}
