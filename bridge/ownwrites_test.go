package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/bridge"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// waitErr waits for a daemon that is expected to stop by itself.
func (d *daemonRun) waitErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.done:
		d.cancel = nil
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("the daemon did not stop\n%s", d.logs.String())
	}
	return nil
}

// TestRetriedCopyIsNoForeignWrite: an initial copy that fails and is
// retried empties the target tables first. That truncate is the bridge's
// own write: the armed reverse direction must not count it as a client's,
// so the flip needs no --include-target-writes, and nothing of green is
// ever emptied by carrying it back.
func TestRetriedCopyIsNoForeignWrite(t *testing.T) {
	const green = `
		CREATE TABLE t1 (id int PRIMARY KEY, v text);
		CREATE TABLE t2 (id int PRIMARY KEY, v text);
		INSERT INTO t1 SELECT g, 'v' || g FROM generate_series(1, 1000) g;
		INSERT INTO t2 VALUES (1, 'ok'), (2, 'bad');`
	const blue = `
		CREATE TABLE t1 (id int PRIMARY KEY, v text);
		CREATE TABLE t2 (id int PRIMARY KEY, v text CONSTRAINT no_bad CHECK (v <> 'bad'));`
	e := newEnv(t, green, blue)
	m := e.mapping("retried", "  - source: t1\n    target: t1\n  - source: t2\n    target: t2\n", nil)

	for i := 0; i < 2; i++ {
		d := e.daemon(m, false)
		err := d.waitErr(t)
		if err == nil || !strings.Contains(err.Error(), "no_bad") {
			t.Fatalf("start %d: want the copy to fail on the CHECK no_bad, got %v\n%s", i+1, err, d.logs.String())
		}
	}
	pgtest.MustExec(t, e.Tgt, `ALTER TABLE t2 DROP CONSTRAINT no_bad`)
	d := e.daemon(m, false)
	d.waitModes(t, "forward live", "reverse armed")
	eventually(t, e.Tgt, `SELECT (SELECT count(*) FROM t1), (SELECT count(*) FROM t2)`, "(1000,2)", nil)

	// The flip counts foreign writes on blue by reading its WAL up to a
	// flushed point: the two truncates of the retried copies are there,
	// and must be known as the bridge's.
	res, err := bridge.RequestFlip(context.Background(), m, bridge.Refuse, 30*time.Second, bridge.DefaultSequenceGap, slogText(&logSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip after a retried copy: %+v %v\n%s", res, err, d.logs.String())
	}
	st, err := bridge.GetStatus(context.Background(), m)
	if err != nil || st.Foreign != nil || st.Live != config.Reverse.String() {
		t.Fatalf("status after the flip: %+v %v", st, err)
	}
	// Green keeps every row, and blue's next write reaches it.
	pgtest.MustExec(t, e.Tgt, `UPDATE t2 SET v = 'fine' WHERE id = 2`)
	eventually(t, e.Src, `SELECT (SELECT count(*) FROM t1), (SELECT string_agg(v, ',' ORDER BY id) FROM t2)`, "(1000,\"ok,fine\")", nil)
}
