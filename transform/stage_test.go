package transform

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
)

// stopAt is a Gate that stops the stage at the Begin of transaction xid.
type stopAt uint32

func (s stopAt) Begin(_ context.Context, txn *change.Txn) bool         { return txn.Xid != uint32(s) }
func (stopAt) Filter(_ *change.Change, outs []change.Out) []change.Out { return outs }

// TestStageMapsAheadInOrderAndWaits runs the stage with several Mappers:
// the changes leave in the order they came, and when the stage stops (its
// input still open, as a stream's is when the stage halts first) every
// goroutine it started has ended by the time Run returns.
func TestStageMapsAheadInOrderAndWaits(t *testing.T) {
	var mappers []*Mapper
	var rel *change.Relation
	for range 3 {
		var m *Mapper
		m, rel = ordersMapper(t, ordersJS)
		mappers = append(mappers, m)
	}
	const n = 500
	in := make(chan change.Event, n+4)
	out := make(chan change.Event, n+4)
	txn := &change.Txn{Xid: 1}
	in <- change.Event{Kind: change.EvBegin, Txn: txn}
	for i := range n {
		ch := insert(rel, row(strconv.Itoa(i), "1.00", "new", nil, "bio", `\x`))
		ch.Txn = txn
		in <- change.Event{Kind: change.EvChange, Txn: txn, Change: ch}
	}
	in <- change.Event{Kind: change.EvCommit, Txn: txn}
	in <- change.Event{Kind: change.EvBegin, Txn: &change.Txn{Xid: 2}}
	// in stays open.

	before := runtime.NumGoroutine()
	st := &Stage{Mappers: mappers, Mapping: &config.Mapping{}, Direction: config.Forward, Logger: slog.New(slog.DiscardHandler), Gate: stopAt(2)}
	if err := st.Run(t.Context(), in, out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before Run, %d after it returned:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
	close(out)
	var got []string
	for ev := range out {
		if ev.Kind == change.EvChange {
			got = append(got, vals(ev.Outs[0]))
		}
	}
	if len(got) != n {
		t.Fatalf("%d changes passed, want %d", len(got), n)
	}
	for i, g := range got {
		if want := "id=" + strconv.Itoa(i) + " amount_cents=100 state=0"; g != want {
			t.Fatalf("change %d passed as %s, want %s", i, g, want)
		}
	}
}
