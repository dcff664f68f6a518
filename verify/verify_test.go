package verify_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/verify"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const srcDDL = `
	CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, status text NOT NULL, note text);
	CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2), tags text[], doc jsonb, at timestamptz);`

const tgtDDL = `
	CREATE SCHEMA v2;
	CREATE TABLE v2.orders_v2 (order_id bigint PRIMARY KEY, amount_cents bigint NOT NULL, state smallint NOT NULL, note text);
	CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2), tags text[], doc jsonb, at timestamptz);`

const shopTables = `
  - source: orders
    target: v2.orders_v2
    transform: orders.js
  - source: items
    target: items
`

func run(t *testing.T, o verify.Options) (verify.Report, string) {
	t.Helper()
	rep, err := verify.Run(context.Background(), o)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var b bytes.Buffer
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), pgtest.Canary) {
		t.Fatalf("the password is in the report:\n%s", b.String())
	}
	t.Logf("%s", b.String())
	return rep, b.String()
}

func table(t *testing.T, rep verify.Report, name string) verify.TableReport {
	t.Helper()
	want, err := change.ParseTable(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range rep.Tables {
		if tr.Table == want {
			return tr
		}
	}
	t.Fatalf("no report of %s in %+v", name, rep.Tables)
	return verify.TableReport{}
}

func example(tr verify.TableReport, kind verify.Kind) (verify.Difference, bool) {
	for _, d := range tr.Examples {
		if d.Kind == kind {
			return d, true
		}
	}
	return verify.Difference{}, false
}

func TestVerifyNamesChangedMissingAndExtraRows(t *testing.T) {
	p := bridgetest.NewEnv(t, srcDDL, tgtDDL)
	m := p.Mapping("shop", shopTables, map[string]string{"orders.js": bridgetest.OrdersJS})
	pgtest.MustExec(t, p.Src, `
		INSERT INTO orders VALUES (1, 19.90, 'new', 'a'), (2, 5.00, 'paid', NULL), (3, 1.00, 'shipped', 'it''s');
		INSERT INTO items VALUES (1, 'x', 1.5, '{a,"b c"}', '{"k": [1, 2]}', '2024-01-01 10:00:00+02'),
		                         (2, NULL, NULL, NULL, NULL, NULL)`)
	// The same rows as the transforms make them, written by hand, some in
	// another spelling that PostgreSQL stores alike.
	pgtest.MustExec(t, p.Tgt, `
		INSERT INTO v2.orders_v2 VALUES (1, 1990, 0, 'a'), (2, 500, 1, NULL), (3, 100, 2, 'it''s');
		INSERT INTO items VALUES (1, 'x', 1.50, ARRAY['a', 'b c'], '{"k":[1,2]}', '2024-01-01 08:00:00Z'),
		                         (2, NULL, NULL, NULL, NULL, NULL)`)

	o := verify.Options{Mapping: m, CatchUp: -1}
	rep, out := run(t, o)
	if !rep.Equal() || rep.Rechecks != 0 {
		t.Fatalf("equal sides reported as different:\n%s", out)
	}
	if tr := table(t, rep, "v2.orders_v2"); tr.Compared != 3 || tr.Rows != 3 {
		t.Errorf("orders_v2: compared %d, rows %d, want 3 and 3\n%s", tr.Compared, tr.Rows, out)
	}
	if !strings.Contains(out, "are equal") {
		t.Errorf("the report does not say equal:\n%s", out)
	}

	pgtest.MustExec(t, p.Tgt, `
		UPDATE v2.orders_v2 SET state = 2, note = 'changed' WHERE order_id = 2;
		DELETE FROM v2.orders_v2 WHERE order_id = 3;
		INSERT INTO v2.orders_v2 VALUES (99, 100, 0, 'stray')`)
	rep, out = run(t, o)
	if rep.Equal() {
		t.Fatalf("differences not found:\n%s", out)
	}
	tr := table(t, rep, "v2.orders_v2")
	if tr.Missing != 1 || tr.Extra != 1 || tr.Different != 1 {
		t.Fatalf("counts: %d missing, %d extra, %d different; want 1, 1, 1\n%s", tr.Missing, tr.Extra, tr.Different, out)
	}
	if items := table(t, rep, "items"); !items.Equal() {
		t.Errorf("items differ:\n%s", out)
	}
	if d, _ := example(tr, verify.Missing); d.Key != "(order_id='3')" || !strings.Contains(d.From, "(id='3')") {
		t.Errorf("missing row: %+v\n%s", d, out)
	}
	if d, _ := example(tr, verify.Extra); d.Key != "(order_id='99')" {
		t.Errorf("extra row: %+v\n%s", d, out)
	}
	d, _ := example(tr, verify.Different)
	if d.Key != "(order_id='2')" || len(d.Columns) != 2 ||
		d.Columns[0].Name != "state" || d.Columns[0].Want != "'1'" || d.Columns[0].Got != "'2'" ||
		d.Columns[1].Name != "note" || d.Columns[1].Want != "NULL" || d.Columns[1].Got != "'changed'" {
		t.Errorf("different row: %+v\n%s", d, out)
	}
	for _, want := range []string{"1 missing, 1 extra, 1 different", "missing   (order_id='3')", "extra     (order_id='99')",
		"different (order_id='2')", "state: the source gives '1', the target has '2'", `"v2"."orders_v2"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if rep.Rechecks != 1 || rep.Transient != 0 {
		t.Errorf("rechecks %d, transient %d; want 1 and 0 (nothing changes without a daemon)", rep.Rechecks, rep.Transient)
	}

	// The same comparison the other way round: the target read through
	// backward(), the source written.
	rev, out := run(t, verify.Options{Mapping: m, Direction: config.Reverse, CatchUp: -1})
	orders := table(t, rev, "orders")
	if orders.Missing != 1 || orders.Extra != 1 || orders.Different != 1 {
		t.Fatalf("reverse counts: %d missing, %d extra, %d different; want 1, 1, 1\n%s", orders.Missing, orders.Extra, orders.Different, out)
	}
	if d, _ := example(orders, verify.Missing); d.Key != "(id='99')" {
		t.Errorf("reverse: missing row %+v\n%s", d, out)
	}
	if d, _ := example(orders, verify.Extra); d.Key != "(id='3')" {
		t.Errorf("reverse: extra row %+v\n%s", d, out)
	}
}

