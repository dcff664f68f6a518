package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestTestCommand runs `cdcbridge test` on recorded fixtures, without a
// database: goldens are written, then a transform change and a lossy
// transform are caught with the change, column and reason.
func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"keys.jsonl", "values.jsonl"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "fixtures", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// DSNs name variables that are not set: test needs no database.
	mapping := write("m.yaml", `name: fx
source:
  dsn: ${UNSET_SOURCE_DSN_FOR_TEST}
target:
  dsn: ${UNSET_TARGET_DSN_FOR_TEST}
tables:
  - source: keys_pk
    target: keys_pk
    transform: keys.js
  - source: values_types
    target: values_types
`)
	write("keys.js", "function forward(r) { return r }\nfunction backward(r) { return r }\n")
	fx := []string{filepath.Join(dir, "keys.jsonl"), filepath.Join(dir, "values.jsonl")}

	code, out, errs := run(append([]string{"test", "-c", mapping, "--update"}, fx...)...)
	if code != 0 || !strings.Contains(out, "updated") {
		t.Fatalf("--update: exit %d\n%s%s", code, out, errs)
	}
	golden, err := os.ReadFile(filepath.Join(dir, "keys.fx.golden"))
	if err != nil || !strings.Contains(string(golden), `insert "public"."keys_pk" row(id='1'::integer, v='one'::text)`) {
		t.Fatalf("golden file: %v\n%s", err, golden)
	}
	if code, out, errs := run(append([]string{"test", "-c", mapping}, fx...)...); code != 0 {
		t.Fatalf("unchanged mapping: exit %d\n%s%s", code, out, errs)
	}

	// A transform whose output changed: the diff names the change.
	write("keys.js", "function forward(r) { return {...r, v: r.v === undefined ? undefined : r.v + '!'} }\nfunction backward(r) { return {...r, v: r.v === undefined ? undefined : r.v.slice(0, -1)} }\n")
	code, out, _ = run("test", "-c", mapping, fx[0])
	if code != 1 || !strings.Contains(out, "- ") || !strings.Contains(out, "v='one!'::text") {
		t.Fatalf("changed output: exit %d, want 1 with a diff\n%s", code, out)
	}

	// A lossy transform: the round trip names the table, key and column.
	write("keys.js", "function forward(r) { return {id: r.id} }\nfunction backward(r) { return {id: r.id} }\n")
	// --update writes the golden file but still reports the lossy round
	// trip and fails.
	code, out, _ = run("test", "-c", mapping, "--update", fx[0])
	if code != 1 || !strings.Contains(out, "updated ") || !strings.Contains(out, "round trip(s) failed") || !strings.Contains(out, "v: was 'one', came back nothing") {
		t.Fatalf("lossy transform with --update: exit %d, want 1 naming the column\n%s", code, out)
	}
	code, out, _ = run("test", "-c", mapping, fx[0])
	if code != 1 || !strings.Contains(out, `round trip: "public"."keys_pk" (id='1')`) || !strings.Contains(out, "v: was 'one', came back nothing") {
		t.Fatalf("lossy transform: exit %d, want 1 naming the column\n%s", code, out)
	}

	// A throwing transform is a finding too, with the script's line.
	write("keys.js", "function forward(r) {\n  throw new Error('boom')\n}\nfunction backward(r) { return r }\n")
	code, out, _ = run("test", "-c", mapping, fx[0])
	if code != 1 || !strings.Contains(out, "boom") || !strings.Contains(out, "keys.js:2") {
		t.Fatalf("throwing transform: exit %d\n%s", code, out)
	}

	// Usage errors.
	if code, _, _ := run("test", "-c", mapping); code != 2 {
		t.Fatalf("no fixture: exit %d, want 2", code)
	}
	if code, _, _ := run("test", "-c", mapping, filepath.Join(dir, "nosuch.jsonl")); code != 2 {
		t.Fatalf("missing fixture: exit %d, want 2", code)
	}
}

