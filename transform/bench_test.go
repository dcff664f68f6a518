package transform

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
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
