package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// Both slices hold the same tables without primary keys, each in its own
// way: an insert-only log (pgbench_history) with no key at all, a table
// with REPLICA IDENTITY FULL and duplicate rows, a table keyed by a unique
// index on a NOT NULL column, and one whose only key is named with key:
// (its unique index is on a nullable column), named differently on each
// side. A table that takes updates or deletes needs a replica identity on
// both sides, since each side publishes it for one direction.
const keylessDDL = `
	CREATE TABLE history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
	CREATE TABLE bag (a int, j json, note text);
	ALTER TABLE bag REPLICA IDENTITY FULL;
	CREATE TABLE uk (code text NOT NULL, v int);
	CREATE UNIQUE INDEX uk_code ON uk (code);
	ALTER TABLE uk REPLICA IDENTITY USING INDEX uk_code;`

const (
	keylessGreen = keylessDDL + `
	CREATE TABLE acct (code text, v text);
	CREATE UNIQUE INDEX ON acct (code);
	ALTER TABLE acct REPLICA IDENTITY FULL;`
	keylessBlue = keylessDDL + `
	CREATE TABLE acct_v2 (code2 text PRIMARY KEY, v text);`
	acctJS = `function forward(r) { return {code2: r.code, v: r.v} }
function backward(r) { return {code: r.code2, v: r.v} }
`
	keylessTables = `  - {source: history, target: history}
  - {source: bag, target: bag}
  - {source: uk, target: uk}
  - source: acct
    target: acct_v2
    transform: acct.js
    key: {source: [code], target: [code2]}
`
)

// keylessSame waits until both slices hold the same rows, compared as
// multisets: every row, ordered by its whole text.
func keylessSame(t *testing.T, e *bridgetest.Env, step string, d *bridgetest.Proc) {
	t.Helper()
	queries := []string{
		`SELECT * FROM history h ORDER BY h::text`,
		`SELECT * FROM bag b ORDER BY b::text`,
		`SELECT * FROM uk u ORDER BY u::text`,
	}
	// One budget for all the tables, as they converge together.
	deadline := time.Now().Add(20 * time.Second)
	for _, q := range append(queries, "acct") {
		src, tgt := q, q
		if q == "acct" {
			src, tgt = `SELECT code, v FROM acct a ORDER BY a::text`, `SELECT code2, v FROM acct_v2 a ORDER BY a::text`
		}
		var s, g string
		if !pgtest.Until(time.Until(deadline), func() bool {
			s, g = bridgetest.Query(t, e.Src, src), bridgetest.Query(t, e.Tgt, tgt)
			if s == g {
				return true
			}
			if err, stopped := d.Stopped(); stopped {
				t.Fatalf("%s: the daemon stopped: %v\n%s", step, err, d.Logs.String())
			}
			return false
		}) {
			t.Fatalf("%s: the slices differ for %s\ngreen:\n%s\nblue:\n%s\nlogs:\n%s", step, src, s, g, d.Logs.String())
		}
	}
}

