package checkpoint

import (
	"context"
	"testing"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestEntries: entry states are kept per mapping and direction, replaced by
// a later phase, passed to streaming once the checkpoint reaches them, and
// go with the checkpoint when it is deleted.
func TestEntries(t *testing.T) {
	dsn := pgtest.Target(t).NewDB(t)
	ctx := context.Background()
	c := pgtest.Connect(t, dsn)
	if got, err := LoadEntries(ctx, c, "shop", "forward"); err != nil || len(got) != 0 {
		t.Fatalf("LoadEntries before the table exists = %v, %v", got, err)
	}
	if err := Create(ctx, c, State{Name: "shop", Direction: "forward", LSN: 0x100, SystemID: "1", Slot: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := SetEntries(ctx, c, "shop", "forward", Streaming, 0x100, "a -> a", "b -> b"); err != nil {
		t.Fatal(err)
	}
	if err := SetEntries(ctx, c, "shop", "forward", Copying, 0x300, "c -> c"); err != nil {
		t.Fatal(err)
	}
	if err := SetEntries(ctx, c, "shop", "reverse", Streaming, 0x100, "a -> a"); err != nil {
		t.Fatal(err)
	}
	if err := SetEntries(ctx, c, "shop", "forward", Synced, 0x300, "c -> c"); err != nil {
		t.Fatal(err)
	}
	got, err := LoadEntries(ctx, c, "shop", "forward")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["c -> c"].Phase != Synced || got["c -> c"].LSN != 0x300 || got["a -> a"].Phase != Streaming {
		t.Fatalf("LoadEntries = %+v", got)
	}
	if err := PassEntries(ctx, c, "shop", "forward", 0x2ff); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadEntries(ctx, c, "shop", "forward"); got["c -> c"].Phase != Synced {
		t.Fatalf("an entry synced at 0/300 passed with the checkpoint at 0/2FF: %+v", got["c -> c"])
	}
	if err := PassEntries(ctx, c, "shop", "forward", 0x300); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadEntries(ctx, c, "shop", "forward"); got["c -> c"].Phase != Streaming || got["c -> c"].LSN != 0x300 {
		t.Fatalf("an entry synced at 0/300 did not pass with the checkpoint there: %+v", got["c -> c"])
	}
	if err := DeleteEntries(ctx, c, "shop", "forward", "b -> b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadEntries(ctx, c, "shop", "forward"); len(got) != 2 {
		t.Fatalf("after deleting b: %+v", got)
	}
	if err := Delete(ctx, c, "shop", "forward"); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadEntries(ctx, c, "shop", "forward"); len(got) != 0 {
		t.Fatalf("the entry states outlived their checkpoint: %+v", got)
	}
	if got, _ := LoadEntries(ctx, c, "shop", "reverse"); len(got) != 1 {
		t.Fatalf("deleting the forward checkpoint took the reverse entries: %+v", got)
	}
}
