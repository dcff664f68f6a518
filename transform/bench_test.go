package transform

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/catalog"
)

func BenchmarkMapJS(b *testing.B) {
	src := table("public", "orders", []string{"id"}, col("id", pgtype.Int8OID), col("amount", pgtype.NumericOID),
		col("status", pgtype.TextOID), col("created", pgtype.TimestamptzOID), col("note", pgtype.TextOID))
	dst := table("public", "orders_v2", []string{"id"}, col("id", pgtype.Int8OID), col("amount_cents", pgtype.Int8OID),
		col("state", pgtype.Int2OID), col("created", pgtype.TimestamptzOID), col("note", pgtype.TextOID))
	path := script(b, "orders.js", `
const STATES = { new: 0, paid: 1, shipped: 2 };
function forward(r) {
  return { id: r.id, amount_cents: Math.round(Number(r.amount) * 100), state: STATES[r.status], created: r.created, note: r.note };
}
function backward(r) { return r }
`)
	m := newMapper(b, []Spec{{Entry: "e", Read: src.Name, Write: dst.Name, Script: path}}, newCatalog(src), newCatalog(dst))
	ch := insert(relation(src, 1, "id"), row("42", "19.90", "paid", "2024-02-29 12:34:56.123456+00", "a note"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Map(ch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMapIdentity(b *testing.B) {
	src := table("public", "orders", []string{"id"}, col("id", pgtype.Int8OID), col("amount", pgtype.NumericOID),
		col("status", pgtype.TextOID), col("created", pgtype.TimestamptzOID), col("note", pgtype.TextOID))
	m := newMapper(b, []Spec{{Entry: "e", Read: src.Name, Write: src.Name}}, newCatalog(src), newCatalog(src))
	ch := update(relation(src, 1, "id"), nil, row("42", "19.90", "paid", "2024-02-29 12:34:56.123456+00", "a note"), false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Map(ch); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSpecs is a mapping of four entries through three scripts, one of
// them long, as a Mapper per worker would compile them.
func benchSpecs(b *testing.B) ([]Spec, *catalog.Catalog, *catalog.Catalog) {
	b.Helper()
	src := table("public", "orders", []string{"id"}, col("id", pgtype.Int8OID), col("amount", pgtype.NumericOID),
		col("status", pgtype.TextOID), col("created", pgtype.TimestamptzOID), col("note", pgtype.TextOID))
	dst := table("public", "orders_v2", []string{"id"}, col("id", pgtype.Int8OID), col("amount_cents", pgtype.Int8OID),
		col("state", pgtype.Int2OID), col("created", pgtype.TimestamptzOID), col("note", pgtype.TextOID))
	orders := script(b, "orders.js", `
const STATES = { new: 0, paid: 1, shipped: 2 };
const NAMES = Object.fromEntries(Object.entries(STATES).map(([k, v]) => [v, k]));
function forward(r) {
  return { id: r.id, amount_cents: Math.round(Number(r.amount) * 100), state: STATES[r.status], created: r.created, note: r.note };
}
function backward(r) {
  return { id: r.id, amount: (r.amount_cents / 100).toFixed(2), status: NAMES[r.state], created: r.created, note: r.note };
}
`)
	var long strings.Builder
	for i := range 200 {
		fmt.Fprintf(&long, "function f%d(r) { const x = r.note ? r.note.split(',').map(s => s.trim()).filter(Boolean) : []; return x.length + %d; }\n", i, i)
	}
	long.WriteString("function forward(r) { return { ...r, note: String(f0(r) + f199(r)) }; }\nfunction backward(r) { return r; }\n")
	longPath := script(b, "long.js", long.String())
	same := script(b, "same.js", "function forward(r) { return r }\nfunction backward(r) { return r }\n")
	specs := []Spec{
		{Entry: "orders", Read: src.Name, Write: dst.Name, Script: orders},
		{Entry: "long", Read: src.Name, Write: src.Name, Script: longPath},
		{Entry: "same", Read: src.Name, Write: src.Name, Script: same},
		{Entry: "copy", Read: src.Name, Write: src.Name},
	}
	return specs, newCatalog(src), newCatalog(src, dst)
}

// BenchmarkNew is the cost of one worker's Mapper.
func BenchmarkNew(b *testing.B) {
	specs, read, write := benchSpecs(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(specs, Options{Func: "forward", Read: read, Write: write}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewShared is the cost of one worker's Mapper when the scripts
// were compiled once for all of them.
func BenchmarkNewShared(b *testing.B) {
	specs, read, write := benchSpecs(b)
	scripts, err := Compile(specs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(specs, Options{Func: "forward", Read: read, Write: write, Scripts: scripts}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile is the cost, paid once, of compiling the scripts.
func BenchmarkCompile(b *testing.B) {
	specs, _, _ := benchSpecs(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(specs); err != nil {
			b.Fatal(err)
		}
	}
}
