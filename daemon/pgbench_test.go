package daemon_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// pgbench runs PostgreSQL's pgbench against dsn.
func pgbench(t *testing.T, dsn string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(pgtest.BinDir(), "pgbench"), append(args, dsn)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
}

// pgbenchRows is every row of pgbench's four tables, in a comparable form
// (history has no key: compared as a multiset).
const pgbenchRows = `SELECT 'a', aid, bid, abalance, NULL::int, NULL::timestamp FROM pgbench_accounts UNION ALL
	SELECT 'b', bid, NULL, bbalance, NULL, NULL FROM pgbench_branches UNION ALL
	SELECT 't', tid, bid, tbalance, NULL, NULL FROM pgbench_tellers UNION ALL
	SELECT 'h', tid, bid, aid, delta, mtime FROM pgbench_history`

// TestPgbenchStory runs pgbench's TPC-B tables, a schema nobody here wrote
// (foreign keys, an insert-only history without a key), through the whole
// story: copy, stream under pgbench's load, a flip, pgbench on blue, a
// rollback, pgbench on green; the slices are compared exactly after each.
func TestPgbenchStory(t *testing.T) {
	e := bridgetest.NewEnv(t, "", "")
	pgbench(t, e.SrcDSN, "-i", "-q", "-s", "1", "-I", "dtgpf")
	pgbench(t, e.TgtDSN, "-i", "-q", "-s", "1", "-I", "dtpf")
	m := e.Mapping("bench", `
  - source: pgbench_accounts
    target: pgbench_accounts
  - source: pgbench_branches
    target: pgbench_branches
  - source: pgbench_tellers
    target: pgbench_tellers
  - source: pgbench_history
    target: pgbench_history
`, nil)
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	digestRows := bridgetest.Digest(pgbenchRows)
	bridgetest.Eventually(t, e.Tgt, digestRows, bridgetest.Query(t, e.Src, digestRows), nil)

	pgbench(t, e.SrcDSN, "-n", "-c", "2", "-t", "300")
	bridgetest.Eventually(t, e.Tgt, digestRows, bridgetest.Query(t, e.Src, digestRows), nil)

	flip := func(to string) {
		t.Helper()
		res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
		if err != nil || !res.OK || res.To.String() != to {
			t.Fatalf("flip to %s: %+v %v\n%s", to, res, err, d.Logs.String())
		}
	}
	flip("reverse")
	pgbench(t, e.TgtDSN, "-n", "-c", "2", "-t", "300")
	bridgetest.Eventually(t, e.Src, digestRows, bridgetest.Query(t, e.Tgt, digestRows), nil)

	flip("forward")
	pgbench(t, e.SrcDSN, "-n", "-c", "2", "-t", "300")
	bridgetest.Eventually(t, e.Tgt, digestRows, bridgetest.Query(t, e.Src, digestRows), nil)
	if got := bridgetest.Query(t, e.Src, `SELECT count(*) FROM pgbench_history`); got != "(1800)" {
		t.Fatalf("green's history holds %s rows, want the 1800 transactions of three pgbench runs", got)
	}
}
