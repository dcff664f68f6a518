package metrics

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
)

// DefaultReadyMaxLag is the lag bound of readiness when Health.MaxLag is 0.
const DefaultReadyMaxLag = 30 * time.Second

// Health is the state of the directions that readiness (/readyz and
// cdcbridge_ready) and the per-direction gauges computed at scrape time
// (cdcbridge_lag_seconds, cdcbridge_halted, cdcbridge_streaming) are read
// from. Each pipeline keeps the state of its own direction (Direction);
// the daemon says which direction is live (SetLive). It is safe for
// concurrent use.
type Health struct {
	// MaxLag is the lag of the live direction at or past which the bridge
	// is not ready (0: DefaultReadyMaxLag).
	MaxLag time.Duration

	// standby: another daemon runs the mapping and this one waits to take
	// over (it is then not ready, and has no directions).
	standby atomic.Bool

	mu   sync.Mutex
	live string
	dirs map[string]*DirectionHealth
	// now is the clock (time.Now; tests set it).
	now func() time.Time
}

// SetLive records the direction traffic flows in: the one readiness is
// about. "" means none yet.
func (h *Health) SetLive(direction string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live = direction
}

// SetStandby records whether the daemon stands by for another that runs
// the mapping.
func (h *Health) SetStandby(on bool) { h.standby.Store(on) }

// Standby reports what SetStandby recorded.
func (h *Health) Standby() bool { return h.standby.Load() }

// Direction returns the state of a direction, made on first use.
func (h *Health) Direction(name string) *DirectionHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dirs == nil {
		h.dirs = map[string]*DirectionHealth{}
	}
	d := h.dirs[name]
	if d == nil {
		d = &DirectionHealth{name: name}
		h.dirs[name] = d
	}
	return d
}

// directions returns the directions known, by name, and the live one.
func (h *Health) directions() ([]*DirectionHealth, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ds := make([]*DirectionHealth, 0, len(h.dirs))
	for _, d := range h.dirs {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(a, b *DirectionHealth) int { return strings.Compare(a.name, b.name) })
	return ds, h.live
}

func (h *Health) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

func (h *Health) maxLag() time.Duration {
	if h.MaxLag > 0 {
		return h.MaxLag
	}
	return DefaultReadyMaxLag
}

// Readiness is the answer of /readyz.
type Readiness struct {
	Ready bool
	// Directions has one line per direction known, the live one first:
	// its role and what keeps it from being ready, if anything.
	Directions []string
}

// String is the body of /readyz.
func (r Readiness) String() string {
	head := "ready"
	if !r.Ready {
		head = "not ready"
	}
	return head + "\n" + strings.Join(r.Directions, "\n") + "\n"
}

// Ready tells whether the bridge is ready: the live direction is
// streaming, not halted, not copying, and its lag is under MaxLag.
func (h *Health) Ready() Readiness {
	ds, live := h.directions()
	now := h.clock()
	var r Readiness
	switch {
	case h.standby.Load():
		r.Directions = append(r.Directions, "standing by: another daemon runs this mapping; this one takes over when it stops")
	case live == "":
		r.Directions = append(r.Directions, "no live direction yet (the daemon is starting)")
	}
	found := false
	for _, d := range ds {
		if d.name != live {
			continue
		}
		found = true
		fails := d.fails(now, h.maxLag())
		r.Ready = len(fails) == 0
		line := d.name + " (live): "
		if r.Ready {
			line += fmt.Sprintf("streaming, lag %s", fmtSeconds(d.Lag(now)))
		} else {
			line += strings.Join(fails, "; ")
		}
		r.Directions = append(r.Directions, line)
	}
	if live != "" && !found {
		r.Directions = append(r.Directions, live+" (live): not started")
	}
	for _, d := range ds {
		if d.name == live {
			continue
		}
		role := "armed"
		if d.applying.Load() {
			role = "draining"
		}
		state := "streaming"
		switch {
		case d.halted.Load():
			state = "halted"
		case d.copying.Load():
			state = "copying"
		case !d.streaming.Load():
			state = "not streaming"
		}
		r.Directions = append(r.Directions, d.name+" ("+role+", not what readiness is about): "+state)
	}
	return r
}

