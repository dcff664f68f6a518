package config

import (
	"slices"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
)

func TestView(t *testing.T) {
	tb := func(n string) change.Table { return change.Table{Schema: "public", Name: n} }
	green := Side{DSN: NewDSN("host=green user=u dbname=g")}
	blue := Side{DSN: NewDSN("host=blue user=u dbname=b")}
	m := &Mapping{
		Name:   "shop",
		Source: green,
		Target: blue,
		Tables: []Entry{
			{Index: 0, Source: tb("orders"), Target: tb("orders_v2")},
			{Index: 1, Source: tb("orders"), Target: tb("order_notes")},
		},
	}
	for _, tc := range []struct {
		dir                   Direction
		read, write           Side
		readName, writeName   string
		fn, name              string
		readTables, written   []change.Table
		entriesOf             change.Table
		entries               int
		copyOrigin, oppositeF string
	}{
		{
			dir: Forward, read: green, write: blue, readName: "source", writeName: "target",
			fn: "forward", name: "cdcbridge_shop_forward",
			readTables: []change.Table{tb("orders")}, written: []change.Table{tb("orders_v2"), tb("order_notes")},
			entriesOf: tb("orders"), entries: 2,
			copyOrigin: "cdcbridge_shop_forward_copy2", oppositeF: "backward",
		},
		{
			dir: Reverse, read: blue, write: green, readName: "target", writeName: "source",
			fn: "backward", name: "cdcbridge_shop_reverse",
			readTables: []change.Table{tb("orders_v2"), tb("order_notes")}, written: []change.Table{tb("orders")},
			entriesOf: tb("order_notes"), entries: 1,
			copyOrigin: "cdcbridge_shop_reverse_copy2", oppositeF: "forward",
		},
	} {
		t.Run(tc.dir.String(), func(t *testing.T) {
			v := m.View(tc.dir)
			if v.Direction != tc.dir || v.ReadSide != tc.read || v.WriteSide != tc.write ||
				v.ReadName != tc.readName || v.WriteName != tc.writeName || v.Func != tc.fn {
				t.Errorf("View(%v) = %+v", tc.dir, v)
			}
			if v.Slot != tc.name || v.Publication != tc.name || v.Origin != tc.name || v.CopyOrigin(2) != tc.copyOrigin {
				t.Errorf("names: slot %s, publication %s, origin %s, copy origin %s; want %s", v.Slot, v.Publication, v.Origin, v.CopyOrigin(2), tc.name)
			}
			if got := v.ReadTables(); !slices.Equal(got, tc.readTables) {
				t.Errorf("ReadTables = %v, want %v", got, tc.readTables)
			}
			if got := v.WriteTables(); !slices.Equal(got, tc.written) {
				t.Errorf("WriteTables = %v, want %v", got, tc.written)
			}
			if got := v.EntriesFor(tc.entriesOf); len(got) != tc.entries {
				t.Errorf("EntriesFor(%v) = %v, want %d entries", tc.entriesOf, got, tc.entries)
			}
			if o := v.Opposite(); o.Direction != tc.dir.Opposite() || o.ReadSide != tc.write || o.Func != tc.oppositeF {
				t.Errorf("Opposite = %+v", o)
			}
			if v.Mapping() != m {
				t.Error("Mapping() is not the mapping viewed")
			}
			// The Mapping's own methods give the same answers.
			if m.ReadSide(tc.dir) != v.ReadSide || m.WriteSide(tc.dir) != v.WriteSide || m.SlotName(tc.dir) != v.Slot {
				t.Error("the Mapping's methods disagree with the View")
			}
		})
	}
}
