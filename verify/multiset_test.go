package verify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/verify"
)

// history is pgbench_history: no key at all, duplicate rows.
const historyDDL = `CREATE TABLE history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22), doc json)`

// A table written without a key is compared as a multiset: equal when each
// row is held as many times on both sides, and one copy of a duplicated row
// missing (or one too many) is a difference that names the row.
func TestVerifyTableWithoutKey(t *testing.T) {
	p := bridgetest.NewEnv(t, historyDDL, historyDDL)
	m := p.Mapping("history", "  - source: history\n    target: history\n", nil)
	rows := `INSERT INTO history VALUES
		(1, 1, 1, 5, '2024-01-01 10:00', NULL, '{"a":  1}'), (1, 1, 1, 5, '2024-01-01 10:00', NULL, '{"a":  1}'),
		(1, 1, 1, 5, '2024-01-01 10:00', NULL, '{"a":  1}'), (2, 1, 7, -3, '2024-01-01 10:01', 'x', NULL), (NULL, NULL, NULL, NULL, NULL, NULL, NULL)`
	pgtest.MustExec(t, p.Src, rows)
	pgtest.MustExec(t, p.Tgt, rows)
	rep, out := run(t, verify.Options{Mapping: m, CatchUp: -1})
	if tr := table(t, rep, "history"); !rep.Equal() || tr.Compared != 5 || tr.Rows != 5 {
		t.Fatalf("equal multisets differ:\n%s", out)
	}

	// One copy of the duplicated row is gone from the target; another row
	// is there twice.
	pgtest.MustExec(t, p.Tgt, `DELETE FROM history WHERE ctid = (SELECT ctid FROM history WHERE tid = 1 LIMIT 1);
		INSERT INTO history VALUES (2, 1, 7, -3, '2024-01-01 10:01', 'x', NULL)`)
	rep, out = run(t, verify.Options{Mapping: m, CatchUp: -1})
	tr := table(t, rep, "history")
	if rep.Equal() || tr.Missing != 1 || tr.Extra != 1 || tr.Different != 0 {
		t.Fatalf("want 1 missing and 1 extra:\n%s", out)
	}
	d, _ := example(tr, verify.Missing)
	if d.Key != `(tid='1', bid='1', aid='1', delta='5', mtime='2024-01-01 10:00:00', filler=NULL, doc='{"a":  1}')` || !strings.Contains(d.From, `"public"."history" (tid='1'`) {
		t.Errorf("missing row %+v", d)
	}
	if d, _ := example(tr, verify.Extra); !strings.HasPrefix(d.Key, "(tid='2', bid='1'") {
		t.Errorf("extra row %+v", d)
	}
	if !strings.Contains(out, "missing   (tid='1'") || !strings.Contains(out, "extra     (tid='2'") {
		t.Errorf("the report does not name the rows:\n%s", out)
	}

	// The same from the target's side, and the round trips of a table
	// without a key.
	rep, out = run(t, verify.Options{Mapping: m, Direction: 1, CatchUp: -1})
	if tr := table(t, rep, "history"); tr.Missing != 1 || tr.Extra != 1 {
		t.Fatalf("reverse: want 1 missing and 1 extra:\n%s", out)
	}
	rt, err := verify.RoundTrip(context.Background(), verify.Options{Mapping: m})
	if err != nil || !rt.OK() || len(rt.Tables) != 2 || rt.Tables[0].Rows != 5 {
		t.Fatalf("round trip: %+v %v", rt, err)
	}
}

// A transform that loses a value of a table without a key: the round trip
// names the row by all its values.
func TestRoundTripTableWithoutKey(t *testing.T) {
	p := bridgetest.NewEnv(t, `CREATE TABLE log (a int, b text)`, `CREATE TABLE log (a int, b text)`)
	m := p.Mapping("lossy", "  - source: log\n    target: log\n    transform: lossy.js\n", map[string]string{"lossy.js": `
function forward(r) { return {a: r.a, b: r.b && r.b.toUpperCase()} }
function backward(r) { return r }
`})
	pgtest.MustExec(t, p.Src, `INSERT INTO log VALUES (1, 'x'), (1, 'x'), (2, 'Y')`)
	rt, err := verify.RoundTrip(context.Background(), verify.Options{Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rt.Write(&b)
	if rt.OK() || rt.Tables[0].Failed != 2 || !strings.Contains(b.String(), "(a='1', b='x')") {
		t.Fatalf("round trip of a lossy transform:\n%s", b.String())
	}
}
