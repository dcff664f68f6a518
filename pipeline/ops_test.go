package pipeline_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

const ordersJS = `
// orders(id bigint, amount numeric(12,2), status text) <-> orders_v2(order_id, amount_cents bigint, state smallint)
const STATES = { new: 0, paid: 1, shipped: 2 };
const NAMES = ["new", "paid", "shipped"];
function forward(row, change) {
  const out = { order_id: row.id };
  if (row.amount !== undefined) out.amount_cents = row.amount === null ? null : Math.round(Number(row.amount) * 100);
  if (row.status !== undefined) out.state = STATES[row.status];
  if (row.note !== undefined) out.note = row.note;
  return out;
}
function backward(row, change) {
  return { id: row.order_id, amount: (row.amount_cents / 100).toFixed(2), status: NAMES[row.state], note: row.note };
}
`

func TestTwoSchemasEveryOp(t *testing.T) {
	e := bridgetest.NewEnv(t, `
		CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), status text, note text);
		CREATE TABLE "Line Items" ("Order" bigint, "select" int, qty int, PRIMARY KEY ("Order", "select"));
		CREATE TABLE unmapped (id int PRIMARY KEY);`, `
		CREATE SCHEMA v2;
		CREATE TABLE v2.orders_v2 (order_id bigint PRIMARY KEY, amount_cents bigint, state smallint, note text,
			doubled bigint GENERATED ALWAYS AS (amount_cents * 2) STORED);
		CREATE TABLE "Line Items" ("Order" bigint, "select" int, qty int, PRIMARY KEY ("Order", "select"));`)
	m := e.Mapping("ops", `
  - source: public.orders
    target: v2.orders_v2
    transform: transforms/orders.js
  - source: '"Line Items"'
    target: '"Line Items"'
`, map[string]string{"transforms/orders.js": ordersJS})
	d := e.Start(m, config.Forward)
	e.ExecSource(t, `
		INSERT INTO orders VALUES (1, 19.90, 'new', NULL), (2, 5.00, 'paid', 'x');
		INSERT INTO orders SELECT 3, 1.00, 'new', string_agg(md5(i::text), '') FROM generate_series(1, 4000) i;
		INSERT INTO "Line Items" VALUES (1, 1, 10), (1, 2, 20);
		INSERT INTO unmapped VALUES (1);`)
	bridgetest.Eventually(t, e.Tgt, `SELECT order_id, amount_cents, state, length(note), doubled FROM v2.orders_v2`,
		"(1,1990,0,,3980)\n(2,500,1,1,1000)\n(3,100,0,128000,200)", d)
	bridgetest.Eventually(t, e.Tgt, `SELECT * FROM "Line Items"`, "(1,1,10)\n(1,2,20)", d)

	// An update that leaves the large TOASTed note unchanged: the target keeps it.
	e.ExecSource(t, `UPDATE orders SET status = 'shipped' WHERE id = 3`)
	bridgetest.Eventually(t, e.Tgt, `SELECT order_id, state, length(note), md5(note) = (SELECT md5(string_agg(md5(i::text), '')) FROM generate_series(1, 4000) i) FROM v2.orders_v2 WHERE order_id = 3`,
		"(3,2,128000,t)", d)

	// Primary-key changes, identity mapping and through the transform.
	e.ExecSource(t, `UPDATE "Line Items" SET "select" = 3 WHERE "Order" = 1 AND "select" = 2; UPDATE orders SET id = 10 WHERE id = 2`)
	bridgetest.Eventually(t, e.Tgt, `SELECT * FROM "Line Items"`, "(1,1,10)\n(1,3,20)", d)
	bridgetest.Eventually(t, e.Tgt, `SELECT order_id, amount_cents, md5(note) FROM v2.orders_v2 ORDER BY 1`, bridgetest.Query(t, e.Src, `SELECT id, round(amount * 100), md5(note) FROM orders ORDER BY 1`), d)

	// A delete whose target key (order_id) comes out of the transform.
	e.ExecSource(t, `DELETE FROM orders WHERE id = 1`)
	bridgetest.Eventually(t, e.Tgt, `SELECT order_id FROM v2.orders_v2`, "(10)\n(3)", d)

	// A rolled-back transaction never appears; a multi-statement one appears whole.
	tx, err := e.Src.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec(context.Background(), `INSERT INTO orders VALUES (99, 1, 'new', 'rolled back')`)
	tx.Rollback(context.Background())
	e.ExecSource(t, `BEGIN;
		INSERT INTO orders VALUES (20, 2.00, 'new', 'a');
		UPDATE orders SET amount = 3.00 WHERE id = 20;
		INSERT INTO "Line Items" VALUES (20, 1, 1);
		DELETE FROM "Line Items" WHERE "Order" = 1 AND "select" = 1;
		COMMIT;`)
	bridgetest.Eventually(t, e.Tgt, `SELECT (SELECT string_agg(order_id || ':' || amount_cents, ',' ORDER BY order_id) FROM v2.orders_v2), (SELECT string_agg("Order" || '/' || "select", ',' ORDER BY 1) FROM "Line Items")`,
		`("3:100,10:500,20:300","1/3,20/1")`, d)
	var n int
	e.Tgt.QueryRow(context.Background(), `SELECT count(*) FROM v2.orders_v2 WHERE order_id = 99`).Scan(&n)
	if n != 0 {
		t.Fatal("a rolled-back transaction was applied")
	}

	// Truncate of several tables at once.
	e.ExecSource(t, `TRUNCATE orders, "Line Items"`)
	bridgetest.Eventually(t, e.Tgt, `SELECT (SELECT count(*) FROM v2.orders_v2) + (SELECT count(*) FROM "Line Items")`, "(0)", d)

	// The checkpoint is where the target is, and the slot never passes it.
	d.Stop(t)
	st, err := checkpoint.Load(context.Background(), e.Tgt, "ops", "forward")
	if err != nil {
		t.Fatal(err)
	}
	var confirmed string
	if err := e.Src.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdcbridge_ops_forward'`).Scan(&confirmed); err != nil {
		t.Fatal(err)
	}
	var ahead bool
	e.Src.QueryRow(context.Background(), `SELECT $1::pg_lsn > $2::pg_lsn`, confirmed, st.LSN.String()).Scan(&ahead)
	if ahead {
		t.Fatalf("slot confirmed %s, past the checkpoint %s", confirmed, st.LSN)
	}
}