// A value the transform writes in one spelling and the column stores in
// another is equal: numeric(12,2) holds 19.9 as 19.90, char(5) pads.
func TestVerifyNormalisesLikeTheColumn(t *testing.T) {
	p := bridgetest.NewEnv(t,
		`CREATE TABLE prices (id int PRIMARY KEY, amount float8, code varchar(3), doc json)`,
		`CREATE TABLE prices (id int PRIMARY KEY, amount numeric(12,2), code char(5), doc json)`)
	js := `
function forward(row) { return { id: row.id, amount: row.amount, code: row.code, doc: row.doc }; }
function backward(row) { return { id: row.id, amount: Number(row.amount), code: row.code.trim(), doc: row.doc }; }
`
	m := p.Mapping("prices", "  - source: prices\n    target: prices\n    transform: prices.js\n", map[string]string{"prices.js": js})
	pgtest.MustExec(t, p.Src, `INSERT INTO prices VALUES (1, 19.9, 'ab', '{"a": 1}'), (2, 0.5, 'xyz', '[1,  2]')`)
	pgtest.MustExec(t, p.Tgt, `INSERT INTO prices VALUES (1, 19.90, 'ab', '{"a": 1}'), (2, 0.50, 'xyz  ', '[1,  2]')`)
	rep, out := run(t, verify.Options{Mapping: m, CatchUp: -1})
	if !rep.Equal() {
		t.Fatalf("equal after normalisation, but reported:\n%s", out)
	}

	// json keeps its text: other spacing is another value. And 19.91 is not 19.9.
	pgtest.MustExec(t, p.Tgt, `UPDATE prices SET doc = '[1, 2]' WHERE id = 2; UPDATE prices SET amount = 19.91 WHERE id = 1`)
	rep, out = run(t, verify.Options{Mapping: m, CatchUp: -1})
	tr := table(t, rep, "prices")
	if tr.Different != 2 || tr.Missing != 0 || tr.Extra != 0 {
		t.Fatalf("want 2 different rows:\n%s", out)
	}
	for _, want := range []string{"amount: the source gives '19.9', the target has '19.91'", "doc: the source gives '[1,  2]', the target has '[1, 2]'"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}

// A value that does not fit its column is a difference naming the row, not
// an error that ends the comparison.
func TestVerifyValueThatDoesNotFit(t *testing.T) {
	p := bridgetest.NewEnv(t,
		`CREATE TABLE t (id int PRIMARY KEY, v numeric)`,
		`CREATE TABLE t (id int PRIMARY KEY, v numeric(4,1))`)
	m := p.Mapping("fit", "  - source: t\n    target: t\n", nil)
	pgtest.MustExec(t, p.Src, `INSERT INTO t SELECT i, i FROM generate_series(1, 10) i; UPDATE t SET v = 123456 WHERE id = 7`)
	pgtest.MustExec(t, p.Tgt, `INSERT INTO t SELECT i, i FROM generate_series(1, 10) i; UPDATE t SET v = 999 WHERE id = 7`)
	rep, out := run(t, verify.Options{Mapping: m, CatchUp: -1})
	tr := table(t, rep, "t")
	if tr.Different != 1 || tr.Missing != 0 || tr.Extra != 0 {
		t.Fatalf("want one different row:\n%s", out)
	}
	if d, _ := example(tr, verify.Different); d.Key != "(id='7')" || !strings.Contains(d.Note, "numeric field overflow") {
		t.Errorf("different row: %+v\n%s", d, out)
	}
}

func TestVerifyBatches(t *testing.T) {
	p := bridgetest.NewEnv(t,
		`CREATE TABLE big (id int PRIMARY KEY, v text, n int)`,
		`CREATE TABLE big (id int PRIMARY KEY, v text, n int)`)
	m := p.Mapping("big", "  - source: big\n    target: big\n", nil)
	pgtest.MustExec(t, p.Src, `INSERT INTO big SELECT i, md5(i::text), i % 7 FROM generate_series(1, 5000) i`)
	pgtest.MustExec(t, p.Tgt, `INSERT INTO big SELECT i, md5(i::text), i % 7 FROM generate_series(1, 5000) i`)
	o := verify.Options{Mapping: m, BatchSize: 100, CatchUp: -1}
	rep, out := run(t, o)
	if tr := table(t, rep, "big"); !rep.Equal() || tr.Compared != 5000 || tr.Rows != 5000 {
		t.Fatalf("5000 equal rows:\n%s", out)
	}
	pgtest.MustExec(t, p.Tgt, `DELETE FROM big WHERE id = 4321; UPDATE big SET n = 100 WHERE id IN (17, 2500);
		INSERT INTO big SELECT i, 'new', 0 FROM generate_series(5001, 5010) i`)
	rep, out = run(t, o)
	tr := table(t, rep, "big")
	if tr.Missing != 1 || tr.Different != 2 || tr.Extra != 10 || tr.Compared != 5000 || tr.Rows != 5009 {
		t.Fatalf("want 1 missing, 2 different, 10 extra of 5000 compared and 5009 rows; got %+v\n%s", tr, out)
	}
	// At most MaxExamples of each kind, the first in key order.
	var extras []string
	for _, d := range tr.Examples {
		if d.Kind == verify.Extra {
			extras = append(extras, d.Key)
		}
	}
	if len(extras) != verify.MaxExamples || extras[0] != "(id='5001')" {
		t.Errorf("extra examples %v", extras)
	}
	if !strings.Contains(out, "(8 of 13 rows shown)") {
		t.Errorf("the report does not say how many rows it shows:\n%s", out)
	}
}

func TestVerifyErrors(t *testing.T) {
	p := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, ``)
	m := p.Mapping("errs", "  - source: a\n    target: a\n", nil)
	_, err := verify.Run(context.Background(), verify.Options{Mapping: m})
	if err == nil || !strings.Contains(err.Error(), "target") || !strings.Contains(err.Error(), `"public"."a"`) {
		t.Errorf("a missing target table: %v", err)
	}

	// A server that is not there: the error names the side, not the password.
	u, err := url.Parse(p.TgtDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "127.0.0.1:1"
	bad := u.String()
	y := fmt.Sprintf("name: down\nsource:\n  dsn: %q\ntarget:\n  dsn: %q\ntables:\n  - source: a\n    target: a\n", p.SrcDSN, bad)
	path := filepath.Join(p.Dir, "down.yaml")
	os.WriteFile(path, []byte(y), 0o644)
	m, err = config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{
		func() error { _, err := verify.Run(context.Background(), verify.Options{Mapping: m}); return err },
		func() error { _, err := verify.RoundTrip(context.Background(), verify.Options{Mapping: m}); return err },
	} {
		err := f()
		if err == nil || !strings.Contains(err.Error(), "target") || strings.Contains(err.Error(), pgtest.Canary) {
			t.Errorf("an unreachable target: %v", err)
		}
	}
}

// A source table without a primary key: its rows are named by all their
// values, differences are checked again by comparing everything again, and
// extra target rows cannot be looked for (the report says so).
func TestVerifySourceWithoutKey(t *testing.T) {
	p := bridgetest.NewEnv(t,
		`CREATE TABLE logs (a int, b text); ALTER TABLE logs REPLICA IDENTITY FULL`,
		`CREATE TABLE logs (a int PRIMARY KEY, b text)`)
	m := p.Mapping("nokey", "  - source: logs\n    target: logs\n", nil)
	pgtest.MustExec(t, p.Src, `INSERT INTO logs VALUES (1, 'x'), (2, 'y'), (3, 'z')`)
	pgtest.MustExec(t, p.Tgt, `INSERT INTO logs VALUES (1, 'x'), (2, 'changed'), (4, 'extra')`)
	rep, out := run(t, verify.Options{Mapping: m, CatchUp: -1})
	tr := table(t, rep, "logs")
	if tr.Different != 1 || tr.Missing != 1 || tr.Extra != 0 || rep.Rechecks != 1 || tr.Compared != 3 {
		t.Fatalf("want 1 different and 1 missing, compared again in full:\n%s", out)
	}
	if d, _ := example(tr, verify.Different); d.Key != "(a='2')" || d.From != `"public"."logs" (a='2', b='y')` {
		t.Errorf("different row %+v", d)
	}
	if len(tr.Notes) != 1 || !strings.Contains(tr.Notes[0], "no primary key") || !strings.Contains(out, "note: rows that no row of the source maps to are not looked for") {
		t.Errorf("notes %q\n%s", tr.Notes, out)
	}
}
