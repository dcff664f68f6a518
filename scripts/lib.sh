# Shared by the scripts: throwaway PostgreSQL 15 clusters on free loopback
# ports, run as "nobody" when we are root (initdb refuses root).
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

ensure_pg() {
  if [ ! -x "$PG_BIN/initdb" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing postgresql-15 (no server binaries in $PG_BIN)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
    else
      echo "PostgreSQL 15 server binaries not found in $PG_BIN; set PG_BIN" >&2
      exit 1
    fi
  fi
  command -v psql >/dev/null || { echo "psql is needed" >&2; exit 1; }
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

# start_cluster DIR PORT PASSWORD: initdb and start a logical-replication-ready server.
start_cluster() {
  local dir=$1 port=$2 pw=$3
  mkdir -p "$dir"
  printf '%s\n' "$pw" >"$dir.pw"
  if [ "$(id -u)" = 0 ]; then chown nobody "$dir" "$dir.pw"; chmod 755 "$(dirname "$dir")"; fi
  as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --pwfile "$dir.pw" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync >"$dir.initdb.log" 2>&1 ||
    { cat "$dir.initdb.log"; return 1; }
  rm -f "$dir.pw"
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
fsync = off
CONF
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

stop_cluster() {
  as_pg "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}
