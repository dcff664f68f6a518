package replication

import (
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

	if err := EnsurePublication(ctx, db.conn, "pub_one", []change.Table{mixed, reserved, mixed}); err != nil {
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
	if err := EnsurePublication(ctx, db.conn, "pub_one", []change.Table{reserved, mixed}); err != nil {
		t.Fatal(err)
	}
	if after := xmins(); after != before {
		t.Fatalf("ensuring the same tables rewrote the publication: xmins %s, then %s", before, after)
	}

	// A new set replaces the old one, row filters go.
	db.exec(t, `ALTER PUBLICATION pub_one SET TABLE "My Schema"."MixedCase" WHERE (id > 5), public."select"`)
	db.exec(t, `ALTER PUBLICATION pub_one SET (publish = 'insert')`)
	if err := EnsurePublication(ctx, db.conn, "pub_one", []change.Table{spaced, unicode, mixed}); err != nil {
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
		if err := EnsurePublication(ctx, db.conn, bad, []change.Table{plain}); err == nil {
			t.Errorf("EnsurePublication accepted the name %q", bad)
		}
	}
	if err := EnsurePublication(ctx, db.conn, "pub_two", nil); err == nil {
		t.Errorf("EnsurePublication accepted no tables")
	}
	if err := EnsurePublication(ctx, db.conn, "pub_two", []change.Table{tbl("public", "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("EnsurePublication of a missing table: %v", err)
	}
	db.exec(t, `CREATE PUBLICATION pub_all FOR ALL TABLES`)
	if err := EnsurePublication(ctx, db.conn, "pub_all", []change.Table{plain}); err == nil || !strings.Contains(err.Error(), "FOR ALL TABLES") {
		t.Errorf("EnsurePublication on a FOR ALL TABLES publication: %v", err)
	}

	// Drop, twice.
	for i := 0; i < 2; i++ {
		if err := DropPublication(ctx, db.conn, "pub_one"); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.conn.QueryRow(ctx, `SELECT count(*) FROM pg_publication WHERE pubname = 'pub_one'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after DropPublication %d publications (%v)", n, err)
	}
	if err := DropPublication(ctx, db.conn, "Bad Name"); err == nil {
		t.Errorf("DropPublication accepted a bad name")
	}
}
