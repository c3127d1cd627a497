#!/usr/bin/env bash
# Reproduce a record run: a release `flotilla serve` and `flotilla-loadtest` side by side on
# this machine, the server's RSS before and after enrolment, and one JSON line per run
# appended to a results file.
#
#   loadtest/run-record.sh --hosts 10000 [--scenario checkin|fanout|version]
#                          [--duration 5m] [--start-period 60s] [--interval 10s]
#                          [--results FILE] [--label TEXT] [-- EXTRA LOADTEST ARGS]
#
# Environment:
#   SERVER_ARGS   extra `flotilla serve` flags (e.g. the MySQL / Redis backend flags)
#   PORT          server port (default 8443)
#   SKIP_BUILD=1  use the release binaries already built
#   CARGO_TARGET_DIR  where the release binaries are (default ./target)
#
# For 100,000 hosts pass `-- --connections pooled` (one connection per host needs 100,000
# open files on each side; see flotilla-loadtest --help, CONNECTIONS AND MEMORY).
#
# The run raises the open-files limit (each simulated host holds 4 connections, and the
# server holds the other end of each), starts the server on 127.0.0.1 with a fresh data
# directory, waits for it, samples its VmRSS, runs the load tester, samples VmRSS/VmHWM
# and CPU again while every host is still enrolled, stops the server and appends a line to
# the results file (default loadtest/results.jsonl). The whole load-tester summary is kept
# next to it as <results>.d/<timestamp>-<scenario>-<hosts>.json.
set -euo pipefail

HOSTS=1000
SCENARIO=checkin
DURATION=2m
START_PERIOD=""
INTERVAL=10s
LABEL=""
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RESULTS="$ROOT/loadtest/results.jsonl"
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) HOSTS="$2"; shift 2 ;;
    --scenario) SCENARIO="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --start-period) START_PERIOD="$2"; shift 2 ;;
    --interval) INTERVAL="$2"; shift 2 ;;
    --results) RESULTS="$2"; shift 2 ;;
    --label) LABEL="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
# Default: enrol 1,000 hosts a second, at least 10 s.
if [ -z "$START_PERIOD" ]; then START_PERIOD="$(( HOSTS / 1000 > 10 ? HOSTS / 1000 : 10 ))s"; fi

PORT="${PORT:-8443}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SECRET="record-enroll-secret"
ADMIN_EMAIL="admin@example.com"
ADMIN_PASSWORD="record-password-1!"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release -p flotilla-api --bin flotilla -p flotilla-loadtest --bin flotilla-loadtest)
fi
SERVER_BIN="$TARGET/release/flotilla"
LOADTEST_BIN="$TARGET/release/flotilla-loadtest"

# Open files: 4 per host on each side, plus slack. Raising the hard limit needs root
# (or CAP_SYS_RESOURCE); fall back to the hard limit.
NEED=$(( HOSTS * 4 + 4096 ))
ulimit -Hn "$NEED" 2>/dev/null || true
ulimit -n "$NEED" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
  echo "warning: open files limited to $(ulimit -n), this run needs ~$NEED" >&2
fi

DATA="$(mktemp -d /tmp/flotilla-record.XXXXXX)"
LOG="$DATA/server.log"
# shellcheck disable=SC2086
"$SERVER_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
  --enroll-secret "$SECRET" --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" \
  --log-level warn ${SERVER_ARGS:-} >"$LOG" 2>&1 &
SERVER_PID=$!
cleanup() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 120); do
  grep -q "is listening on" "$LOG" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.5
done
grep -q "is listening on" "$LOG" || { echo "server did not start" >&2; cat "$LOG" >&2; exit 1; }

