package bridge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/checkpoint"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/dbconn"
	"github.com/cdcbridge/cdcbridge/fault"
	"github.com/cdcbridge/cdcbridge/finding"
	"github.com/cdcbridge/cdcbridge/flip"
	"github.com/cdcbridge/cdcbridge/internal/failpoint"
)

// DaemonOptions configures Daemon.
type DaemonOptions struct {
	// Options are the settings every pipeline shares; Direction and Mode
	// are set by the daemon.
	Options
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
	// Changed, if set, is called whenever a pipeline starts, with its
	// direction, mode and starting LSN.
	Changed func(dir config.Direction, mode Mode, start pglogrepl.LSN)
}

// pipeline is one running bridge.Run.
type pipeline struct {
	dir         config.Direction
	mode        Mode
	cancel      context.CancelFunc
	done        chan error
	lastApplied atomic.Int64 // unix nanos
	started     time.Time
	ctx         context.Context
	syncing     bool
}

// Daemon runs a mapping: the live direction applies, the other is armed,
// and flips requested through the state (cdcbridge flip) are carried out
// without a restart. After a flip the direction that was live keeps
// draining what still arrives on its side until that side has been quiet
// for Quiet, then it is armed. Everything it decides is in the state row,
// so a daemon killed at any moment picks up where it was.
func Daemon(ctx context.Context, o DaemonOptions) error {
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
	m := o.Mapping
	if o.SyncSequences == nil {
		o.SyncSequences = func(ctx context.Context, from config.Direction) error {
			return flip.SyncSequences(ctx, m, from, o.SequenceGap)
		}
	}
	log := o.Logger.With("component", "daemon")
	link := &stateLink{m: m, wait: o.LockWait}
	defer link.close()
	if err := link.open(ctx); err != nil {
		return err
	}
	conn := link.conn
	want := config.Forward
	if o.Reverse {
		want = config.Reverse
	}
	st, err := control.Ensure(ctx, conn, m.Name, want)
	if err != nil {
		return m.Redact(err)
	}
	// A flip request that a daemon had begun and not answered belongs to a
	// daemon that died doing it (this one holds the lock now). The flip is
	// crash-safe at each step, and one that was recorded is answered; this
	// one is not, so it did not take effect, and it is not carried out now:
	// the operator asks again.
	if st.RequestID > st.AnsweredID && st.ClaimedID >= st.RequestID {
		log.Warn("a flip request was interrupted by the daemon's stop and is not carried out: ask again", "request", st.RequestID)
		if err := flip.AnswerInterrupted(ctx, conn, m.Name, st.RequestID); err != nil {
			return m.Redact(err)
		}
		st.AnsweredID = st.RequestID
	}
	// Without --reverse the daemon follows the recorded direction; with it,
	// the recorded direction must be reverse, or become it on a mapping that
	// has never flipped.
	if o.Reverse && st.Live != want {
		if st.Generation > 0 {
			return &fault.FatalError{Err: &finding.ConfigError{Findings: []finding.Finding{{Where: "state",
				Message: fmt.Sprintf("the live direction recorded for %s is %s", m.Name, st.Live),
				Fix:     "run without --reverse to follow it, or move it with `cdcbridge flip`"}}}}
		}
		if err := control.SetLive(ctx, conn, m.Name, want); err != nil {
			return err
		}
		st.Live = want
	}

	var (
		// live is the direction live in the state, as this daemon follows it.
		live      = st.Live
		mu        sync.Mutex
		pipes     = map[config.Direction]*pipeline{}
		foreignMu sync.Mutex
		foreign   foreignReport
	)
	start := func(dir config.Direction, mode Mode) *pipeline {
		pctx, cancel := context.WithCancel(ctx)
		p := &pipeline{dir: dir, mode: mode, cancel: cancel, done: make(chan error, 1), started: time.Now()}
		p.lastApplied.Store(time.Now().UnixNano())
		po := o.Options
		po.Direction, po.Mode = dir, mode
		po.Draining = mode == Live && dir != live
		po.Applied = func(time.Time) { p.lastApplied.Store(time.Now().UnixNano()) }
		if mode == Armed {
			po.Foreign = func(fw control.ForeignWrites) {
				foreignMu.Lock()
				foreign = foreignReport{dir: dir, fw: fw, dirty: true}
				foreignMu.Unlock()
				if o.Metrics != nil {
					side, _ := dbconn.SideNames(dir)
					o.Metrics.ForeignWrites.WithLabelValues(side).Set(float64(fw.Txns))
				}
			}
		}
		po.Started = func(lsn pglogrepl.LSN) {
			if o.Changed != nil {
				o.Changed(dir, mode, lsn)
			}
		}
		go func() { p.done <- Run(pctx, po) }()
		p.ctx = pctx
		mu.Lock()
		pipes[dir] = p
		mu.Unlock()
		log.Info("pipeline started", "direction", dir.String(), "mode", mode.String())
		return p
	}
	stop := func(dir config.Direction) error {
		mu.Lock()
		p := pipes[dir]
		delete(pipes, dir)
		mu.Unlock()
		if p == nil {
			return nil
		}
		p.cancel()
		return <-p.done
	}
	stopAll := func() error {
		var errs []error
		for _, d := range []config.Direction{config.Forward, config.Reverse} {
			errs = append(errs, stop(d))
		}
		return errors.Join(errs...)
	}

	// Sequences follow the live direction, and a draining one: the side
	// that was live may still hand out ids, which the new live side must
	// stay clear of. The new live direction starts pushing its side's
	// sequences to the old side only once that side is quiet, or the old
	// side's late ids would run into the ones the new side hands out.
	syncSequences := func(dir config.Direction) {
		mu.Lock()
		p := pipes[dir]
		mu.Unlock()
		if p == nil || p.syncing || o.SequenceEvery < 0 {
			return
		}
		p.syncing = true
		go flip.KeepSequences(p.ctx, m, dir, o.SequenceEvery, o.Logger)
	}
	start(live, Live)
	if st.Mode(live.Opposite()) == control.Draining {
		start(live.Opposite(), Live)
		syncSequences(live.Opposite())
	} else {
		start(live.Opposite(), Armed)
		syncSequences(live)
	}
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return stopAll()
		case <-tick.C:
		}
		// The state connection comes back after the target restarts, and
		// with it the daemon lock; if another daemon took the lock
		// meanwhile, this one stands down.
		if link.broken() {
			if !link.due() {
				continue
			}
			if err := link.open(ctx); err != nil {
				var fe *fault.FatalError
				if errors.As(err, &fe) {
					stopAll()
					return err
				}
				log.Warn("the connection to the target's state is lost; retrying", "error", err.Error(), "retry_in", link.backoff.String())
				continue
			}
			log.Info("reconnected to the target's state; the daemon lock is held again")
		}
		conn = link.conn
		// A pipeline that ended by itself hit a fatal error.
		mu.Lock()
		for d, p := range pipes {
			select {
			case err := <-p.done:
				delete(pipes, d)
				mu.Unlock()
				stopAll()
				if err == nil {
					err = fmt.Errorf("the %s pipeline stopped", d)
				}
				return err
			default:
			}
		}
		mu.Unlock()

		// Foreign writes held by an armed direction go to the state, for
		// `cdcbridge status`.
		foreignMu.Lock()
		fr := foreign
		foreign.dirty = false
		foreignMu.Unlock()
		if fr.dirty {
			if err := control.RecordForeign(ctx, conn, m.Name, fr.dir, fr.fw); err != nil && ctx.Err() == nil {
				log.Warn("recording foreign writes in the state", "error", m.Redact(err).Error())
			}
		}
		st, err := control.Load(ctx, conn, m.Name)
		if err != nil {
			if ctx.Err() != nil {
				return stopAll()
			}
			log.Warn("reading the bridge state", "error", m.Redact(err).Error())
			continue
		}
		// The direction that was live before the last flip drains until
		// its side has been quiet, then it is armed.
		if st.Drains {
			d := st.Draining
			mu.Lock()
			p := pipes[d]
			mu.Unlock()
			if p != nil && p.mode == Live && time.Since(time.Unix(0, p.lastApplied.Load())) >= o.Quiet {
				log.Info("the side that was live has been quiet; arming its direction", "direction", d.String(), "quiet", o.Quiet.String())
				if err := stop(d); err != nil && !errors.Is(err, context.Canceled) {
					return err
				}
				failpoint.Hit("drain-quiet")
				if err := control.DrainDone(ctx, conn, m.Name, d); err != nil {
					return err
				}
				start(d, Armed)
				syncSequences(live)
			}
		}
		if st.Live != live {
			// Flipped by someone else (a flip command while no daemon ran
			// finished before this one took over): follow.
			to := st.Live
			log.Info("the live direction changed in the state; following", "live", to.String())
			if err := stop(to); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			live = to
			start(to, Live)
			syncSequences(to.Opposite())
			continue
		}
		if st.RequestID > st.AnsweredID {
			to := st.Request
			if to == live {
				control.Answer(ctx, conn, m.Name, st.RequestID, true, fmt.Sprintf("%s is already the live direction", to))
				continue
			}
			claimed, expired, err := control.Claim(ctx, conn, m.Name, st.RequestID)
			if err != nil {
				log.Warn("reading the flip request", "error", m.Redact(err).Error())
				continue
			}
			if !claimed {
				if expired {
					log.Warn("a flip request expired before it could be carried out; it is not carried out: ask again", "to", to.String(), "request", st.RequestID)
					control.Answer(ctx, conn, m.Name, st.RequestID, false, "expired: the flip command had given up before the daemon could take it up; ask again")
				}
				continue
			}
			log.Info("flip requested", "to", to.String(), "policy", string(st.RequestPolicy))
			failpoint.Hit("flip-requested")
			if err := stop(to); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			failpoint.Hit("flip-armed-stopped")
			res, err := flip.CarryOut(ctx, m, to, st.RequestPolicy, st.RequestID, o.SyncSequences, o.Logger)
			if err != nil {
				control.Answer(context.WithoutCancel(ctx), conn, m.Name, st.RequestID, false, "the flip failed: "+m.Redact(err).Error())
				return err
			}
			if !res.OK {
				log.Warn("flip refused", "reason", res.Message)
				start(to, Armed)
				continue
			}
			failpoint.Hit("flip-recorded")
			live = to
			start(to, Live)
			// The old live direction keeps running live: it drains.
			mu.Lock()
			old := pipes[to.Opposite()]
			mu.Unlock()
			if old != nil && old.mode == Live {
				old.lastApplied.Store(time.Now().UnixNano())
			} else {
				stop(to.Opposite())
				start(to.Opposite(), Live)
			}
			syncSequences(to.Opposite())
		}
	}
}

