#!/usr/bin/env bash
# Runs the whole test suite: vet, then every package's tests against
# throwaway PostgreSQL 15 clusters that the tests start themselves.
# Needs Go and the PostgreSQL 15 server binaries (PG_BIN, default
# /usr/lib/postgresql/15/bin); installs the Debian package when they are
# missing and this runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PG_BIN/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing postgresql-15 (no server binaries in $PG_BIN)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
  else
    echo "PostgreSQL 15 server binaries not found in $PG_BIN; set PG_BIN" >&2
    exit 1
  fi
fi
export PG_BIN

go vet ./...
# Packages run one at a time: each starts its own clusters, and two cores
# are better spent inside one package than on competing servers.
go test -p 1 -count=1 -timeout 12m "$@" ./...
# A short fuzz run of the decoder and replay path, seeded from the fixtures.
go test -run '^$' -fuzz '^FuzzReplay$' -fuzztime "${FUZZTIME:-15s}" ./fixture
