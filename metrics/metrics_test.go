package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/version"
)

// fakeClock is a Health clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newHealth(c *fakeClock, maxLag time.Duration) *Health {
	return &Health{MaxLag: maxLag, now: c.now}
}

// populated is a registry as a running daemon has it: every metric with
// at least one series.
func populated(t *testing.T) (*prometheus.Registry, *Metrics) {
	t.Helper()
	reg, m := NewDefault("shop", nil)
	o := ApplyObserver{M: m, Direction: "forward", State: m.Health.Direction("forward")}
	tbl := change.Table{Schema: "My Schema", Name: "Order.Items"}
	o.Applied(tbl, change.Insert, 3)
	o.Missing(tbl, change.Delete, 1)
	o.Committed(2, 0x1000, time.Now(), time.Millisecond)
	m.TransformErrors.WithLabelValues("forward", "public.orders").Inc()
	m.Skipped.WithLabelValues("forward", "public.orders").Inc()
	m.LagBytes.WithLabelValues("forward").Set(10)
	m.SlotRetained.WithLabelValues("cdcbridge_shop_forward").Set(10)
	m.Direction.WithLabelValues("forward").Set(1)
	m.Restarts.WithLabelValues("forward").Inc()
	m.ForeignWrites.WithLabelValues("target").Set(1)
	m.SnapshotRows.WithLabelValues("public.orders").Set(1)
	m.SnapshotBytes.WithLabelValues("public.orders").Set(1)
	m.SnapshotEstimate.WithLabelValues("public.orders").Set(1)
	m.Health.Direction("reverse")
	return reg, m
}

