package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// A small shop with the shapes real schemas have: foreign keys in a chain
// (copied in parallel, in no order), a "last_updated" trigger on blue that
// would rewrite every replicated row, and an audit trigger marked ENABLE
// ALWAYS that must fire for them.
const (
	shopGreen = `
		CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, last_updated timestamptz NOT NULL DEFAULT now());
		CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer, last_updated timestamptz NOT NULL DEFAULT now());
		CREATE TABLE line (order_id int REFERENCES orders, n int, qty int, last_updated timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (order_id, n));
		INSERT INTO customer SELECT g, 'c' || g, '2020-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 300) g;
		INSERT INTO orders SELECT g, 1 + g % 300, '2021-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 2000) g;
		INSERT INTO line SELECT 1 + g % 2000, g, g % 7, '2022-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 5000) g;`
	shopBlue = `
		CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, last_updated timestamptz NOT NULL DEFAULT now());
		CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer, last_updated timestamptz NOT NULL DEFAULT now());
		CREATE TABLE line (order_id int REFERENCES orders, n int, qty int, last_updated timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (order_id, n));
		CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.last_updated := now(); RETURN NEW; END $$;
		CREATE TRIGGER customer_touch BEFORE INSERT OR UPDATE ON customer FOR EACH ROW EXECUTE FUNCTION touch();
		CREATE TRIGGER orders_touch BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
		CREATE TRIGGER line_touch BEFORE INSERT OR UPDATE ON line FOR EACH ROW EXECUTE FUNCTION touch();
		CREATE TABLE audit (tbl text, op text);
		CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$;
		CREATE TRIGGER customer_audit AFTER INSERT OR UPDATE OR DELETE ON customer FOR EACH ROW EXECUTE FUNCTION audit();
		ALTER TABLE customer ENABLE ALWAYS TRIGGER customer_audit;`
	shopTables = "  - source: line\n    target: line\n  - source: orders\n    target: orders\n  - source: customer\n    target: customer\n"
)

// shopRows is every row of the shop, for comparing the two sides.
const shopRows = `SELECT 'c', id, name, last_updated::text, NULL::int FROM customer UNION ALL
	SELECT 'o', id, customer_id::text, last_updated::text, NULL FROM orders UNION ALL
	SELECT 'l', order_id, n::text, last_updated::text, qty FROM line`

