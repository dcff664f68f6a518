package main

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// rolePassword is the password of the non-owner role the privilege tests
// run the bridge as.
const rolePassword = "Bridge-role-pw-41d8"

// nonOwner is a role that owns nothing on either side: LOGIN and
// REPLICATION, and only what grants gives it, on a pair made by the
// superuser, who owns every table.
type nonOwner struct {
	Name           string
	SrcDSN, TgtDSN string
}

// newNonOwner creates the role on both clusters (roles belong to a
// cluster, so its name comes from the test's databases) and runs the
// owner's grants on each side, with :role standing for the role's name.
// The role and everything granted to it go when the test ends.
func newNonOwner(t *testing.T, e *bridgetest.Env, srcGrants, tgtGrants string) nonOwner {
	t.Helper()
	var db string
	if err := e.Src.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	r := nonOwner{Name: "bridge_" + db}
	if len(r.Name) > 63 {
		r.Name = r.Name[:63]
	}
	role := pgx.Identifier{r.Name}.Sanitize()
	for _, side := range []struct {
		conn   *pgx.Conn
		dsn    *string
		from   string
		grants string
	}{{e.Src, &r.SrcDSN, e.SrcDSN, srcGrants}, {e.Tgt, &r.TgtDSN, e.TgtDSN, tgtGrants}} {
		conn := side.conn
		pgtest.MustExec(t, conn, fmt.Sprintf(`CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'`, role, rolePassword))
		t.Cleanup(func() {
			// Before the database goes: what the bridge made as the role
			// (its schema and tables) and what was granted to it.
			ctx := context.Background()
			conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, r.Name)
			conn.Exec(ctx, "DROP OWNED BY "+role)
			conn.Exec(ctx, "DROP ROLE "+role)
		})
		pgtest.MustExec(t, conn, strings.ReplaceAll(side.grants, ":role", role))
		u, err := url.Parse(side.from)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(r.Name, rolePassword)
		*side.dsn = u.String()
	}
	return r
}

// grantRecipe is the README's recipe for one side of the orders example:
// db is the side's database, pub the publication of the tables it is read
// from, tables and seqs what the bridge reads and writes there.
func grantRecipe(db, pub, tables, seqs string) string {
	return fmt.Sprintf(`
CREATE PUBLICATION %[2]s FOR TABLE %[3]s WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON %[3]s TO :role;
GRANT SELECT, UPDATE ON SEQUENCE %[4]s TO :role;
GRANT CREATE ON DATABASE %[1]s TO :role;
GRANT SET ON PARAMETER session_replication_role TO :role;
GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_oid(text),
	pg_replication_origin_session_setup(text), pg_replication_origin_session_reset(),
	pg_replication_origin_xact_setup(pg_lsn, timestamptz), pg_replication_origin_drop(text) TO :role;
`, pgx.Identifier{db}.Sanitize(), pub, tables, seqs)
}

