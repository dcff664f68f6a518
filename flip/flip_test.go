package flip_test

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
	"github.com/cdcbridge/cdcbridge/verify"
)

func TestMain(m *testing.M) { bridgetest.Main(m) }

// TestFlipAndRollback tells the whole story with the daemon: green live,
// blue in step, a flip while writes still land on green, writes, updates and
// deletes on blue reaching green in the old shape, a rollback, and green's
// writes reaching blue again; at the end both agree and nothing keeps
// changing.
func TestFlipAndRollback(t *testing.T) {
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	m := e.Mapping("story", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": bridgetest.OrdersJS})
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")

	e.ExecSource(t, `INSERT INTO orders (amount, status, note) SELECT g / 10.0, 'new', 'g' || g FROM generate_series(1, 100) g`)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s", d.Logs.String())
		}
	})
	bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), nil)

	// Flip while green still takes writes.
	res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip: %+v %v\n%s", res, err, d.Logs.String())
	}
	e.ExecSource(t, `INSERT INTO orders VALUES (5000, 1.01, 'paid', 'late on green'); UPDATE orders SET status = 'shipped' WHERE id = 1`)
	// Blue's identity was brought up to green's sequence at the flip: its
	// first id follows green's last.
	var blueID int64
	if err := e.Tgt.QueryRow(context.Background(), `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (500, 1, 'on blue') RETURNING order_id`).Scan(&blueID); err != nil {
		t.Fatal(err)
	}
	if blueID != 101+flip.DefaultSequenceGap {
		t.Fatalf("blue handed out id %d after the flip, want %d (green used 1..100, then the gap)", blueID, 101+flip.DefaultSequenceGap)
	}
	if _, err := e.Tgt.Exec(context.Background(), `
		UPDATE orders_v2 SET amount_cents = 999, note = 'changed on blue' WHERE order_id = 2;
		DELETE FROM orders_v2 WHERE order_id = 3;`); err != nil {
		t.Fatal(err)
	}
	// Both slices converge: green's late writes reached blue, blue's reached green.
	if !pgtest.Until(20*time.Second, func() bool {
		return bridgetest.Query(t, e.Tgt, bridgetest.BlueRows) == bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue) && strings.Contains(bridgetest.Query(t, e.Src, "SELECT note FROM orders WHERE id = 1101"), "on blue")
	}) {
		t.Fatalf("slices differ after the flip:\nblue:\n%s\ngreen as blue:\n%s\nlogs:\n%s", bridgetest.Query(t, e.Tgt, bridgetest.BlueRows), bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), d.Logs.String())
	}
	if got := bridgetest.Query(t, e.Src, "SELECT id, amount, status, note FROM orders WHERE id IN (2, 3, 1101)"); got != "(1101,5.00,paid,\"on blue\")\n(2,9.99,new,\"changed on blue\")" {
		t.Fatalf("green after blue's writes:\n%s", got)
	}
	// Green goes quiet: forward is armed.
	d.WaitModes(t, "forward armed")

	// Rollback, then green is live again.
	res, err = flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
	if err != nil || !res.OK || res.To != config.Forward {
		t.Fatalf("rollback: %+v %v\n%s", res, err, d.Logs.String())
	}
	// Green's sequence was brought up to blue's at the rollback.
	var greenID int64
	if err := e.Src.QueryRow(context.Background(), `INSERT INTO orders (amount, status, note) VALUES (20.01, 'new', 'after rollback') RETURNING id`).Scan(&greenID); err != nil {
		t.Fatal(err)
	}
	if want := int64(1102 + flip.DefaultSequenceGap); greenID != want {
		t.Fatalf("green handed out id %d after the rollback, want %d (blue used 1101, then the gap)", greenID, want)
	}
	e.ExecSource(t, `DELETE FROM orders WHERE id = 4`)
	bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), nil)
	d.WaitModes(t, "reverse armed")

	// No echo: with no writes, the slices stay as they are and the
	// checkpoints settle, however many status rounds the bridge goes
	// through.
	slices := func() string {
		return bridgetest.Query(t, e.Tgt, bridgetest.BlueRows) + bridgetest.Query(t, e.Src, "SELECT * FROM orders")
	}
	before := slices()
	e.Settle(t, m, d, 3, 30)
	e.HoldsStill(t, m, d, 8)
	if after := slices(); after != before {
		t.Fatalf("the slices keep changing without writes:\n%s\n---\n%s", before, after)
	}
	// Both slices verify equal, in both directions, and the mapping is
	// lossless both ways.
	for _, dir := range []config.Direction{config.Forward, config.Reverse} {
		rep, err := verify.Run(context.Background(), verify.Options{Mapping: m, Direction: dir, Logger: bridgetest.TextLogger(&bridgetest.LogSink{})})
		if err != nil || !rep.Equal() {
			var b strings.Builder
			rep.Write(&b)
			t.Fatalf("verify %s: %v\n%s", dir, err, b.String())
		}
	}
	if rt, err := verify.RoundTrip(context.Background(), verify.Options{Mapping: m, Logger: bridgetest.TextLogger(&bridgetest.LogSink{})}); err != nil || !rt.OK() {
		var b strings.Builder
		rt.Write(&b)
		t.Fatalf("verify --roundtrip: %v\n%s", err, b.String())
	}
	if n := strings.Count(d.Logs.String(), "flipped"); n != 2 {
		t.Fatalf("%d flips logged, want 2\n%s", n, d.Logs.String())
	}
}