// TestApplyAsReplica: the copy and the stream write like PostgreSQL's apply
// worker: tables referencing each other copy in any order, blue's ordinary
// triggers leave the replicated values alone, and a trigger marked ENABLE
// ALWAYS fires; check lists which triggers will not fire and how to make
// one fire. Then a flip, and blue's writes (where blue's own triggers fire
// as for any client) reach green exactly.
func TestApplyAsReplica(t *testing.T) {
	e := bridgetest.NewEnv(t, shopGreen, shopBlue)
	m := e.Mapping("replica", shopTables, nil)

	fs := check.Check(context.Background(), m.View(config.Forward))
	var report []string
	for _, f := range fs {
		report = append(report, f.String())
	}
	text := strings.Join(report, "\n")
	for _, want := range []string{
		"ok   target: the role can write as a replica",
		`WARN target table customer: trigger customer_touch does not fire`,
		`fix: if it must also act on replicated rows: ALTER TABLE customer ENABLE ALWAYS TRIGGER customer_touch`,
		`WARN target table line: trigger line_touch does not fire`,
		"ok   target table customer: trigger customer_audit fires for the rows the bridge writes too (ENABLE ALWAYS)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("check lacks %q:\n%s", want, text)
		}
	}

	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	bridgetest.Eventually(t, e.Tgt, shopRows, bridgetest.Query(t, e.Src, shopRows), nil)
	if got := bridgetest.Query(t, e.Tgt, `SELECT count(*) FROM audit WHERE tbl = 'customer' AND op = 'INSERT'`); got != "(300)" {
		t.Fatalf("the ENABLE ALWAYS trigger fired %s times for 300 copied customers", got)
	}
	// The stream: children before their parents inside one transaction,
	// as a client with deferred constraints would write them on green.
	pgtest.MustExec(t, e.Src, `
		BEGIN;
		INSERT INTO customer VALUES (1000, 'late', '2023-03-03');
		INSERT INTO orders VALUES (9000, 1000, '2023-03-04');
		INSERT INTO line VALUES (9000, 1, 5, '2023-03-05');
		UPDATE customer SET name = 'renamed', last_updated = '2024-04-04' WHERE id = 7;
		DELETE FROM line WHERE order_id = 3;
		COMMIT;`)
	bridgetest.Eventually(t, e.Tgt, shopRows, bridgetest.Query(t, e.Src, shopRows), nil)
	if got := bridgetest.Query(t, e.Tgt, `SELECT op, count(*) FROM audit WHERE tbl = 'customer' GROUP BY op`); got != "(INSERT,301)\n(UPDATE,1)" {
		t.Fatalf("the ENABLE ALWAYS trigger on blue fired %q", got)
	}

	// Flip: blue is live, its writes are a client's there (its triggers
	// fire), and reach green as blue wrote them.
	res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip: %+v %v\n%s", res, err, d.Logs.String())
	}
	pgtest.MustExec(t, e.Tgt, `INSERT INTO customer VALUES (2000, 'blue', '1999-01-01'); UPDATE orders SET customer_id = 2000 WHERE id = 10`)
	if got := bridgetest.Query(t, e.Tgt, `SELECT last_updated > '2025-01-01' FROM customer WHERE id = 2000`); got != "(t)" {
		t.Fatalf("blue's own trigger did not fire for a client's insert: %s", got)
	}
	bridgetest.Eventually(t, e.Src, shopRows, bridgetest.Query(t, e.Tgt, shopRows), nil)
}

// TestTruncateStaysInsideTheMapping: a source TRUNCATE ... CASCADE empties
// the mapped target tables it reached and nothing else. When a table
// outside the mapping references one of them, the target's truncate fails
// (as PostgreSQL's apply worker's does) and that table keeps its rows.
func TestTruncateStaysInsideTheMapping(t *testing.T) {
	const green = `
		CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
		INSERT INTO parent SELECT generate_series(1, 10);
		INSERT INTO child SELECT g, g FROM generate_series(1, 10) g;`
	const blue = `
		CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);`
	e := bridgetest.NewEnv(t, green, blue)
	m := e.Mapping("trunc", "  - source: parent\n    target: parent\n  - source: child\n    target: child\n", nil)
	d := e.Start(m, config.Forward)
	counts := `SELECT (SELECT count(*) FROM parent), (SELECT count(*) FROM child)`
	bridgetest.Eventually(t, e.Tgt, counts, "(10,10)", d)
	pgtest.MustExec(t, e.Src, `TRUNCATE parent CASCADE; INSERT INTO parent VALUES (1)`)
	bridgetest.Eventually(t, e.Tgt, counts, "(1,0)", d)

	// A blue-only table that references a mapped one.
	pgtest.MustExec(t, e.Tgt, `CREATE TABLE notes (parent_id int REFERENCES parent, body text); INSERT INTO notes VALUES (1, 'keep me')`)
	pgtest.MustExec(t, e.Src, `INSERT INTO parent VALUES (2); TRUNCATE parent CASCADE`)
	err := d.Wait(t, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "truncate") || !strings.Contains(err.Error(), "notes") {
		t.Fatalf("want an apply error naming the truncate and the referencing table notes, got %v", err)
	}
	if got := bridgetest.Query(t, e.Tgt, `SELECT (SELECT count(*) FROM notes), (SELECT string_agg(id::text, ',' ORDER BY id) FROM parent)`); got != "(1,1)" {
		t.Fatalf("blue after the refused truncate: %s (want notes kept, and parent as before the transaction that truncated it)", got)
	}
}

