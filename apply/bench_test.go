package apply

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/cdcbridge/cdcbridge/catalog"
	"github.com/cdcbridge/cdcbridge/change"
)

// benchApplier is an applier over an in-memory catalog of items(id, name,
// qty, price, created), never run: the benchmarks look at what it builds.
func benchApplier() *Applier {
	tbl := change.Table{Schema: "public", Name: "items"}
	info := &catalog.Table{Name: tbl, Key: []string{"id"}, Kind: 'r'}
	for _, c := range []struct{ name, cast string }{{"id", "pg_catalog.int8"}, {"name", "pg_catalog.text"}, {"qty", "pg_catalog.int4"}, {"price", "pg_catalog.numeric"}, {"created", "pg_catalog.timestamptz"}} {
		info.Columns = append(info.Columns, catalog.Column{Name: c.name, CastName: c.cast})
	}
	cat := &catalog.Catalog{Tables: map[change.Table]*catalog.Table{tbl: info}, Types: map[uint32]*catalog.Type{}}
	a := New(nil, Config{Catalog: cat, MaxRows: 1 << 30, Upserts: &TableSet{}}, 0)
	a.begin()
	return a
}

func benchOuts(op change.Op, n int) []change.Out {
	tbl := change.Table{Schema: "public", Name: "items"}
	cols := []string{"id", "name", "qty", "price", "created"}
	outs := make([]change.Out, n)
	for i := range outs {
		id := change.TextValue(fmt.Sprint(i))
		outs[i] = change.Out{Op: op, Table: tbl}
		switch op {
		case change.Insert:
			outs[i].Cols = cols
			outs[i].Vals = []change.Value{id, change.TextValue(fmt.Sprint("item ", i)), change.TextValue("45"), change.TextValue("123.45"), change.TextValue("2026-11-30 02:00:00.123456+00")}
		case change.Update:
			outs[i].Cols = cols[1:3]
			outs[i].Vals = []change.Value{change.TextValue(fmt.Sprint("item ", i, "+")), change.TextValue("46")}
			fallthrough
		case change.Delete:
			outs[i].KeyCols, outs[i].Key = cols[:1], []change.Value{id}
		}
	}
	return outs
}

// BenchmarkBuild turns changes into runs and queued statements: inserts
// (a COPY), updates and deletes (one statement over unnest each), and
// updates of ten hot rows merged into one image each.
func BenchmarkBuild(b *testing.B) {
	hot := benchOuts(change.Update, 10)
	for _, c := range []struct {
		name string
		outs []change.Out
	}{
		{"insert", benchOuts(change.Insert, 5000)},
		{"update", benchOuts(change.Update, 5000)},
		{"delete", benchOuts(change.Delete, 5000)},
		{"hot-update", func() []change.Out {
			var outs []change.Out
			for range 500 {
				outs = append(outs, hot...)
			}
			return outs
		}()},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i += len(c.outs) {
				a := benchApplier()
				for j := range c.outs {
					if err := a.add(&c.outs[j]); err != nil {
						b.Fatal(err)
					}
				}
				a.build.flushAll()
			}
		})
	}
}

// BenchmarkCopyText renders rows in COPY's text format, as sent to the
// server.
func BenchmarkCopyText(b *testing.B) {
	a := benchApplier()
	outs := benchOuts(change.Insert, 5000)
	for i := range outs {
		a.add(&outs[i])
	}
	a.build.flushAll()
	r := a.build.items[len(a.build.items)-1].run
	var buf bytes.Buffer
	b.ReportAllocs()
	for i := 0; i < b.N; i += r.n {
		buf.Reset()
		io.Copy(&buf, &copyReader{r: r})
	}
}
