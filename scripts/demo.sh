#!/usr/bin/env bash
# The whole story on two throwaway local databases: green (live, old schema)
# and blue (new, new schema). Needs only Go and PostgreSQL 15's server
# binaries; everything it starts, it removes. The daemon's own log lines are
# shown as they come (prefixed "daemon |"), and one /metrics scrape. Colors
# only on a terminal: `bash scripts/demo.sh | cat` has no escapes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_pg

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say()  { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
sql()  { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

work=$(mktemp -d /tmp/cdcbridge-demo-XXXXXX)
pw="demo-$RANDOM$RANDOM"
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  stop_cluster "$work/green"; stop_cluster "$work/blue"
  rm -rf "$work"
}
trap cleanup EXIT

say "Building cdcbridge"
pkg=github.com/cdcbridge/cdcbridge/internal/version
rev=$(git rev-parse HEAD 2>/dev/null || true)
ver=$(git describe --tags --always --dirty 2>/dev/null || echo demo)
go build -ldflags "-X $pkg.Version=$ver -X $pkg.Revision=$rev" -o "$work/cdcbridge" ./cmd/cdcbridge
"$work/cdcbridge" version

say "Starting two throwaway PostgreSQL 15 clusters: green (live, old schema) and blue (new schema)"
gport=$(free_port); bport=$(free_port)
while [ "$bport" = "$gport" ]; do bport=$(free_port); done
start_cluster "$work/green" "$gport" "$pw"
start_cluster "$work/blue" "$bport" "$pw"

# The demo's mapping: the example's, with the metrics endpoint on a port of
# its own.
mport=$(free_port)
while [ "$mport" = "$gport" ] || [ "$mport" = "$bport" ]; do mport=$(free_port); done
cp -r testdata/example/transforms "$work/"
{ cat testdata/example/mapping.yaml; printf 'metrics:\n  listen: 127.0.0.1:%s\n' "$mport"; } >"$work/mapping.yaml"
map="$work/mapping.yaml"

# daemon_log prints the daemon's log lines written since it was last called.
shown=0
daemon_log() {
  [ -f "$work/daemon.log" ] || return 0
  local n; n=$(wc -l <"$work/daemon.log")
  [ "$n" -gt "$shown" ] && sed -n "$((shown + 1)),${n}p" "$work/daemon.log" | sed 's/^/  daemon | /'
  shown=$n
}

# scrape prints a few of the daemon's metrics from its /metrics endpoint.
scrape() {
  local url="http://127.0.0.1:$mport/metrics"
  { if command -v curl >/dev/null; then curl -fsS "$url"; else python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' "$url"; fi; } |
    grep -E '^cdcbridge_(changes_applied_total|transactions_applied_total|lag_bytes|lag_seconds|checkpoint_lsn|direction|streaming)[{ ]' |
    head -20 | sed 's/^/  /'
}

export GREEN_DSN="postgres://postgres:$pw@127.0.0.1:$gport/postgres?sslmode=disable"
export BLUE_DSN="postgres://postgres:$pw@127.0.0.1:$bport/postgres?sslmode=disable"
sql "$GREEN_DSN" -f testdata/example/green.sql
sql "$BLUE_DSN" -f testdata/example/blue.sql
echo "green: customers(name), orders(amount numeric, status text)"
echo "blue:  customers(full_name), orders_v2(amount_cents bigint, state smallint)"

say "cdcbridge check: the mapping, both databases, keys, columns, privileges"
"$work/cdcbridge" check -c "$map"

say "Green already holds data: the first start copies it, then streams"
sql "$GREEN_DSN" <<'SQL'
INSERT INTO customers (name, email) SELECT 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g;
INSERT INTO orders (customer_id, amount, status) SELECT 1 + g % 1000, g / 10.0, 'paid' FROM generate_series(1, 5000) g;
SQL

say "Starting the daemon forward (green -> blue)"
start_daemon() {
  "$work/cdcbridge" run -c "$map" --quiet-period 2s >>"$work/daemon.log" 2>&1 &
  daemon=$!
  for _ in $(seq 1 100); do
    [ "$(grep -c 'msg=streaming component=pipeline' "$work/daemon.log" 2>/dev/null)" -ge "$1" ] && return 0
    sleep 0.1
  done
  cat "$work/daemon.log"; return 1
}
start_daemon 2
daemon_log

say "Writes on green"
sql "$GREEN_DSN" <<'SQL'
INSERT INTO customers (name, email) VALUES ('Ada Lovelace', 'ada@example.com'), ('Alan Turing', NULL);
INSERT INTO orders (customer_id, amount, status, note) VALUES (1001, 19.90, 'new', 'first'), (1002, 5.00, 'paid', NULL);
UPDATE orders SET status = 'shipped' WHERE note = 'first';
SQL
sleep 1
say "Blue has them, in the new shape"
sql "$BLUE_DSN" -c "SELECT count(*) AS customers_copied_and_streamed FROM customers" \
                -c "SELECT id, full_name, email FROM customers WHERE id > 1000 ORDER BY id" \
                -c "SELECT order_id, customer_id, amount_cents, state, note, amount FROM orders_v2 WHERE order_id > 5000 ORDER BY order_id"
daemon_log

say "One scrape of the daemon's /metrics (http://127.0.0.1:$mport/metrics), a few of its cdcbridge_* lines"
scrape

say "kill -9 of the daemon in the middle of a write workload, then a restart"
sql "$GREEN_DSN" -c "INSERT INTO orders (customer_id, amount, status) SELECT 1 + i % 2, i / 100.0, 'new' FROM generate_series(1, 20000) i" &
writer=$!
sleep 0.3
kill -9 "$daemon"; wait "$daemon" 2>/dev/null || true
wait "$writer"
sql "$GREEN_DSN" -c "UPDATE orders SET status = 'paid' WHERE id % 7 = 0; DELETE FROM orders WHERE id % 11 = 0"
start_daemon 4
for _ in $(seq 1 100); do
  n=$(psql -X -At "$BLUE_DSN" -c "SELECT count(*) FROM orders_v2")
  m=$(psql -X -At "$GREEN_DSN" -c "SELECT count(*) FROM orders")
  [ "$n" = "$m" ] && break
  sleep 0.2
done
daemon_log

say "Green and blue agree row for row (the transformed green equals blue)"
compare() {
  green=$(psql -X -At "$GREEN_DSN" -c "SELECT md5(string_agg(format('%s|%s|%s|%s|%s', id, customer_id, (amount*100)::bigint, CASE status WHEN 'new' THEN 0 WHEN 'paid' THEN 1 WHEN 'shipped' THEN 2 ELSE 3 END, note), ',' ORDER BY id)), count(*) FROM orders")
  blue=$(psql -X -At "$BLUE_DSN" -c "SELECT md5(string_agg(format('%s|%s|%s|%s|%s', order_id, customer_id, amount_cents, state, note), ',' ORDER BY order_id)), count(*) FROM orders_v2")
  [ "$green" = "$blue" ]
}
settle() { for _ in $(seq 1 150); do compare && return 0; sleep 0.2; done; return 1; }
if ! settle; then echo "MISMATCH: green $green, blue $blue"; tail -20 "$work/daemon.log"; exit 1; fi
echo "green orders (transformed): $green"
echo "blue  orders_v2:            $blue"
echo "nothing lost, nothing applied twice"

say "Flip: traffic moves to blue while green still takes a few last writes"
( for i in $(seq 1 20); do psql -X -q "$GREEN_DSN" -c "INSERT INTO orders (customer_id, amount, status, note) VALUES (1, $i, 'new', 'last on green')"; done ) &
writer=$!
"$work/cdcbridge" flip -c "$map"
wait "$writer"
daemon_log

say "Writes, updates and deletes on blue, with ids from blue's own sequence"
sql "$BLUE_DSN" <<'SQL'
INSERT INTO customers (full_name, email) VALUES ('Grace Hopper', 'grace@example.com') RETURNING id AS new_customer_id;
INSERT INTO orders_v2 (customer_id, amount_cents, state, note) VALUES (1, 4200, 1, 'placed on blue') RETURNING order_id AS new_order_id;
UPDATE orders_v2 SET state = 2, note = 'shipped from blue' WHERE order_id = 1;
DELETE FROM orders_v2 WHERE order_id = 2;
SQL
settle || { echo "MISMATCH after the flip"; tail -20 "$work/daemon.log"; exit 1; }
say "Green holds every blue write, in the old shape"
sql "$GREEN_DSN" -c "SELECT id, name, email FROM customers ORDER BY id DESC LIMIT 2" \
                 -c "SELECT id, customer_id, amount, status, note FROM orders WHERE id = 1 OR note IN ('placed on blue') OR id = 2 ORDER BY id"

say "cdcbridge status"
sleep 3   # the quiet period: green's direction stops draining and is armed
"$work/cdcbridge" status -c "$map"
daemon_log

say "Rollback: flip again; green is live, its writes reach blue"
"$work/cdcbridge" flip -c "$map"
sql "$GREEN_DSN" -c "INSERT INTO orders (customer_id, amount, status, note) VALUES (2, 7.50, 'paid', 'after the rollback') RETURNING id AS new_order_id"
settle || { echo "MISMATCH after the rollback"; tail -20 "$work/daemon.log"; exit 1; }
sql "$BLUE_DSN" -c "SELECT order_id, amount_cents, state, note FROM orders_v2 WHERE note = 'after the rollback'"
daemon_log

say "cdcbridge verify: the slices agree key by key"
"$work/cdcbridge" verify -c "$map"
say "cdcbridge verify --roundtrip: a rollback would be lossless"
"$work/cdcbridge" verify -c "$map" --roundtrip

say "Stopping the daemon (SIGTERM) and cleaning up its slots, publications and origins"
kill -TERM "$daemon"; wait "$daemon"; daemon=
daemon_log
"$work/cdcbridge" cleanup -c "$map"
say "Done: the clusters are removed on exit"