// TestLint: every metric, each with a series, passes promlint, carries
// the mapping label, and the table labels are schema.table unquoted.
func TestLint(t *testing.T) {
	reg, m := populated(t)
	mfs := mustGather(t, reg)
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	ours := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "cdcbridge_") {
			continue
		}
		ours++
		for _, s := range mf.GetMetric() {
			if label(s, "mapping") != "shop" {
				t.Errorf("%s %v: no mapping=shop label", mf.GetName(), s.GetLabel())
			}
		}
	}
	if want := 21; ours != want {
		t.Errorf("%d cdcbridge_* families gathered, want %d (one of them without a series?)", ours, want)
	}
	if got := testutil.ToFloat64(m.Changes.WithLabelValues("forward", "My Schema.Order.Items", "insert")); got != 3 {
		t.Errorf("changes by unquoted table = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.CheckpointLSN.WithLabelValues("forward")); got != 0x1000 {
		t.Errorf("checkpoint = %v", got)
	}
	v := version.Get()
	want := `
# HELP cdcbridge_build_info ` + helpBuildInfo + `
# TYPE cdcbridge_build_info gauge
cdcbridge_build_info{goversion="` + v.GoVersion + `",mapping="shop",revision="` + v.Revision + `",version="` + v.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cdcbridge_build_info"); err != nil {
		t.Error(err)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func mustGather(t *testing.T, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestLagGrows: the lag is the age of the oldest transaction received and
// not applied, at each scrape: it grows while nothing is applied, and is 0
// once everything received is.
func TestLagGrows(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	h := newHealth(clk, 0)
	reg := prometheus.NewRegistry()
	New(reg, h)
	d := h.Direction("forward")
	lag := func() float64 {
		t.Helper()
		for _, mf := range mustGather(t, reg) {
			if mf.GetName() == "cdcbridge_lag_seconds" {
				for _, s := range mf.GetMetric() {
					if label(s, "direction") == "forward" {
						return s.GetGauge().GetValue()
					}
				}
			}
		}
		t.Fatal("no cdcbridge_lag_seconds{direction=forward}")
		return 0
	}
	if got := lag(); got != 0 {
		t.Fatalf("idle lag = %v, want 0", got)
	}
	committed := clk.t
	d.Received(0x100, committed)
	clk.add(time.Second)
	d.Received(0x200, clk.t)
	clk.add(2 * time.Second)
	if got := lag(); got != 3 {
		t.Fatalf("lag with two waiting = %v, want 3", got)
	}
	clk.add(4 * time.Second)
	if got := lag(); got != 7 {
		t.Fatalf("lag after 4s more with nothing applied = %v, want 7", got)
	}
	// A stream restarted from the checkpoint sends 0x100 again: it is
	// still the oldest, not a new one.
	d.Received(0x100, committed)
	d.Applied(0x100) // a checkpoint at the commit record's start passes nothing
	if got := lag(); got != 7 {
		t.Fatalf("lag after a replay = %v, want 7", got)
	}
	d.Applied(0x180) // the first transaction's end
	if got := lag(); got != 6 {
		t.Fatalf("lag with the second waiting = %v, want 6", got)
	}
	d.Applied(0x280)
	if got := lag(); got != 0 {
		t.Fatalf("lag when caught up = %v, want 0", got)
	}
	// A source clock ahead of this host's is no negative lag.
	d.Received(0x300, clk.t.Add(time.Minute))
	if got := lag(); got != 0 {
		t.Fatalf("lag of a commit in the future = %v, want 0", got)
	}
	d.ClearBacklog()
	d.Received(0x10, clk.t.Add(-time.Second))
	if got := lag(); got != 1 {
		t.Fatalf("lag after a clear and a new start = %v, want 1", got)
	}
	// A start from a checkpoint: a transaction the stream sends again from
	// before it is applied already, not waiting.
	d.ClearBacklog()
	d.Applied(0x500)
	d.Received(0x400, clk.t.Add(-time.Hour))
	if got := lag(); got != 0 {
		t.Fatalf("lag of a transaction from before the start = %v, want 0", got)
	}
}

// TestReadiness: ready only when the live direction streams, is not
// halted, not copying and within the lag bound; the other direction does
// not matter; the answer says what fails.
func TestReadiness(t *testing.T) {
	type state struct{ streaming, copying, halted bool }
	cases := []struct {
		name       string
		live       string
		fwd, rev   state
		lag        time.Duration
		ready      bool
		wantInBody string
	}{
		{"starting", "", state{}, state{}, 0, false, "no live direction yet"},
		{"before the stream", "forward", state{}, state{}, 0, false, "forward (live): not streaming"},
		{"copying", "forward", state{copying: true}, state{streaming: true}, 0, false, "forward (live): copying (the initial copy runs); not streaming"},
		{"streaming", "forward", state{streaming: true}, state{}, 0, true, "forward (live): streaming, lag 0s"},
		{"streaming, other halted", "forward", state{streaming: true}, state{halted: true}, 0, true, "reverse (armed, not what readiness is about): halted"},
		{"halted", "forward", state{halted: true}, state{streaming: true}, 0, false, "forward (live): halted"},
		{"lagging", "forward", state{streaming: true}, state{}, 31 * time.Second, false, "forward (live): lag 31s, at or past metrics.ready_max_lag 30s"},
		{"within the bound", "forward", state{streaming: true}, state{}, 29 * time.Second, true, "forward (live): streaming, lag 29s"},
		{"after a flip, the old one stopped", "reverse", state{}, state{streaming: true}, 0, true, "reverse (live): streaming"},
		{"after a flip, the new one not yet streaming", "reverse", state{streaming: true}, state{}, 0, false, "reverse (live): not streaming"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Now()}
			h := newHealth(clk, 30*time.Second)
			reg := prometheus.NewRegistry()
			New(reg, h)
			h.SetLive(c.live)
			for name, s := range map[string]state{"forward": c.fwd, "reverse": c.rev} {
				d := h.Direction(name)
				d.SetStreaming(s.streaming)
				d.SetCopying(s.copying)
				d.SetHalted(s.halted)
			}
			if c.lag > 0 {
				h.Direction(c.live).Received(0x10, clk.t)
				clk.add(c.lag)
			}
			r := h.Ready()
			if r.Ready != c.ready || !strings.Contains(r.String(), c.wantInBody) {
				t.Errorf("ready = %v, want %v; body:\n%s\nwant it to contain %q", r.Ready, c.ready, r, c.wantInBody)
			}
			want := "0"
			if c.ready {
				want = "1"
			}
			exp := "# HELP cdcbridge_ready " + helpReady + "\n# TYPE cdcbridge_ready gauge\ncdcbridge_ready " + want + "\n"
			if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "cdcbridge_ready"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestServe(t *testing.T) {
	h := &Health{}
	reg, _ := NewDefault("shop", h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", reg, h)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	h.SetLive("forward")
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "not ready\nforward (live): not started") {
		t.Fatalf("/readyz before the live direction starts = %d\n%s", code, body)
	}
	h.Direction("forward").SetStreaming(true)
	if code, body := get("/readyz"); code != 200 || !strings.HasPrefix(body, "ready\n") {
		t.Fatalf("/readyz while streaming = %d\n%s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	_, body := get("/metrics")
	for _, want := range []string{`cdcbridge_ready{mapping="shop"} 1`, `cdcbridge_streaming{direction="forward",mapping="shop"} 1`, "go_goroutines "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

func TestTableLabel(t *testing.T) {
	for _, c := range []struct {
		t    change.Table
		want string
	}{
		{change.Table{Schema: "public", Name: "items"}, "public.items"},
		{change.Table{Schema: "My Schema", Name: "Order.Items"}, "My Schema.Order.Items"},
		{change.Table{Schema: "public", Name: `a"b`}, `public.a"b`},
	} {
		if got := TableLabel(c.t); got != c.want {
			t.Errorf("TableLabel(%s) = %q, want %q", c.t, got, c.want)
		}
	}
}
