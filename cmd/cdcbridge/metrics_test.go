package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// TestMetricsEndpoint scrapes a running daemon: the counters follow what
// was applied, the gauges what the directions do, every series carries
// the mapping's name, the scrape passes promlint, the foreign-writes gauge
// drops to 0 once a flip carries them over, and no password shows.
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
		`cdcbridge_changes_applied_total{direction="forward",mapping="metered",op="insert",table="public.orders_v2"} 3`,
		`cdcbridge_changes_applied_total{direction="forward",mapping="metered",op="update",table="public.orders_v2"} 1`,
		`cdcbridge_transactions_applied_total{direction="forward",mapping="metered"} 2`,
		`cdcbridge_foreign_write_transactions{mapping="metered",side="target"} 1`,
		`cdcbridge_direction{direction="forward",mapping="metered"} 1`,
		`cdcbridge_direction{direction="reverse",mapping="metered"} 0`,
		`cdcbridge_streaming{direction="forward",mapping="metered"} 1`,
		`cdcbridge_streaming{direction="reverse",mapping="metered"} 1`,
		`cdcbridge_halted{direction="forward",mapping="metered"} 0`,
		`cdcbridge_ready{mapping="metered"} 1`,
		`cdcbridge_lag_seconds{direction="forward",mapping="metered"} 0`,
		`cdcbridge_lag_seconds{direction="reverse",mapping="metered"} 0`,
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
	for _, re := range []string{`cdcbridge_checkpoint_lsn\{direction="forward",mapping="metered"\} [1-9]`, `cdcbridge_lag_bytes\{direction="forward",mapping="metered"\} `,
		`cdcbridge_slot_retained_wal_bytes\{mapping="metered",slot="cdcbridge_metered_forward"\} `, `cdcbridge_apply_commit_seconds_count\{direction="forward",mapping="metered"\} [1-9]`,
		`cdcbridge_build_info\{goversion="go[^"]+",mapping="metered",revision="[^"]*",version="[^"]+"\} 1`} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
	// The scrape of the running daemon passes promlint.
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	// A flip that carries blue's foreign write over: the gauge drops to 0.
	if code, out, errs := run("flip", "-c", p, "--include-target-writes", "--timeout", "30s"); code != 0 {
		t.Fatalf("flip --include-target-writes: %d %s%s", code, out, errs)
	}
	foreign := `cdcbridge_foreign_write_transactions{mapping="metered",side="target"} `
	if !pgtest.Until(20*time.Second, func() bool {
		_, body = get("/metrics")
		return strings.Contains(body, foreign+"0\n")
	}) {
		t.Fatalf("the foreign-writes gauge after the flip carried them over:\n%s", regexp.MustCompile(`(?m)^cdcbridge_foreign.*$`).FindAllString(body, -1))
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

// scraper reads a daemon's HTTP endpoints at the address it logged.
type scraper struct {
	t    *testing.T
	r    *rig
	addr string
}

// newScraper waits until the daemon says where it serves /metrics.
func newScraper(t *testing.T, r *rig) *scraper {
	t.Helper()
	return newScraperFrom(t, r, 0)
}

// newScraperFrom is newScraper for the daemon whose logs begin at byte
// from of the rig's (a second daemon of the rig).
func newScraperFrom(t *testing.T, r *rig, from int) *scraper {
	t.Helper()
	var m []string
	pgtest.WaitFor(t, 30*time.Second, "the daemon to serve /metrics", func() bool {
		m = regexp.MustCompile(`serving /metrics.* addr=(\S+)`).FindStringSubmatch(r.Logs.String()[from:])
		return m != nil
	}, &r.Logs)
	return &scraper{t: t, r: r, addr: m[1]}
}

func (s *scraper) get(path string) (int, string) {
	s.t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v\n%s", path, err, pgtest.Tail(s.r.Logs.String(), 30))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// value returns the value of the one series in a scrape of /metrics that
// starts with series (name and labels, e.g. `x{direction="forward"`), or
// -1 when there is none.
func (s *scraper) value(series string) float64 {
	s.t.Helper()
	_, body := s.get("/metrics")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, series) {
			f, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			if err != nil {
				s.t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	return -1
}

// waitReady waits until /readyz answers code with a body that contains
// want.
func (s *scraper) waitReady(code int, want string) {
	s.t.Helper()
	var got int
	var body string
	if !pgtest.Until(30*time.Second, func() bool {
		got, body = s.get("/readyz")
		return got == code && strings.Contains(body, want)
	}) {
		s.t.Fatalf("/readyz: %d\n%s\nwant %d with %q\n%s", got, body, code, want, pgtest.Tail(s.r.Logs.String(), 30))
	}
}

// TestReadyAfterFlip: after a flip, once the old live direction has
// drained and is armed again, /readyz answers 200 for the new live
// direction. Before, the drained direction cleared a flag that every
// pipeline shared when it stopped, and /readyz stayed 503 for good.
func TestReadyAfterFlip(t *testing.T) {
	bin := buildBinary(t)
	e := flipPair(t)
	p := e.MappingFile("readyflip", "metrics:\n  listen: 127.0.0.1:0\n"+ordersTables)
	r := newRig(t, bin, p)
	// Quiet long enough for the new live direction to stream before the
	// old one is armed, as with the default 10s.
	d := r.startStreaming("--quiet-period", "5s")
	defer d.stop()
	s := newScraper(t, r)
	s.waitReady(200, "forward (live): streaming")
	if code, out, errs := run("flip", "-c", p, "--timeout", "30s"); code != 0 {
		t.Fatalf("flip: %d %s%s", code, out, errs)
	}
	pgtest.WaitFor(t, 30*time.Second, "the new live direction to stream", func() bool {
		return strings.Contains(r.Logs.String(), "msg=streaming component=pipeline direction=reverse mode=live")
	}, &r.Logs)
	pgtest.WaitFor(t, 30*time.Second, "the old live direction to drain and be armed", func() bool {
		return strings.Contains(r.Logs.String(), "arming its direction")
	}, &r.Logs)
	s.waitReady(200, "reverse (live): streaming")
	if got := s.value(`cdcbridge_ready{mapping="readyflip"}`); got != 1 {
		t.Fatalf("cdcbridge_ready after the flip = %v, want 1", got)
	}
	// Blue's writes reach green: the new live direction does stream.
	pgtest.MustExec(t, e.Tgt, `INSERT INTO orders_v2 (amount_cents, state, note) VALUES (100, 1, 'blue')`)
	bridgetest.Eventually(t, e.Src, `SELECT count(*) FROM orders WHERE note = 'blue'`, "(1)", nil)
}

// TestReadyzAndLag follows /readyz and cdcbridge_lag_seconds through a
// daemon's life: not ready while the initial copy runs (held by a lock on
// the target table), ready once it streams; then a lock on the target
// table stalls the apply under a write: the lag grows from scrape to
// scrape, past ready_max_lag, and /readyz says so; released, the lag is 0
// and /readyz 200 again.
func TestReadyzAndLag(t *testing.T) {
	bin := buildBinary(t)
	e := flipPair(t)
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) SELECT g, 'new', 'copied' FROM generate_series(1, 2000) g; ANALYZE orders`)
	p := e.MappingFile("lagging", "metrics:\n  listen: 127.0.0.1:0\n  ready_max_lag: 2s\n"+ordersTables)
	r := newRig(t, bin, p)

	lock := pgtest.Connect(t, e.TgtDSN)
	pgtest.MustExec(t, lock, "BEGIN; LOCK TABLE orders_v2 IN SHARE MODE")
	d := r.start()
	defer d.stop()
	s := newScraper(t, r)
	s.waitReady(503, "forward (live): copying (the initial copy runs); not streaming")
	if got := s.value(`cdcbridge_ready{mapping="lagging"}`); got != 0 {
		t.Errorf("cdcbridge_ready while copying = %v, want 0", got)
	}
	pgtest.MustExec(t, lock, "COMMIT")
	s.waitReady(200, "forward (live): streaming")
	for series, want := range map[string]float64{
		`cdcbridge_snapshot_rows_copied{mapping="lagging",table="public.orders"}`:    2000,
		`cdcbridge_snapshot_rows_estimated{mapping="lagging",table="public.orders"}`: 2000,
		`cdcbridge_ready{mapping="lagging"}`:                                         1,
		`cdcbridge_lag_seconds{direction="forward",mapping="lagging"}`:               0,
	} {
		if got := s.value(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := s.value(`cdcbridge_snapshot_bytes_copied{mapping="lagging",table="public.orders"}`); got <= 0 {
		t.Errorf("cdcbridge_snapshot_bytes_copied = %v, want the bytes of 2000 rows", got)
	}

	// The apply stalls on the lock under a write.
	pgtest.MustExec(t, lock, "BEGIN; LOCK TABLE orders_v2 IN SHARE MODE")
	pgtest.MustExec(t, e.Src, `INSERT INTO orders (amount, status, note) VALUES (1, 'new', 'stalled')`)
	lag := `cdcbridge_lag_seconds{direction="forward",mapping="lagging"}`
	var first float64
	pgtest.WaitFor(t, 20*time.Second, "the lag to show the waiting write", func() bool {
		first = s.value(lag)
		return first > 0
	}, &r.Logs)
	pgtest.WaitFor(t, 20*time.Second, "the lag to grow while the write waits", func() bool {
		return s.value(lag) > first+0.5
	}, &r.Logs)
	s.waitReady(503, "at or past metrics.ready_max_lag 2s")
	if got := s.value(`cdcbridge_ready{mapping="lagging"}`); got != 0 {
		t.Errorf("cdcbridge_ready past the lag bound = %v, want 0", got)
	}
	pgtest.MustExec(t, lock, "COMMIT")
	pgtest.WaitFor(t, 20*time.Second, "the lag to be 0 once caught up", func() bool { return s.value(lag) == 0 }, &r.Logs)
	s.waitReady(200, "forward (live): streaming")
	bridgetest.Eventually(t, e.Tgt, `SELECT count(*) FROM orders_v2 WHERE note = 'stalled'`, "(1)", nil)
	noCanary(t, r.Logs.String())
}
