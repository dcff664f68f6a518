package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/fence"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/failpoint"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// Options configures Run.
type Options struct {
	// Options are the settings every pipeline shares; Direction and Mode
	// are set by the daemon.
	pipeline.Options
	// Reverse asks for the reverse direction to be live. On a mapping that
	// has never flipped it makes reverse the live direction; after a flip
	// it must agree with the recorded one.
	Reverse bool
	// Quiet is how long the side that was live before a flip must take no
	// writes before its direction stops draining and is armed (default 10s).
	Quiet time.Duration
	// Poll is how often the state is read for flip requests (default 500ms).
	Poll time.Duration
	// SyncSequences runs at every flip (see flip.SequenceSync); nil uses
	// flip.SyncSequences.
	SyncSequences flip.SequenceSync
	// SequenceGap is how far past the old live side's sequences the new
	// live side's are set at a flip, to clear the ids the old side may still
	// hand out while traffic moves (default 1000; negative: none).
	SequenceGap int64
	// SequenceEvery is how often a live direction's sequences are brought
	// up to date (default 5s; negative disables).
	SequenceEvery time.Duration
	// NoStandby makes a daemon that finds another one running the mapping
	// give up after LockWait, with an error, rather than wait as its
	// standby and take over when it stops (the default).
	NoStandby bool
	// Reloads, if set, asks for a reload at each receive (SIGHUP): Load
	// reads the mapping and its scripts again and validates them; the
	// pipelines then start again from their checkpoints with them. A
	// failed Load leaves everything as it was.
	Reloads <-chan struct{}
	Load    func() (*config.Mapping, error)
	// ExitOnHalt makes Run return when a pipeline stops before a bad
	// change (a transform or the side written refused it, on_error: halt).
	// By default the daemon stays up, halted: its metrics keep serving,
	// status shows why, and a reload with the fix goes on from the change.
	ExitOnHalt bool
	// Changed, if set, is called whenever a pipeline starts, with its
	// direction, mode and starting LSN.
	Changed func(dir config.Direction, mode pipeline.Mode, start pglogrepl.LSN)
}

