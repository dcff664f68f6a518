package apply

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

const groupSchema = `
CREATE TABLE acc (id int PRIMARY KEY, bal int NOT NULL, email text UNIQUE);
CREATE TABLE hot (id int PRIMARY KEY, bal int NOT NULL);
CREATE TABLE hist (id int, delta int);
CREATE TABLE seen (n serial, what text);
CREATE TABLE watched (id int PRIMARY KEY, bal int);
CREATE FUNCTION record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO seen (what) VALUES (TG_OP || ' ' || NEW.id || ' ' || (SELECT count(*) FROM hist));
	RETURN NEW;
END $$;
CREATE TRIGGER record BEFORE INSERT OR UPDATE ON watched FOR EACH ROW EXECUTE FUNCTION record();
ALTER TABLE watched ENABLE ALWAYS TRIGGER record;
`

var (
	acc     = change.Table{Schema: "public", Name: "acc"}
	hot     = change.Table{Schema: "public", Name: "hot"}
	hist    = change.Table{Schema: "public", Name: "hist"}
	watched = change.Table{Schema: "public", Name: "watched"}
)

// groupApplier is an applier on a fresh database of groupSchema (not run:
// the tests look at what it builds, or run it themselves).
type groupApplier struct {
	t       *testing.T
	dsn     string
	q       *pgx.Conn
	cat     *catalog.Catalog
	upserts *TableSet
	ordered *TableSet
}

func newGroupDB(t *testing.T) *groupApplier {
	dsn := pgtest.Target(t).NewDB(t)
	q := pgtest.Connect(t, dsn)
	pgtest.MustExec(t, q, groupSchema)
	ctx := context.Background()
	if err := checkpoint.Create(ctx, q, checkpoint.State{Name: "t", Direction: "forward", LSN: 0x1000, SystemID: "1", Slot: "s"}); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(ctx, q, []change.Table{acc, hot, hist, watched})
	if err != nil {
		t.Fatal(err)
	}
	return &groupApplier{t: t, dsn: dsn, q: q, cat: cat, upserts: &TableSet{}, ordered: &TableSet{}}
}

func (g *groupApplier) config() Config {
	return Config{Name: "t", Direction: "forward", Origin: "cdcbridge_t_forward", Catalog: g.cat, MaxRows: 100000, MaxDelay: time.Hour,
		IdleCheckpoint: time.Hour, IdleBytes: 1 << 40, Upserts: g.upserts, Ordered: g.ordered}
}

// apply runs an applier from the checkpoint over the events of txns, all
// in one target transaction, and returns what Run returned.
func (g *groupApplier) apply(txns [][]change.Out) error {
	g.t.Helper()
	ctx := context.Background()
	conn := pgtest.Connect(g.t, g.dsn)
	defer conn.Close(ctx)
	st, err := checkpoint.Load(ctx, g.q, "t", "forward")
	if err != nil {
		g.t.Fatal(err)
	}
	a := New(conn, g.config(), st.LSN)
	if err := a.Prepare(ctx); err != nil {
		g.t.Fatal(err)
	}
	in := make(chan change.Event, 1<<16)
	for i, outs := range txns {
		final := st.LSN + pglogrepl.LSN(0x10000*(i+1))
		txn := &change.Txn{Xid: uint32(i + 1), FinalLSN: final, CommitTime: time.Now(), EndLSN: final + 8}
		in <- change.Event{Kind: change.EvBegin, Txn: txn}
		for j, o := range outs {
			o.LSN = final - 0x1000 + pglogrepl.LSN(j)
			in <- change.Event{Kind: change.EvChange, Txn: txn, Outs: []change.Out{o}, LSN: o.LSN}
		}
		in <- change.Event{Kind: change.EvCommit, Txn: txn}
	}
	close(in)
	return a.Run(ctx, in)
}

func (g *groupApplier) rows(sql string) string {
	g.t.Helper()
	var s string
	if err := g.q.QueryRow(context.Background(), "SELECT coalesce(string_agg(r::text, ' ' ORDER BY r::text), '') FROM ("+sql+") r").Scan(&s); err != nil {
		g.t.Fatal(err)
	}
	return s
}

func upd(t change.Table, id int, cols []string, vals ...change.Value) change.Out {
	return change.Out{Op: change.Update, Table: t, Cols: cols, Vals: vals, KeyCols: []string{"id"}, Key: []change.Value{v(fmt.Sprint(id))}}
}

func del(t change.Table, id int) change.Out {
	return change.Out{Op: change.Delete, Table: t, KeyCols: []string{"id"}, Key: []change.Value{v(fmt.Sprint(id))}}
}

