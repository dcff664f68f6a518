package flip_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/admin"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/fence"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// fenceRefuses checks that a client's sql fails on conn with the fence's
// error naming the mapping and the live side.
func fenceRefuses(t *testing.T, conn *pgx.Conn, mapping, live, sql string, d *bridgetest.Proc) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql)
	var pg *pgconn.PgError
	want := fmt.Sprintf(`cdcbridge: mapping %q fences this database: the live side is %s; write there: this side takes writes from the bridge only, until a flip makes it live`, mapping, live)
	if !errors.As(err, &pg) || pg.Code != "25006" || pg.Message != want {
		t.Fatalf("%s: %v, want the fence's error %q\n%s", sql, err, want, d.Logs.String())
	}
}

// clientWrites runs a client's sql on conn, which must take it.
func clientWrites(t *testing.T, conn *pgx.Conn, sql string, d *bridgetest.Proc) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v, want it taken\n%s", sql, err, d.Logs.String())
	}
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// TestFenceFollowsTheFlip tells the story with fence: true. Blue, not
// live, refuses clients from the daemon's start while the bridge copies and
// streams into it; a flip opens blue before it answers, green keeps taking
// (and the bridge carrying) late writes until it has drained, and is then
// fenced while the bridge still writes blue's changes into it; a rollback
// moves the fence back. A daemon restarted on fences a crash left wrong
// puts them right, the slices end exact, and cleanup leaves no fence.
func TestFenceFollowsTheFlip(t *testing.T) {
	ctx := context.Background()
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	m := e.Mapping("fenced", "  - source: orders\n    target: orders_v2\n    transform: orders.js\nfence: true\n", map[string]string{"orders.js": bridgetest.OrdersJS})
	green, blue := "source ("+dbName(t, e.SrcDSN)+")", "target ("+dbName(t, e.TgtDSN)+")"
	// exact waits until both slices hold the same orders.
	exact := func(d *bridgetest.Proc) {
		t.Helper()
		var blueRows, greenRows string
		if !pgtest.Until(20*time.Second, func() bool {
			blueRows, greenRows = bridgetest.Query(t, e.Tgt, bridgetest.BlueRows), bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue)
			return blueRows == greenRows
		}) {
			t.Fatalf("the slices differ:\nblue:\n%s\ngreen as blue:\n%s\nlogs:\n%s", blueRows, greenRows, d.Logs.String())
		}
	}
	quiet := bridgetest.TextLogger(&bridgetest.LogSink{})

	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g / 10.0, 'new', 'copied ' || g FROM generate_series(1, 20) g`)
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	fenceRefuses(t, e.Tgt, "fenced", green, `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (1, 0, 'client on blue')`, d)
	fenceRefuses(t, e.Tgt, "fenced", green, `DELETE FROM orders_v2`, d)
	// The bridge's copy and stream pass the fence.
	e.ExecSource(t, `INSERT INTO orders (amount, status, note) VALUES (3.00, 'paid', 'streamed'); UPDATE orders SET status = 'shipped' WHERE id = 1`)
	exact(d)

	// The flip opens blue before it answers: traffic may move at once.
	res, err := flip.Request(ctx, m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, quiet)
	if err != nil || !res.OK {
		t.Fatalf("flip: %+v %v\n%s", res, err, d.Logs.String())
	}
	clientWrites(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (700, 1, 'client on blue')`, d)
	// Green still drains: a late write there is taken, and carried.
	clientWrites(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (4.00, 'new', 'late on green')`, d)
	exact(d)
	// Once green has drained it is fenced; the bridge still writes blue's
	// changes into it.
	d.WaitModes(t, "forward armed")
	fenceRefuses(t, e.Src, "fenced", blue, `UPDATE orders SET note = 'client on green'`, d)
	fenceRefuses(t, e.Src, "fenced", blue, `TRUNCATE orders`, d)
	clientWrites(t, e.Tgt, `UPDATE orders_v2 SET note = 'changed on blue' WHERE order_id = 2; DELETE FROM orders_v2 WHERE order_id = 3`, d)
	exact(d)

	// The rollback moves the fence back.
	res, err = flip.Request(ctx, m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, quiet)
	if err != nil || !res.OK || res.To != config.Forward {
		t.Fatalf("rollback: %+v %v\n%s", res, err, d.Logs.String())
	}
	clientWrites(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (5.00, 'new', 'after the rollback')`, d)
	d.WaitModes(t, "reverse armed")
	fenceRefuses(t, e.Tgt, "fenced", green, `UPDATE orders_v2 SET note = 'client on blue'`, d)
	clientWrites(t, e.Src, `DELETE FROM orders WHERE id = 4`, d)
	exact(d)

	// A daemon killed between lifting blue's fence and recording a flip, or
	// with the fence on the wrong side, converges when it starts again.
	d.Stop(t)
	if err := fence.Lift(ctx, m, config.Reverse, quiet); err != nil {
		t.Fatal(err)
	}
	if err := fence.Install(ctx, m, config.Reverse, quiet); err != nil {
		t.Fatal(err)
	}
	d = e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	fenceRefuses(t, e.Tgt, "fenced", green, `UPDATE orders_v2 SET note = 'client on blue'`, d)
	clientWrites(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (6.00, 'new', 'after the restart')`, d)
	exact(d)
	if got := bridgetest.Query(t, e.Src, `SELECT note FROM orders WHERE note LIKE '%blue%' OR note LIKE '%green%' OR note LIKE 'after%'`); got != `("after the restart")`+"\n"+`("after the rollback")`+"\n"+`("changed on blue")`+"\n"+`("client on blue")`+"\n"+`("late on green")` {
		t.Fatalf("green's notes:\n%s", got)
	}

	// Cleanup takes every fence away.
	d.Stop(t)
	var out strings.Builder
	if err := admin.Cleanup(ctx, m, &out); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*pgx.Conn{e.Src, e.Tgt} {
		if got := bridgetest.Query(t, conn, `SELECT tgname FROM pg_trigger WHERE tgname LIKE 'cdcbridge%' UNION ALL SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname = 'fence'`); got != "" {
			t.Fatalf("left after cleanup:\n%s\ncleanup said:\n%s", got, out.String())
		}
	}
	clientWrites(t, e.Tgt, `UPDATE orders_v2 SET note = 'after cleanup'`, d)
	pgtest.MustExec(t, e.Src, `UPDATE orders SET note = 'after cleanup'`)
}
