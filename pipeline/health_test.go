package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
	"github.com/cdcbridge/cdcbridge/metrics"
	"github.com/cdcbridge/cdcbridge/pipeline"
)

// gauge returns the value of the series of name whose labels include
// want, and whether there is one.
func gauge(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			return s.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestHaltedGauge: a direction that stops on a change its transform
// rejects under on_error: halt shows cdcbridge_halted 1, no longer
// streams, and its lag is the age of the transaction that waits; before,
// it streamed with halted 0. Readiness follows.
func TestHaltedGauge(t *testing.T) {
	const script = "function forward(r) { if (r.id === 2) throw new Error('bad row ' + r.id); return r }\nfunction backward(r) { return r }\n"
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	m := e.Mapping("halting", "  - source: a\n    target: a\n    transform: t.js\non_error: halt\n", map[string]string{"t.js": script})
	reg := prometheus.NewRegistry()
	met := metrics.New(reg, nil)
	met.Health.SetLive("forward")
	logs := &bridgetest.LogSink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- pipeline.Run(ctx, pipeline.Options{Mapping: m, Direction: config.Forward, Logger: bridgetest.TextLogger(logs),
			Metrics: met, MaxBackoff: time.Second, Started: func(pglogrepl.LSN) {}})
	}()
	fwd := map[string]string{"direction": "forward"}
	pgtest.WaitFor(t, 30*time.Second, "the direction to stream", func() bool {
		v, _ := gauge(t, reg, "cdcbridge_streaming", fwd)
		return v == 1
	}, logs)
	if v, ok := gauge(t, reg, "cdcbridge_halted", fwd); !ok || v != 0 {
		t.Fatalf("cdcbridge_halted while streaming = %v (%v), want 0", v, ok)
	}
	if r := met.Health.Ready(); !r.Ready {
		t.Fatalf("readiness while streaming:\n%s", r)
	}
	e.ExecSource(t, "INSERT INTO a VALUES (1, 'one'); INSERT INTO a VALUES (2, 'two')")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "bad row 2") {
			t.Fatalf("the direction stopped with %v, want the transform's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the direction did not halt\n%s", logs.String())
	}
	if v, _ := gauge(t, reg, "cdcbridge_halted", fwd); v != 1 {
		t.Errorf("cdcbridge_halted after the halt = %v, want 1", v)
	}
	if r := met.Health.Ready(); r.Ready || !strings.Contains(r.String(), "forward (live): halted") {
		t.Errorf("readiness after the halt:\n%s", r)
	}
	if v, _ := gauge(t, reg, "cdcbridge_streaming", fwd); v != 0 {
		t.Errorf("cdcbridge_streaming after the halt = %v, want 0", v)
	}
	first, _ := gauge(t, reg, "cdcbridge_lag_seconds", fwd)
	if first <= 0 {
		t.Errorf("cdcbridge_lag_seconds of the halted direction = %v, want the age of the rejected transaction", first)
	}
	pgtest.WaitFor(t, 10*time.Second, "the halted direction's lag to grow", func() bool {
		v, _ := gauge(t, reg, "cdcbridge_lag_seconds", fwd)
		return v > first
	}, logs)
}

// TestCopyProgress: a live direction's initial copy logs its progress per
// table every CopyProgressEvery and sets the copy gauges, and the
// direction is not ready while it runs (held here by a lock on the target
// table); once done, it streams and is ready.
func TestCopyProgress(t *testing.T) {
	e := bridgetest.NewEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text);
		INSERT INTO a SELECT g, repeat('v', 100) FROM generate_series(1, 3000) g; ANALYZE a;`, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	m := e.Mapping("progress", "  - source: a\n    target: a\n", nil)
	lock := pgtest.Connect(t, e.TgtDSN)
	pgtest.MustExec(t, lock, "BEGIN; LOCK TABLE a IN SHARE MODE")

	reg := prometheus.NewRegistry()
	met := metrics.New(reg, nil)
	met.Health.SetLive("forward")
	logs := &bridgetest.LogSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- pipeline.Run(ctx, pipeline.Options{Mapping: m, Direction: config.Forward, Logger: bridgetest.TextLogger(logs),
			Metrics: met, MaxBackoff: time.Second, CopyProgressEvery: 100 * time.Millisecond})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the direction stopped with %v", err)
		}
	}()
	pgtest.WaitFor(t, 30*time.Second, "two copy progress records", func() bool {
		return strings.Count(logs.String(), `msg="copy progress"`) >= 2
	}, logs)
	if r := met.Health.Ready(); r.Ready || !strings.Contains(r.String(), "forward (live): copying (the initial copy runs)") {
		t.Errorf("readiness while copying:\n%s", r)
	}
	tbl := map[string]string{"table": "public.a"}
	if v, _ := gauge(t, reg, "cdcbridge_snapshot_rows_estimated", tbl); v != 3000 {
		t.Errorf("cdcbridge_snapshot_rows_estimated while copying = %v, want 3000", v)
	}
	pgtest.MustExec(t, lock, "COMMIT")
	pgtest.WaitFor(t, 30*time.Second, "the direction to be ready", func() bool { return met.Health.Ready().Ready }, logs)
	if v, _ := gauge(t, reg, "cdcbridge_snapshot_rows_copied", tbl); v != 3000 {
		t.Errorf("cdcbridge_snapshot_rows_copied = %v, want 3000", v)
	}
	if v, _ := gauge(t, reg, "cdcbridge_snapshot_bytes_copied", tbl); v < 300000 {
		t.Errorf("cdcbridge_snapshot_bytes_copied = %v, want at least the 300000 bytes of v", v)
	}
}