// The builder groups a target transaction of many small source
// transactions that each touch several tables (pgbench's TPC-B shape) into
// one statement per table and shape, and merges the repeated images of a
// hot row into one.
func TestGroupsAcrossTablesAndMergesHotRows(t *testing.T) {
	g := newGroupDB(t)
	a := New(nil, g.config(), 0)
	a.begin()
	for i := 1; i <= 100; i++ {
		for _, o := range []change.Out{
			upd(acc, i, []string{"id", "bal", "email"}, v(fmt.Sprint(i)), v(fmt.Sprint(i)), v(fmt.Sprint("e", i))),
			upd(hot, 1+i%2, []string{"id", "bal"}, v(fmt.Sprint(1+i%2)), v(fmt.Sprint(i))),
			ins(hist, []string{"id", "delta"}, v(fmt.Sprint(i)), v("1")),
		} {
			if err := a.add(&o); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.build.flushAll()
	var got []string
	for _, it := range a.build.items[1:] { // after BEGIN
		got = append(got, fmt.Sprintf("%s %s %s×%d+%d", it.kind, it.run.op, it.run.table.Name, it.run.n, it.run.merged))
	}
	want := []string{"rows update acc×100+0", "rows update hot×2+98", "copy insert hist×100+0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statements:\n got %v\nwant %v", got, want)
	}
	// The hot rows carry their last images.
	if hot := a.build.items[2].run; fmt.Sprintf("%s %s", hot.params[1][0], hot.params[1][1]) != "99 100" {
		t.Fatalf("merged images of hot rows: %s %s, want 99 100", hot.params[1][0], hot.params[1][1])
	}
}

// A table with a trigger that fires for the bridge's writes keeps the
// source's order among all the rows: its trigger sees what came before.
func TestTriggeredTableKeepsOrder(t *testing.T) {
	g := newGroupDB(t)
	var txns [][]change.Out
	for i := 1; i <= 5; i++ {
		txns = append(txns, []change.Out{
			ins(hist, []string{"id", "delta"}, v(fmt.Sprint(i)), v("1")),
			ins(watched, []string{"id", "bal"}, v(fmt.Sprint(i)), v("0")),
			upd(watched, i, []string{"id", "bal"}, v(fmt.Sprint(i)), v("1")),
		})
	}
	if err := g.apply(txns); err != nil {
		t.Fatal(err)
	}
	got := g.rows(`SELECT n, what FROM seen`)
	want := "(1,\"INSERT 1 1\") (10,\"UPDATE 5 5\") (2,\"UPDATE 1 1\") (3,\"INSERT 2 2\") (4,\"UPDATE 2 2\") (5,\"INSERT 3 3\") (6,\"UPDATE 3 3\") (7,\"INSERT 4 4\") (8,\"UPDATE 4 4\") (9,\"INSERT 5 5\")"
	if got != want {
		t.Fatalf("the trigger saw:\n got %s\nwant %s", got, want)
	}
}

// A unique constraint on another column than the key can fail on rows
// grouped out of the source's order (a row takes a value that another row
// frees later in the statement's order): the applier asks for a replay in
// the source's order, which then passes.
func TestUniqueConstraintFailingOutOfOrderIsReplayedInOrder(t *testing.T) {
	g := newGroupDB(t)
	if err := g.apply([][]change.Out{{
		ins(acc, []string{"id", "bal", "email"}, v("1"), v("0"), v("x")),
	}}); err != nil {
		t.Fatal(err)
	}
	swap := [][]change.Out{
		{ins(acc, []string{"id", "bal", "email"}, v("3"), v("0"), v("p"))},
		{upd(acc, 1, []string{"id", "email"}, v("1"), v("q"))},
		// Joins the first insert's run, ahead of the update that frees x.
		{ins(acc, []string{"id", "bal", "email"}, v("4"), v("0"), v("x"))},
	}
	err := g.apply(swap)
	var c *Conflict
	if !errors.As(err, &c) || !c.Ordered || c.Table != acc {
		t.Fatalf("error = %v; want a Conflict asking for acc in order", err)
	}
	if !g.ordered.Has(acc) || g.upserts.Has(acc) {
		t.Fatalf("ordered %v upserts %v after the conflict", g.ordered.Has(acc), g.upserts.Has(acc))
	}
	if got := g.rows(`SELECT * FROM acc`); got != "(1,0,x)" {
		t.Fatalf("the failed transaction left rows: %s", got)
	}
	if err := g.apply(swap); err != nil {
		t.Fatalf("the replay in order: %v", err)
	}
	if got, want := g.rows(`SELECT * FROM acc`), "(1,0,q) (3,0,p) (4,0,x)"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
}

// Grouped, merged and reordered, a random mix of inserts, updates (full
// and partial, of keys too), deletes and re-inserts of few keys lands as
// the source's order does, which a table kept in order shows.
func TestGroupingLandsAsTheSourceOrderDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var txns [][]change.Out
	exists := map[string]bool{}
	next := 1
	for range 200 {
		var outs []change.Out
		for range 1 + rng.IntN(6) {
			id := 1 + rng.IntN(16)
			tbl := []change.Table{hot, acc}[rng.IntN(2)]
			key := fmt.Sprint(tbl.Name, id)
			bal := v(fmt.Sprint(rng.IntN(1000)))
			switch {
			case !exists[key] && tbl == acc:
				outs = append(outs, ins(acc, []string{"id", "bal", "email"}, v(fmt.Sprint(id)), bal, v(fmt.Sprint("e", next))))
				next++
			case !exists[key]:
				outs = append(outs, ins(hot, []string{"id", "bal"}, v(fmt.Sprint(id)), bal))
			case rng.IntN(5) == 0:
				outs = append(outs, del(tbl, id))
				delete(exists, key)
				continue
			case rng.IntN(4) == 0 && !exists[fmt.Sprint(tbl.Name, id%16+1)]:
				// a key change, to a key that later changes may touch
				outs = append(outs, upd(tbl, id, []string{"id", "bal"}, v(fmt.Sprint(id%16+1)), bal))
				delete(exists, key)
				exists[fmt.Sprint(tbl.Name, id%16+1)] = true
				continue
			case rng.IntN(2) == 0:
				outs = append(outs, upd(tbl, id, []string{"bal"}, bal)) // partial
			default:
				outs = append(outs, upd(tbl, id, []string{"id", "bal"}, v(fmt.Sprint(id)), bal))
			}
			exists[key] = true
		}
		txns = append(txns, outs)
	}
	land := func(inOrder bool) string {
		g := newGroupDB(t)
		if inOrder {
			g.ordered.Add(acc)
			g.ordered.Add(hot)
		}
		if err := g.apply(txns); err != nil {
			t.Fatal(err)
		}
		return g.rows(`SELECT 'acc', * FROM acc`) + "\n" + g.rows(`SELECT 'hot', * FROM hot`)
	}
	grouped, ordered := land(false), land(true)
	if grouped != ordered {
		t.Fatalf("grouped and in order differ:\n grouped %s\n ordered %s", grouped, ordered)
	}
	if len(grouped) < 50 {
		t.Fatalf("too little landed to compare: %s", grouped)
	}
}

