#!/usr/bin/env bash
# What syncing osquery's logs to disk costs: wrk (Debian's `wrk`, one thread) posts result-log
# requests (LINES lines each, HOSTS enrolled hosts in turn) to a release `flotilla serve` over
# TLS keep-alive connections, first as shipped (each request answered once its lines are
# synced, group-committed), then with --no-log-fsync. Prints, for each: requests a second,
# wrk's latency p50 / p99, the syncs the server made, syncs per request, and the server's CPU.
#
#   benches/scripts/log-fsync.sh        # HOSTS=64 LINES=10 CONNS=64 DURATION=20s PORT=8744
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${BIN:-$ROOT/target/release}"
HOSTS="${HOSTS:-64}"
LINES="${LINES:-10}"
CONNS="${CONNS:-64}"
DURATION="${DURATION:-20s}"
PORT="${PORT:-8744}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }

bench() {
  local mode="$1" extra="$2"
  local data
  data="$(mktemp -d /tmp/flotilla-logbench.XXXXXX)"
  # shellcheck disable=SC2086
  "$BIN/flotilla" serve --listen "127.0.0.1:$PORT" --data-dir "$data" --enroll-secret bench \
    --log-level warn $extra ${SERVER_ARGS:-} >"$data/server.log" 2>&1 &
  local server=$!
  for _ in $(seq 1 60); do grep -q "is listening on" "$data/server.log" && break; sleep 0.5; done
  local curl=(curl -s --cacert "$data/tls/ca.pem" -H 'Content-Type: application/json')
  for i in $(seq 1 "$HOSTS"); do
    "${curl[@]}" -d "{\"enroll_secret\":\"bench\",\"host_identifier\":\"bench-$i\"}" \
      "https://localhost:$PORT/api/osquery/enroll" | python3 -c 'import json,sys; print(json.load(sys.stdin)["node_key"])'
  done >"$data/keys.txt"
  python3 - "$data/keys.txt" "$LINES" >"$data/bodies.txt" <<'PY'
import json, sys
keys = open(sys.argv[1]).read().split()
lines = int(sys.argv[2])
for n, key in enumerate(keys):
    data = [{"name": "pack/Global/bench", "hostIdentifier": f"bench-{n}", "calendarTime": "Thu Dec  3 12:00:00 2026 UTC",
             "unixTime": 1796212800, "epoch": 0, "counter": i, "numerics": False,
             "decorations": {"host_uuid": f"UUID-{n}", "hostname": f"bench-{n}"}, "action": "snapshot",
             "snapshot": [{"pid": str(1000 + i), "name": "nginx", "path": "/usr/sbin/nginx", "cmdline": "nginx: worker process"}]}
            for i in range(lines)]
    print(json.dumps({"node_key": key, "log_type": "result", "data": data}))
PY
  cat >"$data/log.lua" <<LUA
local bodies = {}
for line in io.lines("$data/bodies.txt") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
LUA
  local ticks_before ticks_after hz
  hz=$(getconf CLK_TCK)
  ticks_before=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$server/stat")
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$data/log.lua" \
    "https://localhost:$PORT/api/osquery/log" >"$data/wrk.txt"
  ticks_after=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$server/stat")
  "${curl[@]}" "https://localhost:$PORT/metrics" >"$data/metrics.txt"
  kill "$server"; wait "$server" 2>/dev/null || true
  local rps p50 p99 syncs requests seconds sync_seconds
  rps=$(awk '/Requests\/sec/ { print $2 }' "$data/wrk.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$data/wrk.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$data/wrk.txt")
  requests=$(awk '/requests in/ { print $1 }' "$data/wrk.txt")
  syncs=$(awk '/^flotilla_log_fsyncs_total\{log="result"\}/ { print $2 }' "$data/metrics.txt")
  sync_seconds=$(awk '/^flotilla_log_fsync_seconds_total\{log="result"\}/ { print $2 }' "$data/metrics.txt")
  seconds=${DURATION%s}
  echo "$mode: ${rps} req/s, p50 ${p50}, p99 ${p99}, ${requests} requests, fsyncs ${syncs:-0}" \
    "($(awk -v s="${syncs:-0}" -v r="$requests" 'BEGIN { printf "%.3f", s / r }') per request," \
    "$(awk -v t="${sync_seconds:-0}" -v s="${syncs:-0}" 'BEGIN { printf "%.2f", (s > 0 ? t / s * 1000 : 0) }') ms each)," \
    "server CPU $(awk -v t=$((ticks_after - ticks_before)) -v hz="$hz" -v s="$seconds" 'BEGIN { printf "%.0f", t / hz / s * 100 }') %"
  rm -rf "$data"
}

bench fsync ""
bench no-fsync "--no-log-fsync"
