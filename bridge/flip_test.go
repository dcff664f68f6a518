package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/bridge"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/verify"
)

const (
	flipGreen = `CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric(12,2), status text, note text);`
	flipBlue  = `CREATE TABLE orders_v2 (order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount_cents bigint, state smallint, note text);`
	// green (old shape) as blue (new shape) would hold it
	greenAsBlue = `SELECT id, round(amount * 100)::bigint, CASE status WHEN 'new' THEN 0 WHEN 'paid' THEN 1 ELSE 2 END, note FROM orders`
	blueRows    = `SELECT order_id, amount_cents, state, note FROM orders_v2`
)

// daemonRun is a bridge.Daemon in a goroutine.
type daemonRun struct {
	cancel context.CancelFunc
	done   chan error
	logs   *logSink
	live   chan string
}

func (e *env) daemon(m *config.Mapping, reverse bool) *daemonRun {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonRun{cancel: cancel, done: make(chan error, 1), logs: &logSink{}, live: make(chan string, 16)}
	log := slogText(d.logs)
	go func() {
		d.done <- bridge.Daemon(ctx, bridge.DaemonOptions{
			Options: bridge.Options{Mapping: m, Logger: log, MaxBackoff: time.Second},
			Reverse: reverse, Quiet: time.Second, Poll: 100 * time.Millisecond, SequenceEvery: 200 * time.Millisecond,
			Changed: func(dir config.Direction, mode bridge.Mode, _ pglogrepl.LSN) {
				select {
				case d.live <- dir.String() + " " + mode.String():
				default:
				}
			},
		})
	}()
	e.t.Cleanup(func() { d.stop(e.t) })
	return d
}

func (d *daemonRun) stop(t *testing.T) {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("the daemon stopped with %v\nlogs:\n%s", err, d.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the daemon did not stop within 30s")
	}
}

// waitModes waits until the daemon has started the given pipelines.
func (d *daemonRun) waitModes(t *testing.T, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for {
		all := true
		for _, w := range want {
			all = all && seen[w]
		}
		if all {
			return
		}
		select {
		case s := <-d.live:
			seen[s] = true
		case err := <-d.done:
			d.cancel = nil
			t.Fatalf("the daemon stopped: %v\n%s", err, d.logs.String())
		case <-deadline:
			t.Fatalf("pipelines %v did not start (saw %v)\n%s", want, seen, d.logs.String())
		}
	}
}

