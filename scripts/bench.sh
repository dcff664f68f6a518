#!/usr/bin/env bash
# Prints the rows/s of the forward path draining an insert backlog and of the
# initial copy, beside PostgreSQL's own subscription on the same data and
# machine, and how long the daemon takes to stream again after a restart of
# each database and a killed walsender. BENCH_ROWS sets the backlog (default
# 200000); BENCH_LOG=file keeps the recovery run's daemon logs.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./pipeline ./daemon -run '^$' -bench 'Backlog|Copy|Recovery' -benchtime 1x -count "${BENCH_COUNT:-1}" | grep -E 'rows/s|recovery after|^ok|FAIL'
