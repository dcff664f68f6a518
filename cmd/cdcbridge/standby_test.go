package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestStandbyTakesOverAfterKillNine: two daemons run one mapping, as two
// replicas would; the second stands by (status shows it). The active one
// is killed with SIGKILL under a write workload; the standby takes over
// from the checkpoints and the target ends exactly the transformed
// source: nothing lost, nothing applied twice.
func TestStandbyTakesOverAfterKillNine(t *testing.T) {
	bin := buildBinary(t)
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	e.WriteFile("orders.js", bridgetest.OrdersJS)
	p := e.MappingFile("pair", "metrics:\n  listen: 127.0.0.1:0\ntables:\n  - source: orders\n    target: orders_v2\n    transform: orders.js\nbatch:\n  max_rows: 200\n")
	r := newRig(t, bin, p)
	active := r.startStreaming()
	from := len(r.Logs.String())
	standby := r.start()
	pgtest.WaitFor(t, 30*time.Second, "the second daemon to stand by", func() bool {
		return strings.Contains(r.Logs.String()[from:], "standing by to take over")
	}, &r.Logs)
	// The standby serves its health and metrics: alive, not ready, and
	// saying it stands by.
	get := newScraperFrom(t, r, from).get
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("the standby's /healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "standing by") {
		t.Errorf("the standby's /readyz: %d %q", code, body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, `cdcbridge_standby{mapping="pair"} 1`) || !strings.Contains(body, `cdcbridge_ready{mapping="pair"} 0`) {
		t.Errorf("the standby's metrics do not say it stands by:\n%s", body)
	}
	code, out, errs := run("status", "-c", p)
	if code != 0 || !strings.Contains(out, "daemon active:") || !strings.Contains(out, "daemon standby:") {
		t.Fatalf("status with a standby: exit %d\n%s%s", code, out, errs)
	}

	pool, err := pgxpool.New(context.Background(), e.SrcDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := bridgetest.StartWorkload(t, func(ctx context.Context, i int64) error {
		_, err := pool.Exec(ctx, `INSERT INTO orders (amount, status, note) SELECT g, 'new', $1 FROM generate_series(1, 5) g`, fmt.Sprint("w", i))
		if err == nil && i%3 == 0 {
			_, err = pool.Exec(ctx, `UPDATE orders SET status = 'paid' WHERE id = (SELECT max(id) FROM orders)`)
		}
		return err
	})
	w.WaitTxns(t, 30)
	// The standby may take over before kill has seen the process gone.
	from = len(r.Logs.String())
	active.kill()
	pgtest.WaitFor(t, 60*time.Second, "the standby to take over and stream", func() bool {
		s := r.Logs.String()[from:]
		return strings.Contains(s, "this standby takes over") && strings.Count(s, "msg=streaming component=pipeline") >= 2
	}, &r.Logs)
	w.WaitTxns(t, w.Txns()+30)
	w.Stop(t)

	var want, got string
	ok := pgtest.Until(60*time.Second, func() bool {
		want = bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue)
		got = bridgetest.Query(t, e.Tgt, bridgetest.BlueRows)
		return want == got
	})
	if err := standby.stop(); err != nil {
		t.Errorf("SIGTERM: the standby exited with %v", err)
	}
	if !ok {
		t.Fatalf("after the takeover the target differs from the transformed source (%d vs %d bytes)\n%s", len(got), len(want), pgtest.Tail(r.Logs.String(), 40))
	}
	noCanary(t, r.Logs.String(), out)
}

// TestNoStandbyRefuses: with --no-standby a second daemon gives up, as
// before standbys existed, with an error naming the one that runs.
func TestNoStandbyRefuses(t *testing.T) {
	bin := buildBinary(t)
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE TABLE a (id int PRIMARY KEY)`)
	p := e.MappingFile("solo", "tables:\n  - source: a\n    target: a\n")
	r := newRig(t, bin, p)
	first := r.startStreaming()
	second := r.start("--no-standby")
	if !second.exited(60 * time.Second) {
		t.Fatalf("the second daemon with --no-standby did not exit\n%s", r.Logs.String())
	}
	if second.cmd.ProcessState.Success() || !strings.Contains(r.Logs.String(), "another cdcbridge daemon runs mapping solo") {
		t.Fatalf("second daemon: %s\n%s", second.cmd.ProcessState, r.Logs.String())
	}
	if err := first.stop(); err != nil {
		t.Errorf("the first daemon: %v", err)
	}
}
