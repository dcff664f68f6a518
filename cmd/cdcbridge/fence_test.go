package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// fenceProbe is a client write that changes nothing: a statement-level
// fence refuses it all the same.
const fenceProbe = `UPDATE %s SET note = note WHERE false`

// fenced reports whether a client's probe write to table on conn is
// refused by the fence of mapping name, with live named as the live side.
func fenced(t *testing.T, conn *pgx.Conn, table, name, live string) bool {
	t.Helper()
	_, err := conn.Exec(context.Background(), strings.Replace(fenceProbe, "%s", table, 1))
	if err == nil {
		return false
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != "25006" || !strings.HasPrefix(pg.Message, `cdcbridge: mapping "`+name+`" fences this database: the live side is `+live+" (") {
		t.Fatalf("a client's write to %s: %v, want the fence's error", table, err)
	}
	return true
}

// TestKillNineWithAFence crashes the daemon of a fenced mapping with
// SIGKILL after a flip lifted blue's fence but before it was recorded, and
// after green was fenced but before its drain was recorded: the restarted
// daemon puts the fence where the state says (on blue, or on green once it
// has drained again), the flip completes, and the slices end exact.
func TestKillNineWithAFence(t *testing.T) {
	bin := buildBinary(t)
	for _, fp := range []string{"flip-fence-lifted", "drain-quiet"} {
		t.Run(fp, func(t *testing.T) {
			e := flipPair(t)
			p := e.MappingFile("fenced", ordersTables+"fence: true\n")
			r := newRig(t, bin, p)
			d := r.startStreaming("CDCBRIDGE_FAILPOINT=" + fp)
			if !fenced(t, e.Tgt, "orders_v2", "fenced", "source") {
				t.Fatalf("blue takes client writes while green is live\n%s", pgtest.Tail(r.Logs.String(), 20))
			}
			pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'before' FROM generate_series(1, 50) g`)
			pgtest.WaitFor(t, 20*time.Second, "green's rows to reach blue", func() bool {
				return bridgetest.Query(t, e.Tgt, bridgetest.BlueRows) == bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue)
			}, &r.Logs)

			code, out, errs := run("flip", "-c", p, "--timeout", "3s")
			if !d.exited(20 * time.Second) {
				t.Fatalf("the daemon did not die at %s (flip: %d %s%s)\n%s", fp, code, out, errs, pgtest.Tail(r.Logs.String(), 20))
			}
			if fp == "flip-fence-lifted" {
				// Blue's fence is lifted, the flip not recorded: green is
				// still live, and the restart fences blue again.
				d = r.startStreaming()
				if !fenced(t, e.Tgt, "orders_v2", "fenced", "source") {
					t.Fatalf("blue takes client writes after the restart, with green live\n%s", pgtest.Tail(r.Logs.String(), 30))
				}
				pgtest.MustExec(t, e.Src, `UPDATE orders SET note = 'after the restart' WHERE id <= 5`)
			} else {
				// The flip is recorded: start as another host would.
				d = r.start("--reverse")
			}
			defer d.stop()
			pgtest.WaitFor(t, 30*time.Second, "blue to be live", func() bool {
				var live string
				e.Tgt.QueryRow(context.Background(), `SELECT live FROM cdcbridge.state`).Scan(&live)
				if live == "reverse" {
					return true
				}
				run("flip", "-c", p, "--timeout", "5s")
				return false
			}, &r.Logs)
			// Blue takes client writes, which reach green; green, once it has
			// drained, refuses them.
			pgtest.MustExec(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) SELECT 100 * g, 1, 'blue' FROM generate_series(1, 20) g;
				UPDATE orders_v2 SET state = 2 WHERE order_id = 7; DELETE FROM orders_v2 WHERE order_id = 8`)
			pgtest.WaitFor(t, 30*time.Second, "green to be fenced once drained", func() bool {
				return fenced(t, e.Src, "orders", "fenced", "target")
			}, &r.Logs)
			if fenced(t, e.Tgt, "orders_v2", "fenced", "source") {
				t.Fatalf("blue, live, refuses client writes\n%s", pgtest.Tail(r.Logs.String(), 30))
			}
			if !pgtest.Until(30*time.Second, func() bool {
				return bridgetest.Query(t, e.Tgt, bridgetest.BlueRows) == bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue)
			}) {
				t.Fatalf("after a kill -9 at %s the slices differ:\nblue %s\ngreen %s\n%s", fp, bridgetest.Query(t, e.Tgt, bridgetest.BlueRows), bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), pgtest.Tail(r.Logs.String(), 30))
			}
			var n int
			e.Src.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE note = 'blue'`).Scan(&n)
			if n != 20 {
				t.Fatalf("blue's 20 rows reached green %d times", n)
			}
			noCanary(t, r.Logs.String())
		})
	}
}