func TestIdleStreamAdvancesTheSlot(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY);`, `CREATE TABLE a (id int PRIMARY KEY);`)
	m := e.Mapping("idle", "  - source: a\n    target: a\n", nil)
	d := e.Start(m, config.Forward)
	before := bridgetest.Query(t, e.Src, `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdcbridge_idle_forward'`)
	// Only unmapped tables take writes.
	// Only unmapped tables take writes, more than the applier's idle
	// threshold of WAL.
	for i := 0; i < 20; i++ {
		e.ExecSource(t, "INSERT INTO other SELECT g FROM generate_series("+itoa(i*1000)+", "+itoa(i*1000+999)+") g")
	}
	cur := bridgetest.Query(t, e.Src, `SELECT pg_current_wal_lsn()`)
	if !pgtest.Until(30*time.Second, func() bool {
		var passed bool
		e.Src.QueryRow(context.Background(), `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cdcbridge_idle_forward'`, strings.Trim(cur, "()")).Scan(&passed)
		return passed
	}) {
		t.Fatalf("the slot stayed at %s while the source moved to %s on unmapped tables\n%s", before, cur, d.Logs.String())
	}
	st, err := checkpoint.Load(context.Background(), e.Tgt, "idle", "forward")
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	e.Src.QueryRow(context.Background(), `SELECT confirmed_flush_lsn <= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cdcbridge_idle_forward'`, st.LSN.String()).Scan(&ok)
	if !ok {
		t.Fatalf("the slot passed the checkpoint %s", st.LSN)
	}
}