func execOn(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

// oneOf changes one copy of a duplicated row, as a client of a table
// without a key would.
func oneOf(table, where string) string {
	return "ctid = (SELECT ctid FROM " + table + " WHERE " + where + " LIMIT 1)"
}

// TestTablesWithoutPrimaryKey: the initial copy, the stream, a flip and
// the writes that flow back each leave both slices with the same rows,
// duplicates included; each update or delete of a duplicated row changes
// exactly one copy.
func TestTablesWithoutPrimaryKey(t *testing.T) {
	e := bridgetest.NewEnv(t, keylessGreen, keylessBlue)
	m := e.Mapping("keyless", keylessTables, map[string]string{"acct.js": acctJS})

	// check: the insert-only log is a warning, not a problem, in both
	// directions.
	for _, dir := range []config.Direction{config.Forward, config.Reverse} {
		var warned bool
		for _, f := range check.Check(context.Background(), m.View(dir)) {
			if !f.OK {
				t.Errorf("check %s: %s", dir, f)
			}
			warned = warned || strings.Contains(f.Where, `"public"."history"`) && strings.Contains(f.Message, "the source rejects its updates and deletes")
		}
		if !warned {
			t.Errorf("check %s: no warning that the updates and deletes of history are rejected", dir)
		}
	}

	execOn(t, e.Src, `
		INSERT INTO history VALUES (1, 1, 1, 5, '2024-01-01 10:00', NULL), (1, 1, 1, 5, '2024-01-01 10:00', NULL), (2, 1, 7, -3, '2024-01-01 10:01', 'x');
		INSERT INTO bag VALUES (1, '{"k":  1}', 'dup'), (1, '{"k":  1}', 'dup'), (1, '{"k":  1}', 'dup'), (2, NULL, NULL), (2, NULL, NULL);
		INSERT INTO uk VALUES ('a', 1), ('b', 2);
		INSERT INTO acct VALUES ('x', 'one'), ('y', 'two');`)
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	keylessSame(t, e, "after the initial copy", d)

	execOn(t, e.Src, `
		INSERT INTO history VALUES (1, 1, 1, 5, '2024-01-01 10:00', NULL), (3, 2, 9, 1, '2024-01-01 10:02', 'y');
		UPDATE bag SET note = 'changed' WHERE `+oneOf("bag", "a = 1")+`;
		DELETE FROM bag WHERE `+oneOf("bag", "a = 2")+`;
		UPDATE uk SET v = 20 WHERE code = 'b';
		UPDATE uk SET code = 'c' WHERE code = 'a';
		INSERT INTO acct VALUES ('z', 'three');`)
	keylessSame(t, e, "after the stream", d)
	if got := bridgetest.Query(t, e.Tgt, `SELECT note, count(*) FROM bag GROUP BY note ORDER BY note`); got != "(,1)\n(changed,1)\n(dup,2)" {
		t.Fatalf("bag on blue: one copy changes per update, one goes per delete; got\n%s", got)
	}

	res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip: %+v %v\n%s", res, err, d.Logs.String())
	}
	keylessSame(t, e, "after the flip", d)

	// Writes on blue flow back to green.
	execOn(t, e.Tgt, `
		INSERT INTO history VALUES (3, 2, 9, 1, '2024-01-01 10:02', 'y'), (4, 4, 4, 4, '2024-01-01 11:00', NULL);
		DELETE FROM bag WHERE `+oneOf("bag", "note = 'dup'")+`;
		UPDATE bag SET j = '{"k": 2}' WHERE `+oneOf("bag", "note = 'dup'")+`;
		INSERT INTO bag VALUES (3, '[1, 2]', 'new'), (3, '[1, 2]', 'new');
		DELETE FROM bag WHERE `+oneOf("bag", "a = 3")+`;
		UPDATE uk SET v = 30 WHERE code = 'c';
		DELETE FROM uk WHERE code = 'b';
		UPDATE acct_v2 SET v = 'changed on blue' WHERE code2 = 'x';
		UPDATE acct_v2 SET code2 = 'w' WHERE code2 = 'y';
		DELETE FROM acct_v2 WHERE code2 = 'z';`)
	keylessSame(t, e, "after writes on blue", d)
	if got := bridgetest.Query(t, e.Src, `SELECT a, j::text, note FROM bag WHERE a IN (1, 3)`); got != `(1,"{""k"":  1}",changed)`+"\n"+`(1,"{""k"": 2}",dup)`+"\n"+`(3,"[1, 2]",new)` {
		t.Fatalf("bag on green after blue's writes:\n%s", got)
	}
	if got := bridgetest.Query(t, e.Src, `SELECT * FROM acct`); got != "(w,two)\n(x,\"changed on blue\")" {
		t.Fatalf("acct on green after blue's writes (found by key: in reverse):\n%s", got)
	}
}

// A key: that names a column the table written does not have is a finding
// that names the entry, the side and the form that names each table's own.
func TestKeyColumnMissingOnOneSide(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE acct (code text, v text); CREATE UNIQUE INDEX ON acct (code);`,
		`CREATE TABLE acct_v2 (code2 text PRIMARY KEY, v text);`)
	m := e.Mapping("badkey", "  - source: acct\n    target: acct_v2\n    transform: acct.js\n    key: [code2]\n", map[string]string{"acct.js": acctJS})
	var found bool
	for _, f := range check.Check(context.Background(), m.View(config.Reverse)) {
		if !f.OK && strings.Contains(f.Where, "tables[0]") && strings.Contains(f.Message, `key column "code2" is not a column of "public"."acct", the source table`) &&
			strings.Contains(f.Fix, "key: {source: [...], target: [...]}") {
			found = true
		}
	}
	if !found {
		t.Errorf("no finding for the key column missing on the source: %v", check.Check(context.Background(), m.View(config.Reverse)))
	}
}