// TestTestCommandOnProjectFixtures: the golden files beside the project's
// fixtures are what `cdcbridge test` writes, and it passes on them.
func TestTestCommandOnProjectFixtures(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "fixtures")
	goldens, err := filepath.Glob(filepath.Join(dir, "*.fixture.golden"))
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden files in %s: %v", dir, err)
	}
	args := []string{"test", "-c", filepath.Join(dir, "mapping.yaml")}
	for _, g := range goldens {
		args = append(args, strings.TrimSuffix(g, ".fixture.golden")+".jsonl")
	}
	code, out, errs := run(args...)
	if code != 0 || strings.Count(out, "ok   ") != len(goldens) {
		t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
	}
}

// TestRecordThenTest records a fixture with `cdcbridge record` while writes
// happen, and tests a mapping on it.
func TestRecordThenTest(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), status text)`,
		`CREATE TABLE orders_v2 (order_id bigint PRIMARY KEY, amount_cents bigint, state smallint)`)
	// Not bridgetest.OrdersJS: these tables have no note, which its backward would name.
	e.WriteFile("orders.js", `
const STATES = { new: 0, paid: 1 }, NAMES = ["new", "paid"];
function forward(r) { return { order_id: r.id, amount_cents: Math.round(Number(r.amount) * 100), state: STATES[r.status] } }
function backward(r) { return { id: r.order_id, amount: (r.amount_cents / 100).toFixed(2), status: NAMES[r.state] } }
`)
	p := e.MappingFile("rec", ordersTables)
	out := filepath.Join(e.Dir, "staging.jsonl")
	done := make(chan int, 1)
	var recOut, recErr string
	go func() {
		var code int
		code, recOut, recErr = run("record", "-c", p, "--out", out, "--duration", "8s")
		done <- code
	}()
	// Only transactions committed after the recording slot has its
	// consistent point are recorded: wait for it to stream (its walsender
	// has had a status update from the recorder).
	pgtest.WaitFor(t, 20*time.Second, "the recording slot to stream", func() bool {
		var n int
		e.Src.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication w ON w.pid = s.active_pid WHERE s.slot_name LIKE 'cdcbridge_rec_rec_%' AND s.confirmed_flush_lsn IS NOT NULL AND w.reply_time IS NOT NULL`).Scan(&n)
		return n == 1
	})
	pgtest.MustExec(t, e.Src, `INSERT INTO orders VALUES (1, 19.90, 'new'), (2, 5.00, 'paid'); UPDATE orders SET status = 'paid' WHERE id = 1`)
	if code := <-done; code != 0 {
		t.Fatalf("record: exit %d\n%s%s", code, recOut, recErr)
	}
	noCanary(t, recOut, recErr)
	// The server drops the temporary slot when the recording's session
	// ends, which may be a moment after the client has closed it. Other
	// tests' slots on the shared cluster do not count.
	pgtest.WaitFor(t, 10*time.Second, "record's temporary slot to go", func() bool {
		return bridgetest.Query(t, e.Src, `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'cdcbridge_rec_rec_%'`) == "(0)"
	})
	if code, o, errs := run("test", "-c", p, "--update", out); code != 0 {
		t.Fatalf("test --update: exit %d\n%s%s", code, o, errs)
	}
	golden, _ := os.ReadFile(strings.TrimSuffix(out, ".jsonl") + ".rec.golden")
	want := `insert "public"."orders_v2" row(order_id='1'::bigint, amount_cents='1990'::bigint, state='0'::smallint)`
	if !strings.Contains(string(golden), want) || strings.Count(string(golden), "\n") != 3 {
		t.Fatalf("golden lacks %s:\n%s", want, golden)
	}
	if code, o, errs := run("test", "-c", p, out); code != 0 {
		t.Fatalf("test: exit %d\n%s%s", code, o, errs)
	}
}
