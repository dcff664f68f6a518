package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// fakeRuns stands in for pipeline.Run: it records the options of every
// pipeline started and runs until its context ends, or returns at once
// with the error set for its direction.
type fakeRuns struct {
	mu      sync.Mutex
	started []pipeline.Options
	fail    map[config.Direction]error
}

func (f *fakeRuns) run(ctx context.Context, o pipeline.Options) error {
	f.mu.Lock()
	f.started = append(f.started, o)
	err, fails := f.fail[o.Direction]
	f.mu.Unlock()
	if fails {
		return err
	}
	<-ctx.Done()
	return nil
}

func (f *fakeRuns) last(dir config.Direction) pipeline.Options {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.started) - 1; i >= 0; i-- {
		if f.started[i].Direction == dir {
			return f.started[i]
		}
	}
	return pipeline.Options{}
}

func testDaemon(t *testing.T, live config.Direction, f *fakeRuns) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &config.Mapping{Name: "shop"}
	d := newDaemon(ctx, Options{Options: pipeline.Options{Mapping: m, Logger: slog.New(slog.DiscardHandler)}, SequenceEvery: -1}.withDefaults())
	d.run = f.run
	d.live = live
	t.Cleanup(func() {
		cancel()
		d.stopAll()
	})
	return d
}

// TestStartPipelines: the live direction applies; the other is armed, or
// live and draining when the state says it drains.
func TestStartPipelines(t *testing.T) {
	for _, c := range []struct {
		name  string
		st    control.State
		other pipeline.Mode
		drain bool
	}{
		{"armed", control.State{Live: config.Reverse}, pipeline.Armed, false},
		{"draining", control.State{Live: config.Reverse, Drains: true, Draining: config.Forward}, pipeline.Live, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeRuns{}
			d := testDaemon(t, config.Reverse, f)
			d.startPipelines(c.st)
			if p := d.pipe(config.Reverse); p == nil || p.mode != pipeline.Live {
				t.Fatalf("the live direction runs %v", p)
			}
			if p := d.pipe(config.Forward); p == nil || p.mode != c.other {
				t.Fatalf("the other direction runs %+v, want mode %s", p, c.other)
			}
			waitStarted(t, f, 2)
			if o := f.last(config.Reverse); o.Mode != pipeline.Live || o.Draining || o.Foreign != nil {
				t.Errorf("live direction started with %+v", o)
			}
			o := f.last(config.Forward)
			if o.Mode != c.other || o.Draining != c.drain || (o.Foreign != nil) != (c.other == pipeline.Armed) {
				t.Errorf("other direction started with mode %s, draining %v, foreign callback %v", o.Mode, o.Draining, o.Foreign != nil)
			}
			if o.LockWait != 15*time.Second {
				t.Errorf("a pipeline starts with lock wait %s, want the default", o.LockWait)
			}
		})
	}
}

// A pipeline that stops by itself is reported once, with its error or one
// that names it; stopping the others returns their clean stop.
func TestPipelineEndedByItself(t *testing.T) {
	f := &fakeRuns{fail: map[config.Direction]error{config.Reverse: nil}}
	d := testDaemon(t, config.Forward, f)
	d.startPipelines(control.State{Live: config.Forward})
	var err error
	pgtest.WaitFor(t, 10*time.Second, "the reverse pipeline's end", func() bool {
		var ended bool
		err, ended = d.ended()
		return ended
	})
	if err == nil || err.Error() != "the reverse pipeline stopped" {
		t.Fatalf("ended = %v", err)
	}
	if d.pipe(config.Reverse) != nil || d.pipe(config.Forward) == nil {
		t.Fatal("the ended pipeline is still listed, or the other is not")
	}
	if err := d.stopAll(); err != nil {
		t.Fatalf("stopAll = %v", err)
	}
}