func fmtSeconds(d time.Duration) string {
	return d.Round(100 * time.Millisecond).String()
}

// DirectionHealth is the state of one direction, kept by its pipeline.
type DirectionHealth struct {
	name      string
	streaming atomic.Bool
	copying   atomic.Bool
	halted    atomic.Bool
	applying  atomic.Bool
	backlog   backlog
}

// SetStreaming records whether the direction is connected and streaming.
func (d *DirectionHealth) SetStreaming(ok bool) { d.streaming.Store(ok) }

// SetCopying records whether an initial copy (or the copy of entries new
// to the mapping) runs.
func (d *DirectionHealth) SetCopying(ok bool) { d.copying.Store(ok) }

// SetHalted records whether the direction stopped on an error it does not
// retry (nothing at or after the failed change is applied).
func (d *DirectionHealth) SetHalted(ok bool) { d.halted.Store(ok) }

// SetApplying records whether the direction applies what it reads (live
// or draining) or only holds its slot (armed).
func (d *DirectionHealth) SetApplying(ok bool) { d.applying.Store(ok) }

// Halted reports what SetHalted recorded.
func (d *DirectionHealth) Halted() bool { return d.halted.Load() }

// Received records a committed source transaction on its way to the
// applier: the LSN of its commit record and its commit time, in stream
// order. A transaction received again after a restart (at or before the
// last one received) is not counted twice.
func (d *DirectionHealth) Received(commitLSN pglogrepl.LSN, commitTime time.Time) {
	d.backlog.received(commitLSN, commitTime)
}

// Applied records that everything before lsn (the checkpoint just
// committed) is applied.
func (d *DirectionHealth) Applied(lsn pglogrepl.LSN) { d.backlog.applied(lsn) }

// ClearBacklog forgets the transactions received and not applied: the
// direction stopped, and will receive them again if it starts.
func (d *DirectionHealth) ClearBacklog() { d.backlog.clear() }

// Lag is the age at now of the oldest committed source transaction
// received and not yet applied; 0 when there is none (and when the
// source's clock is ahead of this host's).
func (d *DirectionHealth) Lag(now time.Time) time.Duration {
	t, ok := d.backlog.oldest()
	if !ok {
		return 0
	}
	return max(now.Sub(t), 0)
}

// fails lists what keeps the direction from being ready.
func (d *DirectionHealth) fails(now time.Time, maxLag time.Duration) []string {
	var fs []string
	if d.halted.Load() {
		fs = append(fs, "halted (stopped on an error; nothing after it is applied)")
	}
	if d.copying.Load() {
		fs = append(fs, "copying (the initial copy runs)")
	}
	if !d.streaming.Load() {
		fs = append(fs, "not streaming")
	}
	if lag := d.Lag(now); lag >= maxLag {
		fs = append(fs, fmt.Sprintf("lag %s, at or past metrics.ready_max_lag %s", fmtSeconds(lag), maxLag))
	}
	return fs
}

// backlog is the queue of committed source transactions received and not
// yet applied, oldest first. Its length is bounded by what the pipeline's
// channels and the applier's open batch hold.
type backlog struct {
	mu      sync.Mutex
	q       []pending
	head    int
	last    pglogrepl.LSN // the last commit LSN received
	through pglogrepl.LSN // everything before it is applied
}

type pending struct {
	lsn pglogrepl.LSN
	at  time.Time
}

func (b *backlog) received(lsn pglogrepl.LSN, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if lsn <= b.last || lsn < b.through {
		return
	}
	b.last = lsn
	if b.head > 0 && b.head >= len(b.q)/2 {
		n := copy(b.q, b.q[b.head:])
		b.q = b.q[:n]
		b.head = 0
	}
	b.q = append(b.q, pending{lsn, at})
}

func (b *backlog) applied(lsn pglogrepl.LSN) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.through = max(b.through, lsn)
	for b.head < len(b.q) && b.q[b.head].lsn < lsn {
		b.head++
	}
	if b.head == len(b.q) {
		b.q, b.head = b.q[:0], 0
	}
}

func (b *backlog) clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.q, b.head, b.last, b.through = b.q[:0], 0, 0, 0
}

func (b *backlog) oldest() (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == len(b.q) {
		return time.Time{}, false
	}
	return b.q[b.head].at, true
}
