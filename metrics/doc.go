// Package metrics defines every cdcbridge_* Prometheus metric in one place
// and serves them with the health endpoints. It owns the names, help texts,
// units and labels; the stages that observe something set the values (the
// applier through ApplyObserver, the pipeline and the daemon directly, each
// only when given a *Metrics).
//
// Metrics are registered on a registry passed in (New; NewDefault adds the
// Go and process collectors), so tests use their own and nothing is global.
// Labels are bounded: direction, side, table (the mapped tables only), op,
// slot.
//
// Serve serves /metrics, /healthz (the process is up) and /readyz (Health
// set ready: streaming and within its lag bound) until its context ends; it
// returns once the listener is open, or failed to open.
package metrics
