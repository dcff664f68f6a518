package verify_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/verify"
)

// While a daemon applies a stream of writes, the differences of the moment
// are rows in flight: verify checks them again after the daemon has caught
// up and reports the sides equal. A difference the daemon does not cause
// stays.
func TestVerifyUnderConcurrentWrites(t *testing.T) {
	p := bridgetest.NewEnv(t, srcDDL, tgtDDL)
	m := p.Mapping("live", shopTables, map[string]string{"orders.js": bridgetest.OrdersJS})
	pgtest.MustExec(t, p.Src, `INSERT INTO orders SELECT i, i, 'new', 'n' || i FROM generate_series(1, 300) i`)
	d := p.Start(m, config.Forward) // copies the 300 rows, then streams

	// A writer: updates, inserts and deletes in small transactions, until
	// verify is done.
	conn := pgtest.Connect(t, p.SrcDSN)
	next := 1000
	w := bridgetest.StartWorkload(t, func(ctx context.Context, _ int64) error {
		var err error
		switch rand.IntN(4) {
		case 0:
			next++
			_, err = conn.Exec(ctx, `INSERT INTO orders VALUES ($1, 1, 'new', 'w')`, next)
		case 1:
			_, err = conn.Exec(ctx, `DELETE FROM orders WHERE id = (SELECT max(id) FROM orders WHERE id > 1000)`)
		default:
			_, err = conn.Exec(ctx, `UPDATE orders SET amount = amount + 1, status = (ARRAY['new','paid','shipped'])[1 + $2::int] WHERE id = $1`,
				rand.IntN(300)+1, rand.IntN(3))
		}
		// The writer's pace, not a wait: it leaves the daemon room to
		// keep up, so that differences are rows in flight.
		time.Sleep(time.Millisecond)
		return err
	})
	// Verify starts while the writer is under way and the daemon applies
	// its writes.
	applied := pgtest.Query(t, p.Tgt, `SELECT order_id, amount_cents, state, note FROM v2.orders_v2`)
	if !pgtest.Until(30*time.Second, func() bool {
		return w.Txns() >= 50 && pgtest.Query(t, p.Tgt, `SELECT order_id, amount_cents, state, note FROM v2.orders_v2`) != applied
	}) {
		t.Fatalf("after %d writes the daemon applied none\n%s", w.Txns(), d.Logs.String())
	}

	var transient, rechecks int64
	for range 2 {
		rep, out := run(t, verify.Options{Mapping: m, BatchSize: 50})
		if !rep.Equal() {
			w.Stop(t)
			t.Fatalf("verify under writes reported differences:\n%s\ndaemon logs:\n%s", out, d.Logs.String())
		}
		transient += rep.Transient
		rechecks += int64(rep.Rechecks)
	}
	w.Stop(t)
	t.Logf("%d writes; %d re-checks; %d differences were rows in flight", w.Txns(), rechecks, transient)

	// Let the daemon apply everything, then make a difference of the
	// target's own: it persists through the re-check.
	want := `SELECT id, (amount * 100)::bigint, array_position(ARRAY['new','paid','shipped'], status) - 1, note FROM orders`
	got := `SELECT order_id, amount_cents, state, note FROM v2.orders_v2`
	bridgetest.Eventually(t, p.Tgt, got, pgtest.Query(t, p.Src, want), d)
	// A difference of the target's own: it persists through every re-check.
	pgtest.MustExec(t, p.Tgt, `UPDATE v2.orders_v2 SET note = 'edited on the target' WHERE order_id = 5`)
	var vlogs pgtest.Buffer
	rep, out := run(t, verify.Options{Mapping: m, Logger: slog.New(slog.NewTextHandler(&vlogs, nil))})
	t.Logf("verify logs:\n%s", vlogs.String())
	tr := table(t, rep, "v2.orders_v2")
	if tr.Different != 1 || tr.Missing != 0 || tr.Extra != 0 || !rep.Daemon || rep.Lagging || rep.Rechecks != 1 || rep.Transient != 0 {
		t.Fatalf("want exactly the edited row, checked again once with the daemon caught up:\n%s", out)
	}
	if d, _ := example(tr, verify.Different); d.Key != "(order_id='5')" || !strings.Contains(out, "the target has 'edited on the target'") {
		t.Errorf("different row %+v\n%s", d, out)
	}
	if strings.Contains(d.Logs.String(), pgtest.Canary) {
		t.Error("the password is in the daemon's logs")
	}
}
