package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func noCanary(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, pgtest.Canary) {
			t.Fatalf("the password appears in the output:\n%s", s)
		}
	}
}

func TestHelpAndUsage(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"run", "--help"}, {"check", "--help"}, {"help", "run"}} {
		code, out, errs := run(args...)
		if code != 0 || !strings.Contains(out+errs, "Usage") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"run"}, {"run", "-c"}, {"check", "--bogus", "-c", "x"}, {"run", "-c", "x.yaml", "extra"}} {
		code, out, errs := run(args...)
		if code != 2 || errs == "" {
			t.Errorf("%v: exit %d, want 2 with a message\n%s%s", args, code, out, errs)
		}
	}
	if code, _, errs := run("run", "-c", "/nonexistent/mapping.yaml"); code != 2 || !strings.Contains(errs, "/nonexistent/mapping.yaml") {
		t.Errorf("a missing mapping file: exit %d\n%s", code, errs)
	}
}

func TestCheck(t *testing.T) {
	e := bridgetest.NewEnv(t, `
		CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), status text);
		CREATE TABLE nokey (a int PRIMARY KEY, b text);
		CREATE TABLE extra (id int PRIMARY KEY, only_here text);`, `
		CREATE TABLE orders_v2 (order_id bigint PRIMARY KEY, amount_cents bigint, state smallint);
		CREATE TABLE nokey (a int, b text);
		CREATE TABLE extra (id int PRIMARY KEY);`)
	// The least transform check accepts: check looks at the columns, not the values.
	good := e.WriteFile("orders.js", "function forward(r){return {order_id: r.id}}\nfunction backward(r){return {id: r.order_id}}\n")
	_ = good
	ok := e.MappingFile("good", ordersTables)
	code, out, errs := run("check", "-c", ok)
	if code != 0 || !strings.Contains(out, "all checks passed") {
		t.Fatalf("check of a good mapping: exit %d\n%s%s", code, out, errs)
	}
	noCanary(t, out, errs)
	// --json: one document, the same exit code.
	code, out, errs = run("check", "-c", ok, "--json")
	var goodRep checkJSON
	if err := json.Unmarshal([]byte(out), &goodRep); err != nil || code != 0 {
		t.Fatalf("check --json of a good mapping: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if !goodRep.OK || goodRep.Problems != 0 || goodRep.Mapping != "good" || len(goodRep.Directions) != 2 || goodRep.Directions[1].Direction != "reverse" ||
		len(goodRep.Directions[0].Findings) < 3 || goodRep.Directions[0].Findings[0].Status != "ok" {
		t.Fatalf("check --json of a good mapping:\n%s", out)
	}

	cases := []struct {
		name, tables string
		want         []string
	}{
		{"nokey", "tables:\n  - source: nokey\n    target: nokey\n", []string{`"public"."nokey"`, "REPLICA IDENTITY FULL"}},
		{"unknowncol", "tables:\n  - source: extra\n    target: extra\n", []string{"only_here"}},
		{"missingtable", "tables:\n  - source: orders\n    target: nosuch\n    transform: orders.js\n", []string{`"public"."nosuch"`, "does not exist"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.MappingFile(c.name, c.tables)
			code, out, errs := run("check", "-c", p)
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s%s", code, out, errs)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			noCanary(t, out, errs)
			code, out, errs = run("check", "-c", p, "--json")
			var rep checkJSON
			if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 2 || rep.OK || rep.Problems == 0 {
				t.Fatalf("check --json: exit %d, want 2 and a JSON document with problems (%v)\n%s%s", code, err, out, errs)
			}
			var failed []string
			for _, d := range rep.Directions {
				for _, f := range d.Findings {
					if f.Status == "fail" {
						failed = append(failed, f.Where+": "+f.Message+" "+f.Fix)
					}
				}
			}
			if !strings.Contains(strings.Join(failed, "\n"), c.want[0]) {
				t.Fatalf("check --json: no failed finding names %q:\n%s", c.want[0], out)
			}
			noCanary(t, out, errs)
			// run refuses the same mapping up front, with the same findings,
			// as log records (whose text form escapes quotes).
			code, out, errs = run("run", "-c", p)
			if code != 2 || !strings.Contains(strings.ReplaceAll(errs, `\"`, `"`), c.want[0]) || !strings.Contains(errs, "the mapping cannot run") {
				t.Fatalf("run: exit %d, want 2 naming %q\n%s%s", code, c.want[0], out, errs)
			}
			noCanary(t, out, errs)
		})
	}
}

func TestBadMappings(t *testing.T) {
	e := bridgetest.NewEnv(t, "", "")
	e.WriteFile("broken.js", "function forward(row) {\n  return {\n}\nfunction backward(row) { return row }\n")
	e.WriteFile("noback.js", "function forward(row) { return row }\n")
	cases := []struct {
		name, body string
		want       []string
	}{
		{"unknownkey", "tables:\n  - source: a\n    target: a\n    tranform: x.js\n", []string{"unknownkey.yaml:9", "tranform"}},
		{"missingtables", "", []string{"missingtables.yaml", "tables"}},
		{"duplicate", "tables:\n  - source: a\n    target: b\n  - source: a\n    target: b\n", []string{"duplicate.yaml:9"}},
		{"nofile", "tables:\n  - source: a\n    target: b\n    transform: nosuch.js\n", []string{"nofile.yaml:9", "nosuch.js"}},
		{"syntax", "tables:\n  - source: a\n    target: b\n    transform: broken.js\n", []string{"broken.js:"}},
		{"noback", "tables:\n  - source: a\n    target: b\n    transform: noback.js\n", []string{"noback.js", "backward"}},
		{"unsetvar", "tables:\n  - source: a\n    target: ${NO_SUCH_VAR_X}\n", []string{"unsetvar.yaml:8", "NO_SUCH_VAR_X"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.MappingFile(c.name, c.body)
			for _, cmd := range []string{"check", "run"} {
				code, out, errs := run(cmd, "-c", p)
				if code != 2 {
					t.Fatalf("%s: exit %d, want 2\n%s%s", cmd, code, out, errs)
				}
				for _, w := range c.want {
					if !strings.Contains(out+errs, w) {
						t.Errorf("%s: output lacks %q:\n%s%s", cmd, w, out, errs)
					}
				}
				noCanary(t, out, errs)
			}
		})
	}
}

func TestDatabaseDown(t *testing.T) {
	e := bridgetest.NewEnv(t, "", "")
	down := strings.Replace(e.TgtDSN, fmt.Sprintf(":%d/", pgtest.Target(t).Port), ":1/", 1)
	t.Setenv("TEST_DOWN_DSN", down)
	p := e.WriteFile("down.yaml", "name: down\nsource:\n  dsn: ${TEST_SRC_DSN}\ntarget:\n  dsn: ${TEST_DOWN_DSN}\ntables:\n  - source: a\n    target: a\n")
	t.Setenv("TEST_SRC_DSN", e.SrcDSN)
	// A database that cannot be reached is exit 1, as on every command.
	code, out, errs := run("check", "-c", p)
	if code != 1 || !strings.Contains(out, "connecting to the target (postgres@127.0.0.1:1/") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	noCanary(t, out, errs)
}

// TestKillNineMidWorkload kills the daemon with SIGKILL twice while a write
// workload runs, restarts it each time, and checks that the target equals
// the transformed source exactly.
func TestKillNineMidWorkload(t *testing.T) {
	bin := buildBinary(t)
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	e.WriteFile("orders.js", bridgetest.OrdersJS)
	p := e.MappingFile("kill", "tables:\n  - source: orders\n    target: orders_v2\n    transform: orders.js\nbatch:\n  max_rows: 500\n")
	r := newRig(t, bin, p)
	// Streaming, so that the workload is all after the start.
	d := r.startStreaming("--log-level", "debug")

	pool, err := pgxpool.New(context.Background(), e.SrcDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // after the writers, which stop at their own cleanup
	// Four clients, each inserting into an id range of its own, updating
	// and deleting in it.
	var writers []*bridgetest.Workload
	for w := 0; w < 4; w++ {
		rng := rand.New(rand.NewSource(int64(w)))
		next := int64(w) * 1_000_000
		writers = append(writers, bridgetest.StartWorkload(t, func(ctx context.Context, _ int64) error {
			b := &pgx.Batch{}
			b.Queue("BEGIN")
			for i := 0; i < 1+rng.Intn(20); i++ {
				next++
				b.Queue("INSERT INTO orders VALUES ($1, $2, $3, $4)", next, fmt.Sprintf("%d.%02d", rng.Intn(1000), rng.Intn(100)), []string{"new", "paid", "shipped"}[rng.Intn(3)], fmt.Sprint("n", next))
			}
			if next > int64(w)*1_000_000+10 {
				id := int64(w)*1_000_000 + 1 + rng.Int63n(next-int64(w)*1_000_000)
				b.Queue("UPDATE orders SET status = 'shipped', amount = amount + 1 WHERE id = $1", id)
				b.Queue("DELETE FROM orders WHERE id = $1", id-1)
			}
			b.Queue("COMMIT")
			return pool.SendBatch(ctx, b).Close()
		}))
	}
	txns := func() int64 {
		var n int64
		for _, w := range writers {
			n += w.Txns()
		}
		return n
	}
	// applying waits until the daemon has applied some of the workload
	// (the target's rows changed) while the workload committed at least n
	// more transactions.
	applying := func(n int64) {
		t.Helper()
		before, txnsBefore := bridgetest.Query(t, e.Tgt, `SELECT count(*), max(order_id) FROM orders_v2`), txns()
		pgtest.WaitFor(t, 60*time.Second, "the daemon to apply some of the workload", func() bool {
			return txns() >= txnsBefore+n && bridgetest.Query(t, e.Tgt, `SELECT count(*), max(order_id) FROM orders_v2`) != before
		}, &r.Logs)
	}
	for round := 0; round < 2; round++ {
		// Killed at a random point of the workload, mid-stream.
		applying(int64(10 + rand.Intn(40)))
		d.kill()
		// The server ends the killed walsender on its own time; the next
		// daemon starts once the slot is free.
		pgtest.WaitFor(t, 30*time.Second, "the killed daemon's slot to be free", func() bool {
			var n int
			e.Src.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdcbridge_kill_forward' AND NOT active`).Scan(&n)
			return n == 1
		}, &r.Logs)
		d = r.start("--log-level", "debug")
	}
	applying(20)
	for _, w := range writers {
		w.Stop(t)
	}
	if txns() < 20 {
		t.Fatalf("the workload ran only %d transactions", txns())
	}
	var wantS, gotS string
	ok := pgtest.Until(60*time.Second, func() bool {
		wantS = bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue)
		gotS = bridgetest.Query(t, e.Tgt, bridgetest.BlueRows)
		return wantS == gotS
	})
	if err := d.stop(); err != nil {
		t.Errorf("SIGTERM: the daemon exited with %v", err)
	}
	allLogs := r.Logs.String()
	if !ok {
		t.Fatalf("after kill -9 and restarts the target differs from the transformed source (%d vs %d bytes)\nlogs:\n%s", len(gotS), len(wantS), pgtest.Tail(allLogs, 40))
	}
	if strings.Count(wantS, "\n") < 100 {
		t.Fatalf("too few rows to prove anything: %d", strings.Count(wantS, "\n"))
	}
	noCanary(t, allLogs)
	t.Logf("%d source transactions, %d rows, exact after 2 kills", txns(), strings.Count(wantS, "\n"))
}

// TestKillNineMidCopy kills the daemon during its initial copy: the restart
// empties what the failed attempt wrote, copies again, and the target ends
// exact.
func TestKillNineMidCopy(t *testing.T) {
	bin := buildBinary(t)
	e := bridgetest.NewEnv(t, `
		CREATE TABLE a (id bigint PRIMARY KEY, v text);
		CREATE TABLE b (id bigint PRIMARY KEY, v text);
		INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 300000) g;
		INSERT INTO b SELECT g, md5(g::text) FROM generate_series(1, 300000) g;`, `
		CREATE TABLE a (id bigint PRIMARY KEY, v text);
		CREATE TABLE b (id bigint PRIMARY KEY, v text);`)
	p := e.MappingFile("killcopy", "tables:\n  - source: a\n    target: a\n  - source: b\n    target: b\n")
	r := newRig(t, bin, p)
	d := r.start()
	pgtest.WaitFor(t, 30*time.Second, "the initial copy to run", func() bool {
		var n int
		e.Tgt.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %' AND datname = current_database()`).Scan(&n)
		return n > 0
	}, &r.Logs)
	d.kill()
	var state string
	e.Tgt.QueryRow(context.Background(), `SELECT state FROM cdcbridge.checkpoint`).Scan(&state)
	if state != "copying" {
		t.Fatalf("killed during the copy, the checkpoint says %q", state)
	}
	pgtest.MustExec(t, e.Src, `UPDATE a SET v = 'after the kill' WHERE id % 1000 = 0; DELETE FROM b WHERE id % 999 = 0`)
	d = r.start()
	defer d.stop()
	for _, tbl := range []string{"a", "b"} {
		q := "SELECT count(*), md5(string_agg(id || v, ',' ORDER BY id)) FROM " + tbl
		want := bridgetest.Query(t, e.Src, q)
		if !pgtest.Until(60*time.Second, func() bool { return bridgetest.Query(t, e.Tgt, q) == want }) {
			t.Fatalf("table %s differs after a kill -9 during the copy: %s vs %s\n%s", tbl, bridgetest.Query(t, e.Tgt, q), want, pgtest.Tail(r.Logs.String(), 30))
		}
	}
	if !strings.Contains(r.Logs.String(), "initial copy was interrupted") {
		t.Fatalf("the restart did not say it started the copy over:\n%s", pgtest.Tail(r.Logs.String(), 30))
	}
	noCanary(t, r.Logs.String())
}
