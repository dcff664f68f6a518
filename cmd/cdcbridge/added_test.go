package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/admin"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestKillNineDuringBackfill adds an entry to the mapping of a bridge that
// has been running, while a writer keeps changing both tables, and kills the
// daemon with SIGKILL during the new entry's copy: before the copy commits,
// and after it commits but before the stream has passed the copy's
// snapshot. After a restart the target equals the source exactly, with
// nothing missed and nothing applied twice.
func TestKillNineDuringBackfill(t *testing.T) {
	bin := buildBinary(t)
	for _, fp := range []string{"backfill-before-commit", "backfill-copied"} {
		t.Run(fp, func(t *testing.T) {
			e := bridgetest.NewEnv(t, `
				CREATE TABLE a (id int PRIMARY KEY, v text);
				CREATE TABLE b (id int PRIMARY KEY, n int, note text);
				INSERT INTO b SELECT g, g, 'b' || g FROM generate_series(1, 20000) g;`, `
				CREATE TABLE a (id int PRIMARY KEY, v text);
				CREATE TABLE b (id int PRIMARY KEY, n int, note text);`)
			p := e.MappingFile("bf", "tables:\n  - source: a\n    target: a\n")
			r := newRig(t, bin, p)
			d := r.startStreaming()

			conn := pgtest.Connect(t, e.SrcDSN)
			w := bridgetest.StartWorkload(t, func(ctx context.Context, i int64) error {
				b := &pgx.Batch{}
				b.Queue("BEGIN")
				b.Queue(`INSERT INTO a VALUES ($1, 'x')`, i)
				b.Queue(`INSERT INTO b VALUES ($1, $2, 'during')`, 1000000+i, i)
				b.Queue(`UPDATE b SET n = n + 1, note = 'moved' WHERE id = $1`, 1+(i*7)%20000)
				b.Queue(`DELETE FROM b WHERE id = $1`, 2+(i*13)%20000)
				b.Queue("COMMIT")
				return conn.SendBatch(ctx, b).Close()
			})
			w.WaitTxns(t, 51)
			d.stop()
			// A backlog for the restart: a large transaction, then more of
			// the writer's. The copy of b commits while the stream is still
			// behind its snapshot, with changes of b in between that the
			// copy holds.
			pgtest.MustExec(t, e.Src, `INSERT INTO a SELECT g, 'backlog' FROM generate_series(10000000, 10300000) g`)
			w.WaitTxns(t, 101)

			p = e.MappingFile("bf", "tables:\n  - source: a\n    target: a\n  - source: b\n    target: b\n")
			d = r.start("CDCBRIDGE_FAILPOINT=" + fp)
			if !d.exited(60 * time.Second) {
				t.Fatalf("the daemon did not die at %s\n%s", fp, pgtest.Tail(r.Logs.String(), 30))
			}
			// What the kill left behind is the case under test.
			var state, entryLSN, ckpt string
			e.Tgt.QueryRow(context.Background(), `SELECT state, lsn::text FROM cdcbridge.tables WHERE direction = 'forward' AND entry = '"public"."b" -> "public"."b"'`).Scan(&state, &entryLSN)
			e.Tgt.QueryRow(context.Background(), `SELECT lsn::text FROM cdcbridge.checkpoint WHERE direction = 'forward'`).Scan(&ckpt)
			rows := bridgetest.Query(t, e.Tgt, `SELECT count(*) FROM b`)
			switch fp {
			case "backfill-before-commit":
				if state != "copying" || rows != "(0)" {
					t.Fatalf("killed before the copy committed: entry %q, %s rows in b on the target; want copying and none", state, rows)
				}
			case "backfill-copied":
				s, _ := pglogrepl.ParseLSN(entryLSN)
				c, _ := pglogrepl.ParseLSN(ckpt)
				if state != "synced" || rows == "(0)" || c >= s {
					t.Fatalf("killed after the copy committed: entry %q at %s, checkpoint %s, %s rows in b on the target; want synced, rows, and the checkpoint before the copy's LSN", state, entryLSN, ckpt, rows)
				}
			}

			before := len(r.Logs.String())
			d = r.start()
			defer d.stop()
			w.WaitTxns(t, 101)
			w.Stop(t)
			const src, tgt = `SELECT id, n, note FROM b ORDER BY id`, `SELECT id, n, note FROM b ORDER BY id`
			if !pgtest.Until(60*time.Second, func() bool {
				return bridgetest.Query(t, e.Tgt, tgt) == bridgetest.Query(t, e.Src, src) && bridgetest.Query(t, e.Tgt, `SELECT * FROM a ORDER BY id`) == bridgetest.Query(t, e.Src, `SELECT * FROM a ORDER BY id`)
			}) {
				t.Fatalf("after a kill -9 at %s the target differs: b %d rows, want %d\n%s", fp,
					strings.Count(bridgetest.Query(t, e.Tgt, tgt), "\n"), strings.Count(bridgetest.Query(t, e.Src, src), "\n"), pgtest.Tail(r.Logs.String(), 40))
			}
			if after := r.Logs.String()[before:]; strings.Contains(after, "an insert met a row already on the target") {
				t.Fatalf("after a kill -9 at %s a change the copy held was applied again:\n%s", fp, pgtest.Tail(after, 40))
			}
			code, out, _ := run("status", "-c", p, "--json")
			var st admin.Status
			if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
				t.Fatalf("status --json: %d %v\n%s", code, err, out)
			}
			if es := st.Directions[0].Entries; len(es) != 2 || es[1].Entry != `"public"."b" -> "public"."b"` || (es[1].State != "synced" && es[1].State != "streaming") {
				t.Fatalf("status --json does not show b's entry synced or streaming:\n%s", out)
			}
			noCanary(t, r.Logs.String(), out)
		})
	}
}

