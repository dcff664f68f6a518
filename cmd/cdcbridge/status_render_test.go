package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/admin"
)

// TestStatusShowsEntryStates renders every state an entry can be in.
func TestStatusShowsEntryStates(t *testing.T) {
	st := admin.Status{Mapping: "m", Live: "forward", Directions: []admin.DirectionStatus{{
		Direction: "forward", Mode: "live", Reads: "source", Slot: "s", Checkpoint: "0/10", CheckpointState: "streaming",
		Entries: []admin.EntryStatus{
			{Entry: "a -> a", State: "streaming"},
			{Entry: "b -> b", State: "copying", LSN: "0/20"},
			{Entry: "c -> c", State: "synced", LSN: "0/30"},
			{Entry: "d -> d", State: "new"},
			{Entry: "e -> e", State: "removed"},
		}}}}
	var b bytes.Buffer
	writeStatus(&b, st)
	for _, want := range []string{
		"    a -> a: streaming\n",
		"    b -> b: copying (snapshot at 0/20)\n",
		"    c -> c: synced at 0/30 (streaming once the checkpoint passes it)\n",
		"    d -> d: new",
		"    e -> e: removed from the mapping",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
