package transform

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
)

// A table written without a key finds the row of an update or delete by
// the whole old row, which only REPLICA IDENTITY FULL on the side read
// sends; with a key-only old image the change is an error that names the
// fixes.
func TestKeylessTargetIdentity(t *testing.T) {
	gen := col("g", pgtype.Int4OID)
	gen.Generated = true
	src := table("public", "s", nil, col("a", pgtype.Int4OID), col("b", pgtype.TextOID))
	dst := table("public", "d", nil, col("b", pgtype.TextOID), col("a", pgtype.Int4OID), gen)
	m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name}}, newCatalog(src), newCatalog(dst))
	full := relation(src, 1, "a", "b")
	full.ReplicaIdentity = 'f'

	outs := mustMap(t, m, insert(full, row("1", "x")))
	if o := outs[0]; o.KeyCols != nil || o.FullRow || vals(o) != "b=x a=1" {
		t.Errorf("insert: %+v (want a plain insert, no key)", o)
	}
	outs = mustMap(t, m, update(full, row("1", nil), row("1", "y"), false))
	if o := outs[0]; !o.FullRow || keys(o) != "b=NULL a=1" || vals(o) != "b=y a=1" {
		t.Errorf("update: full %v key %s vals %s", o.FullRow, keys(o), vals(o))
	}
	outs = mustMap(t, m, del(full, row("2", "z"), false))
	if o := outs[0]; !o.FullRow || keys(o) != "b=z a=2" || len(o.Cols) != 0 {
		t.Errorf("delete: full %v key %s vals %s", o.FullRow, keys(o), vals(o))
	}
	// An unchanged TOASTed value is no part of the match.
	outs = mustMap(t, m, del(full, row("2", absent), false))
	if o := outs[0]; keys(o) != "a=2" {
		t.Errorf("delete with an absent value matched by %s", keys(o))
	}

	keyed := table("public", "s", []string{"a"}, col("a", pgtype.Int4OID), col("b", pgtype.TextOID))
	m = newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name}}, newCatalog(keyed), newCatalog(dst))
	rel := relation(keyed, 2, "a")
	for name, ch := range map[string]*change.Change{
		"update": update(rel, nil, row("1", "y"), false),
		"delete": del(rel, row("1", nil), true),
	} {
		e := mapErrOf(t, m, ch)
		for _, want := range []string{`"public"."d" has no key`, "unique index on NOT NULL columns", "key: in the mapping", `ALTER TABLE "public"."s" REPLICA IDENTITY FULL`} {
			if !strings.Contains(e.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", name, want, e)
			}
		}
	}
}

func TestKeylessTargetScript(t *testing.T) {
	src := table("public", "s", nil, col("a", pgtype.Int4OID), col("b", pgtype.TextOID))
	dst := table("public", "d", nil, col("a2", pgtype.Int4OID), col("b2", pgtype.TextOID))
	path := script(t, "k.js", "function forward(r, c) { return {a2: r.a * 2, b2: r.b} }\nfunction backward(r) { return r }")
	m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name, Script: path}}, newCatalog(src), newCatalog(dst))
	full := relation(src, 1, "a", "b")
	full.ReplicaIdentity = 'f'
	// The old row goes through the same function, as a delete.
	outs := mustMap(t, m, update(full, row("1", "x"), row("3", "y"), false))
	if o := outs[0]; !o.FullRow || keys(o) != "a2=2 b2=x" || vals(o) != "a2=6 b2=y" {
		t.Errorf("update: full %v key %s vals %s", o.FullRow, keys(o), vals(o))
	}
	outs = mustMap(t, m, del(full, row("4", nil), false))
	if o := outs[0]; !o.FullRow || keys(o) != "a2=8 b2=NULL" {
		t.Errorf("delete: full %v key %s", o.FullRow, keys(o))
	}
	// An explicit old row is the match.
	path = script(t, "o.js", "function forward(r, c) { return {op: c.op, row: {a2: r.a, b2: r.b}, old: c.old && {a2: 7, b2: 'old'}} }\nfunction backward(r) { return r }")
	m = newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name, Script: path}}, newCatalog(src), newCatalog(dst))
	outs = mustMap(t, m, update(full, row("1", "x"), row("3", "y"), false))
	if o := outs[0]; !o.FullRow || keys(o) != "a2=7 b2=old" {
		t.Errorf("update with an explicit old row: full %v key %s", o.FullRow, keys(o))
	}
	// Without the full old row there is nothing to find the row by.
	e := mapErrOf(t, m, del(relation(src, 2, "a"), row("1", nil), true))
	if !strings.Contains(e.Msg, "has no key") {
		t.Errorf("delete with a key-only old row: %v", e)
	}
}

