package control

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestFlipRequestLifecycle walks a mapping's state row through a flip: a
// request is claimed once, a claimed request cannot be withdrawn, the flip
// leaves the old live direction draining, and drain, foreign writes and
// delete do what they say.
func TestFlipRequestLifecycle(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Connect(t, pgtest.Target(t).NewDB(t))
	if _, err := Load(ctx, db, "shop"); !errors.Is(err, ErrNoState) {
		t.Fatalf("Load before Ensure: %v, want ErrNoState", err)
	}
	st, err := Ensure(ctx, db, "shop", config.Forward)
	if err != nil {
		t.Fatal(err)
	}
	if st.Live != config.Forward || st.Drains || st.Mode(config.Forward) != Live || st.Mode(config.Reverse) != Armed {
		t.Fatalf("a new state: %+v", st)
	}
	if st, err = Ensure(ctx, db, "shop", config.Reverse); err != nil || st.Live != config.Forward {
		t.Fatalf("Ensure again kept live %s (%v), want forward", st.Live, err)
	}

	id, err := RequestFlip(ctx, db, "shop", config.Reverse, IncludeWrites, time.Minute)
	if err != nil || id != 1 {
		t.Fatalf("RequestFlip = %d, %v", id, err)
	}
	if claimed, expired, err := Claim(ctx, db, "shop", id); !claimed || expired || err != nil {
		t.Fatalf("first Claim = %v, %v, %v; want claimed", claimed, expired, err)
	}
	if claimed, _, err := Claim(ctx, db, "shop", id); claimed || err != nil {
		t.Fatalf("second Claim = %v, %v; want not claimed", claimed, err)
	}
	if withdrawn, err := Withdraw(ctx, db, "shop", id, "withdrawn"); withdrawn || err != nil {
		t.Fatalf("Withdraw of a claimed request = %v, %v; want not withdrawn", withdrawn, err)
	}
	if err := RecordFlip(ctx, db, "shop", config.Reverse, 0x1000, id, "flipped"); err != nil {
		t.Fatal(err)
	}
	st, err = Load(ctx, db, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if st.Live != config.Reverse || !st.Drains || st.Draining != config.Forward || st.FlipLSN != 0x1000 || st.Generation != 1 ||
		st.Request != config.Reverse || st.RequestPolicy != IncludeWrites || st.AnsweredID != id || !st.AnswerOK || st.Answer != "flipped" {
		t.Fatalf("after the flip: %+v", st)
	}
	if st.Mode(config.Reverse) != Live || st.Mode(config.Forward) != Draining {
		t.Fatalf("modes after the flip: reverse %s, forward %s", st.Mode(config.Reverse), st.Mode(config.Forward))
	}

	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := RecordForeign(ctx, db, "shop", config.Forward, ForeignWrites{First: 0x2000, FirstAt: at, Txns: 3}); err != nil {
		t.Fatal(err)
	}
	if err := DrainDone(ctx, db, "shop", config.Forward); err != nil {
		t.Fatal(err)
	}
	st, err = Load(ctx, db, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if st.Drains || st.Mode(config.Forward) != Armed || st.ForeignDir != config.Forward || st.Foreign.Txns != 3 || st.Foreign.First != 0x2000 || !st.Foreign.FirstAt.Equal(at) {
		t.Fatalf("after drain and foreign writes: %+v", st)
	}

	// A request that no daemon claims in time is never carried out.
	id, err = RequestFlip(ctx, db, "shop", config.Forward, Refuse, 0)
	if err != nil {
		t.Fatal(err)
	}
	if claimed, expired, err := Claim(ctx, db, "shop", id); claimed || !expired || err != nil {
		t.Fatalf("Claim of an expired request = %v, %v, %v; want expired", claimed, expired, err)
	}
	if withdrawn, err := Withdraw(ctx, db, "shop", id, "withdrawn"); !withdrawn || err != nil {
		t.Fatalf("Withdraw of an unclaimed request = %v, %v", withdrawn, err)
	}

	if err := Delete(ctx, db, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, db, "shop"); !errors.Is(err, ErrNoState) {
		t.Fatalf("Load after Delete: %v, want ErrNoState", err)
	}
}