// TestFlipAndRollback tells the whole story with the daemon: green live,
// blue in step, a flip while writes still land on green, writes, updates and
// deletes on blue reaching green in the old shape, a rollback, and green's
// writes reaching blue again; at the end both agree and nothing keeps
// changing.
func TestFlipAndRollback(t *testing.T) {
	e := newEnv(t, flipGreen, flipBlue)
	m := e.mapping("story", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": copyJS})
	d := e.daemon(m, false)
	d.waitModes(t, "forward live", "reverse armed")

	pgtest_exec(t, e, `INSERT INTO orders (amount, status, note) SELECT g / 10.0, 'new', 'g' || g FROM generate_series(1, 100) g`)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s", d.logs.String())
		}
	})
	eventually(t, e.Tgt, blueRows, query(t, e.Src, greenAsBlue), nil)

	// Flip while green still takes writes.
	res, err := bridge.RequestFlip(context.Background(), m, control.Refuse, 30*time.Second, bridge.DefaultSequenceGap, slogText(&logSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip: %+v %v\n%s", res, err, d.logs.String())
	}
	pgtest_exec(t, e, `INSERT INTO orders VALUES (5000, 1.01, 'paid', 'late on green'); UPDATE orders SET status = 'shipped' WHERE id = 1`)
	// Blue's identity was brought up to green's sequence at the flip: its
	// first id follows green's last.
	var blueID int64
	if err := e.Tgt.QueryRow(context.Background(), `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (500, 1, 'on blue') RETURNING order_id`).Scan(&blueID); err != nil {
		t.Fatal(err)
	}
	if blueID != 101+bridge.DefaultSequenceGap {
		t.Fatalf("blue handed out id %d after the flip, want %d (green used 1..100, then the gap)", blueID, 101+bridge.DefaultSequenceGap)
	}
	if _, err := e.Tgt.Exec(context.Background(), `
		UPDATE orders_v2 SET amount_cents = 999, note = 'changed on blue' WHERE order_id = 2;
		DELETE FROM orders_v2 WHERE order_id = 3;`); err != nil {
		t.Fatal(err)
	}
	// Both slices converge: green's late writes reached blue, blue's reached green.
	deadline := time.Now().Add(20 * time.Second)
	for query(t, e.Tgt, blueRows) != query(t, e.Src, greenAsBlue) || !strings.Contains(query(t, e.Src, "SELECT note FROM orders WHERE id = 1101"), "on blue") {
		if time.Now().After(deadline) {
			t.Fatalf("slices differ after the flip:\nblue:\n%s\ngreen as blue:\n%s\nlogs:\n%s", query(t, e.Tgt, blueRows), query(t, e.Src, greenAsBlue), d.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := query(t, e.Src, "SELECT id, amount, status, note FROM orders WHERE id IN (2, 3, 1101)"); got != "(1101,5.00,paid,\"on blue\")\n(2,9.99,new,\"changed on blue\")" {
		t.Fatalf("green after blue's writes:\n%s", got)
	}
	// Green goes quiet: forward is armed.
	d.waitModes(t, "forward armed")

	// Rollback, then green is live again.
	res, err = bridge.RequestFlip(context.Background(), m, control.Refuse, 30*time.Second, bridge.DefaultSequenceGap, slogText(&logSink{}))
	if err != nil || !res.OK || res.To != config.Forward {
		t.Fatalf("rollback: %+v %v\n%s", res, err, d.logs.String())
	}
	// Green's sequence was brought up to blue's at the rollback.
	var greenID int64
	if err := e.Src.QueryRow(context.Background(), `INSERT INTO orders (amount, status, note) VALUES (20.01, 'new', 'after rollback') RETURNING id`).Scan(&greenID); err != nil {
		t.Fatal(err)
	}
	if want := int64(1102 + bridge.DefaultSequenceGap); greenID != want {
		t.Fatalf("green handed out id %d after the rollback, want %d (blue used 1101, then the gap)", greenID, want)
	}
	pgtest_exec(t, e, `DELETE FROM orders WHERE id = 4`)
	eventually(t, e.Tgt, blueRows, query(t, e.Src, greenAsBlue), nil)
	d.waitModes(t, "reverse armed")

	// No echo: with no writes, the slices stay as they are and the
	// checkpoints settle. The servers' own WAL (standby snapshots, page
	// pruning by these very reads, autovacuum) may move a checkpoint once
	// in a while; an echo between the directions would write one about
	// every second on each side.
	time.Sleep(2 * time.Second)
	slices := func() string { return query(t, e.Tgt, blueRows) + query(t, e.Src, "SELECT * FROM orders") }
	before := slices()
	moves := map[string]int{}
	last := map[string]string{}
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for side, db := range map[string]*pgx.Conn{"target": e.Tgt, "source": e.Src} {
			lsn := query(t, db, `SELECT lsn FROM cdcbridge.checkpoint`)
			if prev, ok := last[side]; ok && prev != lsn {
				moves[side]++
			}
			last[side] = lsn
		}
	}
	if after := slices(); after != before {
		t.Fatalf("the slices keep changing without writes:\n%s\n---\n%s", before, after)
	}
	if n := moves["source"] + moves["target"]; n > 3 {
		t.Fatalf("the checkpoints moved %d times in 6 s without writes (%v): the directions echo each other", n, moves)
	}
	// Both slices verify equal, in both directions, and the mapping is
	// lossless both ways.
	for _, dir := range []config.Direction{config.Forward, config.Reverse} {
		rep, err := verify.Run(context.Background(), verify.Options{Mapping: m, Direction: dir, Logger: slogText(&logSink{})})
		if err != nil || !rep.Equal() {
			var b strings.Builder
			rep.Write(&b)
			t.Fatalf("verify %s: %v\n%s", dir, err, b.String())
		}
	}
	if rt, err := verify.RoundTrip(context.Background(), verify.Options{Mapping: m, Logger: slogText(&logSink{})}); err != nil || !rt.OK() {
		var b strings.Builder
		rt.Write(&b)
		t.Fatalf("verify --roundtrip: %v\n%s", err, b.String())
	}
	if n := strings.Count(d.logs.String(), "flipped"); n != 2 {
		t.Fatalf("%d flips logged, want 2\n%s", n, d.logs.String())
	}
}

// TestFlipWithWritesAlreadyOnTheTarget: traffic reached blue before the
// flip. The armed reverse slot held at the first foreign write, so the flip
// refuses and says how many; the operator then carries them over or skips
// them, and nothing is dropped without that word.
func TestFlipWithWritesAlreadyOnTheTarget(t *testing.T) {
	for _, policy := range []control.ForeignPolicy{control.IncludeWrites, control.DiscardWrites} {
		t.Run(string(policy), func(t *testing.T) {
			e := newEnv(t, flipGreen, flipBlue)
			m := e.mapping("early", "  - source: orders\n    target: orders_v2\n    transform: orders.js\n", map[string]string{"orders.js": copyJS})
			d := e.daemon(m, false)
			d.waitModes(t, "forward live", "reverse armed")
			pgtest_exec(t, e, `INSERT INTO orders (amount, status, note) VALUES (1.00, 'new', 'from green')`)
			eventually(t, e.Tgt, blueRows, query(t, e.Src, greenAsBlue), nil)
			// A client writes to blue before the flip: twice.
			for i, note := range []string{"early 1", "early 2"} {
				if _, err := e.Tgt.Exec(context.Background(), `INSERT INTO orders_v2 (order_id, amount_cents, state, note) OVERRIDING SYSTEM VALUE VALUES ($1, 100, 0, $2)`, 500+i, note); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(d.logs.String(), "taking writes on mapped tables") {
				if time.Now().After(deadline) {
					t.Fatalf("no warning about writes on the target:\n%s", d.logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			res, err := bridge.RequestFlip(context.Background(), m, control.Refuse, 30*time.Second, bridge.DefaultSequenceGap, slogText(&logSink{}))
			if err != nil || res.OK || !strings.Contains(res.Message, "took 2 foreign transaction(s)") || !strings.Contains(res.Message, "--include-target-writes") {
				t.Fatalf("flip with foreign writes: %+v %v", res, err)
			}
			if got := query(t, e.Tgt, `SELECT live FROM cdcbridge.state`); got != "(forward)" {
				t.Fatalf("a refused flip changed the live direction: %s", got)
			}
			res, err = bridge.RequestFlip(context.Background(), m, policy, 30*time.Second, bridge.DefaultSequenceGap, slogText(&logSink{}))
			if err != nil || !res.OK {
				t.Fatalf("flip --%s: %+v %v\n%s", policy, res, err, d.logs.String())
			}
			// Writes after the flip always travel.
			if _, err := e.Tgt.Exec(context.Background(), `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (700, 2, 'after the flip')`); err != nil {
				t.Fatal(err)
			}
			want := "(\"after the flip\")\n(\"from green\")"
			if policy == control.IncludeWrites {
				want = "(\"after the flip\")\n(\"early 1\")\n(\"early 2\")\n(\"from green\")"
			}
			eventually(t, e.Src, `SELECT note FROM orders`, want, nil)
		})
	}
}