status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SERVER_PID/status"; }
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$SERVER_PID/stat"; }
RSS_BEFORE_KB=$(status_kb VmRSS)
CPU_BEFORE=$(cpu_ticks)
HZ=$(getconf CLK_TCK)

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RESULTS.d"
SUMMARY="$RESULTS.d/$STAMP-$SCENARIO-$HOSTS.json"
FANOUT_ARGS=()
if [ "$SCENARIO" = fanout ]; then
  FANOUT_ARGS=(--admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD")
fi
"$LOADTEST_BIN" --server "https://localhost:$PORT" --ca "$DATA/tls/ca.pem" \
  --enroll-secret "$SECRET" --hosts "$HOSTS" --start-period "$START_PERIOD" \
  --distributed-interval "$INTERVAL" --duration "$DURATION" --scenario "$SCENARIO" \
  --summary "$SUMMARY" "${FANOUT_ARGS[@]}" "${EXTRA[@]}" >/dev/null

# The server's own view of check-in latency (handler time, from /metrics): the smallest
# histogram bound under which 99 % of distributed reads finished, in ms.
curl -s --cacert "$DATA/tls/ca.pem" "https://localhost:$PORT/metrics" >"$DATA/metrics.txt" || true
SERVER_P99_MS=$(awk -F'[{}" ]+' '/^http_request_duration_seconds_bucket\{handler="\/api\/v1\/osquery\/distributed\/read"/ {
    for (i = 1; i <= NF; i++) if ($i ~ /le=$/) le = $(i + 1); n[++k] = $NF; b[k] = le }
  END { total = n[k]; for (i = 1; i <= k; i++) if (n[i] >= 0.99 * total) { print (b[i] == "+Inf" ? "null" : b[i] * 1000); exit } print "null" }' "$DATA/metrics.txt")
[ -n "$SERVER_P99_MS" ] || SERVER_P99_MS=null
# Syncs of result.log to disk (group-committed: fewer than log requests).
LOG_FSYNCS=$(awk '/^flotilla_log_fsyncs_total\{log="result"\}/ { print $2 }' "$DATA/metrics.txt")
[ -n "$LOG_FSYNCS" ] || LOG_FSYNCS=null

# The hosts are still enrolled (the server keeps them), so this is RSS after enrolment.
RSS_AFTER_KB=$(status_kb VmRSS)
HWM_KB=$(status_kb VmHWM)
CPU_AFTER=$(cpu_ticks)
cleanup
trap - EXIT

jq -c \
  --arg date "$STAMP" \
  --arg lbl "$LABEL" \
  --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --arg server_args "${SERVER_ARGS:-}" \
  --argjson cores "$(nproc)" \
  --argjson mem_kb "$(awk '/MemTotal/ { print $2 }' /proc/meminfo)" \
  --argjson rss_before "$RSS_BEFORE_KB" --argjson rss_after "$RSS_AFTER_KB" \
  --argjson server_p99 "$SERVER_P99_MS" --argjson log_fsyncs "$LOG_FSYNCS" \
  --argjson hwm "$HWM_KB" --argjson cpu_ticks "$(( CPU_AFTER - CPU_BEFORE ))" --argjson hz "$HZ" \
  '{
    date: $date, "label": $lbl, commit: $commit, cores: $cores,
    mem_gib: (($mem_kb / 1048576) * 10 | round / 10),
    scenario: .scenario, hosts: .hosts, enrolled_hosts: .enrolled_hosts,
    interval_s: .options.distributed_interval_s, duration_s: (.duration_s | round),
    server_args: $server_args,
    requests: .requests, errors: .errors, request_rate_per_s: (.request_rate_per_s | round),
    checkin_p50_ms: .endpoints.distributed_read.latency_ms.p50_ms,
    checkin_p99_ms: .endpoints.distributed_read.latency_ms.p99_ms,
    checkin_max_ms: .endpoints.distributed_read.latency_ms.max_ms,
    enroll_p99_ms: .endpoints.enroll.latency_ms.p99_ms,
    steady_from_s: .steady_state.from_s,
    steady_requests: .steady_state.requests, steady_errors: .steady_state.errors,
    steady_rate_per_s: (.steady_state.request_rate_per_s | round),
    steady_checkin_p50_ms: .steady_state.endpoints.distributed_read.latency_ms.p50_ms,
    steady_checkin_p99_ms: .steady_state.endpoints.distributed_read.latency_ms.p99_ms,
    steady_checkin_max_ms: .steady_state.endpoints.distributed_read.latency_ms.max_ms,
    server_checkin_p99_at_most_ms: $server_p99,
    log_requests: .endpoints.log.requests,
    log_p50_ms: .endpoints.log.latency_ms.p50_ms,
    log_p99_ms: .endpoints.log.latency_ms.p99_ms,
    result_log_fsyncs: $log_fsyncs,
    server_rss_mb_before: ($rss_before / 1024 | round),
    server_rss_mb_after: ($rss_after / 1024 | round),
    server_rss_mb_peak: ($hwm / 1024 | round),
    server_rss_per_host_kb: (if (.enrolled_hosts // 0) > 0
      then (($rss_after - $rss_before) / .enrolled_hosts * 100 | round / 100) else null end),
    server_cpu_percent: ($cpu_ticks / $hz / .duration_s * 100 | round),
    client_cpu_percent: (.client.cpu_percent | round),
    client_rss_per_host_kb: .client.rss_per_host_kb,
    fanout: (.fanout.campaigns // null | if . == null then null else map({
      online, results, first_result_s, p50_hosts_s, p99_hosts_s, all_hosts_s,
      engine_p50_ms: .engine_latency.p50_ms, engine_p99_ms: .engine_latency.p99_ms
    }) end)
  }' "$SUMMARY" | tee -a "$RESULTS"
rm -rf "$DATA"
