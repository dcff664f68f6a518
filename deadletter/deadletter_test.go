package deadletter

import (
	"errors"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
)

// TestRow: a rejected change becomes an insert into cdcbridge.deadletter
// with the mapping, the direction, the LSN, the table, the op, the row as
// JSON (text values, NULL as null, unchanged TOASTed values left out) and
// the error.
func TestRow(t *testing.T) {
	m := &config.Mapping{Name: "shop"}
	rel := &change.Relation{Table: change.Table{Schema: "public", Name: "orders"},
		Columns: []change.Column{{Name: "id"}, {Name: "note"}, {Name: "bio"}}}
	ch := &change.Change{Op: change.Delete, Rel: rel, LSN: 0x16B3748,
		Old: change.Row{change.TextValue("7"), {Kind: change.Null}, {Kind: change.Absent}}}
	out, err := Row(m, config.Reverse, ch, errors.New("forward threw"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Op != change.Insert || out.Table != Table || out.Source != rel.Table || out.LSN != ch.LSN {
		t.Fatalf("Row = %+v", out)
	}
	want := map[string]string{"name": "shop", "direction": "reverse", "lsn": "0/16B3748", "source_table": rel.Table.String(),
		"op": change.Delete.String(), "row": `{"id":"7","note":null}`, "error": "forward threw"}
	for i, c := range out.Cols {
		if got := string(out.Vals[i].Data); got != want[c] {
			t.Errorf("%s = %q, want %q", c, got, want[c])
		}
	}
}
