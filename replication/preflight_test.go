package replication

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/finding"
)

func problemsText(ps []finding.Finding) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  [%s] %s", p.Table, p)
	}
	return b.String()
}

// findProblem returns the problems about table (zero: global) whose message
// contains substr.
func findProblem(ps []finding.Finding, table change.Table, substr string) []finding.Finding {
	var out []finding.Finding
	for _, p := range ps {
		if p.Table == table && strings.Contains(p.Message, substr) {
			out = append(out, p)
		}
	}
	return out
}

func TestPreflightTables(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	ctx := ctxT(t)
	ok := tbl("public", "Orders")
	nopk := tbl("public", "no pk")
	full := tbl("public", "full_id")
	nothing := tbl("public", "nothing")
	byIndex := tbl("public", "by_index")
	missing := tbl("public", "missing")
	view := tbl("public", "a_view")
	db.exec(t, `CREATE TABLE "Orders" (id int PRIMARY KEY);
		CREATE TABLE "no pk" (id int);
		CREATE TABLE full_id (id int); ALTER TABLE full_id REPLICA IDENTITY FULL;
		CREATE TABLE nothing (id int PRIMARY KEY); ALTER TABLE nothing REPLICA IDENTITY NOTHING;
		CREATE TABLE by_index (id int NOT NULL); CREATE UNIQUE INDEX by_index_id ON by_index (id);
		ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_id;
		CREATE VIEW a_view AS SELECT 1 AS x`)

	tables := []change.Table{ok, nopk, full, nothing, byIndex, missing, view}
	ps := Preflight(ctx, db.conn, tables, WithPublication("pub_x", false), WithSlot(db.slot("x")))
	// Tables without a replica identity are readable: their inserts are
	// replicated (see ReplicaIdentityWarning).
	if len(ps) != 2 {
		t.Fatalf("want 2 problems (missing, view), got %d:%s", len(ps), problemsText(ps))
	}
	if len(findProblem(ps, missing, `table "public"."missing" does not exist`)) != 1 {
		t.Errorf("no problem for the missing table:%s", problemsText(ps))
	}
	if len(findProblem(ps, view, `"public"."a_view" is not a table`)) != 1 {
		t.Errorf("no problem for the view:%s", problemsText(ps))
	}

	// An existing slot of another database is reported.
	if _, err := CreateSlot(ctx, db.dsn, db.slot("x"), false); err != nil {
		t.Fatal(err)
	}
	if ps := Preflight(ctx, db.conn, []change.Table{ok}, WithSlot(db.slot("x"))); len(ps) != 0 {
		t.Errorf("the slot of this database is a problem:%s", problemsText(ps))
	}
	other := db.cluster.DSN("postgres")
	oconn := connectTB(t, other)
	if ps := Preflight(ctx, oconn, nil, WithSlot(db.slot("x"))); len(findProblem(ps, change.Table{}, "is not a pgoutput slot of database")) != 1 {
		t.Errorf("a slot of another database is not reported:%s", problemsText(ps))
	}
	if ps := Preflight(ctx, db.conn, nil, WithSlot("Bad Slot")); len(ps) != 1 {
		t.Errorf("a bad slot name is not reported:%s", problemsText(ps))
	}
}

func TestPreflightRole(t *testing.T) {
	t.Parallel()
	c := newTestDB(t).cluster // only to start the cluster
	role := "bob_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	c.Exec(t, "postgres", `CREATE ROLE `+ident(role)+` LOGIN PASSWORD 'bob-pw'`)
	t.Cleanup(func() { c.Exec(t, "postgres", `DROP ROLE IF EXISTS `+ident(role)) })
	db := newTestDB(t) // dropped before the role
	ctx := ctxT(t)
	orders := tbl("public", "orders")
	db.exec(t, `CREATE TABLE orders (id int PRIMARY KEY)`)

	bob := connectTB(t, db.dsnAs(role, "bob-pw"))
	ps := Preflight(ctx, bob, []change.Table{orders}, WithPublication("pub_x", false))
	quoted := ident(role)
	for _, want := range []struct {
		table  change.Table
		substr string
		fix    string
	}{
		{change.Table{}, "lacks the REPLICATION attribute", "ALTER ROLE " + quoted + " REPLICATION;"},
		{change.Table{}, `may not create publication pub_x: it lacks CREATE on database ` + ident(db.name) + ` and ownership of "public"."orders"`,
			`as the owner of the tables run: CREATE PUBLICATION "pub_x" FOR TABLE "public"."orders" WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true); ` +
				`the bridge then uses it as it is; or, for the role to create it: GRANT CREATE ON DATABASE ` + ident(db.name) + " TO " + quoted + `; ALTER TABLE "public"."orders" OWNER TO ` + quoted + ";"},
		{orders, `may not read table "public"."orders"`, `GRANT SELECT ON "public"."orders" TO ` + quoted + ";"},
	} {
		found := findProblem(ps, want.table, want.substr)
		if len(found) != 1 || !strings.HasPrefix(found[0].Fix, want.fix) {
			t.Errorf("want one problem %q with fix %q, got:%s", want.substr, want.fix, problemsText(ps))
		}
	}
	if len(ps) != 3 {
		t.Errorf("want 3 problems, got %d:%s", len(ps), problemsText(ps))
	}

	// Fixed as the messages say, or made moot by an existing publication.
	c.Exec(t, "postgres", `ALTER ROLE `+quoted+` REPLICATION`)
	db.exec(t, `GRANT SELECT ON orders TO `+quoted)
	db.exec(t, `CREATE PUBLICATION pub_x FOR TABLE orders`)
	if ps := Preflight(ctx, bob, []change.Table{orders}, WithPublication("pub_x", false)); len(ps) != 0 {
		t.Errorf("after the fixes:%s", problemsText(ps))
	}
}

func TestWALLevelProblem(t *testing.T) {
	if p := walLevelProblem("logical"); p != nil {
		t.Errorf("logical: %v", p)
	}
	for _, level := range []string{"replica", "minimal"} {
		p := walLevelProblem(level)
		if p == nil || !strings.Contains(p.Message, level) || p.Fix != "ALTER SYSTEM SET wal_level = logical and restart the server" || p.Table != (change.Table{}) {
			t.Errorf("%s: %+v", level, p)
		}
	}
}

func TestReplicaIdentityWarning(t *testing.T) {
	tb := tbl("s", "T")
	for _, tt := range []struct {
		ident         byte
		pk, idx, warn bool
	}{
		{'d', true, false, false},
		{'d', false, false, true},
		{'f', false, false, false},
		{'n', true, false, true},
		{'i', false, true, false},
		{'i', true, false, true},
	} {
		p := ReplicaIdentityWarning(tb, tt.ident, tt.pk, tt.idx)
		if (p != nil) != tt.warn {
			t.Errorf("identity %c pk %v index %v: %+v, want a warning %v", tt.ident, tt.pk, tt.idx, p, tt.warn)
		}
		if p != nil && (!strings.Contains(p.Message, `"s"."T"`) || !strings.Contains(p.Message, "the source rejects its updates and deletes") ||
			!strings.Contains(p.Fix, `ALTER TABLE "s"."T" REPLICA IDENTITY FULL`) || p.Table != tb) {
			t.Errorf("warning does not name the quoted table, the consequence and the fix: %+v", p)
		}
	}
}