func dbName(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var db string
	if err := conn.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestNonOwnerStory runs the whole life of a bridge as a role that owns
// no table, with the publications made beforehand by the tables' owner
// (the source's under the name the bridge expects, the target's under a
// name the mapping gives) and only the grants of the recipe: check
// passes, run copies and streams, flip reverses, and a flip back rolls
// back, with both slices exact at each step.
func TestNonOwnerStory(t *testing.T) {
	bin := buildBinary(t)
	e := flipPair(t)
	// Each publication also holds a table the mapping does not name: the
	// owner's, with its own uses; its changes are not the bridge's concern.
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'before' FROM generate_series(1, 30) g;
		CREATE TABLE audit (id int PRIMARY KEY)`)
	pgtest.MustExec(t, e.Tgt, `CREATE TABLE audit (id int PRIMARY KEY)`)
	r := newNonOwner(t, e,
		grantRecipe(dbName(t, e.Src), "cdcbridge_story_forward", "orders", "orders_id_seq")+"ALTER PUBLICATION cdcbridge_story_forward ADD TABLE audit;",
		grantRecipe(dbName(t, e.Tgt), "blue_orders", "orders_v2", "orders_v2_order_id_seq")+"ALTER PUBLICATION blue_orders ADD TABLE audit;")
	p := e.WriteFile("story.yaml", "name: story\nsource:\n  dsn: ${TEST_SRC_DSN}\ntarget:\n  dsn: ${TEST_TGT_DSN}\n  publication: blue_orders\n"+ordersTables)
	t.Setenv("TEST_SRC_DSN", r.SrcDSN)
	t.Setenv("TEST_TGT_DSN", r.TgtDSN)
	same := func(what string, logs *pgtest.Buffer) {
		t.Helper()
		pgtest.WaitFor(t, 30*time.Second, what, func() bool {
			return bridgetest.Query(t, e.Tgt, bridgetest.BlueRows) == bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue)
		}, logs)
	}

	for _, dir := range [][]string{nil, {"--reverse"}} {
		code, out, errs := run(append([]string{"check", "-c", p}, dir...)...)
		if code != 0 || !strings.Contains(out, "all checks passed") {
			t.Fatalf("check %v as a role that owns no table: exit %d\n%s%s", dir, code, out, errs)
		}
		noCanary(t, out, errs)
	}

	rig := newRig(t, bin, p)
	d := rig.startStreaming()
	defer d.stop()
	same("the copy to reach blue", &rig.Logs)
	if got := bridgetest.Query(t, e.Tgt, `SELECT count(*) FROM orders_v2`); got != "(30)" {
		t.Fatalf("blue holds %s rows after the copy, want 30", got)
	}
	pgtest.MustExec(t, e.Src, `INSERT INTO audit VALUES (1); INSERT INTO orders (amount, status, note) VALUES (7.5, 'paid', 'streamed'); UPDATE orders SET status = 'shipped' WHERE id = 3; DELETE FROM orders WHERE id = 4`)
	pgtest.MustExec(t, e.Src, `INSERT INTO audit VALUES (2)`)
	same("green's writes to reach blue", &rig.Logs)
	// The owner writes blue's unmapped table while green is live: not a
	// foreign write on a mapped table, so the flip goes ahead.
	pgtest.MustExec(t, e.Tgt, `INSERT INTO audit VALUES (1)`)

	flipTo := func(live string) {
		t.Helper()
		code, out, errs := run("flip", "-c", p, "--timeout", "30s")
		if code != 0 {
			t.Fatalf("flip to %s: exit %d\n%s%s\n%s", live, code, out, errs, pgtest.Tail(rig.Logs.String(), 30))
		}
		if got := bridgetest.Query(t, e.Tgt, `SELECT live FROM cdcbridge.state`); got != "("+live+")" {
			t.Fatalf("after flip the live direction is %s, want %s", got, live)
		}
	}
	flipTo("reverse")
	pgtest.MustExec(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) SELECT 100 * g, 1, 'blue' FROM generate_series(1, 5) g;
		UPDATE orders_v2 SET note = 'changed on blue' WHERE order_id = 5; DELETE FROM orders_v2 WHERE order_id = 6`)
	same("blue's writes to reach green", &rig.Logs)
	if got := bridgetest.Query(t, e.Src, `SELECT count(*) FROM orders WHERE note = 'blue'`); got != "(5)" {
		t.Fatalf("green holds %s of blue's 5 rows", got)
	}

	flipTo("forward")
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (9.25, 'new', 'after rollback'); UPDATE orders SET note = 'green again' WHERE id = 1`)
	same("green's writes after the rollback to reach blue", &rig.Logs)
	if got := bridgetest.Query(t, e.Tgt, `SELECT count(*) FROM orders_v2 WHERE note IN ('after rollback', 'green again')`); got != "(2)" {
		t.Fatalf("blue holds %s of green's 2 rows written after the rollback", got)
	}
	// The operator's other commands work as the role too.
	for _, args := range [][]string{{"verify", "-c", p}, {"verify", "-c", p, "--reverse"}, {"status", "-c", p}} {
		if code, out, errs := run(args...); code != 0 {
			t.Fatalf("%v as the role: exit %d\n%s%s", args, code, out, errs)
		}
	}
	if err := d.stop(); err != nil {
		t.Fatalf("stopping the daemon: %v\n%s", err, pgtest.Tail(rig.Logs.String(), 30))
	}
	noCanary(t, rig.Logs.String())
	if strings.Contains(rig.Logs.String(), rolePassword) {
		t.Fatalf("the role's password appears in the logs")
	}

	// cleanup, as the role, drops what the bridge made and keeps the
	// owner's publications.
	code, out, errs := run("cleanup", "-c", p)
	if code != 0 || !strings.Contains(out, "kept publication cdcbridge_story_forward on the source") || !strings.Contains(out, "kept publication blue_orders on the target") {
		t.Fatalf("cleanup as the role: exit %d\n%s%s", code, out, errs)
	}
	for _, q := range []struct{ sql, want string }{
		{`SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`, "(0)"},
		{`SELECT count(*) FROM pg_replication_origin WHERE roname LIKE 'cdcbridge_story_%'`, "(0)"},
		{`SELECT count(*) FROM pg_namespace WHERE nspname = 'cdcbridge'`, "(0)"},
		{`SELECT count(*) FROM pg_publication`, "(1)"},
	} {
		for _, c := range []*pgx.Conn{e.Src, e.Tgt} {
			if got := bridgetest.Query(t, c, q.sql); got != q.want {
				t.Errorf("after cleanup %s = %s, want %s\n%s", q.sql, got, q.want, out)
			}
		}
	}
}

// fixSQL is the statement that a fix printed by check starts with (after
// whom to run it as).
var fixSQL = regexp.MustCompile(`^(?:as the owner of the tables run: )?((?:GRANT|CREATE|ALTER) [^;]*;)`)

// checkProblems runs check as the mapping's role and returns the first
// statement of each problem's fix, with the side it is about; the test
// fails on a problem whose fix is not SQL.
func checkProblems(t *testing.T, p string) (code int, fixes [][2]string, out string) {
	t.Helper()
	code, out, errs := run("check", "-c", p)
	noCanary(t, out, errs)
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "FAIL ") {
			continue
		}
		side := strings.Fields(l)[1]
		side = strings.TrimSuffix(side, ":")
		var fix string
		if i+1 < len(lines) {
			fix = strings.TrimPrefix(strings.TrimSpace(lines[i+1]), "fix: ")
		}
		m := fixSQL.FindStringSubmatch(fix)
		if m == nil || (side != "source" && side != "target") {
			t.Fatalf("check printed a problem without SQL to fix it:\n%s\n%s", l, fix)
		}
		fixes = append(fixes, [2]string{side, m[1]})
	}
	return code, fixes, out + errs
}

// TestCheckFixesAreHonoured starts from a role that may only log in, on
// tables it does not own, with no publication: check lists what it lacks,
// each with the SQL that fixes it; the owner runs exactly the first
// statement of each fix, and check passes. Then the bridge runs as the
// role with just that: it copies, streams, flips and streams back.
func TestCheckFixesAreHonoured(t *testing.T) {
	bin := buildBinary(t)
	e := flipPair(t)
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) SELECT g, 'paid', 'before' FROM generate_series(1, 10) g`)
	r := newNonOwner(t, e, "ALTER ROLE :role NOREPLICATION", "ALTER ROLE :role NOREPLICATION")
	p := e.WriteFile("fixes.yaml", "name: fixes\nsource:\n  dsn: ${TEST_SRC_DSN}\ntarget:\n  dsn: ${TEST_TGT_DSN}\n"+ordersTables)
	t.Setenv("TEST_SRC_DSN", r.SrcDSN)
	t.Setenv("TEST_TGT_DSN", r.TgtDSN)

	applied := map[[2]string]bool{}
	for round := 1; ; round++ {
		code, fixes, out := checkProblems(t, p)
		if code == 0 && len(fixes) == 0 {
			if round == 1 {
				t.Fatalf("check passed for a role without any grant:\n%s", out)
			}
			break
		}
		if code != 2 || len(fixes) == 0 || round > 3 {
			t.Fatalf("check round %d: exit %d with %d fixes\n%s", round, code, len(fixes), out)
		}
		for _, f := range fixes {
			if applied[f] {
				t.Fatalf("check still asks for %s on the %s after it was run:\n%s", f[1], f[0], out)
			}
			applied[f] = true
			conn := map[string]*pgx.Conn{"source": e.Src, "target": e.Tgt}[f[0]]
			pgtest.MustExec(t, conn, f[1])
		}
	}
	for _, want := range []string{"CREATE PUBLICATION", "CREATE SCHEMA cdcbridge AUTHORIZATION", "GRANT SET ON PARAMETER session_replication_role", "ON SEQUENCE", "pg_replication_origin_xact_setup", " REPLICATION;"} {
		found := false
		for f := range applied {
			found = found || strings.Contains(f[1], want)
		}
		if !found {
			t.Errorf("no fix of check had %q: %v", want, applied)
		}
	}

	rig := newRig(t, bin, p)
	d := rig.startStreaming()
	defer d.stop()
	same := func(what string) {
		t.Helper()
		pgtest.WaitFor(t, 30*time.Second, what, func() bool {
			return bridgetest.Query(t, e.Tgt, bridgetest.BlueRows) == bridgetest.Query(t, e.Src, bridgetest.GreenAsBlue)
		}, &rig.Logs)
	}
	same("the copy to reach blue")
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (1, 'new', 'streamed')`)
	same("green's insert to reach blue")
	if code, out, errs := run("flip", "-c", p, "--timeout", "30s"); code != 0 {
		t.Fatalf("flip: exit %d\n%s%s\n%s", code, out, errs, pgtest.Tail(rig.Logs.String(), 30))
	}
	pgtest.MustExec(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (250, 1, 'from blue')`)
	same("blue's insert to reach green")
	if got := bridgetest.Query(t, e.Src, `SELECT count(*) FROM orders WHERE note = 'from blue' AND id > 1000`); got != "(1)" {
		t.Fatalf("blue's row reached green %s times with an id past green's sequence (the flip moves blue's sequence ahead)", got)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("stopping the daemon: %v\n%s", err, pgtest.Tail(rig.Logs.String(), 30))
	}

	// cleanup needs one more function, and says which.
	code, out, errs := run("cleanup", "-c", p)
	grant := "GRANT EXECUTE ON FUNCTION pg_replication_origin_drop(text) TO " + pgx.Identifier{r.Name}.Sanitize()
	if code != 1 || !strings.Contains(errs, grant) {
		t.Fatalf("cleanup without EXECUTE on pg_replication_origin_drop: exit %d, want 1 with %q\n%s%s", code, grant, out, errs)
	}
	pgtest.MustExec(t, e.Src, grant)
	pgtest.MustExec(t, e.Tgt, grant)
	if code, out, errs := run("cleanup", "-c", p); code != 0 || !strings.Contains(out, "kept publication cdcbridge_fixes_forward on the source") {
		t.Fatalf("cleanup after the grant: exit %d\n%s%s", code, out, errs)
	}
}

