package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// newFaultEnv is an env whose target lives on a cluster of its own, which
// the test may stop and start without disturbing the other tests.
func newFaultEnv(t *testing.T, cluster, srcDDL, tgtDDL string) (*bridgetest.Env, *pgtest.Cluster) {
	t.Helper()
	tc := pgtest.Get(t, cluster)
	p := &pgtest.Pair{Dir: t.TempDir(), SrcDSN: pgtest.Source(t).NewDB(t), TgtDSN: tc.NewDB(t)}
	p.Src = pgtest.Connect(t, p.SrcDSN)
	p.Tgt = pgtest.Connect(t, p.TgtDSN)
	pgtest.MustExec(t, p.Src, srcDDL)
	pgtest.MustExec(t, p.Tgt, tgtDDL)
	return &bridgetest.Env{Pair: p, T: t}, tc
}

// TestTargetRestartThenFlip: the target restarts under a running daemon;
// the pipelines and the daemon's own state connection come back (the
// daemon lock with it), and a flip asked for afterwards completes.
func TestTargetRestartThenFlip(t *testing.T) {
	e, tc := newFaultEnv(t, "restart-target", bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	m := e.Mapping("restart", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": bridgetest.OrdersJS})
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'before' FROM generate_series(1, 20) g`)
	bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), nil)

	// A fast shutdown is not held up by the bridge: the walsender of the
	// armed direction waits for its slot to confirm what it sent, and the
	// daemon confirms at once when asked.
	if took, killed := tc.Stop(t); killed {
		t.Fatalf("the target's fast shutdown did not finish within %s with the daemon running", took)
	}
	tc.Start(t)
	e.Tgt = pgtest.Connect(t, e.TgtDSN)
	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g, 'paid', 'after' FROM generate_series(1, 20) g`)
	bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), nil)

	res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip after the target restarted: %+v %v\n%s", res, err, d.Logs.String())
	}
	pgtest.MustExec(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (100, 1, 'blue')`)
	bridgetest.Eventually(t, e.Src, bridgetest.GreenAsBlue, bridgetest.Query(t, e.Tgt, bridgetest.BlueRows), nil)
	if !strings.Contains(d.Logs.String(), "reconnected to the target's state") {
		t.Errorf("the daemon did not say it reconnected its state connection\n%s", d.Logs.String())
	}
}

// TestStartsWhileTargetIsDown: a daemon started while the target is down
// does not exit: it says so and tries again with backoff, and once the
// target is up it copies and streams as on any first start.
func TestStartsWhileTargetIsDown(t *testing.T) {
	e, tc := newFaultEnv(t, "down-target", bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	m := e.Mapping("down", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": bridgetest.OrdersJS})
	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'before' FROM generate_series(1, 10) g`)
	tc.Stop(t)
	d := e.Daemon(m, false)
	// Two failed attempts, logged, and the daemon still runs.
	pgtest.WaitFor(t, 30*time.Second, "two logged attempts to reach the target", func() bool {
		return strings.Count(d.Logs.String(), "cannot reach the target to read the bridge's state; trying again") >= 2
	}, d.Logs)
	if err, stopped := d.Stopped(); stopped {
		t.Fatalf("the daemon exited while the target was down: %v\n%s", err, d.Logs.String())
	}
	tc.Start(t)
	e.Tgt = pgtest.Connect(t, e.TgtDSN)
	d.WaitModes(t, "forward live", "reverse armed")
	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g, 'paid', 'after' FROM generate_series(1, 10) g`)
	bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), nil)
}

// TestIdlePairSettles: with no client writing anywhere, the two directions
// stop writing checkpoints: a checkpoint of the bridge on one side is not a
// reason for one on the other. Before, each idle checkpoint woke the other
// direction, for ever. The test counts the bridge's status rounds (each
// one a chance for the idle machinery to write), not seconds.
func TestIdlePairSettles(t *testing.T) {
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	m := e.Mapping("idle", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": bridgetest.OrdersJS})
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'x' FROM generate_series(1, 50) g`)
	bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), d)

	// The last write is followed by at most a few idle checkpoints (its
	// own position, then what the server wrote after it); then nothing.
	e.Settle(t, m, d, 3, 30)
	e.HoldsStill(t, m, d, 8)
}
