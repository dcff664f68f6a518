package change

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// Budget bounds the bytes of the events between a pipeline's stream and
// its applier, whatever their number: a stage that holds events (a channel,
// the transform stage's chunks) holds at most the budget, so rows of
// megabytes cannot pile up by the thousand. The stream takes an event's
// share (Hold) before sending it and records it in Event.Held; whoever
// ends the event's way releases it: the applier once it has the event (its
// own rows are bounded by the bytes of a batch), a stage that drops it.
//
// An event larger than the whole budget takes all of it, and so passes
// alone. A nil *Budget bounds nothing.
type Budget struct {
	sem  *semaphore.Weighted
	size int64
}

// NewBudget returns a budget of size bytes.
func NewBudget(size int64) *Budget {
	return &Budget{sem: semaphore.NewWeighted(size), size: size}
}

// Hold takes n bytes (at most the whole budget) and returns how many it
// took, waiting until they are free or ctx ends.
func (b *Budget) Hold(ctx context.Context, n int64) (int64, error) {
	if b == nil || n <= 0 {
		return 0, nil
	}
	n = min(n, b.size)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return 0, err
	}
	return n, nil
}

// TryHold takes n bytes (at most the whole budget) if they are free now.
func (b *Budget) TryHold(n int64) (int64, bool) {
	if b == nil || n <= 0 {
		return 0, true
	}
	n = min(n, b.size)
	if !b.sem.TryAcquire(n) {
		return 0, false
	}
	return n, true
}

// Release gives back n bytes taken by Hold or TryHold.
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.sem.Release(n)
}

// Release gives back the bytes the event holds of b.
func (e *Event) Release(b *Budget) {
	b.Release(e.Held)
	e.Held = 0
}

// valueCost is what a value costs beside its bytes (the Value itself and
// its share of the slices and maps it sits in).
const valueCost = 48

// Size estimates the bytes an event holds: its rows' values, as decoded
// and as mapped, with a fixed cost for each value and for the event.
func (e *Event) Size() int64 {
	n := int64(128)
	if c := e.Change; c != nil {
		n += rowSize(c.New) + rowSize(c.Old)
	}
	for i := range e.Outs {
		o := &e.Outs[i]
		for _, v := range o.Vals {
			n += int64(len(v.Data)) + valueCost
		}
		for _, v := range o.Key {
			n += int64(len(v.Data)) + valueCost
		}
	}
	return n
}

func rowSize(r Row) int64 {
	var n int64
	for _, v := range r {
		n += int64(len(v.Data)) + valueCost
	}
	return n
}
