package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

const (
	copySrc = `
		CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), status text, note text);
		CREATE TABLE "Items" (id int PRIMARY KEY, "select" text, tags text[], doc jsonb);
		INSERT INTO orders SELECT g, (g % 1000) / 10.0, (ARRAY['new','paid','shipped'])[1 + g % 3], CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g || E'\t\\x' END FROM generate_series(1, 200000) g;
		INSERT INTO "Items" SELECT g, 'it''s ' || g, ARRAY['a', NULL, 'b c'], jsonb_build_object('n', g, 'big', 12345678901234567890) FROM generate_series(1, 50000) g;`
	copyTgt = `
		CREATE TABLE orders_v2 (order_id bigint PRIMARY KEY, amount_cents bigint, state smallint, note text);
		CREATE TABLE "Items" (id int PRIMARY KEY, "select" text, tags text[], doc jsonb);`
	wantOrders = `SELECT id, round(amount * 100)::bigint, CASE status WHEN 'new' THEN 0 WHEN 'paid' THEN 1 ELSE 2 END, note FROM orders`
	gotOrders  = `SELECT order_id, amount_cents, state, note FROM orders_v2`
)

// TestInitialCopyUnderWrites preloads 250,000 rows, starts the daemon while
// a workload writes to the same tables, and requires the target to equal
// the transformed source exactly: nothing missed or applied twice across
// the hand-off from the snapshot to the stream.
func TestInitialCopyUnderWrites(t *testing.T) {
	e := bridgetest.NewEnv(t, copySrc, copyTgt)
	m := e.Mapping("copy", `
  - source: orders
    target: orders_v2
    transform: orders.js
  - source: '"Items"'
    target: '"Items"'
`, map[string]string{"orders.js": bridgetest.OrdersJS})

	w := bridgetest.StartWorkload(t, func(ctx context.Context, i int64) error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(`INSERT INTO orders VALUES ($1, 1.23, 'new', 'during')`, 1_000_001+i)
		b.Queue(`UPDATE orders SET status = 'shipped', note = 'moved' WHERE id = $1`, 1+(i*7)%200000)
		b.Queue(`DELETE FROM orders WHERE id = $1`, 2+(i*11)%200000)
		b.Queue(`UPDATE "Items" SET doc = doc || '{"touched": true}' WHERE id = $1`, 1+i%50000)
		b.Queue("COMMIT")
		return e.Src.SendBatch(ctx, b).Close()
	})
	// The workload is under way when the copy starts, and goes on across
	// the hand-off to the stream.
	w.WaitTxns(t, 5)
	d := e.Start(m, config.Forward)
	w.WaitTxns(t, 20)
	w.Stop(t)
	bridgetest.Eventually(t, e.Tgt, bridgetest.Digest(gotOrders), bridgetest.Query(t, e.Src, bridgetest.Digest(wantOrders)), d)
	bridgetest.Eventually(t, e.Tgt, bridgetest.Digest(`SELECT * FROM "Items"`), bridgetest.Query(t, e.Src, bridgetest.Digest(`SELECT * FROM "Items"`)), d)
	if !strings.Contains(d.Logs.String(), "initial copy done") {
		t.Fatalf("no initial copy was logged:\n%s", d.Logs.String())
	}
	t.Logf("%d workload transactions during the copy", w.Txns())
}

func TestInitialCopyNeedsEmptyTargets(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1)`,
		`CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (7)`)
	m := e.Mapping("full", "  - source: a\n    target: a\n", nil)
	err := pipeline.Run(context.Background(), pipeline.Options{Mapping: m})
	var ce *finding.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `target table "public"."a": holds rows`) || !strings.Contains(err.Error(), "--skip-copy") {
		t.Fatalf("err = %v", err)
	}
	// Nothing was created: no slot, and the next start can still copy.
	if got := bridgetest.Query(t, e.Src, `SELECT count(*) FROM pg_replication_slots`); got != "(0)" {
		t.Fatalf("slots left behind: %s", got)
	}
	// With --skip-copy the existing rows stay as they are and streaming starts now.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- pipeline.Run(ctx, pipeline.Options{Mapping: m, SkipCopy: true, Logger: bridgetest.Logger()})
	}()
	pgtest.WaitFor(t, 20*time.Second, "the daemon to start with SkipCopy", func() bool {
		return bridgetest.Query(t, e.Src, `SELECT count(*) FROM pg_replication_slots WHERE active`) == "(1)"
	})
	e.ExecSource(t, "INSERT INTO a VALUES (2)")
	bridgetest.Eventually(t, e.Tgt, "SELECT id FROM a", "(2)\n(7)", nil)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestInsertMeetsRowOnTarget: inserts are plain INSERTs until one meets a
// row the target already holds; then the target transaction is rolled back,
// the table's inserts become upserts, and the replay from the checkpoint
// applies everything once.
func TestInsertMeetsRowOnTarget(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`,
		`CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, 'held by the target')`)
	m := e.Mapping("held", "  - source: a\n    target: a\n", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &bridgetest.LogSink{}
	go func() {
		done <- pipeline.Run(ctx, pipeline.Options{Mapping: m, SkipCopy: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	}()
	pgtest.WaitFor(t, 20*time.Second, "the daemon to start", func() bool {
		return bridgetest.Query(t, e.Src, `SELECT count(*) FROM pg_replication_slots WHERE active`) == "(1)"
	}, logs)
	e.ExecSource(t, "INSERT INTO a VALUES (2, 'b'), (1, 'from the source'), (3, 'c')")
	e.ExecSource(t, "INSERT INTO a VALUES (4, 'd'); INSERT INTO a VALUES (5, 'e')")
	bridgetest.Eventually(t, e.Tgt, "SELECT * FROM a", "(1,\"from the source\")\n(2,b)\n(3,c)\n(4,d)\n(5,e)", nil)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, "its table's inserts are upserts from now on"); n != 1 {
		t.Fatalf("%d conflict restarts logged, want 1:\n%s", n, out)
	}
	if strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
		t.Fatalf("a conflict is not a failure:\n%s", out)
	}
}

// TestArmedStreamsAfterTheCopy: on a new bridge the armed direction creates
// its slot at once but streams only once the live direction's initial copy
// has committed, so that the copy is not read back while it runs; the copy
// and everything after it are still the bridge's own writes to that slot.
func TestArmedStreamsAfterTheCopy(t *testing.T) {
	e := bridgetest.NewEnv(t, copySrc, copyTgt)
	m := e.Mapping("held", `
  - source: orders
    target: orders_v2
    transform: orders.js
  - source: '"Items"'
    target: '"Items"'
`, map[string]string{"orders.js": bridgetest.OrdersJS})
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	logs := d.Logs.String()
	copied := strings.Index(logs, "initial copy done")
	armed := strings.Index(logs, "msg=streaming component=pipeline direction=reverse")
	if copied < 0 || armed < copied {
		t.Fatalf("the armed direction streamed before the initial copy was done:\n%s", logs)
	}
	e.ExecSource(t, `UPDATE "Items" SET "select" = 'after' WHERE id = 1`)
	bridgetest.Eventually(t, e.Tgt, `SELECT "select" FROM "Items" WHERE id = 1`, "(after)", nil)
	if strings.Contains(d.Logs.String(), "is taking writes on mapped tables") {
		t.Fatalf("the armed direction took the copy for foreign writes:\n%s", d.Logs.String())
	}
}