// A unique index on NOT NULL columns is the key of a table without a
// primary key.
func TestUniqueIndexIsTheKey(t *testing.T) {
	src := table("public", "s", []string{"id"}, col("id", pgtype.Int4OID), col("code", pgtype.TextOID))
	code := col("code", pgtype.TextOID)
	code.NotNull = true
	dst := table("public", "d", nil, col("id", pgtype.Int4OID), code)
	dst.UniqueKeys = [][]string{{"id"}, {"code"}} // id is nullable: not a key
	m := newMapper(t, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name}}, newCatalog(src), newCatalog(dst))
	full := relation(src, 1, "id", "code")
	outs := mustMap(t, m, update(full, row("1", "a"), row("1", "b"), false))
	if o := outs[0]; o.FullRow || keys(o) != "code=a" {
		t.Errorf("update found its row by %s (full %v), want code=a", keys(o), o.FullRow)
	}
}

// key: works in both directions: Specs gives each direction the key of the
// table it writes, and a key column missing there is an error naming the
// side and the form that names each table's own.
func TestSpecsKeyInBothDirections(t *testing.T) {
	m := &config.Mapping{Tables: []config.Entry{{
		Source: change.Table{Schema: "public", Name: "orders"}, Target: change.Table{Schema: "public", Name: "orders_v2"},
		SourceKey: []string{"id"}, Key: []string{"order_id"},
	}}}
	fwd, rev := Specs(m.View(config.Forward))[0], Specs(m.View(config.Reverse))[0]
	if fwd.Write.Name != "orders_v2" || strings.Join(fwd.Key, ",") != "order_id" {
		t.Errorf("forward spec: %+v", fwd)
	}
	if rev.Write.Name != "orders" || rev.Read.Name != "orders_v2" || strings.Join(rev.Key, ",") != "id" {
		t.Errorf("reverse spec: %+v", rev)
	}

	orders := table("public", "orders", nil, col("id", pgtype.Int4OID), col("v", pgtype.TextOID))
	v2 := table("public", "orders_v2", []string{"order_id"}, col("order_id", pgtype.Int4OID), col("v", pgtype.TextOID))
	v2.ReplicaIdentity = 'f'
	m.Tables[0].SourceKey = []string{"order_id"}
	_, err := New(Specs(m.View(config.Reverse)), Options{Func: "backward", Read: newCatalog(v2), Write: newCatalog(orders)})
	if err == nil || !strings.Contains(err.Error(), `key column order_id is not a column of "public"."orders", the source table`) ||
		!strings.Contains(err.Error(), "key: {source: [...], target: [...]}") {
		t.Errorf("a key column missing on the source: %v", err)
	}

	// The reverse key finds the source row of an update.
	same := table("public", "orders", nil, col("order_id", pgtype.Int4OID), col("v", pgtype.TextOID))
	mp, err := New(Specs(m.View(config.Reverse)), Options{Func: "backward", Read: newCatalog(v2), Write: newCatalog(same)})
	if err != nil {
		t.Fatal(err)
	}
	outs := mustMap(t, mp, update(relation(v2, 1, "order_id"), nil, row("5", "x"), false))
	if o := outs[0]; o.FullRow || keys(o) != "order_id=5" {
		t.Errorf("reverse update found its row by %s (full %v)", keys(o), o.FullRow)
	}
}
