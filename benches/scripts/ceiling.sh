#!/usr/bin/env bash
# The /version ceiling, measured from outside the project: wrk (Debian's `wrk`, one thread)
# saturates a release `flotilla serve` over TLS with keep-alive connections, first with
# `GET /version` (the cheapest thing the server answers), then with empty check-ins
# (`POST /api/osquery/distributed/read` of enrolled hosts with nothing due), and prints both
# rates and their ratio.
#
#   benches/scripts/ceiling.sh            # HOSTS=1000 CONNS=64 DURATION=20s PORT=8743
#
# The hosts are enrolled and settled (details and labels answered) by flotilla-loadtest
# first, which writes their node keys to a file at the end (`--node-keys-out`: the server
# keeps only digests), and the wrk script sends each request with the next key in turn. Set
# SERVER_ARGS for other backends.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${BIN:-$ROOT/target/release}"
HOSTS="${HOSTS:-1000}"
CONNS="${CONNS:-64}"
DURATION="${DURATION:-20s}"
PORT="${PORT:-8743}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }

DATA="$(mktemp -d /tmp/flotilla-ceiling.XXXXXX)"
# shellcheck disable=SC2086
"$BIN/flotilla" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --enroll-secret ceiling \
  --log-level warn ${SERVER_ARGS:-} >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 60); do grep -q "is listening on" "$DATA/server.log" && break; sleep 0.5; done

# Enroll and settle the hosts: two check-in rounds at a 2 s interval.
"$BIN/flotilla-loadtest" --server "https://localhost:$PORT" --ca "$DATA/tls/ca.pem" \
  --enroll-secret ceiling --hosts "$HOSTS" --start-period 5s --distributed-interval 2s \
  --duration 15s --connections shared --quiet --node-keys-out "$DATA/keys.txt" >/dev/null
echo "hosts with node keys: $(wc -l <"$DATA/keys.txt")"

cat >"$DATA/read.lua" <<LUA
local keys = {}
for line in io.lines("$DATA/keys.txt") do keys[#keys + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #keys + 1
  return wrk.format(nil, nil, nil, '{"node_key":"' .. keys[i] .. '"}')
end
LUA
# The same Lua request hook for /version, so both runs pay wrk the same per request.
cat >"$DATA/version.lua" <<'LUA'
request = function()
  return wrk.format("GET", nil, nil, nil)
end
LUA
# What an empty check-in answers (checked once, outside the timed runs).
curl -s --cacert "$DATA/tls/ca.pem" -H 'Content-Type: application/json' \
  -d "{\"node_key\":\"$(head -1 "$DATA/keys.txt")\"}" \
  "https://localhost:$PORT/api/osquery/distributed/read" >"$DATA/answer.json"
echo "an empty check-in answers: $(cat "$DATA/answer.json")"

run() {
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$@" | tee -a "$DATA/wrk.txt" >&2
}
rate() { awk '/Requests\/sec/ { print $2 }' "$DATA/wrk.txt" | sed -n "${1}p"; }
echo "== GET /version" >&2
run -s "$DATA/version.lua" "https://localhost:$PORT/version"
echo "== POST /api/osquery/distributed/read (empty check-ins)" >&2
run -s "$DATA/read.lua" "https://localhost:$PORT/api/osquery/distributed/read"
VERSION=$(rate 1); READ=$(rate 2)
echo "version_rps=$VERSION checkin_rps=$READ ratio=$(awk -v a="$READ" -v b="$VERSION" 'BEGIN { printf "%.2f", a / b }')"
