package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestResume(t *testing.T) {
	st := State{Name: "shop", Direction: "forward", LSN: 0x3000, SystemID: "42", Slot: "cdcbridge_shop_forward"}
	ok := Slot{Exists: true, ConfirmedFlushLSN: 0x2000, WALStatus: "reserved"}
	cases := []struct {
		name     string
		slot     Slot
		sysid    string
		wantErr  string
		wantFrom uint64
	}{
		{"behind", ok, "42", "", 0x3000},
		{"equal", Slot{Exists: true, ConfirmedFlushLSN: 0x3000, WALStatus: "reserved"}, "42", "", 0x3000},
		{"ahead", Slot{Exists: true, ConfirmedFlushLSN: 0x3001, WALStatus: "reserved"}, "42", "has confirmed 0/3001 but the checkpoint on the target is at 0/3000", 0},
		{"missing", Slot{}, "42", "slot cdcbridge_shop_forward is missing", 0},
		{"lost", Slot{Exists: true, ConfirmedFlushLSN: 0x2000, WALStatus: "lost"}, "42", "invalidated", 0},
		{"other system", ok, "43", "system identifier is 43", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from, err := Resume(st, c.slot, c.sysid)
			if c.wantErr == "" {
				if err != nil || uint64(from) != c.wantFrom {
					t.Fatalf("Resume = %s, %v; want %x", from, err, c.wantFrom)
				}
				return
			}
			var ref *RefusalError
			if !errors.As(err, &ref) || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Resume error = %v; want a refusal containing %q", err, c.wantErr)
			}
		})
	}
}

// Statement refuses to advance a checkpoint row that is not there, and
// IsMissing tells that refusal from other errors.
func TestStatementWithoutItsRow(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.Connect(t, pgtest.Target(t).NewDB(t))
	if err := Create(ctx, conn, State{Name: "shop", Direction: "forward", LSN: 0x10, SystemID: "1", Slot: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, Statement, "shop", "forward", "0/20"); err != nil {
		t.Fatalf("advancing an existing row: %v", err)
	}
	_, err := conn.Exec(ctx, Statement, "shop", "reverse", "0/20")
	if !IsMissing(err) || !IsMissing(fmt.Errorf("writing the checkpoint: %w", err)) {
		t.Fatalf("advancing a missing row: error %v, not recognised by IsMissing", err)
	}
	_, other := conn.Exec(ctx, Statement, "shop", "forward", "not an LSN")
	for _, err := range []error{nil, other, errors.New("checkpoint rows updated: 0")} {
		if IsMissing(err) {
			t.Errorf("IsMissing(%v) = true, want false", err)
		}
	}
}

func TestStoreAndLock(t *testing.T) {
	dsn := pgtest.Target(t).NewDB(t)
	ctx := context.Background()
	a := pgtest.Connect(t, dsn)
	if _, err := Load(ctx, a, "shop", "forward"); !errors.Is(err, ErrNone) {
		t.Fatalf("Load before any checkpoint = %v, want ErrNone", err)
	}
	want := State{Name: "shop", Direction: "forward", LSN: 0x16B3748, SystemID: "7300000000000000001", Slot: "cdcbridge_shop_forward"}
	if err := Create(ctx, a, want); err != nil {
		t.Fatal(err)
	}
	if err := Create(ctx, a, want); err == nil {
		t.Fatal("a second Create of the same checkpoint succeeded")
	}
	if _, err := a.Exec(ctx, Statement, "shop", "forward", "0/16B3800"); err != nil {
		t.Fatal(err)
	}
	got, err := Load(ctx, a, "shop", "forward")
	if err != nil {
		t.Fatal(err)
	}
	if got.LSN != 0x16B3800 || got.SystemID != want.SystemID || got.Slot != want.Slot {
		t.Fatalf("Load = %+v", got)
	}
	if got.Copying {
		t.Fatal("a streaming checkpoint reads as copying")
	}
	if err := FinishCopy(ctx, a, "shop", "forward"); err == nil {
		t.Fatal("FinishCopy of a checkpoint that is not copying succeeded")
	}
	copying := State{Name: "shop", Direction: "reverse", LSN: 0x10, SystemID: "1", Slot: "s", Copying: true}
	if err := Create(ctx, a, copying); err != nil {
		t.Fatal(err)
	}
	if got, _ := Load(ctx, a, "shop", "reverse"); !got.Copying {
		t.Fatal("a copying checkpoint reads as streaming")
	}
	if err := FinishCopy(ctx, a, "shop", "reverse"); err != nil {
		t.Fatal(err)
	}
	if got, _ := Load(ctx, a, "shop", "reverse"); got.Copying {
		t.Fatal("FinishCopy left the checkpoint copying")
	}
	if err := Delete(ctx, a, "shop", "reverse"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, a, "shop", "reverse"); !errors.Is(err, ErrNone) {
		t.Fatalf("the reverse direction shares the forward checkpoint: %v", err)
	}

	if err := Lock(ctx, a, "shop", "forward", 0); err != nil {
		t.Fatal(err)
	}
	b := pgtest.Connect(t, dsn)
	if err := Lock(ctx, b, "shop", "forward", 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second daemon's lock = %v, want ErrLocked", err)
	}
	if err := Lock(ctx, b, "shop", "reverse", 0); err != nil {
		t.Fatalf("the other direction is a different lock: %v", err)
	}
	a.Close(ctx)
	// The server ends the backend of a closed connection asynchronously.
	var err2 error
	if !pgtest.Until(5*time.Second, func() bool {
		err2 = Lock(ctx, b, "shop", "forward", 0)
		return err2 == nil
	}) {
		t.Fatalf("the lock outlived its connection: %v", err2)
	}
}
