package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/admin"
	"github.com/cdcbridge/cdcbridge/bridge"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// newFaultEnv is an env whose target lives on a cluster of its own, which
// the test may stop and start without disturbing the other tests.
func newFaultEnv(t *testing.T, cluster, srcDDL, tgtDDL string) (*env, *pgtest.Cluster) {
	t.Helper()
	tc := pgtest.Get(t, cluster)
	p := &pgtest.Pair{Dir: t.TempDir(), SrcDSN: pgtest.Source(t).NewDB(t), TgtDSN: tc.NewDB(t)}
	p.Src = pgtest.Connect(t, p.SrcDSN)
	p.Tgt = pgtest.Connect(t, p.TgtDSN)
	pgtest.MustExec(t, p.Src, srcDDL)
	pgtest.MustExec(t, p.Tgt, tgtDDL)
	return &env{Pair: p, t: t}, tc
}

// TestTargetRestartThenFlip: the target restarts under a running daemon;
// the pipelines and the daemon's own state connection come back (the
// daemon lock with it), and a flip asked for afterwards completes.
func TestTargetRestartThenFlip(t *testing.T) {
	e, tc := newFaultEnv(t, "restart-target", flipGreen, flipBlue)
	m := e.mapping("restart", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": copyJS})
	d := e.daemon(m, false)
	d.waitModes(t, "forward live", "reverse armed")
	pgtest_exec(t, e, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'before' FROM generate_series(1, 20) g`)
	eventually(t, e.Tgt, blueRows, query(t, e.Src, greenAsBlue), nil)

	// A fast shutdown is not held up by the bridge: the walsender of the
	// armed direction waits for its slot to confirm what it sent, and the
	// daemon confirms at once when asked.
	if took, killed := tc.Stop(t); killed {
		t.Fatalf("the target's fast shutdown did not finish within %s with the daemon running", took)
	}
	tc.Start(t)
	e.Tgt = pgtest.Connect(t, e.TgtDSN)
	pgtest_exec(t, e, `INSERT INTO orders (amount, status, note) SELECT g, 'paid', 'after' FROM generate_series(1, 20) g`)
	eventually(t, e.Tgt, blueRows, query(t, e.Src, greenAsBlue), nil)

	res, err := bridge.RequestFlip(context.Background(), m, control.Refuse, 30*time.Second, bridge.DefaultSequenceGap, slogText(&logSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip after the target restarted: %+v %v\n%s", res, err, d.logs.String())
	}
	pgtest.MustExec(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (100, 1, 'blue')`)
	eventually(t, e.Src, greenAsBlue, query(t, e.Tgt, blueRows), nil)
	if !strings.Contains(d.logs.String(), "reconnected to the target's state") {
		t.Errorf("the daemon did not say it reconnected its state connection\n%s", d.logs.String())
	}
}

// TestFlipRequestNotCarriedOutLater: a flip command that gives up withdraws
// its request, and one that died without withdrawing it leaves a request
// that expires: a daemon started later carries out neither.
func TestFlipRequestNotCarriedOutLater(t *testing.T) {
	e := newEnv(t, flipGreen, flipBlue)
	m := e.mapping("gaveup", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": copyJS})
	// A daemon that runs once, so the state exists; then stopped.
	d := e.daemon(m, false)
	d.waitModes(t, "forward live", "reverse armed")
	d.stop(t)

	// Something holds the daemon lock (a daemon cut off from the target,
	// as far as the flip command can tell) and never answers.
	hold := pgtest.Connect(t, e.TgtDSN)
	if err := control.LockDaemon(context.Background(), hold, m.Name, 0); err != nil {
		t.Fatal(err)
	}
	_, err := bridge.RequestFlip(context.Background(), m, control.Refuse, time.Second, bridge.DefaultSequenceGap, slogText(&logSink{}))
	if err == nil || !strings.Contains(err.Error(), "withdrawn and will not be carried out later") {
		t.Fatalf("a flip command that timed out: %v", err)
	}
	st, err := admin.GetStatus(context.Background(), m)
	if err != nil || st.Pending != "" || !strings.HasPrefix(st.LastAnswer, "withdrawn") {
		t.Fatalf("status after a withdrawn request: pending %q, answer %q, %v", st.Pending, st.LastAnswer, err)
	}
	// A flip command killed before it could withdraw: its request expires.
	if _, err := control.RequestFlip(context.Background(), e.Tgt, m.Name, config.Reverse, control.Refuse, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	hold.Close(context.Background())

	d = e.daemon(m, false)
	d.waitModes(t, "forward live", "reverse armed")
	eventually(t, e.Tgt, `SELECT answered_id = request_id, answer LIKE 'expired%', live FROM cdcbridge.state`, "(t,t,forward)", nil)
	st, err = admin.GetStatus(context.Background(), m)
	if err != nil || st.Live != "forward" || st.Pending != "" {
		t.Fatalf("status after the daemon met an expired request: %+v %v", st, err)
	}
	if !strings.Contains(d.logs.String(), "expired before it could be carried out") {
		t.Errorf("the daemon did not log the expired request\n%s", d.logs.String())
	}
}

// TestIdlePairSettles: with no client writing anywhere, the two directions
// stop writing checkpoints: a checkpoint of the bridge on one side is not a
// reason for one on the other. Before, each idle checkpoint woke the other
// direction 30s later, for ever.
func TestIdlePairSettles(t *testing.T) {
	e := newEnv(t, flipGreen, flipBlue)
	m := e.mapping("idle", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": copyJS})
	d := e.daemon(m, false)
	d.waitModes(t, "forward live", "reverse armed")
	pgtest_exec(t, e, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'x' FROM generate_series(1, 50) g`)
	eventually(t, e.Tgt, blueRows, query(t, e.Src, greenAsBlue), nil)

	ckpts := func() string {
		return query(t, e.Tgt, `SELECT direction, lsn FROM cdcbridge.checkpoint`) + "|" + query(t, e.Src, `SELECT direction, lsn FROM cdcbridge.checkpoint`)
	}
	// Settled means: no checkpoint moves for longer than the old echo
	// period (30s). It has to come within a minute of the last write.
	const quiet = 31 * time.Second
	deadline := time.Now().Add(quiet + 30*time.Second)
	last, since := ckpts(), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			t.Fatalf("the checkpoints of an idle pair kept moving (last at %s)\n%s", last, d.logs.String())
		}
		time.Sleep(250 * time.Millisecond)
		if now := ckpts(); now != last {
			last, since = now, time.Now()
		}
	}
}
