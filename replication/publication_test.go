package replication

import (
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
)

func publishedTables(t *testing.T, db testDB, pub string) []string {
	t.Helper()
	rows, err := db.conn.Query(ctxT(t), `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1`, pub)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, change.Table{Schema: s, Name: n}.String())
	}
	sort.Strings(out)
	return out
}

func names(tables ...change.Table) []string {
	var out []string
	for _, t := range tables {
		out = append(out, t.String())
	}
	sort.Strings(out)
	return out
}

func TestEnsurePublication(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	ctx := ctxT(t)
	mixed := tbl("My Schema", "MixedCase")
	reserved := tbl("public", "select")
	spaced := tbl("My Schema", "with space")
	unicode := tbl("public", "ünïcødé 表")
	plain := tbl("public", "plain")
	db.exec(t, `CREATE SCHEMA "My Schema"`)
	for _, tb := range []change.Table{mixed, reserved, spaced, unicode, plain} {
		db.exec(t, "CREATE TABLE "+tb.String()+" (id int PRIMARY KEY)")
	}

	if err := EnsurePublication(ctx, db.conn, "pub_one", []change.Table{mixed, reserved, mixed}, false); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(publishedTables(t, db, "pub_one"), " "), strings.Join(names(mixed, reserved), " "); got != want {
		t.Fatalf("published %s, want %s", got, want)
	}
	var viaRoot bool
	if err := db.conn.QueryRow(ctx, `SELECT pubviaroot FROM pg_publication WHERE pubname = 'pub_one'`).Scan(&viaRoot); err != nil || !viaRoot {
		t.Fatalf("publish_via_partition_root = %v (%v), want true", viaRoot, err)
	}

	// Again with the same tables: nothing changes (the catalog rows keep their xmin).
	xmins := func() string {
		var s string
		if err := db.conn.QueryRow(ctx, `SELECT string_agg(pr.xmin::text, ',' ORDER BY pr.oid) || '/' || min(p.xmin::text)
			FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid WHERE p.pubname = 'pub_one'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := xmins()
	if err := EnsurePublication(ctx, db.conn, "pub_one", []change.Table{reserved, mixed}, false); err != nil {
		t.Fatal(err)
	}
	if after := xmins(); after != before {
		t.Fatalf("ensuring the same tables rewrote the publication: xmins %s, then %s", before, after)
	}

	// A new set replaces the old one, row filters go.
	db.exec(t, `ALTER PUBLICATION pub_one SET TABLE "My Schema"."MixedCase" WHERE (id > 5), public."select"`)
	db.exec(t, `ALTER PUBLICATION pub_one SET (publish = 'insert')`)
	if err := EnsurePublication(ctx, db.conn, "pub_one", []change.Table{spaced, unicode, mixed}, false); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(publishedTables(t, db, "pub_one"), " "), strings.Join(names(spaced, unicode, mixed), " "); got != want {
		t.Fatalf("published %s, want %s", got, want)
	}
	var filters int
	var upd, trunc bool
	if err := db.conn.QueryRow(ctx, `SELECT count(pr.prqual), bool_and(p.pubupdate), bool_and(p.pubtruncate) FROM pg_publication p
		JOIN pg_publication_rel pr ON pr.prpubid = p.oid WHERE p.pubname = 'pub_one'`).Scan(&filters, &upd, &trunc); err != nil {
		t.Fatal(err)
	}
	if filters != 0 || !upd || !trunc {
		t.Fatalf("after EnsurePublication: %d row filters, publish update %v truncate %v", filters, upd, trunc)
	}

	// Errors.
	for _, bad := range []string{"", "Pub", "pub-1", "1pub", `pub"; DROP TABLE plain; --`, strings.Repeat("p", 64)} {
		if err := EnsurePublication(ctx, db.conn, bad, []change.Table{plain}, false); err == nil {
			t.Errorf("EnsurePublication accepted the name %q", bad)
		}
	}
	if err := EnsurePublication(ctx, db.conn, "pub_two", nil, false); err == nil {
		t.Errorf("EnsurePublication accepted no tables")
	}
	if err := EnsurePublication(ctx, db.conn, "pub_two", []change.Table{tbl("public", "missing")}, false); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("EnsurePublication of a missing table: %v", err)
	}
	db.exec(t, `CREATE PUBLICATION pub_all FOR ALL TABLES`)
	if err := EnsurePublication(ctx, db.conn, "pub_all", []change.Table{plain}, false); err == nil || !strings.Contains(err.Error(), "FOR ALL TABLES") {
		t.Errorf("EnsurePublication on a FOR ALL TABLES publication: %v", err)
	}

	// Drop, twice.
	for i := 0; i < 2; i++ {
		if kept, err := DropPublication(ctx, db.conn, "pub_one", false); err != nil || kept != "" {
			t.Fatalf("dropping the bridge's publication: kept %q, %v", kept, err)
		}
	}
	var n int
	if err := db.conn.QueryRow(ctx, `SELECT count(*) FROM pg_publication WHERE pubname = 'pub_one'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after DropPublication %d publications (%v)", n, err)
	}
	if _, err := DropPublication(ctx, db.conn, "Bad Name", false); err == nil {
		t.Errorf("DropPublication accepted a bad name")
	}
}

// TestPublicationMadeByTheOwner: a publication that another role made
// (the owner of the tables), or that the mapping names, is used as it is:
// a role that owns no table only checks it, never alters it, and is told
// which tables it lacks and the SQL that its owner runs. Extra tables in it
// are fine.
func TestPublicationMadeByTheOwner(t *testing.T) {
	t.Parallel()
	c := newTestDB(t).cluster // only to start the cluster
	role := "pubuser_" + strings.ToLower(t.Name())
	c.Exec(t, "postgres", `CREATE ROLE `+ident(role)+` LOGIN REPLICATION PASSWORD 'pub-pw'`)
	t.Cleanup(func() { c.Exec(t, "postgres", `DROP ROLE IF EXISTS `+ident(role)) })
	db := newTestDB(t) // dropped before the role
	ctx := ctxT(t)
	orders, items := tbl("public", "orders"), tbl("public", "Order Items")
	parted := tbl("public", "parted")
	db.exec(t, `CREATE TABLE orders (id int PRIMARY KEY, note text); CREATE TABLE "Order Items" (id int PRIMARY KEY, qty int);
		CREATE TABLE other (id int PRIMARY KEY);
		CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id); CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
		CREATE PUBLICATION owners FOR TABLE orders, other`)
	bob := connectTB(t, db.dsnAs(role, "pub-pw"))
	rel := func() string {
		var s string
		if err := db.conn.QueryRow(ctx, `SELECT string_agg(pr.prrelid::regclass::text || ':' || pr.xmin::text, ',' ORDER BY pr.oid) || '/' || min(p.xmin::text)
			FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid WHERE p.pubname = 'owners'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := rel()

	// It covers orders: used as it is, by the role and, when given, by a
	// superuser too, and nothing changes (other stays in it).
	if err := EnsurePublication(ctx, bob, "owners", []change.Table{orders}, false); err != nil {
		t.Fatalf("a role that owns no table, with the owner's publication covering its table: %v", err)
	}
	if err := EnsurePublication(ctx, db.conn, "owners", []change.Table{orders}, true); err != nil {
		t.Fatalf("a superuser with a publication the mapping names: %v", err)
	}
	if after := rel(); after != before {
		t.Fatalf("the owner's publication changed: %s, then %s", before, after)
	}
	if ps := Preflight(ctx, bob, []change.Table{orders}, WithPublication("owners", false)); len(findProblem(ps, change.Table{}, "publication")) != 0 || len(findProblem(ps, orders, "does not own")) != 0 {
		t.Errorf("preflight of the covered table as the role:%s", problemsText(ps))
	}

	// It lacks a table: the error names the publication, the table, and
	// the SQL; the role did not try to add it.
	err := EnsurePublication(ctx, bob, "owners", []change.Table{orders, items}, false)
	var pe *PublicationError
	if !errors.As(err, &pe) || !slices.Equal(pe.Missing, []change.Table{items}) ||
		pe.Fix != `ALTER PUBLICATION "owners" ADD TABLE "public"."Order Items";` || !strings.Contains(err.Error(), `publication owners does not publish "public"."Order Items"`) {
		t.Fatalf("a missing table: %v (%+v)", err, pe)
	}
	ps := Preflight(ctx, bob, []change.Table{orders, items}, WithPublication("owners", false))
	if found := findProblem(ps, change.Table{}, `publication owners does not publish "public"."Order Items"`); len(found) != 1 || !strings.HasSuffix(found[0].Fix, pe.Fix) {
		t.Errorf("preflight of a missing table:%s", problemsText(ps))
	}
	if len(findProblem(ps, items, "does not own")) != 0 {
		t.Errorf("preflight asks the role to own a table of a publication it uses as it is:%s", problemsText(ps))
	}
	// The owner runs the SQL: covered.
	db.exec(t, pe.Fix)
	if err := EnsurePublication(ctx, bob, "owners", []change.Table{orders, items}, false); err != nil {
		t.Fatalf("after the owner ran the fix: %v", err)
	}

	// Row filters, column lists, missing operations and partitioned tables
	// published under their partitions' names hide changes.
	db.exec(t, `ALTER PUBLICATION owners SET TABLE orders WHERE (id > 5), "Order Items" (id), parted;
		ALTER PUBLICATION owners SET (publish = 'insert, update')`)
	err = EnsurePublication(ctx, bob, "owners", []change.Table{orders, items, parted}, false)
	if !errors.As(err, &pe) || !slices.Equal(pe.Filtered, []change.Table{orders, items}) || !slices.Equal(pe.Operations, []string{"delete", "truncate"}) || !pe.ViaRoot {
		t.Fatalf("filters, options: %v (%+v)", err, pe)
	}
	db.exec(t, pe.Fix)
	if err := EnsurePublication(ctx, bob, "owners", []change.Table{orders, items, parted}, false); err != nil {
		t.Fatalf("after the owner ran %s: %v", pe.Fix, err)
	}

	// A publication the mapping names is never created: the error gives
	// the CREATE for the owner to run.
	err = EnsurePublication(ctx, db.conn, "named_pub", []change.Table{orders}, true)
	if !errors.As(err, &pe) || pe.Exists || !strings.Contains(err.Error(), `publication named_pub does not exist`) ||
		pe.Fix != `CREATE PUBLICATION "named_pub" FOR TABLE "public"."orders" WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true);` {
		t.Fatalf("a named publication that does not exist: %v", err)
	}
	// Neither is dropped by the bridge: not the one another role made, nor,
	// even for a superuser, one the mapping names.
	if kept, err := DropPublication(ctx, bob, "owners", false); err != nil || !strings.Contains(kept, "DROP PUBLICATION \"owners\"") {
		t.Fatalf("dropping the owner's publication as the role: kept %q, %v", kept, err)
	}
	if kept, err := DropPublication(ctx, db.conn, "owners", true); err != nil || !strings.Contains(kept, "the mapping names it") {
		t.Fatalf("dropping a publication the mapping names: kept %q, %v", kept, err)
	}
	var n int
	if err := db.conn.QueryRow(ctx, `SELECT count(*) FROM pg_publication WHERE pubname = 'owners'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the owner's publication was dropped (%d, %v)", n, err)
	}
	if err := db.conn.QueryRow(ctx, `SELECT count(*) FROM pg_publication WHERE pubname = 'named_pub'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the bridge created the publication the mapping names (%d, %v)", n, err)
	}
	ps = Preflight(ctx, bob, []change.Table{orders}, WithPublication("named_pub", true))
	if found := findProblem(ps, change.Table{}, "publication named_pub does not exist"); len(found) != 1 || !strings.HasSuffix(found[0].Fix, pe.Fix) {
		t.Errorf("preflight of a named publication that does not exist:%s", problemsText(ps))
	}
	// The bridge's own name, not yet made, as a role that may not make it:
	// the fix says what the owner creates instead.
	ps = Preflight(ctx, bob, []change.Table{orders}, WithPublication("cdcbridge_x_forward", false))
	if found := findProblem(ps, change.Table{}, `may not create publication cdcbridge_x_forward`); len(found) != 1 ||
		!strings.HasPrefix(found[0].Fix, `as the owner of the tables run: CREATE PUBLICATION "cdcbridge_x_forward" FOR TABLE "public"."orders"`) {
		t.Errorf("preflight of the bridge's own publication as a role that owns no table:%s", problemsText(ps))
	}
}