func TestRefusals(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE TABLE a (id int PRIMARY KEY)`)
	m := e.Mapping("refuse", "  - source: a\n    target: a\n", nil)
	d := e.Start(m, config.Forward)
	e.ExecSource(t, "INSERT INTO a VALUES (1)")
	bridgetest.Eventually(t, e.Tgt, "SELECT * FROM a", "(1)", d)

	// A second daemon on the same mapping and direction is refused.
	err := pipeline.Run(context.Background(), pipeline.Options{Mapping: m, Direction: config.Forward, LockWait: 300 * time.Millisecond})
	if !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("a second daemon: %v, want ErrLocked", err)
	}
	d.Stop(t)

	// A slot ahead of the checkpoint is refused with the reason.
	pgtest.MustExec(t, e.Tgt, `UPDATE cdcbridge.checkpoint SET lsn = '0/10' WHERE name = 'refuse'`)
	err = pipeline.Run(context.Background(), pipeline.Options{Mapping: m, Direction: config.Forward})
	var ref *checkpoint.RefusalError
	if !errors.As(err, &ref) || !strings.Contains(err.Error(), "but the checkpoint on the target is at 0/10") {
		t.Fatalf("slot ahead of the checkpoint: %v", err)
	}
	// So is a missing slot.
	pgtest.MustExec(t, e.Src, `SELECT pg_drop_replication_slot('cdcbridge_refuse_forward')`)
	err = pipeline.Run(context.Background(), pipeline.Options{Mapping: m, Direction: config.Forward})
	if !errors.As(err, &ref) || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("missing slot: %v", err)
	}
	if strings.Contains(err.Error(), pgtest.Canary) {
		t.Fatal("the error carries the password")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestRecoversFromLostConnections terminates the walsender and the applier's
// backend under a running daemon: it restarts from the checkpoint by itself
// and the target ends up exact.
func TestRecoversFromLostConnections(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v int)`, `CREATE TABLE a (id int PRIMARY KEY, v int)`)
	m := e.Mapping("lost", "  - source: a\n    target: a\n", nil)
	d := e.Start(m, config.Forward)
	for i := 0; i < 30; i++ {
		e.ExecSource(t, "INSERT INTO a VALUES ("+itoa(i)+", 0); UPDATE a SET v = v + 1")
		switch i {
		case 10:
			pgtest.MustExec(t, e.Src, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cdcbridge_lost_forward'`)
		case 20:
			pgtest.MustExec(t, e.Tgt, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
		}
	}
	want := bridgetest.Query(t, e.Src, "SELECT * FROM a")
	if !pgtest.Until(30*time.Second, func() bool { return bridgetest.Query(t, e.Tgt, "SELECT * FROM a") == want }) {
		t.Fatalf("target differs after lost connections:\n%s\nwant\n%s\nlogs:\n%s", bridgetest.Query(t, e.Tgt, "SELECT * FROM a"), want, d.Logs.String())
	}
	if !strings.Contains(d.Logs.String(), "restarting from the checkpoint") {
		t.Fatalf("no restart was logged:\n%s", d.Logs.String())
	}
}

// TestErrorPolicies: a transform that throws on one row halts by default,
// skips it under on_error: skip, and records it in cdcbridge.deadletter
// under on_error: deadletter, in the same transaction as the checkpoint.
func TestErrorPolicies(t *testing.T) {
	const script = "function forward(r) { if (r.id === 2) throw new Error('bad row ' + r.id); return r }\nfunction backward(r) { return r }\n"
	for _, policy := range []string{"skip", "deadletter", "halt"} {
		t.Run(policy, func(t *testing.T) {
			e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
			m := e.Mapping("pol", "  - source: a\n    target: a\n    transform: t.js\non_error: "+policy+"\n", map[string]string{"t.js": script})
			d := e.Start(m, config.Forward)
			e.ExecSource(t, "INSERT INTO a VALUES (1, 'one'); INSERT INTO a VALUES (2, 'two'); INSERT INTO a VALUES (3, 'three')")
			if policy == "halt" {
				err := d.Wait(t, 20*time.Second)
				if err == nil || !strings.Contains(err.Error(), "bad row 2") || !strings.Contains(err.Error(), "t.js:1") {
					t.Fatalf("halt: %v", err)
				}
				// The three inserts are one source transaction: none of it is applied.
				if got := bridgetest.Query(t, e.Tgt, "SELECT id FROM a"); got != "" {
					t.Fatalf("rows after a halt: %s", got)
				}
				return
			}
			bridgetest.Eventually(t, e.Tgt, "SELECT id FROM a", "(1)\n(3)", d)
			if policy == "deadletter" {
				bridgetest.Eventually(t, e.Tgt, "SELECT op, row->>'v', error LIKE '%bad row 2%' FROM cdcbridge.deadletter", "(insert,two,t)", d)
			}
		})
	}
}