// Foreign writes reported by the armed pipeline reach the loop once.
func TestForeignWritesReported(t *testing.T) {
	f := &fakeRuns{}
	d := testDaemon(t, config.Forward, f)
	d.startPipelines(control.State{Live: config.Forward})
	waitStarted(t, f, 2)
	fw := control.ForeignWrites{First: 0x100, Txns: 2}
	f.last(config.Reverse).Foreign(fw)
	if dir, got, dirty := d.foreign.take(); !dirty || dir != config.Reverse || got != fw {
		t.Fatalf("take = %s %+v %v", dir, got, dirty)
	}
	if _, _, dirty := d.foreign.take(); dirty {
		t.Fatal("a report was taken twice")
	}
}

// fakeDB records the statements run on the state.
type fakeDB struct{ sql []string }

func (db *fakeDB) Exec(_ context.Context, sql string, _ ...any) (pgconn.CommandTag, error) {
	db.sql = append(db.sql, sql)
	return pgconn.NewCommandTag("UPDATE 1"), nil
}

func (db *fakeDB) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }

type errRow struct{}

func (errRow) Scan(...any) error { return errors.New("no rows here") }

// TestDrainArmsWhenQuiet: the draining direction keeps running live while
// its side takes writes, and is armed, with the drain recorded, once the
// side has been quiet for Quiet.
func TestDrainArmsWhenQuiet(t *testing.T) {
	f := &fakeRuns{}
	d := testDaemon(t, config.Reverse, f)
	d.o.Quiet = time.Hour
	st := control.State{Live: config.Reverse, Drains: true, Draining: config.Forward}
	d.startPipelines(st)
	db := &fakeDB{}
	if err := d.drain(context.Background(), db, st); err != nil || len(db.sql) != 0 || d.pipe(config.Forward).mode != pipeline.Live {
		t.Fatalf("a side that is not quiet: drain = %v, statements %q", err, db.sql)
	}
	d.pipe(config.Forward).lastApplied.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	if err := d.drain(context.Background(), db, st); err != nil {
		t.Fatal(err)
	}
	if len(db.sql) != 1 || !strings.Contains(db.sql[0], "draining = NULL") {
		t.Fatalf("the drain was not recorded: %q", db.sql)
	}
	if p := d.pipe(config.Forward); p == nil || p.mode != pipeline.Armed {
		t.Fatalf("the quiet direction runs %+v, want armed", p)
	}
}

func waitStarted(t *testing.T, f *fakeRuns, n int) {
	t.Helper()
	var got int
	if !pgtest.Until(10*time.Second, func() bool {
		f.mu.Lock()
		got = len(f.started)
		f.mu.Unlock()
		return got >= n
	}) {
		t.Fatalf("%d pipelines started, want %d", got, n)
	}
}

// TestForeignWritesGaugeClears: the foreign-writes gauge shows what the
// armed direction holds, and drops to 0 once that direction applies (a
// flip carried the writes over or discarded them); a report not yet
// recorded in the state is dropped with it.
func TestForeignWritesGaugeClears(t *testing.T) {
	f := &fakeRuns{}
	d := testDaemon(t, config.Forward, f)
	d.o.Metrics = metrics.New(prometheus.NewRegistry(), nil)
	gauge := d.o.Metrics.ForeignWrites.WithLabelValues("target")
	d.startPipelines(control.State{Live: config.Forward})
	waitStarted(t, f, 2)
	f.last(config.Reverse).Foreign(control.ForeignWrites{First: 0x100, Txns: 2})
	if got := testutil.ToFloat64(gauge); got != 2 {
		t.Fatalf("foreign writes held = %v, want 2", got)
	}
	// The flip: the armed direction stops and starts live.
	if err := d.stop(config.Reverse); err != nil {
		t.Fatal(err)
	}
	d.setLive(config.Reverse)
	d.start(config.Reverse, pipeline.Live)
	if got := testutil.ToFloat64(gauge); got != 0 {
		t.Fatalf("foreign writes after the flip = %v, want 0", got)
	}
	if _, _, dirty := d.foreign.take(); dirty {
		t.Fatal("a report of the direction that now applies is still to be recorded")
	}
}