// TestFlipWithWritesAlreadyOnTheTarget: traffic reached blue before the
// flip. The armed reverse slot held at the first foreign write, so the flip
// refuses and says how many; the operator then carries them over or skips
// them, and nothing is dropped without that word.
func TestFlipWithWritesAlreadyOnTheTarget(t *testing.T) {
	for _, policy := range []control.ForeignPolicy{control.IncludeWrites, control.DiscardWrites} {
		t.Run(string(policy), func(t *testing.T) {
			e := bridgetest.NewEnv(t, bridgetest.OrdersGreen, bridgetest.OrdersBlue)
			m := e.Mapping("early", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": bridgetest.OrdersJS})
			d := e.Daemon(m, false)
			d.WaitModes(t, "forward live", "reverse armed")
			e.ExecSource(t, `INSERT INTO orders (amount, status, note) VALUES (1.00, 'new', 'from green')`)
			bridgetest.Eventually(t, e.Tgt, bridgetest.BlueRows, bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue), nil)
			// A client writes to blue before the flip: twice.
			for i, note := range []string{"early 1", "early 2"} {
				if _, err := e.Tgt.Exec(context.Background(), `INSERT INTO orders_v2 (order_id, amount_cents, state, note) OVERRIDING SYSTEM VALUE VALUES ($1, 100, 0, $2)`, 500+i, note); err != nil {
					t.Fatal(err)
				}
			}
			pgtest.WaitFor(t, 20*time.Second, "a warning about writes on the target", func() bool {
				return strings.Contains(d.Logs.String(), "taking writes on mapped tables")
			}, d.Logs)
			res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
			if err != nil || res.OK || !strings.Contains(res.Message, "took 2 foreign transaction(s)") || !strings.Contains(res.Message, "--include-target-writes") {
				t.Fatalf("flip with foreign writes: %+v %v", res, err)
			}
			if got := bridgetest.Query(t, e.Tgt, `SELECT live FROM cdcbridge.state`); got != "(forward)" {
				t.Fatalf("a refused flip changed the live direction: %s", got)
			}
			res, err = flip.Request(context.Background(), m, policy, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
			if err != nil || !res.OK {
				t.Fatalf("flip --%s: %+v %v\n%s", policy, res, err, d.Logs.String())
			}
			// Writes after the flip always travel.
			if _, err := e.Tgt.Exec(context.Background(), `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (700, 2, 'after the flip')`); err != nil {
				t.Fatal(err)
			}
			want := "(\"after the flip\")\n(\"from green\")"
			if policy == control.IncludeWrites {
				want = "(\"after the flip\")\n(\"early 1\")\n(\"early 2\")\n(\"from green\")"
			}
			bridgetest.Eventually(t, e.Src, `SELECT note FROM orders`, want, nil)
		})
	}
}

// TestFlipRequestNotCarriedOutLater: a flip command that gives up withdraws
// its request, and one that died without withdrawing it leaves a request
// that expires: a daemon started later carries out neither.
func TestFlipRequestNotCarriedOutLater(t *testing.T) {
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen, bridgetest.OrdersBlue)
	m := e.Mapping("gaveup", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": bridgetest.OrdersJS})
	// A daemon that runs once, so the state exists; then stopped.
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	d.Stop(t)

	// Something holds the daemon lock (a daemon cut off from the target,
	// as far as the flip command can tell) and never answers.
	hold := pgtest.Connect(t, e.TgtDSN)
	if err := control.LockDaemon(context.Background(), hold, m.Name, 0); err != nil {
		t.Fatal(err)
	}
	_, err := flip.Request(context.Background(), m, control.Refuse, time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
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

	d = e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	bridgetest.Eventually(t, e.Tgt, `SELECT answered_id = request_id, answer LIKE 'expired%', live FROM cdcbridge.state`, "(t,t,forward)", nil)
	st, err = admin.GetStatus(context.Background(), m)
	if err != nil || st.Live != "forward" || st.Pending != "" {
		t.Fatalf("status after the daemon met an expired request: %+v %v", st, err)
	}
	if !strings.Contains(d.Logs.String(), "expired before it could be carried out") {
		t.Errorf("the daemon did not log the expired request\n%s", d.Logs.String())
	}
}