// TestPartitions: a partitioned table mapped by its root to a target that
// is partitioned differently; rows that move between partitions; a
// partition attached while running; a flip and writes back. A mapping that
// reads a root and one of its partitions is refused by check.
func TestPartitions(t *testing.T) {
	const green = `
		CREATE TABLE m (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
		CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
		CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
		INSERT INTO m SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 1000) g;`
	const blue = `
		CREATE TABLE m (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY HASH (id);
		CREATE TABLE m_0 PARTITION OF m FOR VALUES WITH (MODULUS 3, REMAINDER 0);
		CREATE TABLE m_1 PARTITION OF m FOR VALUES WITH (MODULUS 3, REMAINDER 1);
		CREATE TABLE m_2 PARTITION OF m FOR VALUES WITH (MODULUS 3, REMAINDER 2);`
	e := bridgetest.NewEnv(t, green, blue)

	bad := e.Mapping("bothparts", "  - source: m\n    target: m\n  - source: m_eu\n    target: m_0\n", nil)
	var refused string
	for _, f := range check.Check(context.Background(), bad.View(config.Forward)) {
		if !f.OK && strings.Contains(f.Message, "is a partition of") {
			refused = f.String()
		}
	}
	if !strings.Contains(refused, "tables[1] (public.m_eu -> public.m_0) and tables[0] (public.m -> public.m)") || !strings.Contains(refused, "alone") {
		t.Fatalf("check did not refuse a root mapped with its partition, naming both entries and the fix: %q", refused)
	}

	m := e.Mapping("parts", "  - source: m\n    target: m\n", nil)
	d := e.Daemon(m, false)
	d.WaitModes(t, "forward live", "reverse armed")
	rows := `SELECT id, region, v FROM m`
	bridgetest.Eventually(t, e.Tgt, rows, bridgetest.Query(t, e.Src, rows), nil)
	// A row moves from eu to us; an update inside a partition; a delete.
	pgtest.MustExec(t, e.Src, `UPDATE m SET region = 'us', v = -2 WHERE id = 2; UPDATE m SET v = -3 WHERE id = 3; DELETE FROM m WHERE id = 5`)
	bridgetest.Eventually(t, e.Tgt, rows, bridgetest.Query(t, e.Src, rows), nil)
	// A partition attached while running: its rows arrive under the root.
	pgtest.MustExec(t, e.Src, `CREATE TABLE m_asia (LIKE m INCLUDING ALL); INSERT INTO m_asia VALUES (5000, 'asia', 1);
		ALTER TABLE m ATTACH PARTITION m_asia FOR VALUES IN ('asia');
		INSERT INTO m VALUES (5001, 'asia', 2); UPDATE m SET region = 'asia' WHERE id = 4`)
	bridgetest.Eventually(t, e.Tgt, `SELECT id, region, v FROM m WHERE id <> 5000`, bridgetest.Query(t, e.Src, `SELECT id, region, v FROM m WHERE id <> 5000`), nil)

	res, err := flip.Request(context.Background(), m, control.Refuse, 30*time.Second, flip.DefaultSequenceGap, bridgetest.TextLogger(&bridgetest.LogSink{}))
	if err != nil || !res.OK {
		t.Fatalf("flip: %+v %v\n%s", res, err, d.Logs.String())
	}
	pgtest.MustExec(t, e.Tgt, `INSERT INTO m VALUES (7000, 'eu', 7), (7001, 'asia', 8); UPDATE m SET region = 'eu' WHERE id = 1; DELETE FROM m WHERE id = 6`)
	bridgetest.Eventually(t, e.Src, `SELECT id, region, v FROM m WHERE id <> 5000`, bridgetest.Query(t, e.Tgt, `SELECT id, region, v FROM m WHERE id <> 5000`), nil)
}
