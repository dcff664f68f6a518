package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/internal/version"
)

// Metrics holds the bridge's collectors.
type Metrics struct {
	Changes          *prometheus.CounterVec
	Transactions     *prometheus.CounterVec
	Missing          *prometheus.CounterVec
	TransformErrors  *prometheus.CounterVec
	Skipped          *prometheus.CounterVec
	ApplySeconds     *prometheus.HistogramVec
	CheckpointLSN    *prometheus.GaugeVec
	LagBytes         *prometheus.GaugeVec
	SlotRetained     *prometheus.GaugeVec
	Direction        *prometheus.GaugeVec
	Restarts         *prometheus.CounterVec
	ForeignWrites    *prometheus.GaugeVec
	SnapshotRows     *prometheus.GaugeVec
	SnapshotBytes    *prometheus.GaugeVec
	SnapshotEstimate *prometheus.GaugeVec
	// Health is the state cdcbridge_lag_seconds, cdcbridge_streaming,
	// cdcbridge_halted and cdcbridge_ready are computed from at each scrape.
	Health *Health
}

// The help texts say exactly what each metric measures; the README quotes
// them.
const (
	helpChanges          = "Row changes applied to the side written, by direction, target table (schema.table) and op (insert, update, delete, truncate)."
	helpTransactions     = "Source transactions applied: committed on the side written together with the checkpoint, by direction."
	helpMissing          = "Updates and deletes applied whose row was not on the side written (nothing to change), by direction, target table and op."
	helpTransformErrors  = "Changes the transform failed on (threw, returned a wrong type, named an unknown column, ran past transform_timeout), by direction and source table."
	helpSkipped          = "Changes the transform failed on that were skipped or written to cdcbridge.deadletter under on_error: skip or deadletter, by direction and source table."
	helpApplySeconds     = "Seconds from opening to committing one transaction on the side written (one or more source transactions and the checkpoint), by direction."
	helpCheckpointLSN    = "The checkpoint as a number: the source WAL position up to which every change is committed on the side written, by direction."
	helpLagBytes         = "Bytes of WAL the side read has written past the checkpoint (its current WAL position minus the checkpoint), by direction; refreshed every 5s."
	helpLagSeconds       = "Age in seconds of the oldest committed source transaction received and not yet applied (source commit time to now), by direction; grows while changes wait, 0 when caught up."
	helpSlotRetained     = "Bytes of WAL the bridge's replication slot keeps on the side it reads (current WAL position minus the slot's restart_lsn), by slot; refreshed every 5s."
	helpDirection        = "1 for a direction that applies what it reads (the live one, or the one draining after a flip), 0 for one that is armed (holds its slot, applies nothing)."
	helpStreaming        = "1 while the direction is connected to the side it reads and streaming its changes, else 0."
	helpHalted           = "1 when the direction stopped on an error it does not retry (on_error: halt, a refused change, a configuration problem): nothing at or after the failed change is applied; else 0."
	helpStandby          = "1 while this daemon stands by: another daemon runs the mapping, and this one takes over when it stops (it is then not ready); else 0."
	helpReady            = "1 when /readyz answers 200: the live direction streams, is not halted, not copying, and its lag is under metrics.ready_max_lag; else 0."
	helpRestarts         = "Times the direction's pipeline restarted from its checkpoint after a retryable error (a lost connection, a restarted server)."
	helpForeignWrites    = "Transactions on mapped tables of this side that the bridge did not make, held by its armed direction (the side took writes while traffic should flow the other way); back to 0 once a flip carries them over or discards them."
	helpSnapshotRows     = "Rows of the source table read so far by the initial copy (or the copy of an entry added to the mapping), by source table (schema.table); the exact count once the table is committed."
	helpSnapshotBytes    = "Bytes of row data of the source table read so far by the initial copy (COPY text or binary form), by source table (schema.table)."
	helpSnapshotEstimate = "Rows the initial copy expects to copy from the source table (the planner's estimate, pg_class.reltuples, or the rows copied once that is more), by source table (schema.table)."
	helpBuildInfo        = "Always 1; the labels say which build of cdcbridge runs: version, VCS revision and Go version."
)

// New creates the metrics and registers them on reg. Health is the state
// the scrape-time gauges are read from; nil makes a new one.
func New(reg prometheus.Registerer, h *Health) *Metrics {
	if h == nil {
		h = &Health{}
	}
	f := promauto.With(reg)
	m := &Metrics{
		Changes: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_changes_applied_total",
			Help: helpChanges}, []string{"direction", "table", "op"}),
		Transactions: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_transactions_applied_total",
			Help: helpTransactions}, []string{"direction"}),
		Missing: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_rows_missing_total",
			Help: helpMissing}, []string{"direction", "table", "op"}),
		TransformErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_transform_errors_total",
			Help: helpTransformErrors}, []string{"direction", "table"}),
		Skipped: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_changes_skipped_total",
			Help: helpSkipped}, []string{"direction", "table"}),
		ApplySeconds: f.NewHistogramVec(prometheus.HistogramOpts{Name: "cdcbridge_apply_commit_seconds",
			Help:    helpApplySeconds,
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"direction"}),
		CheckpointLSN: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_checkpoint_lsn",
			Help: helpCheckpointLSN}, []string{"direction"}),
		LagBytes: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_lag_bytes",
			Help: helpLagBytes}, []string{"direction"}),
		SlotRetained: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_slot_retained_wal_bytes",
			Help: helpSlotRetained}, []string{"slot"}),
		Direction: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_direction",
			Help: helpDirection}, []string{"direction"}),
		Restarts: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_stream_restarts_total",
			Help: helpRestarts}, []string{"direction"}),
		ForeignWrites: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_foreign_write_transactions",
			Help: helpForeignWrites}, []string{"side"}),
		SnapshotRows: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_snapshot_rows_copied",
			Help: helpSnapshotRows}, []string{"table"}),
		SnapshotBytes: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_snapshot_bytes_copied",
			Help: helpSnapshotBytes}, []string{"table"}),
		SnapshotEstimate: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_snapshot_rows_estimated",
			Help: helpSnapshotEstimate}, []string{"table"}),
		Health: h,
	}
	v := version.Get()
	f.NewGauge(prometheus.GaugeOpts{Name: "cdcbridge_build_info", Help: helpBuildInfo,
		ConstLabels: prometheus.Labels{"version": v.Version, "revision": v.Revision, "goversion": v.GoVersion}}).Set(1)
	reg.MustRegister(newHealthCollector(h))
	return m
}