// An update or delete of many keys in a large table finds its rows by the
// key's index; a delete by a key of one column is DELETE ... = ANY.
func TestManyKeysUseTheIndex(t *testing.T) {
	g := newGroupDB(t)
	pgtest.MustExec(t, g.q, `INSERT INTO acc SELECT g, g, 'e' || g FROM generate_series(1, 200000) g; ANALYZE acc`)
	a := New(nil, g.config(), 0)
	a.begin()
	for i := 1; i <= 1000; i++ {
		for _, o := range []change.Out{upd(acc, 3*i, []string{"bal"}, v("7")), del(acc, 100000+3*i)} {
			if err := a.add(&o); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.build.flushAll()
	if sql := a.build.items[2].sql; !strings.Contains(sql, "= ANY(") || strings.Contains(sql, "unnest") {
		t.Errorf("a delete by a key of one column: %s", sql)
	}
	for _, it := range a.build.items[1:] {
		rows, err := g.q.Query(context.Background(), "EXPLAIN "+it.sql, it.args...)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprint(plan); !strings.Contains(s, "acc_pkey") || strings.Contains(s, "Seq Scan on acc") {
			for i, l := range plan {
				if len(l) > 120 {
					plan[i] = l[:120] + "..."
				}
			}
			t.Errorf("%s %s plan does not use the key's index:\n%s", it.run.op, it.run.table, strings.Join(plan, "\n"))
		}
	}
}

// A row that no key of the change can find in the open runs (keyed by
// other columns, or inserted without a key) is not passed by a later
// change: it goes in the source's order.
func TestChangesByAnotherKeyKeepOrder(t *testing.T) {
	g := newGroupDB(t)
	byEmail := func(email string, bal string) change.Out {
		return change.Out{Op: change.Update, Table: acc, Cols: []string{"bal"}, Vals: []change.Value{v(bal)}, KeyCols: []string{"email"}, Key: []change.Value{v(email)}}
	}
	if err := g.apply([][]change.Out{
		{ins(acc, []string{"id", "bal", "email"}, v("1"), v("0"), v("e1"))},
	}); err != nil {
		t.Fatal(err)
	}
	if err := g.apply([][]change.Out{
		{byEmail("e1", "1")},
		{ins(acc, []string{"id", "bal", "email"}, v("5"), v("0"), v("e5"))},
		// The same shape as the first: it must not join it, ahead of the insert.
		{byEmail("e5", "9")},
		// A row without a key, then a change by a key: in order too.
		{ins(hist, []string{"delta"}, v("1"))},
		{del(hist, 0)},
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := g.rows(`SELECT id, bal FROM acc`), "(1,1) (5,9)"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
}
