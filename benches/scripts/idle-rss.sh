#!/usr/bin/env bash
# What an idle enrolled host costs in server memory: enroll N simulated hosts (release build,
# embedded SQLite), stop the server, start it again on the same data directory (every host
# loaded from the store, as after a restart, with no connection and no transient garbage),
# and compare its resident set with a server started on an empty directory.
#
#   N=100000 benches/scripts/idle-rss.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${BIN:-$ROOT/target/release}"
N="${N:-100000}"
PORT="${PORT:-8843}"
DATA="$(mktemp -d /tmp/flotilla-idle.XXXXXX)"
EMPTY="$(mktemp -d /tmp/flotilla-empty.XXXXXX)"
PID=""
trap 'kill $PID 2>/dev/null; rm -rf "$DATA" "$EMPTY"' EXIT

serve() { # data-dir; sets PID once the server listens
  "$BIN/flotilla" serve --listen "127.0.0.1:$PORT" --data-dir "$1" --enroll-secret idle \
    --log-level warn >"$1/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 240); do grep -q "is listening on" "$1/server.log" && break; sleep 0.5; done
}
stop() { kill -TERM "$PID"; wait "$PID" || true; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

serve "$DATA"
"$BIN/flotilla-loadtest" --server "https://localhost:$PORT" --ca "$DATA/tls/ca.pem" \
  --enroll-secret idle --hosts "$N" --start-period "$(( N / 1000 > 10 ? N / 1000 : 10 ))s" \
  --duration "$(( N / 1000 + 40 ))s" --connections pooled --quiet >/dev/null
ACTIVE_KB=$(rss_kb "$PID")
stop

serve "$DATA"; sleep 5
LOADED_KB=$(rss_kb "$PID")
HOSTS=$(curl -s --cacert "$DATA/tls/ca.pem" "https://localhost:$PORT/metrics" |
  awk '/^flotilla_hosts_enrolled\{/ { n += $NF } END { print n }')
stop

serve "$EMPTY"; sleep 5
EMPTY_KB=$(rss_kb "$PID")
stop

echo "hosts=$HOSTS empty_rss_mb=$(( EMPTY_KB / 1024 )) loaded_rss_mb=$(( LOADED_KB / 1024 )) rss_mb_after_the_run=$(( ACTIVE_KB / 1024 ))"
awk -v a="$LOADED_KB" -v b="$EMPTY_KB" -v n="$HOSTS" 'BEGIN { printf "idle host: %.2f KB of server RSS\n", (a - b) / n }'