// withDefaults fills in the defaults documented on Options.
func (o Options) withDefaults() Options {
	if o.Quiet <= 0 {
		o.Quiet = 10 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.LockWait == 0 {
		o.LockWait = 15 * time.Second
	}
	if o.SequenceGap == 0 {
		o.SequenceGap = flip.DefaultSequenceGap
	} else if o.SequenceGap < 0 {
		o.SequenceGap = 0
	}
	if o.SequenceEvery == 0 {
		o.SequenceEvery = 5 * time.Second
	}
	if o.SyncSequences == nil {
		m, gap := o.Mapping, o.SequenceGap
		o.SyncSequences = func(ctx context.Context, from config.Direction) error {
			return flip.SyncSequences(ctx, m, from, gap)
		}
	}
	return o
}

// Run runs a mapping: the live direction applies, the other is armed, and
// flips requested through the state (cdcbridge flip) are carried out
// without a restart. After a flip the direction that was live keeps
// draining what still arrives on its side until that side has been quiet
// for Quiet, then it is armed. Everything it decides is in the state row,
// so a daemon killed at any moment picks up where it was.
func Run(ctx context.Context, o Options) error {
	// Both directions run the same script files: they are compiled once,
	// for every pipeline this daemon starts.
	if o.Scripts == nil {
		o.Scripts = pipeline.CompileScripts(o.Mapping)
	}
	// Each direction tells the other's idle checkpoints from real activity.
	if o.Echoes == nil {
		o.Echoes = &pipeline.EchoTracker{}
	}
	// Both pipelines keep their state in one Health, where the daemon says
	// which direction is live: readiness is about that one.
	if o.Health == nil {
		if o.Metrics != nil {
			o.Health = o.Metrics.Health
		} else {
			o.Health = &metrics.Health{}
		}
	}
	d := newDaemon(ctx, o.withDefaults())
	defer d.link.close()
	st, err := d.openRetrying(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	d.startPipelines(st)
	tick := time.NewTicker(d.o.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.stopAll()
		case <-d.o.Reloads:
			d.reload(ctx)
			continue
		case <-tick.C:
		}
		if d.halted != nil {
			d.keepLink(ctx)
			continue
		}
		done, err := d.poll(ctx)
		if !done {
			continue
		}
		if h, bad := badChange(d.endedDir, err); bad && err != nil && ctx.Err() == nil {
			if d.o.ExitOnHalt {
				return haltError(err)
			}
			d.halt(ctx, h, err)
			continue
		}
		return err
	}
}

// keepLink brings the state connection back while the daemon is halted,
// so that the lock stays with it and the halt can be cleared.
func (d *daemon) keepLink(ctx context.Context) {
	if d.link.broken() && d.link.due() {
		if err := d.link.open(ctx); err != nil {
			d.log.Warn("the connection to the target's state is lost; retrying", "error", err.Error(), "retry_in", d.link.backoff.String())
		}
	}
}

// daemon is the state of one Run. Its methods run on Run's goroutine, but
// for the callbacks of the pipelines (Foreign, Applied), which touch only
// foreign and a runner's lastApplied.
type daemon struct {
	o    Options
	m    *config.Mapping
	log  *slog.Logger
	link *stateLink
	// ctx is Run's: every pipeline runs under a context derived from it.
	ctx context.Context
	// run runs one pipeline (pipeline.Run; a fake in unit tests).
	run func(context.Context, pipeline.Options) error
	// live is the direction live in the state, as this daemon follows it.
	live config.Direction
	// liveStreams, while startPipelines runs, is opened when the live
	// pipeline it starts streams (see startPipelines).
	liveStreams *latch

	mu    sync.Mutex
	pipes map[config.Direction]*runner

	foreign foreignLatch
	// standingBy: the first open found another daemon holding the mapping
	// and this one waits as its standby.
	standingBy bool
	// halted is set while the pipelines are stopped before a bad change;
	// endedDir is the direction of the pipeline that ended last.
	halted   *halted
	endedDir config.Direction
}

func newDaemon(ctx context.Context, o Options) *daemon {
	d := &daemon{
		o: o, m: o.Mapping, log: o.Logger.With("component", "daemon"),
		link: &stateLink{m: o.Mapping, wait: o.LockWait},
		ctx:  ctx, run: pipeline.Run,
		pipes: map[config.Direction]*runner{},
	}
	if !o.NoStandby {
		d.link.standby = func(held error) {
			d.standingBy = true
			d.log.Info("another daemon runs this mapping; standing by to take over when it stops", "mapping", o.Mapping.Name, "holder", held.Error())
			if o.Health != nil {
				o.Health.SetStandby(true)
			}
		}
	}
	return d
}

// runner is one running pipeline.
type runner struct {
	dir         config.Direction
	mode        pipeline.Mode
	cancel      context.CancelFunc
	done        chan error
	lastApplied atomic.Int64 // unix nanos
	started     time.Time
	ctx         context.Context
	syncing     bool
}

// openRetrying opens the state (open) and, while the target cannot be
// reached (it is down, starting, or refusing connections), tries again
// with the state link's backoff (doubling up to 5 s, jittered), logging
// each failure, until ctx ends (it then returns nil). Anything else, such
// as a configuration error or another daemon holding the mapping, is
// returned at once.
func (d *daemon) openRetrying(ctx context.Context) (control.State, error) {
	for {
		st, err := d.open(ctx, true)
		if err == nil || ctx.Err() != nil {
			return st, nil
		}
		if !pipeline.Retryable(err) {
			return st, err
		}
		wait := time.Until(d.link.next)
		d.log.Warn("cannot reach the target to read the bridge's state; trying again",
			"error", d.m.Redact(err).Error(), "retry_in", wait.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return st, nil
		case <-time.After(wait):
		}
	}
}

// open connects to the state, takes the daemon lock, and settles the state
// a previous daemon may have left: a flip request it had begun is answered
// as interrupted, and --reverse on a mapping that has never flipped makes
// reverse live. It returns the state.
func (d *daemon) open(ctx context.Context, first bool) (control.State, error) {
	m := d.m
	if err := d.link.openAs(ctx, first); err != nil {
		return control.State{}, err
	}
	if d.standingBy {
		d.standingBy = false
		d.log.Info("the daemon that held the mapping is gone; this standby takes over from the checkpoints", "mapping", m.Name)
		if d.o.Health != nil {
			d.o.Health.SetStandby(false)
		}
	}
	conn := d.link.conn
	want := config.Forward
	if d.o.Reverse {
		want = config.Reverse
	}
	st, err := control.Ensure(ctx, conn, m.Name, want)
	if err != nil {
		return st, m.Redact(err)
	}
	// A flip request that a daemon had begun and not answered belongs to a
	// daemon that died doing it (this one holds the lock now). The flip is
	// crash-safe at each step, and one that was recorded is answered; this
	// one is not, so it did not take effect, and it is not carried out now:
	// the operator asks again.
	if st.RequestID > st.AnsweredID && st.ClaimedID >= st.RequestID {
		d.log.Warn("a flip request was interrupted by the daemon's stop and is not carried out: ask again", "request", st.RequestID)
		if err := flip.AnswerInterrupted(ctx, conn, m.Name, st.RequestID); err != nil {
			return st, m.Redact(err)
		}
		st.AnsweredID = st.RequestID
	}
	// Without --reverse the daemon follows the recorded direction; with it,
	// the recorded direction must be reverse, or become it on a mapping that
	// has never flipped.
	if d.o.Reverse && st.Live != want {
		if st.Generation > 0 {
			return st, &fault.FatalError{Err: &finding.ConfigError{Findings: []finding.Finding{{Where: "state",
				Message: fmt.Sprintf("the live direction recorded for %s is %s", m.Name, st.Live),
				Fix:     "run without --reverse to follow it, or move it with `cdcbridge flip`"}}}}
		}
		if err := control.SetLive(ctx, conn, m.Name, want); err != nil {
			return st, err
		}
		st.Live = want
	}
	d.setLive(st.Live)
	// With a fence, the side that is not live refuses client writes, as
	// the state says, whatever a daemon killed mid-flip left.
	if err := fence.Converge(ctx, m, st, d.o.Logger); err != nil {
		return st, m.Redact(err)
	}
	return st, nil
}

// startPipelines starts the live direction, and the other one draining if
// the state says so, or else armed.
//
// An armed direction starting for the first time streams only once the
// live one does (pipeline.Options.Hold): on a new bridge the live
// direction first copies every table, and reading that copy back on the
// other side while it runs would slow it down for nothing.
func (d *daemon) startPipelines(st control.State) {
	other := d.live.Opposite()
	d.liveStreams = &latch{ch: make(chan struct{})}
	defer func() { d.liveStreams = nil }()
	d.start(d.live, pipeline.Live)
	if st.Mode(other) == control.Draining {
		d.start(other, pipeline.Live)
		d.syncSequences(other)
	} else {
		d.start(other, pipeline.Armed)
		d.syncSequences(d.live)
	}
}

// latch is a channel closed once.
type latch struct {
	once sync.Once
	ch   chan struct{}
}

func (l *latch) open() { l.once.Do(func() { close(l.ch) }) }

// poll is one round of supervision. It reports done when Run is to return
// err.
func (d *daemon) poll(ctx context.Context) (done bool, err error) {
	// The state connection comes back after the target restarts, and with
	// it the daemon lock; if another daemon took the lock meanwhile, this
	// one stands down.
	if d.link.broken() {
		if !d.link.due() {
			return false, nil
		}
		if err := d.link.open(ctx); err != nil {
			var fe *fault.FatalError
			if errors.As(err, &fe) {
				d.stopAll()
				return true, err
			}
			d.log.Warn("the connection to the target's state is lost; retrying", "error", err.Error(), "retry_in", d.link.backoff.String())
			return false, nil
		}
		d.log.Info("reconnected to the target's state; the daemon lock is held again")
	}
	conn := d.link.conn
	// A pipeline that ended by itself hit a fatal error.
	if err, ended := d.ended(); ended {
		d.stopAll()
		return true, err
	}
	// Foreign writes held by an armed direction go to the state, for
	// `cdcbridge status`.
	if dir, fw, dirty := d.foreign.take(); dirty {
		if err := control.RecordForeign(ctx, conn, d.m.Name, dir, fw); err != nil && ctx.Err() == nil {
			d.log.Warn("recording foreign writes in the state", "error", d.m.Redact(err).Error())
		}
	}
	st, err := control.Load(ctx, conn, d.m.Name)
	if err != nil {
		if ctx.Err() != nil {
			return true, d.stopAll()
		}
		d.log.Warn("reading the bridge state", "error", d.m.Redact(err).Error())
		return false, nil
	}
	if err := d.drain(ctx, conn, st); err != nil {
		return true, err
	}
	if st.Live != d.live {
		return d.follow(st.Live)
	}
	if st.RequestID > st.AnsweredID {
		return d.flip(ctx, conn, st)
	}
	return false, nil
}

// ended reports whether a pipeline has stopped by itself, and with what
// error (never nil).
func (d *daemon) ended() (error, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for dir, p := range d.pipes {
		select {
		case err := <-p.done:
			delete(d.pipes, dir)
			d.endedDir = dir
			if err == nil {
				err = fmt.Errorf("the %s pipeline stopped", dir)
			}
			return err, true
		default:
		}
	}
	return nil, false
}

// drain arms the direction that was live before the last flip once its
// side has been quiet for Quiet.
func (d *daemon) drain(ctx context.Context, conn control.DB, st control.State) error {
	if !st.Drains {
		return nil
	}
	dir := st.Draining
	p := d.pipe(dir)
	if p == nil || p.mode != pipeline.Live || time.Since(time.Unix(0, p.lastApplied.Load())) < d.o.Quiet {
		return nil
	}
	// The side that was live is fenced while its direction still drains, so
	// that a write slipping in before the fence is still carried.
	if err := fence.Install(ctx, d.m, dir.Opposite(), d.o.Logger); err != nil {
		d.log.Warn("fencing the side that was live; retrying", "direction", dir.String(), "error", d.m.Redact(err).Error())
		return nil
	}
	d.log.Info("the side that was live has been quiet; arming its direction", "direction", dir.String(), "quiet", d.o.Quiet.String())
	if err := d.stop(dir); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	failpoint.Hit("drain-quiet")
	if err := control.DrainDone(ctx, conn, d.m.Name, dir); err != nil {
		return err
	}
	d.start(dir, pipeline.Armed)
	d.syncSequences(d.live)
	return nil
}

// follow makes the daemon follow a live direction that changed in the
// state behind its back (a flip command while no daemon ran finished
// before this one took over).
func (d *daemon) follow(to config.Direction) (done bool, err error) {
	d.log.Info("the live direction changed in the state; following", "live", to.String())
	if err := d.stop(to); err != nil && !errors.Is(err, context.Canceled) {
		return true, err
	}
	d.setLive(to)
	d.start(to, pipeline.Live)
	d.syncSequences(to.Opposite())
	return false, nil
}

// flip takes up the pending flip request in st: answered at once when it
// asks for the live direction, left when it cannot be claimed (answered as
// expired when it expired), else carried out with the armed pipeline of
// its direction stopped. The old live direction keeps running live: it
// drains.
func (d *daemon) flip(ctx context.Context, conn control.DB, st control.State) (done bool, err error) {
	m := d.m
	to := st.Request
	if to == d.live {
		control.Answer(ctx, conn, m.Name, st.RequestID, true, fmt.Sprintf("%s is already the live direction", to))
		return false, nil
	}
	claimed, expired, err := control.Claim(ctx, conn, m.Name, st.RequestID)
	if err != nil {
		d.log.Warn("reading the flip request", "error", m.Redact(err).Error())
		return false, nil
	}
	if !claimed {
		if expired {
			d.log.Warn("a flip request expired before it could be carried out; it is not carried out: ask again", "to", to.String(), "request", st.RequestID)
			control.Answer(ctx, conn, m.Name, st.RequestID, false, "expired: the flip command had given up before the daemon could take it up; ask again")
		}
		return false, nil
	}
	d.log.Info("flip requested", "to", to.String(), "policy", string(st.RequestPolicy))
	failpoint.Hit("flip-requested")
	if err := d.stop(to); err != nil && !errors.Is(err, context.Canceled) {
		return true, err
	}
	failpoint.Hit("flip-armed-stopped")
	res, err := flip.CarryOut(ctx, m, to, st.RequestPolicy, st.RequestID, d.o.SyncSequences, d.o.Logger)
	if err != nil {
		control.Answer(context.WithoutCancel(ctx), conn, m.Name, st.RequestID, false, "the flip failed: "+m.Redact(err).Error())
		return true, err
	}
	if !res.OK {
		d.log.Warn("flip refused", "reason", res.Message)
		d.start(to, pipeline.Armed)
		return false, nil
	}
	failpoint.Hit("flip-recorded")
	d.setLive(to)
	d.start(to, pipeline.Live)
	if old := d.pipe(to.Opposite()); old != nil && old.mode == pipeline.Live {
		old.lastApplied.Store(time.Now().UnixNano())
	} else {
		d.stop(to.Opposite())
		d.start(to.Opposite(), pipeline.Live)
	}
	d.syncSequences(to.Opposite())
	return false, nil
}

// setLive makes dir the live direction the daemon follows, and the one
// readiness is about.
func (d *daemon) setLive(dir config.Direction) {
	d.live = dir
	if d.o.Health != nil {
		d.o.Health.SetLive(dir.String())
	}
}

// pipe returns the running pipeline of dir, nil if none.
func (d *daemon) pipe(dir config.Direction) *runner {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pipes[dir]
}

// start starts the pipeline of dir in mode. A live pipeline of the
// direction that is not live drains (pipeline.Options.Draining).
func (d *daemon) start(dir config.Direction, mode pipeline.Mode) *runner {
	pctx, cancel := context.WithCancel(d.ctx)
	p := &runner{dir: dir, mode: mode, cancel: cancel, done: make(chan error, 1), started: time.Now()}
	p.lastApplied.Store(time.Now().UnixNano())
	po := d.o.Options
	po.Direction, po.Mode = dir, mode
	po.Draining = mode == pipeline.Live && dir != d.live
	po.Applied = func(time.Time) { p.lastApplied.Store(time.Now().UnixNano()) }
	side := d.m.View(dir).ReadName
	if mode == pipeline.Armed {
		po.Foreign = func(fw control.ForeignWrites) {
			d.foreign.set(dir, fw)
			if d.o.Metrics != nil {
				d.o.Metrics.ForeignWrites.WithLabelValues(side).Set(float64(fw.Txns))
			}
		}
		if d.o.Metrics != nil {
			d.o.Metrics.ForeignWrites.WithLabelValues(side) // 0 until it holds some
		}
	} else {
		// A direction that applies holds nothing back: the foreign writes
		// its side took were carried over or, on the operator's word,
		// discarded by the flip that made it apply.
		d.foreign.forget(dir)
		if d.o.Metrics != nil {
			d.o.Metrics.ForeignWrites.WithLabelValues(side).Set(0)
		}
	}
	streams := d.liveStreams
	if streams != nil && mode == pipeline.Armed {
		po.Hold = streams.ch
	}
	if mode != pipeline.Live || dir != d.live {
		streams = nil
	}
	po.Started = func(lsn pglogrepl.LSN) {
		if streams != nil {
			streams.open()
		}
		if d.o.Changed != nil {
			d.o.Changed(dir, mode, lsn)
		}
	}
	run := d.run
	go func() { p.done <- run(pctx, po) }()
	p.ctx = pctx
	d.mu.Lock()
	d.pipes[dir] = p
	d.mu.Unlock()
	d.log.Info("pipeline started", "direction", dir.String(), "mode", mode.String())
	return p
}

// stop stops the pipeline of dir, if one runs, and returns its error.
func (d *daemon) stop(dir config.Direction) error {
	d.mu.Lock()
	p := d.pipes[dir]
	delete(d.pipes, dir)
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	p.cancel()
	return <-p.done
}

// stopAll stops both pipelines.
func (d *daemon) stopAll() error {
	var errs []error
	for _, dir := range []config.Direction{config.Forward, config.Reverse} {
		errs = append(errs, d.stop(dir))
	}
	return errors.Join(errs...)
}

// syncSequences keeps the sequences of dir in step while its pipeline
// runs. Sequences follow the live direction, and a draining one: the side
// that was live may still hand out ids, which the new live side must stay
// clear of. The new live direction starts pushing its side's sequences to
// the old side only once that side is quiet, or the old side's late ids
// would run into the ones the new side hands out.
func (d *daemon) syncSequences(dir config.Direction) {
	p := d.pipe(dir)
	if p == nil || p.syncing || d.o.SequenceEvery < 0 {
		return
	}
	p.syncing = true
	go flip.KeepSequences(p.ctx, d.m, dir, d.o.SequenceEvery, d.o.Logger)
}

// foreignLatch hands the latest foreign writes an armed pipeline reports
// to the daemon's loop, which records them in the state.
type foreignLatch struct {
	mu    sync.Mutex
	dir   config.Direction
	fw    control.ForeignWrites
	dirty bool
}

func (l *foreignLatch) set(dir config.Direction, fw control.ForeignWrites) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dir, l.fw, l.dirty = dir, fw, true
}

// forget drops a report of dir not yet taken: its direction applies now.
func (l *foreignLatch) forget(dir config.Direction) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dir == dir {
		l.dirty = false
	}
}

// take returns the report set since the last take, if any.
func (l *foreignLatch) take() (config.Direction, control.ForeignWrites, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dirty := l.dirty
	l.dirty = false
	return l.dir, l.fw, dirty
}
