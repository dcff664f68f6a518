package catalog

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestLoad(t *testing.T) {
	dsn := pgtest.Target(t).NewDB(t)
	conn := pgtest.Connect(t, dsn)
	pgtest.MustExec(t, conn, `
		CREATE SCHEMA "Odd Schema";
		CREATE DOMAIN posint AS int8 CHECK (VALUE > 0);
		CREATE TABLE "Odd Schema"."Select" (
			"Id" int GENERATED ALWAYS AS IDENTITY,
			k2 varchar(7),
			qty posint,
			tags text[],
			total numeric GENERATED ALWAYS AS (qty * 2) STORED,
			note text DEFAULT 'x',
			PRIMARY KEY ("Id", k2));
		CREATE TABLE nokey (a int, b int NOT NULL);
		CREATE UNIQUE INDEX ON nokey (b);
		CREATE UNIQUE INDEX ON nokey (a) WHERE a > 0;
		ALTER TABLE nokey REPLICA IDENTITY FULL;
		ALTER TABLE nokey DROP COLUMN a;`)
	odd := change.Table{Schema: "Odd Schema", Name: "Select"}
	nokey := change.Table{Schema: "public", Name: "nokey"}
	missing := change.Table{Schema: "public", Name: "missing"}
	cat, err := Load(context.Background(), conn, []change.Table{odd, nokey, missing})
	if err != nil {
		t.Fatal(err)
	}
	if cat.Table(missing) != nil {
		t.Fatal("a missing table was found")
	}
	o := cat.Table(odd)
	if o == nil {
		t.Fatal("table with quoted mixed-case names not found")
	}
	if len(o.Key) != 2 || o.Key[0] != "Id" || o.Key[1] != "k2" {
		t.Fatalf("key = %v, want [Id k2]", o.Key)
	}
	if c := o.Column("Id"); c == nil || c.Identity != 'a' || !o.HasIdentityAlways() {
		t.Fatalf("identity column not recognised: %+v", c)
	}
	if c := o.Column("total"); c == nil || !c.Generated || c.FullTypeName != "numeric" {
		t.Fatalf("generated column not recognised: %+v", c)
	}
	if c := o.Column("k2"); c == nil || c.FullTypeName != "character varying(7)" {
		t.Fatalf("k2: %+v", c)
	}
	if c := o.Column("note"); c == nil || !c.HasDefault || c.Default != "'x'::text" {
		t.Fatalf("default not read: %+v", c)
	}
	qty := o.Column("qty")
	if qty == nil || qty.TypeName != "posint" || cat.Resolve(qty.TypeOID) != pgtype.Int8OID {
		t.Fatalf("domain not resolved to int8: %+v", qty)
	}
	tags := o.Column("tags")
	if ty := cat.Type(tags.TypeOID); ty == nil || ty.Elem != pgtype.TextOID || ty.Category != 'A' {
		t.Fatalf("text[] element not known: %+v", ty)
	}
	n := cat.Table(nokey)
	if n.Key != nil || n.ReplicaIdentity != 'f' || len(n.Columns) != 1 {
		t.Fatalf("nokey: key %v ident %c cols %v", n.Key, n.ReplicaIdentity, n.Columns)
	}
	if !n.IsUniqueKey([]string{"b"}) || n.IsUniqueKey([]string{"a"}) {
		t.Fatalf("unique keys = %v; the partial index must not count", n.UniqueKeys)
	}
}

func TestRowKeyAndEquality(t *testing.T) {
	dsn := pgtest.Target(t).NewDB(t)
	conn := pgtest.Connect(t, dsn)
	pgtest.MustExec(t, conn, `
		CREATE TYPE mood AS ENUM ('sad', 'ok');
		CREATE DOMAIN doc AS json;
		CREATE TABLE pk (id int PRIMARY KEY, code text NOT NULL UNIQUE);
		CREATE TABLE uniq (a int, b text NOT NULL, c int NOT NULL, d int NOT NULL);
		CREATE UNIQUE INDEX uniq_a ON uniq (a);           -- nullable: no key
		CREATE UNIQUE INDEX uniq_d ON uniq (d) WHERE d > 0; -- partial: no key
		CREATE UNIQUE INDEX uniq_bc ON uniq (b, c);
		CREATE TABLE ident (a int NOT NULL, b int NOT NULL);
		CREATE UNIQUE INDEX ident_a ON ident (a);
		CREATE UNIQUE INDEX ident_b ON ident (b);
		ALTER TABLE ident REPLICA IDENTITY USING INDEX ident_b;
		CREATE TABLE deferred (a int NOT NULL, CONSTRAINT d_a UNIQUE (a) DEFERRABLE);
		CREATE TABLE bag (j json, x xml, p point, js jsonb, v varchar(3), m mood, d doc, ja json[], ia int[], r int4range);`)
	names := []string{"pk", "uniq", "ident", "deferred", "bag"}
	var tables []change.Table
	for _, n := range names {
		tables = append(tables, change.Table{Schema: "public", Name: n})
	}
	cat, err := Load(context.Background(), conn, tables)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"pk": "[id]", "uniq": "[b c]", "ident": "[b]", "deferred": "[]", "bag": "[]"} {
		if got := fmt.Sprint(cat.Table(change.Table{Schema: "public", Name: name}).RowKey()); got != want {
			t.Errorf("%s: RowKey() = %s, want %s", name, got, want)
		}
	}
	bag := cat.Table(change.Table{Schema: "public", Name: "bag"})
	for col, want := range map[string]bool{"j": false, "x": false, "p": false, "js": true, "v": true, "m": true, "d": false, "ja": false, "ia": true, "r": true} {
		if got := cat.HasEquality(bag.Column(col).TypeOID); got != want {
			t.Errorf("HasEquality(%s %s) = %v, want %v", col, bag.Column(col).TypeName, got, want)
		}
	}
}
