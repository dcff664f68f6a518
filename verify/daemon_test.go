package verify_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/pipeline"
	"github.com/cdcbridge/cdcbridge/verify"
)

// startDaemon runs pipeline.Run in the background until the test ends, and
// returns once it streams.
func startDaemon(t *testing.T, m *config.Mapping, logs *pgtest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := make(chan struct{}, 1)
	log := slog.New(slog.NewTextHandler(logs, nil))
	go func() {
		done <- pipeline.Run(ctx, pipeline.Options{Mapping: m, Direction: config.Forward, Logger: log, MaxBackoff: time.Second,
			Started: func(pglogrepl.LSN) {
				select {
				case started <- struct{}{}:
				default:
				}
			}})
	}()
	select {
	case <-started:
	case err := <-done:
		cancel()
		t.Fatalf("the daemon did not start: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("the daemon did not start within 30s\n%s", logs.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the daemon stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the daemon did not stop within 30s")
		}
	})
}

// While a daemon applies a stream of writes, the differences of the moment
// are rows in flight: verify checks them again after the daemon has caught
// up and reports the sides equal. A difference the daemon does not cause
// stays.
func TestVerifyUnderConcurrentWrites(t *testing.T) {
	p := pgtest.NewPair(t, srcDDL, tgtDDL)
	m := writeMapping(t, p, "live", shopTables, map[string]string{"orders.js": ordersJS})
	pgtest.MustExec(t, p.Src, `INSERT INTO orders SELECT i, i, 'new', 'n' || i FROM generate_series(1, 300) i`)
	var logs pgtest.Buffer
	startDaemon(t, m, &logs) // copies the 300 rows, then streams

	// A writer: updates, inserts and deletes in small transactions, until
	// verify is done.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var writes atomic.Int64
	conn := pgtest.Connect(t, p.SrcDSN)
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := 1000
		for ctx.Err() == nil {
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
			if err != nil && ctx.Err() == nil {
				t.Errorf("writer: %v", err)
				return
			}
			writes.Add(1)
			// The writer's pace, not a wait: it leaves the daemon room to
			// keep up, so that differences are rows in flight.
			time.Sleep(time.Millisecond)
		}
	}()
	// Verify starts while the writer is under way and the daemon applies
	// its writes.
	applied := pgtest.Query(t, p.Tgt, `SELECT order_id, amount_cents, state, note FROM v2.orders_v2`)
	deadline := time.Now().Add(30 * time.Second)
	for writes.Load() < 50 || pgtest.Query(t, p.Tgt, `SELECT order_id, amount_cents, state, note FROM v2.orders_v2`) == applied {
		if time.Now().After(deadline) {
			t.Fatalf("after %d writes the daemon applied none\n%s", writes.Load(), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	var transient, rechecks int64
	for range 2 {
		rep, out := run(t, verify.Options{Mapping: m, BatchSize: 50})
		if !rep.Equal() {
			stop()
			wg.Wait()
			t.Fatalf("verify under writes reported differences:\n%s\ndaemon logs:\n%s", out, logs.String())
		}
		transient += rep.Transient
		rechecks += int64(rep.Rechecks)
	}
	stop()
	wg.Wait()
	t.Logf("%d writes; %d re-checks; %d differences were rows in flight", writes.Load(), rechecks, transient)

	// Let the daemon apply everything, then make a difference of the
	// target's own: it persists through the re-check.
	want := `SELECT id, (amount * 100)::bigint, array_position(ARRAY['new','paid','shipped'], status) - 1, note FROM orders`
	got := `SELECT order_id, amount_cents, state, note FROM v2.orders_v2`
	deadline = time.Now().Add(20 * time.Second)
	for pgtest.Query(t, p.Src, want) != pgtest.Query(t, p.Tgt, got) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not catch up\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	if strings.Contains(logs.String(), pgtest.Canary) {
		t.Error("the password is in the daemon's logs")
	}
}