// NewDefault creates a registry with the Go and process collectors and the
// bridge's metrics on it, every cdcbridge_* series labelled
// mapping=<mapping> so that several bridges share one dashboard.
func NewDefault(mapping string, h *Health) (*prometheus.Registry, *Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, New(prometheus.WrapRegistererWith(prometheus.Labels{"mapping": mapping}, reg), h)
}

// TableLabel is a table as metrics label it: schema.table, unquoted
// (public.orders, My Schema.Order.Items).
func TableLabel(t change.Table) string { return t.Schema + "." + t.Name }

// healthCollector computes the gauges that Health holds at each scrape,
// so that a lag grows while changes wait, whether or not anything is
// applied meanwhile.
type healthCollector struct {
	h                                      *Health
	lag, streaming, halted, ready, standby *prometheus.Desc
}

func newHealthCollector(h *Health) *healthCollector {
	dir := []string{"direction"}
	return &healthCollector{h: h,
		lag:       prometheus.NewDesc("cdcbridge_lag_seconds", helpLagSeconds, dir, nil),
		streaming: prometheus.NewDesc("cdcbridge_streaming", helpStreaming, dir, nil),
		halted:    prometheus.NewDesc("cdcbridge_halted", helpHalted, dir, nil),
		ready:     prometheus.NewDesc("cdcbridge_ready", helpReady, nil, nil),
		standby:   prometheus.NewDesc("cdcbridge_standby", helpStandby, nil, nil),
	}
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.streaming
	ch <- c.halted
	ch <- c.ready
	ch <- c.standby
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	ds, _ := c.h.directions()
	now := c.h.clock()
	for _, d := range ds {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, d.Lag(now).Seconds(), d.name)
		ch <- prometheus.MustNewConstMetric(c.streaming, prometheus.GaugeValue, b2f(d.streaming.Load()), d.name)
		ch <- prometheus.MustNewConstMetric(c.halted, prometheus.GaugeValue, b2f(d.halted.Load()), d.name)
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, b2f(c.h.Ready().Ready))
	ch <- prometheus.MustNewConstMetric(c.standby, prometheus.GaugeValue, b2f(c.h.standby.Load()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ApplyObserver adapts Metrics and a direction's health to the applier's
// Observer. M may be nil (only the health is kept), and so may State.
type ApplyObserver struct {
	M         *Metrics
	Direction string
	State     *DirectionHealth
}

func (o ApplyObserver) Applied(t change.Table, op change.Op, rows int) {
	if o.M != nil {
		o.M.Changes.WithLabelValues(o.Direction, TableLabel(t), op.String()).Add(float64(rows))
	}
}

func (o ApplyObserver) Committed(txns int, lsn pglogrepl.LSN, last time.Time, took time.Duration) {
	if o.State != nil {
		o.State.Applied(lsn)
	}
	if o.M == nil {
		return
	}
	o.M.Transactions.WithLabelValues(o.Direction).Add(float64(txns))
	o.M.CheckpointLSN.WithLabelValues(o.Direction).Set(float64(lsn))
	o.M.ApplySeconds.WithLabelValues(o.Direction).Observe(took.Seconds())
}

func (o ApplyObserver) Missing(t change.Table, op change.Op, rows int) {
	if o.M != nil {
		o.M.Missing.WithLabelValues(o.Direction, TableLabel(t), op.String()).Add(float64(rows))
	}
}

// Serve serves /metrics, /healthz and /readyz on addr until ctx ends. It
// returns once the listener is open (or failed to open).
func Serve(ctx context.Context, addr string, gather prometheus.Gatherer, h *Health) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := Readiness{Directions: []string{"no health state"}}
		if h != nil {
			rd = h.Ready()
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !rd.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, rd.String())
	})
	return serveOn(ctx, ln, mux), nil
}

// ServeHandler serves h on addr until ctx ends, as Serve does its
// endpoints; it returns once the listener is open (or failed to open).
func ServeHandler(ctx context.Context, addr string, h http.Handler) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return serveOn(ctx, ln, h), nil
}

// serveOn serves h on ln until ctx ends, then shuts the server down.
func serveOn(ctx context.Context, ln net.Listener, h http.Handler) net.Addr {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener closed under us; nothing to report to
		}
	}()
	return ln.Addr()
}
