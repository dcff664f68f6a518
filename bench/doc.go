// Package bench holds the benchmark that measures cdcbridge beside
// PostgreSQL's own logical replication (a publication and a subscription)
// on the same data, between the same two throwaway clusters: backlog drains
// of inserts (identity and JS), updates, deletes and pgbench's TPC-B mix,
// the initial copy beside copy_data, peak memory on huge transactions, and
// end-to-end lag at a steady rate. scripts/bench.sh runs it and prints one
// table; BENCH_SCALE scales every size. It is never run by the test suite.
package bench
