package pipeline

import (
	"testing"
	"time"
)

// TestBackoff: the wait doubles while the pipeline cannot stream, is capped,
// and starts again from the first retry once a run streamed and applied (or
// streamed a while); a run that came up and failed at once without applying
// anything does not reset it.
func TestBackoff(t *testing.T) {
	limit := 5 * time.Second
	var b backoff
	within := func(step string, d, base time.Duration) {
		t.Helper()
		if d < base/2 || d > base {
			t.Fatalf("%s: waited %s, want within [%s, %s]", step, d, base/2, base)
		}
	}
	down := &runReport{} // never streamed: a database that is down
	want := firstRetry
	for i := range 6 {
		b.ran(down)
		within("attempt "+string(rune('1'+i))+" while down", b.next(limit), want)
		want = min(2*want, limit)
	}
	if b.d != limit {
		t.Fatalf("the wait is not capped at %s: %s", limit, b.d)
	}

	flaky := &runReport{}
	flaky.streamed.Store(time.Now().UnixNano())
	b.ran(flaky)
	within("after a run that came up and failed at once", b.next(limit), limit)

	healthy := &runReport{}
	healthy.streamed.Store(time.Now().UnixNano())
	healthy.applied.Store(true)
	b.ran(healthy)
	within("after a run that applied changes", b.next(limit), firstRetry)

	b.ran(down)
	within("the next attempt while down", b.next(limit), 2*firstRetry)

	long := &runReport{}
	long.streamed.Store(time.Now().Add(-stableStream).UnixNano())
	b.ran(long)
	within("after a run that streamed for a while", b.next(limit), firstRetry)
}
