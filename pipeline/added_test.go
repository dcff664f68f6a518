package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/admin"
	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

const (
	addedSrc = `
		CREATE TABLE a (id int PRIMARY KEY, v text);
		CREATE TABLE b (id int PRIMARY KEY, n int, note text);
		INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 1000) g;
		INSERT INTO b SELECT g, g, 'b' || g FROM generate_series(1, 30000) g;`
	addedTgt = `
		CREATE TABLE a (id int PRIMARY KEY, v text);
		CREATE TABLE b2 (id int PRIMARY KEY, n_times_ten int, note text);`
	// b's entry has a transform, so that the copy and the stream go
	// through the same script.
	addedJS = `
function forward(r) {
  const o = { id: r.id };
  if (r.n !== undefined) o.n_times_ten = r.n === null ? null : r.n * 10;
  if (r.note !== undefined) o.note = r.note;
  return o;
}
function backward(r) {
  const o = { id: r.id };
  if (r.n_times_ten !== undefined) o.n = r.n_times_ten === null ? null : r.n_times_ten / 10;
  if (r.note !== undefined) o.note = r.note;
  return o;
}`
	entryA  = "  - source: a\n    target: a\n"
	entryB  = "  - source: b\n    target: b2\n    transform: b.js\n"
	srcA    = `SELECT id, v FROM a`
	srcB    = `SELECT id, n * 10, note FROM b`
	tgtB    = `SELECT id, n_times_ten, note FROM b2`
	idOfB   = `"public"."b" -> "public"."b2"`
	idOfA   = `"public"."a" -> "public"."a"`
	revIDOB = `"public"."b2" -> "public"."b"`
)

// startWriter is a workload on tables a and b of dsn.
func startWriter(t *testing.T, dsn string) *bridgetest.Workload {
	t.Helper()
	conn := pgtest.Connect(t, dsn)
	return bridgetest.StartWorkload(t, func(ctx context.Context, i int64) error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(`INSERT INTO a VALUES ($1, 'new') ON CONFLICT (id) DO UPDATE SET v = 'again'`, 100000+i)
		b.Queue(`UPDATE a SET v = v || '.' WHERE id = $1`, 1+i%1000)
		b.Queue(`INSERT INTO b VALUES ($1, $2, 'during')`, 1000000+i, i)
		b.Queue(`UPDATE b SET n = n + 1, note = 'moved' WHERE id = $1`, 1+(i*7)%30000)
		b.Queue(`DELETE FROM b WHERE id = $1`, 2+(i*13)%30000)
		if i%50 == 0 {
			b.Queue(`DELETE FROM b WHERE id BETWEEN $1 AND $1 + 9`, 1000000+i/2)
		}
		b.Queue("COMMIT")
		return conn.SendBatch(ctx, b).Close()
	})
}

// entryState reads an entry's row from cdcbridge.tables ("" when none).
func entryState(t *testing.T, conn *pgx.Conn, direction, entry string) string {
	t.Helper()
	var state string
	err := conn.QueryRow(context.Background(), `SELECT state FROM cdcbridge.tables WHERE direction = $1 AND entry = $2`, direction, entry).Scan(&state)
	if err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	return state
}

