package deploy

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdcbridge/cdcbridge/metrics"
)

// scrapeLabels are the labels Prometheus adds to every series it scrapes.
var scrapeLabels = []string{"job", "instance"}

// exportedMetrics returns every series name the daemon's /metrics can
// show (histograms with their _bucket, _sum and _count series), each with
// the label names it carries, from the real metrics package: the bridge's
// collectors as metrics.New describes them (a vector with no child yet is
// described but not gathered), and the Go and process collectors as the
// registry of metrics.NewDefault gathers them.
func exportedMetrics(t testing.TB) map[string][]string {
	t.Helper()
	names := map[string][]string{}
	add := func(name string, labels []string, kind dto.MetricType) {
		labels = append(append([]string(nil), labels...), scrapeLabels...)
		switch kind {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"] = append(append([]string(nil), labels...), "le")
			names[name+"_sum"] = labels
			names[name+"_count"] = labels
		case dto.MetricType_SUMMARY:
			names[name] = append(append([]string(nil), labels...), "quantile")
			names[name+"_sum"] = labels
			names[name+"_count"] = labels
		default:
			names[name] = labels
		}
	}

	rec := &recorder{t: t}
	metrics.New(rec, nil)
	if len(rec.descs) < 10 {
		t.Fatalf("metrics.New described %d metrics; want the bridge's full set", len(rec.descs))
	}
	for _, d := range rec.descs {
		add(d.name, d.labels, d.kind)
	}

	reg, _ := metrics.NewDefault("m", nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	bridge := 0
	for _, mf := range mfs {
		var labels []string
		for _, m := range mf.Metric {
			mapping := ""
			for _, lp := range m.Label {
				labels = append(labels, lp.GetName())
				if lp.GetName() == "mapping" {
					mapping = lp.GetValue()
				}
			}
			if strings.HasPrefix(mf.GetName(), "cdcbridge_") {
				bridge++
				if mapping != "m" {
					t.Errorf("%s is not labelled with its mapping: %v", mf.GetName(), m.Label)
				}
			}
		}
		add(mf.GetName(), labels, mf.GetType())
	}
	if bridge == 0 {
		t.Fatalf("the default registry gathers no cdcbridge_* series to check the mapping label on")
	}
	// Every cdcbridge_* series carries the mapping's name (NewDefault's
	// registry, as checked just above).
	for name, labels := range names {
		if strings.HasPrefix(name, "cdcbridge_") && !slices.Contains(labels, "mapping") {
			names[name] = append(labels, "mapping")
		}
	}
	if _, ok := names["process_start_time_seconds"]; !ok {
		t.Fatalf("the default registry gathers no process_start_time_seconds: %v", sortedKeys(names))
	}

	// Prometheus makes this series for every target it scrapes.
	names["up"] = scrapeLabels

	return names
}

// described is one metric that a collector describes.
type described struct {
	name   string
	labels []string
	kind   dto.MetricType
}

// recorder is a Registerer that keeps what each collector describes.
type recorder struct {
	t     testing.TB
	descs []described
}

func (r *recorder) Register(c prometheus.Collector) error {
	kind := dto.MetricType_UNTYPED
	switch c.(type) {
	case *prometheus.HistogramVec, prometheus.Histogram:
		kind = dto.MetricType_HISTOGRAM
	case *prometheus.SummaryVec, prometheus.Summary:
		kind = dto.MetricType_SUMMARY
	}
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		name, labels := parseDesc(r.t, d.String())
		r.descs = append(r.descs, described{name, labels, kind})
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// parseDesc reads the name and the label names (constant and variable) out
// of a Desc's String, the only place a Desc shows them:
//
//	Desc{fqName: "x", help: "…", unit: "", constLabels: {a="v"}, variableLabels: {b,c(d)}}
func parseDesc(t testing.TB, s string) (string, []string) {
	t.Helper()
	rest, ok := strings.CutPrefix(s, `Desc{fqName: `)
	q, err := strconv.QuotedPrefix(rest)
	if !ok || err != nil {
		t.Fatalf("cannot read the name in %s", s)
	}
	name, _ := strconv.Unquote(q)
	ci := strings.LastIndex(s, ", constLabels: {")
	vi := strings.LastIndex(s, "}, variableLabels: {")
	if ci < 0 || vi < ci || !strings.HasSuffix(s, "}}") {
		t.Fatalf("cannot read the labels in %s", s)
	}
	var labels []string
	for _, kv := range splitNonEmpty(s[ci+len(", constLabels: {"):vi], ",") {
		k, _, _ := strings.Cut(kv, "=")
		labels = append(labels, k)
	}
	for _, l := range splitNonEmpty(s[vi+len("}, variableLabels: {"):len(s)-2], ",") {
		if inner, ok := strings.CutPrefix(l, "c("); ok {
			l = strings.TrimSuffix(inner, ")")
		}
		labels = append(labels, l)
	}
	if !metricNameRE.MatchString(name) {
		t.Fatalf("read name %q out of %s", name, s)
	}
	return name, labels
}

func splitNonEmpty(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestExportedMetrics(t *testing.T) {
	names := exportedMetrics(t)
	for name, want := range map[string][]string{
		"cdcbridge_lag_seconds":                 {"direction", "mapping"},
		"cdcbridge_apply_commit_seconds_bucket": {"direction", "le"},
		"cdcbridge_apply_commit_seconds_count":  {"direction"},
		"cdcbridge_slot_retained_wal_bytes":     {"slot"},
		"go_goroutines":                         nil,
		"process_start_time_seconds":            {"job", "instance"},
	} {
		got, ok := names[name]
		if !ok {
			t.Errorf("%s is not among the exported metrics", name)
		}
		for _, l := range want {
			if !slices.Contains(got, l) {
				t.Errorf("%s has labels %v, want %s among them", name, got, l)
			}
		}
	}
	if _, ok := names["cdcbridge_lag_seconds_bucket"]; ok {
		t.Errorf("a gauge got histogram series")
	}
}
