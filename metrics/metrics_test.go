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
)

func TestLintAndObserver(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	o := ApplyObserver{M: m, Direction: "forward"}
	tbl := change.Table{Schema: "public", Name: "orders"}
	o.Applied(tbl, change.Insert, 3)
	o.Committed(2, 0x1000, time.Now(), time.Millisecond)
	if got := testutil.ToFloat64(m.Changes.WithLabelValues("forward", `"public"."orders"`, "insert")); got != 3 {
		t.Fatalf("changes = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.CheckpointLSN.WithLabelValues("forward")); got != 0x1000 {
		t.Fatalf("checkpoint = %v", got)
	}
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func mustGather(t *testing.T, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func TestServe(t *testing.T) {
	reg, _ := NewDefault()
	h := &Health{}
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
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("/readyz before streaming = %d, want 503", code)
	}
	h.SetReady(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz while streaming = %d", code)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "cdcbridge_changes_applied_total") && !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics lacks the collectors:\n%s", body)
	}
}
