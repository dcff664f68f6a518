package change

import (
	"context"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := NewBudget(100)
	if n, err := b.Hold(context.Background(), 60); n != 60 || err != nil {
		t.Fatalf("Hold(60) = %d, %v", n, err)
	}
	if _, ok := b.TryHold(50); ok {
		t.Fatal("TryHold(50) took bytes beyond the budget")
	}
	// A wait for room ends with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Hold(ctx, 50); err == nil {
		t.Fatal("Hold(50) did not wait for room")
	}
	// Released bytes let a waiter through.
	got := make(chan int64)
	go func() {
		n, _ := b.Hold(context.Background(), 50)
		got <- n
	}()
	b.Release(60)
	if n := <-got; n != 50 {
		t.Fatalf("the waiter took %d, want 50", n)
	}
	// An event larger than the budget takes all of it, once the rest is free.
	b.Release(50)
	if n, ok := b.TryHold(1 << 30); !ok || n != 100 {
		t.Fatalf("TryHold of more than the budget = %d, %v; want all 100", n, ok)
	}
	ev := Event{Held: 100}
	ev.Release(b)
	if ev.Held != 0 {
		t.Fatal("Release left Held set")
	}
	if n, ok := b.TryHold(100); !ok || n != 100 {
		t.Fatal("an event's Release did not give its bytes back")
	}
	// A nil budget bounds nothing.
	var none *Budget
	if n, err := none.Hold(context.Background(), 1<<40); n != 0 || err != nil {
		t.Fatal("a nil budget held bytes")
	}
	none.Release(10)
}

func TestEventSize(t *testing.T) {
	big := Value{Kind: Text, Data: make([]byte, 1<<20)}
	ch := Event{Kind: EvChange, Change: &Change{New: Row{big, big}, Old: Row{big}}}
	if s := ch.Size(); s < 3<<20 || s > 3<<20+1024 {
		t.Fatalf("Size of a change of three 1 MiB values = %d", s)
	}
	out := Event{Kind: EvChange, Outs: []Out{{Vals: []Value{big}, Key: []Value{big}}}}
	if s := out.Size(); s < 2<<20 {
		t.Fatalf("Size of a mapped change of two 1 MiB values = %d", s)
	}
	if s := (&Event{Kind: EvCommit}).Size(); s <= 0 || s > 1024 {
		t.Fatalf("Size of a commit = %d", s)
	}
}
