package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestMetricsEndpoint scrapes a running daemon: the counters follow what
// was applied, the gauges what the directions do, and no password shows.
func TestMetricsEndpoint(t *testing.T) {
	bin := buildBinary(t)
	e := flipPair(t)
	p := e.MappingFile("metered", "metrics:\n  listen: 127.0.0.1:0\n"+ordersTables)
	r := newRig(t, bin, p)
	d := r.startStreaming()
	defer d.stop()
	m := regexp.MustCompile(`serving /metrics.* addr=(\S+)`).FindStringSubmatch(r.Logs.String())
	if m == nil {
		t.Fatalf("the daemon streams and has not said where it serves /metrics\n%s", pgtest.Tail(r.Logs.String(), 30))
	}
	addr := m[1]
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	pgtest.WaitFor(t, 20*time.Second, "/readyz to answer 200", func() bool { code, _ := get("/readyz"); return code == 200 }, &r.Logs)

	// Two transactions on green (three inserts, one update), one foreign
	// write on blue.
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (1.00, 'new', 'a'), (2.00, 'new', 'b')`)
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (3.00, 'new', 'c'); UPDATE orders SET status = 'paid' WHERE note = 'a'`)
	pgtest.MustExec(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (1, 0, 'early')`)

	want := []string{
		`cdcbridge_changes_applied_total{direction="forward",op="insert",table="\"public\".\"orders_v2\""} 3`,
		`cdcbridge_changes_applied_total{direction="forward",op="update",table="\"public\".\"orders_v2\""} 1`,
		`cdcbridge_transactions_applied_total{direction="forward"} 2`,
		`cdcbridge_foreign_write_transactions{side="target"} 1`,
		`cdcbridge_direction{direction="forward"} 1`,
		`cdcbridge_direction{direction="reverse"} 0`,
		`cdcbridge_streaming{direction="forward"} 1`,
		`cdcbridge_streaming{direction="reverse"} 1`,
	}
	var body string
	ok := pgtest.Until(20*time.Second, func() bool {
		_, body = get("/metrics")
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				return false
			}
		}
		return true
	})
	if !ok {
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				t.Errorf("/metrics lacks %s", w)
			}
		}
		var ours []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "cdcbridge_") {
				ours = append(ours, l)
			}
		}
		t.Fatalf("/metrics:\n%s\nlogs:\n%s", strings.Join(ours, "\n"), pgtest.Tail(r.Logs.String(), 30))
	}
	// The checkpoint gauge is the forward checkpoint that status shows, and
	// the lag gauges exist for both directions.
	for _, re := range []string{`cdcbridge_checkpoint_lsn\{direction="forward"\} [1-9]`, `cdcbridge_lag_bytes\{direction="forward"\} `,
		`cdcbridge_slot_retained_wal_bytes\{slot="cdcbridge_metered_forward"\} `, `cdcbridge_apply_commit_seconds_count\{direction="forward"\} [1-9]`} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
	noCanary(t, body, r.Logs.String())
}

// TestPprofFlag: --pprof serves Go's profiler on a listener of its own,
// not on the metrics port; without it, no profiler listens.
func TestPprofFlag(t *testing.T) {
	bin := buildBinary(t)
	e := flipPair(t)
	p := e.MappingFile("profiled", "metrics:\n  listen: 127.0.0.1:0\n"+ordersTables)
	r := newRig(t, bin, p)
	d := r.startStreaming("--pprof", "127.0.0.1:0")
	defer d.stop()
	addr := func(what string) string {
		m := regexp.MustCompile(what + `.* addr=(\S+)`).FindStringSubmatch(r.Logs.String())
		if m == nil {
			t.Fatalf("the daemon streams and has not said where it serves %s\n%s", what, pgtest.Tail(r.Logs.String(), 30))
		}
		return m[1]
	}
	status := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := status("http://" + addr("serving Go's profiler") + "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/ on the --pprof address: %d\n%.300s", code, body)
	}
	if code, _ := status("http://" + addr("serving /metrics") + "/debug/pprof/"); code != 404 {
		t.Fatalf("/debug/pprof/ on the metrics address: %d, want 404", code)
	}
	d.stop()
	r2 := newRig(t, bin, p)
	d2 := r2.startStreaming()
	defer d2.stop()
	if strings.Contains(r2.Logs.String(), "profiler") {
		t.Fatalf("without --pprof the daemon serves the profiler:\n%s", pgtest.Tail(r2.Logs.String(), 30))
	}
}
