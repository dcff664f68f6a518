package pipeline

import (
	"context"
	"runtime"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/transform"
)

// transformWorkers is how many JavaScript runtimes map the changes of one
// direction at once: one per CPU, up to 4, when any entry has a script (a
// runtime runs one call at a time, and the scripts are most of the CPU a
// change costs); 1 when no entry has one. Each runtime has its own globals,
// as the initial copy's workers do: a script must not count on state kept
// between calls.
func transformWorkers(m *config.Mapping) int {
	for _, e := range m.Tables {
		if e.Transform != "" {
			return min(runtime.GOMAXPROCS(0), 4)
		}
	}
	return 1
}

// chunk is a run of consecutive events, mapped by one runtime.
type chunk struct {
	evs  []change.Event
	outs [][]change.Out // of each EvChange
	errs []error
	done chan struct{} // closed once mapped
}

// chunkSize caps a chunk; a chunk takes only the events already waiting,
// so a lone change is not held back for others.
const chunkSize = 256

// mapAhead maps the changes read from in on the given runtimes at once and
// hands the chunks on in stream order; a chunk's done is closed once every
// change in it is mapped. The returned channel is closed after in is.
func mapAhead(ctx context.Context, mappers []*transform.Mapper, in <-chan change.Event) <-chan *chunk {
	ordered := make(chan *chunk, 2*len(mappers))
	work := make([]chan *chunk, len(mappers))
	for i, mp := range mappers {
		work[i] = make(chan *chunk, 1)
		go func(mp *transform.Mapper, work <-chan *chunk) {
			for c := range work {
				for j := range c.evs {
					if c.evs[j].Kind == change.EvChange {
						c.outs[j], c.errs[j] = mp.Map(c.evs[j].Change)
					}
				}
				close(c.done)
			}
		}(mp, work[i])
	}
	go func() {
		defer close(ordered)
		defer func() {
			for _, w := range work {
				close(w)
			}
		}()
		for next := 0; ; next = (next + 1) % len(work) {
			ev, ok := <-in
			if !ok {
				return
			}
			c := &chunk{evs: []change.Event{ev}}
			closed := false
		fill:
			for len(c.evs) < chunkSize {
				select {
				case ev, ok := <-in:
					if !ok {
						closed = true
						break fill
					}
					c.evs = append(c.evs, ev)
				default:
					break fill
				}
			}
			c.outs, c.errs, c.done = make([][]change.Out, len(c.evs)), make([]error, len(c.evs)), make(chan struct{})
			select {
			case work[next] <- c:
			case <-ctx.Done():
				return
			}
			select {
			case ordered <- c:
			case <-ctx.Done():
				return
			}
			if closed {
				return
			}
		}
	}()
	return ordered
}
