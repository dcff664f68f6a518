package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/admin"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestRetriedCopyIsNoForeignWrite: an initial copy that fails and is
// retried empties the target tables first. That truncate is the bridge's
// own write: the armed reverse direction must not count it as a client's,
// so the flip needs no --include-target-writes, and nothing of green is
// ever emptied by carrying it back.
func TestRetriedCopyIsNoForeignWrite(t *testing.T) {
	const green = `
		CREATE TABLE t1 (id int PRIMARY KEY, v text);
		CREATE TABLE t2 (id int PRIMARY KEY, v text);
		INSERT INTO t1 SELECT g, 'v' || g FROM generate_series(1, 1000) g;
		INSERT INTO t2 VALUES (1, 'ok'), (2, 'bad');`
	const blue = `
		CREATE TABLE t1 (id int PRIMARY KEY, v text);
		CREATE TABLE t2 (id int PRIMARY KEY, v text CONSTRAINT no_bad CHECK (v <> 'bad'));`
	e := bridgetest.NewEnv(t, green, blue)
	m := e.Mapping("retried", "  - source: t1\n    target: t1\n  - source: t2\n    target: t2\n", nil)

	for i := 0; i < 2; i++ {
		d := e.Daemon(m, false)
		err := d.Wait(t, 60*time.Second)
		if err == nil || !strings.Contains(err.Error(), "no_bad") {
			t.Fatalf("start %d: want the copy to fail on the CHECK no_bad, got %v\n%s", i+1, err, d.Logs.String())
		}
	}
	pgtest.MustExec(t, e.Tgt, `ALTER TABLE t2 DROP CONSTRAINT no_bad`)
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	bridgetest.Eventually(t, e.Tgt, `SELECT (SELECT count(*) FROM t1), (SELECT count(*) FROM t2)`, "(1000,2)", nil)

	// The flip counts foreign writes on blue by reading its WAL up to a
	// flushed point: the two truncates of the retried copies are there,
	// and must be known as the bridge's.
	res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip after a retried copy: %+v %v\n%s", res, err, d.Logs.String())
	}
	st, err := admin.GetStatus(context.Background(), m)
	if err != nil || st.Foreign != nil || st.Live != config.Reverse.String() {
		t.Fatalf("status after the flip: %+v %v", st, err)
	}
	// Green keeps every row, and blue's next write reaches it.
	pgtest.MustExec(t, e.Tgt, `UPDATE t2 SET v = 'fine' WHERE id = 2`)
	bridgetest.Eventually(t, e.Src, `SELECT (SELECT count(*) FROM t1), (SELECT string_agg(v, ',' ORDER BY id) FROM t2)`, "(1000,\"ok,fine\")", nil)
}

// TestNoBridgeWriteIsForeign: everything the bridge writes on either side
// (the initial copy, checkpoints, the state and flip requests, dead letters,
// sequences) is known as its own by the direction reading that side: a flip
// and a flip back find no foreign write to refuse on.
func TestNoBridgeWriteIsForeign(t *testing.T) {
	const js = `
function check(r) { if (r.note === 'poison') throw new Error('poisoned row ' + JSON.stringify(r)) }
function forward(r) { check(r); return { order_id: r.id, amount_cents: Math.round(Number(r.amount) * 100), state: 1, note: r.note } }
function backward(r) { check(r); return { id: r.order_id, amount: (r.amount_cents / 100).toFixed(2), status: 'paid', note: r.note } }`
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen+`INSERT INTO orders (amount, status, note) SELECT g, 'paid', 'g' || g FROM generate_series(1, 500) g;`, bridgetest.OrdersBlue)
	m := e.Mapping("own", "  - source: orders\n    target: orders_v2\n    transform: orders.js\non_error: deadletter\n", map[string]string{"orders.js": js})
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	rows := `SELECT order_id, amount_cents, note FROM orders_v2`
	greenRows := `SELECT id, round(amount * 100)::bigint, note FROM orders`
	bridgetest.Eventually(t, e.Tgt, rows, bridgetest.Query(t, e.Src, greenRows), nil)

	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (1, 'paid', 'poison'), (2, 'paid', 'fine')`)
	bridgetest.Eventually(t, e.Tgt, `SELECT count(*) FROM cdcbridge.deadletter WHERE direction = 'forward'`, "(1)", nil)
	flip := func(to string) {
		t.Helper()
		res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
		if err != nil || !res.OK || res.To.String() != to {
			t.Fatalf("flip to %s found the bridge's own writes foreign: %+v %v\n%s", to, res, err, d.Logs.String())
		}
	}
	flip("reverse")

	pgtest.MustExec(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (300, 1, 'poison'), (400, 1, 'blue')`)
	bridgetest.Eventually(t, e.Src, `SELECT count(*) FROM cdcbridge.deadletter WHERE direction = 'reverse'`, "(1)", nil)
	bridgetest.Eventually(t, e.Src, `SELECT count(*) FROM orders WHERE note = 'blue'`, "(1)", nil)
	flip("forward")
	if st, err := admin.GetStatus(context.Background(), m); err != nil || st.Foreign != nil {
		t.Fatalf("status after flipping back: %+v %v", st, err)
	}
}
