package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cdcbridge/cdcbridge/change"
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
	LagSeconds       *prometheus.GaugeVec
	SlotRetained     *prometheus.GaugeVec
	Direction        *prometheus.GaugeVec
	Streaming        *prometheus.GaugeVec
	Restarts         *prometheus.CounterVec
	ForeignWrites    *prometheus.GaugeVec
	SnapshotRows     *prometheus.GaugeVec
	SnapshotEstimate *prometheus.GaugeVec
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Changes: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_changes_applied_total",
			Help: "Row changes applied to the receiving side, by direction, target table and op."}, []string{"direction", "table", "op"}),
		Transactions: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_transactions_applied_total",
			Help: "Source transactions applied (committed) on the receiving side."}, []string{"direction"}),
		Missing: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_rows_missing_total",
			Help: "Updates and deletes whose row was not on the receiving side."}, []string{"direction", "table", "op"}),
		TransformErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_transform_errors_total",
			Help: "Transform failures (throws, wrong types, time limits), by direction and source table."}, []string{"direction", "table"}),
		Skipped: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_changes_skipped_total",
			Help: "Changes skipped or dead-lettered under the mapping's error policy."}, []string{"direction", "table"}),
		ApplySeconds: f.NewHistogramVec(prometheus.HistogramOpts{Name: "cdcbridge_apply_commit_seconds",
			Help:    "Time from opening to committing one target transaction (one or more source transactions).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"direction"}),
		CheckpointLSN: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_checkpoint_lsn",
			Help: "The checkpoint: the source LSN up to which everything is committed on the receiving side."}, []string{"direction"}),
		LagBytes: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_lag_bytes",
			Help: "Source WAL not yet applied: the source's current LSN minus the checkpoint."}, []string{"direction"}),
		LagSeconds: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_lag_seconds",
			Help: "Age of the last applied source commit when it was applied (0 when idle)."}, []string{"direction"}),
		SlotRetained: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_slot_retained_wal_bytes",
			Help: "WAL held back by the bridge's replication slot."}, []string{"slot"}),
		Direction: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_direction",
			Help: "1 for a direction that applies (live or draining), 0 for one that is armed."}, []string{"direction"}),
		Streaming: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_streaming",
			Help: "1 while the direction is connected and streaming."}, []string{"direction"}),
		Restarts: f.NewCounterVec(prometheus.CounterOpts{Name: "cdcbridge_stream_restarts_total",
			Help: "Times the pipeline restarted from its checkpoint after a retryable error."}, []string{"direction"}),
		ForeignWrites: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_foreign_write_transactions",
			Help: "Transactions on mapped tables of the receiving side that the bridge did not make."}, []string{"side"}),
		SnapshotRows: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_snapshot_rows_copied",
			Help: "Rows copied by the initial copy, by table."}, []string{"table"}),
		SnapshotEstimate: f.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcbridge_snapshot_rows_estimated",
			Help: "Estimated rows to copy by the initial copy, by table."}, []string{"table"}),
	}
	return m
}

// NewDefault creates a registry with the Go and process collectors and the
// bridge's metrics on it.
func NewDefault() (*prometheus.Registry, *Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, New(reg)
}

// ApplyObserver adapts Metrics to the applier's Observer for one direction.
type ApplyObserver struct {
	M         *Metrics
	Direction string
}

func (o ApplyObserver) Applied(t change.Table, op change.Op, rows int) {
	o.M.Changes.WithLabelValues(o.Direction, t.String(), op.String()).Add(float64(rows))
}

func (o ApplyObserver) Committed(txns int, lsn pglogrepl.LSN, last time.Time, took time.Duration) {
	o.M.Transactions.WithLabelValues(o.Direction).Add(float64(txns))
	o.M.CheckpointLSN.WithLabelValues(o.Direction).Set(float64(lsn))
	o.M.ApplySeconds.WithLabelValues(o.Direction).Observe(took.Seconds())
	if txns > 0 && !last.IsZero() {
		o.M.LagSeconds.WithLabelValues(o.Direction).Set(max(time.Since(last).Seconds(), 0))
	} else {
		o.M.LagSeconds.WithLabelValues(o.Direction).Set(0)
	}
}

func (o ApplyObserver) Missing(t change.Table, op change.Op, rows int) {
	o.M.Missing.WithLabelValues(o.Direction, t.String(), op.String()).Add(float64(rows))
}

// Health is what /healthz and /readyz report.
type Health struct {
	ready atomic.Bool
}

// SetReady marks the daemon streaming and within its lag bound (or not).
func (h *Health) SetReady(ok bool) { h.ready.Store(ok) }

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
		if h != nil && h.ready.Load() {
			w.Write([]byte("ready\n"))
			return
		}
		http.Error(w, "not streaming", http.StatusServiceUnavailable)
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
