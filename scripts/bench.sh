#!/usr/bin/env bash
# Measures cdcbridge beside PostgreSQL's own logical replication on the same
# data between the same two throwaway clusters, and prints one table:
# backlog drains (inserts with and without a transform, updates, deletes,
# pgbench's TPC-B mix), the initial copy beside copy_data, peak memory on
# huge transactions, and lag at a steady rate (bench/bench_test.go). Then
# how long the daemon takes to stream again after a restart of each
# database and a killed walsender.
#
# BENCH_SCALE scales every size (default 1: a few minutes on 2 cores);
# BENCH_ONLY picks workloads by name (a go test -bench pattern, e.g.
# 'Inserts|Copy'); BENCH_LOG=file keeps the recovery run's daemon logs.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./bench -run '^$' -bench "${BENCH_ONLY:-.}" -benchtime 1x -timeout 60m |
  grep -vE '^(goos|goarch|pkg|cpu|PASS|ok |Benchmark)'
if [ -z "${BENCH_ONLY:-}" ]; then
  go test ./daemon -run '^$' -bench Recovery -benchtime 1x -timeout 10m | grep -E 'recovery after|FAIL' || true
fi
