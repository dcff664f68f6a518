#!/usr/bin/env bash
# Runs the whole test suite: vet, then every package's tests against
# throwaway PostgreSQL 15 clusters that the tests start themselves, then the
# tests of deploy/ (a module of its own) with the tools of each ecosystem.
# Needs Go and the PostgreSQL 15 server binaries (PG_BIN, default
# /usr/lib/postgresql/15/bin), and for deploy/ promtool, buildah,
# systemd-analyze and the CA bundle; installs the Debian packages when they
# are missing and this runs as root.
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

# The deploy/ tests' tools. Without them those tests skip, and fail in CI.
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v buildah >/dev/null || need+=(buildah)
command -v systemd-analyze >/dev/null || need+=(systemd)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]} (for the deploy/ tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]}: the deploy/ tests that need them skip (and fail with CI=true)" >&2
  fi
fi

go vet ./...
# Packages run one at a time: each starts its own clusters, and two cores
# are better spent inside one package than on competing servers.
go test -p 1 -count=1 -timeout 12m "$@" ./...
# deploy/: the systemd unit, container image, Kubernetes manifests,
# Prometheus alerts and Grafana dashboard, each checked by its own tool.
(cd deploy && go vet ./... && go test -count=1 -timeout 10m ./...)
# A short fuzz run of the decoder and replay path, seeded from the fixtures.
go test -run '^$' -fuzz '^FuzzReplay$' -fuzztime "${FUZZTIME:-15s}" ./fixture