// TestKillNineDuringInitialCopy kills the daemon after the first table of
// its initial copy has committed. The restart empties what that attempt
// wrote (the bridge's own write, under its origin) and copies again; a flip
// then finds no foreign write on the target, and green keeps every row.
func TestKillNineDuringInitialCopy(t *testing.T) {
	bin := buildBinary(t)
	e := bridgetest.NewEnv(t, `
		CREATE TABLE t1 (id int PRIMARY KEY, v text);
		CREATE TABLE t2 (id int PRIMARY KEY, v text);
		INSERT INTO t1 SELECT g, 'a' || g FROM generate_series(1, 5000) g;
		INSERT INTO t2 SELECT g, 'b' || g FROM generate_series(1, 5000) g;`, `
		CREATE TABLE t1 (id int PRIMARY KEY, v text);
		CREATE TABLE t2 (id int PRIMARY KEY, v text);`)
	p := e.MappingFile("killcopy", "tables:\n  - source: t1\n    target: t1\n  - source: t2\n    target: t2\n")
	r := newRig(t, bin, p)
	d := r.start("CDCBRIDGE_FAILPOINT=initial-copy-table-committed")
	if !d.exited(60 * time.Second) {
		t.Fatalf("the daemon did not die after a table's copy committed\n%s", pgtest.Tail(r.Logs.String(), 20))
	}
	if got := bridgetest.Query(t, e.Tgt, `SELECT (SELECT count(*) FROM t1) + (SELECT count(*) FROM t2)`); got == "(0)" {
		t.Fatalf("no table's copy had committed when the daemon died: the test proves nothing\n%s", pgtest.Tail(r.Logs.String(), 20))
	}
	d = r.start()
	defer d.stop()
	rows := `SELECT 1, id, v FROM t1 UNION ALL SELECT 2, id, v FROM t2 ORDER BY 1, 2`
	pgtest.WaitFor(t, 60*time.Second, "the copy to be redone", func() bool { return bridgetest.Query(t, e.Tgt, rows) == bridgetest.Query(t, e.Src, rows) }, &r.Logs)

	code, out, errs := run("flip", "-c", p, "--timeout", "30s")
	if code != 0 {
		t.Fatalf("flip after a copy killed and redone: exit %d\n%s%s\n%s", code, out, errs, pgtest.Tail(r.Logs.String(), 30))
	}
	if got := bridgetest.Query(t, e.Src, `SELECT count(*) FROM t1`); got != "(5000)" {
		t.Fatalf("green's t1 holds %s rows after the flip", got)
	}
	pgtest.MustExec(t, e.Tgt, `UPDATE t2 SET v = 'blue' WHERE id = 1`)
	pgtest.WaitFor(t, 30*time.Second, "blue's write to reach green", func() bool { return bridgetest.Query(t, e.Src, rows) == bridgetest.Query(t, e.Tgt, rows) }, &r.Logs)
}
