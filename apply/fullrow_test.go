package apply

import (
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
)

var null = change.Value{Kind: change.Null}

func fullRow(op change.Op, t change.Table, cols []string, vals []change.Value, keyCols []string, key ...change.Value) change.Out {
	return change.Out{Op: op, Table: t, Cols: cols, Vals: vals, KeyCols: keyCols, Key: key, FullRow: true}
}

// A table without a key takes plain inserts, and each update or delete
// changes exactly one of the rows that match its old row in every column,
// duplicates included, NULL matching NULL; json and point, which have no
// equality operator, match by their text.
func TestApplyTableWithoutKey(t *testing.T) {
	h := newHarness(t, 0x1000)
	bc := []string{"n", "j", "p", "c"}
	dup := []change.Value{v("1"), v(`{"a": 1}`), v("(1,2)"), v("x")}
	end := h.txn(0x2000,
		ins(bag, bc, dup...), ins(bag, bc, dup...), ins(bag, bc, dup...),
		ins(bag, bc, v("2"), null, null, null),
		ins(bag, bc, v("2"), null, null, null),
	)
	h.waitFlushed(end)
	if got, want := h.rows(`SELECT n, j, p, c FROM bag`), `(1,"{""a"": 1}","(1,2)","x  ") (1,"{""a"": 1}","(1,2)","x  ") (1,"{""a"": 1}","(1,2)","x  ") (2,,,) (2,,,)`; got != want {
		t.Fatalf("after inserts:\n got %s\nwant %s", got, want)
	}
	// The identity column keeps its value: an unchanged column is not SET.
	end = h.txn(0x3000,
		fullRow(change.Update, bag, []string{"n", "j", "p", "c", "id"}, []change.Value{v("5"), v(`{"a": 1}`), v("(1,2)"), v("x"), v("1")},
			[]string{"n", "j", "p", "c", "id"}, v("1"), v(`{"a": 1}`), v("(1,2)"), v("x"), v("1")),
		fullRow(change.Delete, bag, nil, nil, []string{"n", "j", "p", "c"}, v("2"), null, null, null),
		fullRow(change.Delete, bag, nil, nil, []string{"n", "j", "c"}, dup[0], dup[1], dup[3]),
	)
	h.waitFlushed(end)
	if got, want := h.rows(`SELECT id, n, c FROM bag`), `(1,5,"x  ") (3,1,"x  ") (5,2,)`; got != want {
		t.Fatalf("after one update and two deletes:\n got %s\nwant %s", got, want)
	}
	// A row that is not there changes nothing and stops nothing.
	end = h.txn(0x4000, fullRow(change.Delete, bag, nil, nil, []string{"n"}, v("99")))
	h.waitFlushed(end)
	if got := h.rows(`SELECT count(*) FROM bag`); got != "(3)" {
		t.Fatalf("rows after deleting a missing row: %s", got)
	}

	end = h.txn(0x5000,
		ins(parted, []string{"a", "b"}, v("1"), v("x")), ins(parted, []string{"a", "b"}, v("2"), v("x")), ins(parted, []string{"a", "b"}, v("2"), v("x")),
	)
	h.waitFlushed(end)
	end = h.txn(0x6000,
		fullRow(change.Update, parted, []string{"a", "b"}, []change.Value{v("2"), v("y")}, []string{"a", "b"}, v("2"), v("x")),
		fullRow(change.Delete, parted, nil, nil, []string{"a", "b"}, v("1"), v("x")),
	)
	h.waitFlushed(end)
	if got, want := h.rows(`SELECT a, b FROM parted`), `(2,x) (2,y)`; got != want {
		t.Fatalf("partitioned table:\n got %s\nwant %s", got, want)
	}
}

func TestFullRowStatements(t *testing.T) {
	h := newHarness(t, 0x1000)
	cat := h.a.cfg.Catalog
	for _, c := range []struct {
		name string
		r    *run
		want string
	}{
		{"update", &run{op: change.Update, table: bag, info: cat.Table(bag), cols: []string{"n"}, keyCols: []string{"n", "j", "p", "c"}},
			`UPDATE ONLY "public"."bag" SET "n" = $1::text::pg_catalog.int4 WHERE ctid = (SELECT ctid FROM ONLY "public"."bag" WHERE ` +
				`"n" IS NOT DISTINCT FROM $2::text::pg_catalog.int4 AND "j"::text IS NOT DISTINCT FROM $3::text AND "p"::text IS NOT DISTINCT FROM $4::text AND ` +
				`"c" IS NOT DISTINCT FROM $5::text::pg_catalog.bpchar LIMIT 1 FOR UPDATE)`},
		{"delete from a partitioned table", &run{op: change.Delete, table: parted, info: cat.Table(parted), keyCols: []string{"a"}},
			`DELETE FROM "public"."parted" WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM "public"."parted" WHERE "a" IS NOT DISTINCT FROM $1::text::pg_catalog.int4 LIMIT 1 FOR UPDATE)`},
	} {
		if got := buildFullRowSQL(c.r, cat); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}
