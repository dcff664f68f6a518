package bridgetest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/daemon"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// Proc is one direction (Env.Start) or a daemon (Env.Daemon) running in a
// goroutine until the test ends or Stop.
type Proc struct {
	cancel context.CancelFunc
	done   chan error
	// Logs are the lines it logged (at debug level).
	Logs *LogSink
	// modes receives "direction mode" for each pipeline a daemon starts.
	modes chan string
}

// Start runs direction dir of m and waits until it streams.
func (e *Env) Start(m *config.Mapping, dir config.Direction) *Proc {
	e.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proc{cancel: cancel, done: make(chan error, 1), Logs: &LogSink{}}
	log := TextLogger(p.Logs)
	started := make(chan struct{}, 1)
	go func() {
		p.done <- pipeline.Run(ctx, pipeline.Options{Mapping: m, Direction: dir, Logger: log, MaxBackoff: time.Second,
			Started: func(_ pglogrepl.LSN) {
				select {
				case started <- struct{}{}:
				default:
				}
			}})
	}()
	select {
	case <-started:
	case err := <-p.done:
		e.T.Fatalf("the daemon did not start: %v\nlogs:\n%s", err, p.Logs.String())
	case <-time.After(30 * time.Second):
		e.T.Fatalf("the daemon did not start within 30s\nlogs:\n%s", p.Logs.String())
	}
	e.T.Cleanup(func() { p.Stop(e.T) })
	return p
}

// Daemon runs the daemon of m (in reverse with reverse), with short
// periods: quiet 1s, polls every 100ms, sequences every 200ms.
func (e *Env) Daemon(m *config.Mapping, reverse bool) *Proc {
	e.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proc{cancel: cancel, done: make(chan error, 1), Logs: &LogSink{}, modes: make(chan string, 16)}
	log := TextLogger(p.Logs)
	go func() {
		p.done <- daemon.Run(ctx, daemon.Options{
			Options: pipeline.Options{Mapping: m, Logger: log, MaxBackoff: time.Second},
			Reverse: reverse, Quiet: time.Second, Poll: 100 * time.Millisecond, SequenceEvery: 200 * time.Millisecond,
			Changed: func(dir config.Direction, mode pipeline.Mode, _ pglogrepl.LSN) {
				select {
				case p.modes <- dir.String() + " " + mode.String():
				default:
				}
			},
		})
	}()
	e.T.Cleanup(func() { p.Stop(e.T) })
	return p
}

// Stop cancels it and checks that it stopped cleanly, within 30s.
func (p *Proc) Stop(t *testing.T) {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("the daemon stopped with %v\nlogs:\n%s", err, p.Logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the daemon did not stop within 30s")
	}
}

// Stopped reports, without waiting, whether it has stopped by itself, and
// with what error.
func (p *Proc) Stopped() (error, bool) {
	select {
	case err := <-p.done:
		p.cancel = nil
		return err, true
	default:
		return nil, false
	}
}

// Wait waits up to timeout for it to stop by itself and returns its error;
// the test fails, with the logs, if it does not stop.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.cancel = nil
		return err
	case <-time.After(timeout):
		t.Fatalf("the daemon did not stop within %s\n%s", timeout, p.Logs.String())
	}
	return nil
}

// WaitModes waits until a daemon has started the given pipelines, each
// given as "direction mode" ("forward live", "reverse armed").
func (p *Proc) WaitModes(t *testing.T, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for {
		all := true
		for _, w := range want {
			all = all && seen[w]
		}
		if all {
			return
		}
		select {
		case s := <-p.modes:
			seen[s] = true
		case err := <-p.done:
			p.cancel = nil
			t.Fatalf("the daemon stopped: %v\n%s", err, p.Logs.String())
		case <-deadline:
			t.Fatalf("pipelines %v did not start (saw %v)\n%s", want, seen, p.Logs.String())
		}
	}
}