// stateLink is the daemon's connection to the target, where the state row
// and the daemon lock live. It is opened again, with backoff and jitter,
// when the target restarts.
type stateLink struct {
	m       *config.Mapping
	wait    time.Duration
	conn    *pgx.Conn
	backoff time.Duration
	next    time.Time
}

// open connects and takes the daemon lock. Another daemon holding the lock
// is a fault.FatalError; other errors are worth a retry.
func (l *stateLink) open(ctx context.Context) error {
	l.close()
	l.next = time.Now().Add(jitter(l.backoff))
	l.backoff = min(max(2*l.backoff, 250*time.Millisecond), 5*time.Second)
	conn, err := dbconn.Connect(ctx, l.m.Target.DSN, "target")
	if err != nil {
		return err
	}
	// One daemon per mapping: the lock also keeps a flip or cleanup command
	// from acting behind a daemon's back while it starts.
	if err := control.LockDaemon(ctx, conn, l.m.Name, l.wait); err != nil {
		conn.Close(context.Background())
		if errors.Is(err, checkpoint.ErrLocked) {
			return &fault.FatalError{Err: fmt.Errorf("another cdcbridge daemon runs mapping %s: %w", l.m.Name, err)}
		}
		return l.m.Redact(err)
	}
	l.conn, l.backoff = conn, 0
	return nil
}

// broken reports whether the connection is gone.
func (l *stateLink) broken() bool { return l.conn == nil || l.conn.IsClosed() }

// due reports whether the backoff since the last attempt has passed.
func (l *stateLink) due() bool { return !time.Now().Before(l.next) }

func (l *stateLink) close() {
	if l.conn != nil {
		l.conn.Close(context.Background())
		l.conn = nil
	}
}

// jitter spreads d over [d/2, d) so that restarts do not march in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

type foreignReport struct {
	dir   config.Direction
	fw    control.ForeignWrites
	dirty bool
}
