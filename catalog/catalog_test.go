package catalog

import (
	"context"
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
