#!/usr/bin/env bash
# Prints the rows/s of the forward path draining an insert backlog, beside
# PostgreSQL's own subscription draining the same backlog on the same
# machine. BENCH_ROWS sets the backlog (default 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./bridge -run '^$' -bench 'Backlog|Copy' -benchtime 1x -count "${BENCH_COUNT:-1}" | grep -E 'rows/s|^ok|FAIL'