// TestTableAddedUnderWrites: the daemon runs with a; a writer keeps
// changing a and a pre-populated b; the daemon stops, b's entry is added to
// the mapping, and the daemon starts again while the writer goes on. Once
// the writer stops, the target's b2 equals the transformed b exactly: its
// existing rows were copied, and no change was missed or applied twice
// across the hand-off from the copy to the stream, while a kept streaming.
func TestTableAddedUnderWrites(t *testing.T) {
	e := bridgetest.NewEnv(t, addedSrc, addedTgt)
	files := map[string]string{"b.js": addedJS}
	m := e.Mapping("added", entryA, files)
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	w := startWriter(t, e.SrcDSN)
	defer w.Stop(t)
	w.WaitTxns(t, 100)
	d.Stop(t)
	if got := entryState(t, e.Tgt, "forward", idOfA); got != "synced" && got != "streaming" {
		t.Fatalf("after the initial copy a's entry is %q, want synced or streaming", got)
	}

	// Writes go on while the daemon is down and while it copies b.
	w.WaitTxns(t, 100)
	m = e.Mapping("added", entryA+entryB, files)
	d = e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	w.WaitTxns(t, 200)
	w.Stop(t)

	bridgetest.Eventually(t, e.Tgt, bridgetest.Digest(tgtB), bridgetest.Query(t, e.Src, bridgetest.Digest(srcB)), nil)
	bridgetest.Eventually(t, e.Tgt, bridgetest.Digest(srcA), bridgetest.Query(t, e.Src, bridgetest.Digest(srcA)), nil)
	if got := entryState(t, e.Tgt, "forward", idOfB); got != "synced" {
		t.Fatalf("b's entry is %q after its copy, want synced", got)
	}
	// The armed direction recorded b as streaming from its checkpoint,
	// without a copy (the rows came the other way).
	if got := entryState(t, e.Src, "reverse", revIDOB); got != "streaming" {
		t.Fatalf("the reverse direction's b entry is %q, want streaming", got)
	}
	// Nothing was applied twice: the stream's inserts into b2 before the
	// copy's snapshot (which holds them) would have met rows already there.
	if strings.Contains(d.Logs.String(), "an insert met a row already on the target") {
		t.Fatalf("a change the copy held was applied again:\n%s", d.Logs.String())
	}
	// The copy and the stream wrote b2 under the bridge's origins: the
	// armed reverse direction saw no foreign write.
	if strings.Contains(d.Logs.String(), "is taking writes on mapped tables") {
		t.Fatalf("the armed direction took the copy for foreign writes:\n%s", d.Logs.String())
	}

	st, err := admin.GetStatus(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	fwd := st.Directions[0]
	if len(fwd.Entries) != 2 || fwd.Entries[0].Entry != idOfA || fwd.Entries[0].State != "streaming" || fwd.Entries[1].Entry != idOfB ||
		(fwd.Entries[1].State != "synced" && fwd.Entries[1].State != "streaming") {
		t.Fatalf("status of the forward entries: %+v", fwd.Entries)
	}

	// Once the checkpoint has passed the copy's LSN, a restart marks the
	// entry streaming.
	pgtest.MustExec(t, e.Src, `UPDATE b SET note = 'after' WHERE id = 3`)
	bridgetest.Eventually(t, e.Tgt, `SELECT note FROM b2 WHERE id = 3`, "(after)", nil)
	d.Stop(t)
	d = e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	if got := entryState(t, e.Tgt, "forward", idOfB); got != "streaming" {
		t.Fatalf("b's entry is %q after the checkpoint passed its copy, want streaming", got)
	}
}

// TestTableRemovedFromMapping: an entry taken out of the mapping stops
// being applied (its target table no longer changes), its table leaves the
// publication, and status no longer lists it.
func TestTableRemovedFromMapping(t *testing.T) {
	e := bridgetest.NewEnv(t, addedSrc, addedTgt)
	files := map[string]string{"b.js": addedJS}
	m := e.Mapping("removed", entryA+entryB, files)
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	bridgetest.Eventually(t, e.Tgt, bridgetest.Digest(tgtB), bridgetest.Query(t, e.Src, bridgetest.Digest(srcB)), nil)
	d.Stop(t)

	m = e.Mapping("removed", entryA, files)
	d = e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	before := bridgetest.Query(t, e.Tgt, bridgetest.Digest(tgtB))
	// b changes first, then a: once a's change is on the target, b's has
	// been through the pipeline.
	pgtest.MustExec(t, e.Src, `UPDATE b SET note = 'gone' WHERE id <= 10; INSERT INTO b VALUES (999999, 1, 'x')`)
	pgtest.MustExec(t, e.Src, `UPDATE a SET v = 'later' WHERE id = 1`)
	bridgetest.Eventually(t, e.Tgt, `SELECT v FROM a WHERE id = 1`, "(later)", nil)
	if got := bridgetest.Query(t, e.Tgt, bridgetest.Digest(tgtB)); got != before {
		t.Fatalf("b2 changed after b's entry was removed: %s, was %s", got, before)
	}
	if got := bridgetest.Query(t, e.Src, `SELECT count(*) FROM pg_publication_tables WHERE tablename = 'b'`); got != "(0)" {
		t.Fatalf("b is still published after its entry was removed (%s)", got)
	}
	for _, dir := range []string{"forward", "reverse"} {
		conn := e.Tgt
		if dir == "reverse" {
			conn = e.Src
		}
		if got := bridgetest.Query(t, conn, `SELECT count(*) FROM cdcbridge.tables WHERE direction = '`+dir+`'`); got != "(1)" {
			t.Fatalf("%s entry rows after removing b: %s, want 1 (a)", dir, got)
		}
	}
	st, err := admin.GetStatus(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	aStreams := false
	for _, d := range st.Directions {
		for _, e := range d.Entries {
			if strings.Contains(e.Entry, `"b"`) || strings.Contains(e.Entry, `"b2"`) {
				t.Fatalf("status still lists b's entry in %s: %+v", d.Direction, d.Entries)
			}
			aStreams = aStreams || e.Entry == idOfA && e.State == "streaming"
		}
	}
	if !aStreams {
		t.Fatalf("status does not show a streaming: %+v", st.Directions)
	}

	// A direction set up before entry states were kept (a checkpoint, no
	// entry rows) records every entry as streaming, and copies nothing.
	d.Stop(t)
	pgtest.MustExec(t, e.Tgt, `DELETE FROM cdcbridge.tables`)
	d = e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	if got := entryState(t, e.Tgt, "forward", idOfA); got != "streaming" {
		t.Fatalf("a's entry is %q after a start without entry rows, want streaming", got)
	}
	if strings.Contains(d.Logs.String(), "copying the entries new to the mapping") {
		t.Fatalf("a start without entry rows copied:\n%s", d.Logs.String())
	}
}

// TestBackfillFailureStops: a copy of an added entry that the side written
// rejects (a CHECK constraint) stops the pipeline with an error naming the
// entry; nothing of the copy is kept, and the entry is copied again at the
// next start.
func TestBackfillFailureStops(t *testing.T) {
	e := bridgetest.NewEnv(t, addedSrc, addedTgt+`ALTER TABLE b2 ADD CHECK (n_times_ten < 100000);`)
	files := map[string]string{"b.js": addedJS}
	d := e.Start(e.Mapping("failing", entryA, files), 0)
	d.Stop(t)

	m := e.Mapping("failing", entryA+entryB, files)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs bridgetest.LogSink
	err := pipeline.Run(ctx, pipeline.Options{Mapping: m, Logger: bridgetest.TextLogger(&logs), MaxBackoff: time.Second})
	if err == nil || !strings.Contains(err.Error(), "tables[1] (public.b -> public.b2)") || !strings.Contains(err.Error(), "b2_n_times_ten_check") {
		t.Fatalf("Run = %v; want an error naming the entry and the constraint\n%s", err, logs.String())
	}
	if got := bridgetest.Query(t, e.Tgt, `SELECT count(*) FROM b2`); got != "(0)" {
		t.Fatalf("the failed copy left %s rows in b2", got)
	}
	if got := entryState(t, e.Tgt, "forward", idOfB); got != "copying" {
		t.Fatalf("b's entry is %q after its copy failed, want copying (copied again at the next start)", got)
	}
}

// TestInterruptedBackfillStartsOver: the copy of an added entry whose
// table was cut into parts died after some parts had committed (its entry
// still copying, some of its rows on the target). The next start empties
// what those parts wrote and copies the entry again: every row once.
func TestInterruptedBackfillStartsOver(t *testing.T) {
	e := bridgetest.NewEnv(t, addedSrc, addedTgt)
	files := map[string]string{"b.js": addedJS}
	m := e.Mapping("redo", entryA, files)
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	d.Stop(t)

	// What the committed parts of the interrupted copy left.
	var lsn pglogrepl.LSN
	if err := e.Tgt.QueryRow(t.Context(), `SELECT lsn FROM cdcbridge.checkpoint WHERE direction = 'forward'`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.SetEntries(t.Context(), e.Tgt, "redo", "forward", checkpoint.Copying, lsn, idOfB); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, e.Tgt, `INSERT INTO b2 SELECT g, g * 10, 'b' || g FROM generate_series(1, 5000) g`)

	m = e.Mapping("redo", entryA+entryB, files)
	d = e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	bridgetest.Eventually(t, e.Tgt, bridgetest.Digest(tgtB), bridgetest.Query(t, e.Src, bridgetest.Digest(srcB)), d)
	if got := entryState(t, e.Tgt, "forward", idOfB); got != "synced" {
		t.Fatalf("b's entry is %q after its copy, want synced", got)
	}
	if !strings.Contains(d.Logs.String(), "emptying the tables it wrote") {
		t.Fatalf("the start did not say it emptied what the interrupted copy wrote:\n%s", d.Logs.String())
	}
	// The emptying is the bridge's own write: the armed reverse direction
	// does not take it for a foreign one.
	if strings.Contains(d.Logs.String(), "is taking writes on mapped tables") {
		t.Fatalf("the armed direction took the emptying for a foreign write:\n%s", d.Logs.String())
	}
}