// TestCheckNamesMissingTables: a publication made beforehand that lacks a
// mapped table makes check fail, naming the publication, the table and the
// SQL its owner runs; once the owner ran it, check passes. The publication
// named in the mapping is never created by the bridge.
func TestCheckNamesMissingTables(t *testing.T) {
	e := bridgetest.NewEnv(t, bridgetest.OrdersGreen+` CREATE TABLE customers (id int PRIMARY KEY, name text); CREATE TABLE unmapped (id int PRIMARY KEY);`,
		blueOrders+`; CREATE TABLE customers (id int PRIMARY KEY, name text);`)
	e.WriteFile("orders.js", flipJS)
	tables := "  - source: orders\n    target: orders_v2\n    transform: orders.js\n  - source: customers\n    target: customers\n"
	r := newNonOwner(t, e,
		grantRecipe(dbName(t, e.Src), "green_pub", "orders, customers", "orders_id_seq")+`ALTER PUBLICATION green_pub DROP TABLE customers; ALTER PUBLICATION green_pub ADD TABLE unmapped;`,
		grantRecipe(dbName(t, e.Tgt), "cdcbridge_missing_reverse", "orders_v2, customers", "orders_v2_order_id_seq"))
	p := e.WriteFile("missing.yaml", "name: missing\nsource:\n  dsn: ${TEST_SRC_DSN}\n  publication: green_pub\ntarget:\n  dsn: ${TEST_TGT_DSN}\ntables:\n"+tables)
	t.Setenv("TEST_SRC_DSN", r.SrcDSN)
	t.Setenv("TEST_TGT_DSN", r.TgtDSN)

	code, fixes, out := checkProblems(t, p)
	want := [2]string{"source", `ALTER PUBLICATION "green_pub" ADD TABLE "public"."customers";`}
	if code != 2 || len(fixes) != 1 || fixes[0] != want || !strings.Contains(out, `publication green_pub does not publish "public"."customers"`) {
		t.Fatalf("check with a publication that lacks a table: exit %d, fixes %q, want only %q\n%s", code, fixes, want, out)
	}
	// run refuses it up front, with the same finding.
	// (run logs the finding as a record: in text form its quotes are escaped.)
	if code, out, errs := run("run", "-c", p); code != 2 || !strings.Contains(errs, strings.ReplaceAll(want[1], `"`, `\"`)) {
		t.Fatalf("run with a publication that lacks a table: exit %d, want 2 with %q\n%s%s", code, want[1], out, errs)
	}
	pgtest.MustExec(t, e.Src, want[1])
	if code, fixes, out := checkProblems(t, p); code != 0 || len(fixes) != 0 {
		t.Fatalf("check after the owner added the table: exit %d\n%s", code, out)
	}

	// A publication the mapping names and nobody made: check gives the
	// CREATE, and the bridge does not make it.
	pgtest.MustExec(t, e.Src, `DROP PUBLICATION green_pub`)
	code, fixes, out = checkProblems(t, p)
	want = [2]string{"source", `CREATE PUBLICATION "green_pub" FOR TABLE "public"."orders", "public"."customers" WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true);`}
	if code != 2 || len(fixes) != 1 || fixes[0] != want || !strings.Contains(out, "publication green_pub does not exist") {
		t.Fatalf("check with a named publication that does not exist: exit %d, fixes %q, want only %q\n%s", code, fixes, want, out)
	}
	if got := bridgetest.Query(t, e.Src, `SELECT count(*) FROM pg_publication WHERE pubname = 'green_pub'`); got != "(0)" {
		t.Fatalf("check created the publication the mapping names")
	}
}
