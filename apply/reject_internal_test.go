package apply

import (
	"errors"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/change"
)

// TestRejectsInARow: refused changes count as in a row unless a change was
// applied between them, in the source's order, whatever the replays met
// before.
func TestRejectsInARow(t *testing.T) {
	tab := change.Table{Schema: "public", Name: "a"}
	out := func(lsn pglogrepl.LSN) *change.Out { return &change.Out{Table: tab, LSN: lsn} }
	r := &Rejects{}
	if _, rejected := r.meet(out(10)); rejected {
		t.Fatal("a change is rejected before anything was recorded")
	}
	if n := r.Add(&Error{Table: tab, LSN: 10}, "bad 10"); n != 1 {
		t.Fatalf("first refused change: %d in a row", n)
	}
	// The replay meets 10 (left out), then 20, which fails too: nothing
	// was applied between them.
	if cause, rejected := r.meet(out(10)); !rejected || cause != "bad 10" {
		t.Fatalf("meet(10) = %q %v", cause, rejected)
	}
	if n := r.Add(&Error{Table: tab, LSN: 20}, "bad 20"); n != 2 {
		t.Fatalf("second refused change with none between: %d in a row", n)
	}
	// The next replay meets 10, 20 (left out), 25 (applied), then 30 fails.
	for _, lsn := range []pglogrepl.LSN{10, 20, 25} {
		r.meet(out(lsn))
	}
	if n := r.Add(&Error{Table: tab, LSN: 30}, "bad 30"); n != 1 {
		t.Fatalf("a refused change after an applied one: %d in a row, want 1", n)
	}
	// Another table at the same LSN is not the refused change.
	if _, rejected := r.meet(&change.Out{Table: change.Table{Schema: "public", Name: "b"}, LSN: 30}); rejected {
		t.Fatal("a change to another table at the same LSN is rejected")
	}
}

// TestRejectsHalt: the change to halt before is found by its LSN and
// table, its transaction recorded, and a second halt is refused.
func TestRejectsHalt(t *testing.T) {
	tab := change.Table{Schema: "public", Name: "a"}
	r := &Rejects{}
	if r.HaltsAt(100) {
		t.Fatal("halts before anything was recorded")
	}
	cause := errors.New("refused")
	if !r.Halt(&Error{Table: tab, LSN: 40}, cause) || r.Halt(&Error{Table: tab, LSN: 50}, cause) || r.HaltAtTxn(60, cause) {
		t.Fatal("a second halt was accepted")
	}
	if r.haltsOn(&change.Out{Table: tab, LSN: 41}, 100) || !r.haltsOn(&change.Out{Table: tab, LSN: 40}, 100) {
		t.Fatal("haltsOn does not find the change by its LSN")
	}
	if err, ok := r.haltsAt(100); !ok || err != cause || r.HaltsAt(99) {
		t.Fatalf("haltsAt(100) = %v %v", err, ok)
	}
}
