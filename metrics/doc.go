// Package metrics defines every cdcbridge_* Prometheus metric in one place
// and serves them with the health endpoints. It owns the names, help texts,
// units and labels; the stages that observe something set the values (the
// applier through ApplyObserver, the pipeline and the daemon directly, each
// only when given a *Metrics).
//
// Metrics are registered on a registry passed in (New; NewDefault adds the
// Go and process collectors and labels every cdcbridge_* series with the
// mapping's name), so tests use their own and nothing is global. Labels
// are bounded: direction, side, table (the mapped tables, as
// schema.table without SQL quoting, see TableLabel), op, slot.
//
// Health holds the state of each direction that the pipelines keep
// (streaming, copying, halted, and the committed source transactions
// received and not yet applied) and which direction is live, as the daemon
// says. cdcbridge_lag_seconds, cdcbridge_streaming, cdcbridge_halted and
// cdcbridge_ready are computed from it at each scrape, so a lag grows
// while changes wait even when nothing is applied.
//
// Serve serves /metrics, /healthz (the process is up) and /readyz (200 when
// the live direction streams, is not halted, not copying, and lags less
// than Health.MaxLag; else 503, the body saying which condition fails for
// each direction) until its context ends; it returns once the listener is
// open, or failed to open.
package metrics
