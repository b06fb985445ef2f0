#!/usr/bin/env bash
# Sustained HTTP load with wrk against the engine or the bare baseline, on
# 127.0.0.1 only.
#
#   scripts/load.sh DURATION CONNECTIONS THREADS [engine|baseline|baseline-durable] [single|single-ids|batch]
#   scripts/load.sh 20s 64 2 engine
#   scripts/load.sh 20s 64 2 baseline
#   scripts/load.sh 20s 64 2 baseline-durable   # the baseline with a log:
#       each answer waits for an fdatasync covering its request (group commit)
#   scripts/load.sh 20s 16 2 engine batch
#
# Builds the release binary (or the `baseline` example), starts it on a
# temporary data directory, creates an application, a key, a campaign and a
# weekly on_expiration achievement with curl (engine only), runs wrk with
# scripts/progress_event.lua for DURATION and prints throughput and
# p50/p90/p99/p99.9 latency; stops the server at the end.
#
# Environment:
#   WORKERS=2          server workers (--workers)
#   PORT=28417         port on 127.0.0.1 (must be free)
#   CUSTOMERS=100000   customers the events are spread over
#   PRELOAD=0          pairs to create with 1,000-event batches before the run
#   SNAPSHOTS=0        1: POST /v1/admin/snapshots in a loop during the run
#   SETTLE=0           seconds to wait after the preload (e.g. 240: the
#                      preloaded pairs, idle for a minute, are frozen by then;
#                      achv_frozen_pairs is printed before the run)
#   PERF=0             1: perf record the server during the run, print the top
#   PERF_OUT=          with PERF=1: also keep perf.data there
#   PERF_CALLGRAPH=-g  with PERF=1: how to record call chains (the binary has
#                      no frame pointers: "--call-graph dwarf" gives them)
#   RUST_LOG=warn      the server's log filter (info logs every request)
#   NO_BUILD=0         1: use the binaries already built
#   ENGINE_BIN=        the engine binary to run (A/B runs of two builds)
#   KEEP_LOG=          a file to keep the server's output in
#
# Besides wrk's figures it prints the server's CPU time over the run and per
# request (user + system, from /proc): steadier between runs than req/s.
set -euo pipefail

DURATION=${1:-20s}
CONNECTIONS=${2:-64}
THREADS=${3:-2}
TARGET=${4:-engine}
MODE=${5:-single}
WORKERS=${WORKERS:-2}
PORT=${PORT:-28417}
CUSTOMERS=${CUSTOMERS:-100000}
PRELOAD=${PRELOAD:-0}
SNAPSHOTS=${SNAPSHOTS:-0}
SETTLE=${SETTLE:-0}
PERF=${PERF:-0}
export RUST_LOG=${RUST_LOG:-warn}
HOST=127.0.0.1
BASE="http://$HOST:$PORT"
MKEY=load-management-key

cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

case "$TARGET" in
  engine)
    [ "${NO_BUILD:-0}" = 1 ] || cargo build --release --quiet --bin achievements-engine
    ;;
  baseline|baseline-durable)
    [ "${NO_BUILD:-0}" = 1 ] || cargo build --release --quiet --example baseline
    ;;
  *) echo "target must be engine, baseline or baseline-durable" >&2; exit 2 ;;
esac
case "$MODE" in
  single|single-ids|batch) ;;
  *) echo "mode must be single, single-ids or batch" >&2; exit 2 ;;
esac

if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
  echo "something already listens on $HOST:$PORT; set PORT" >&2
  exit 1
fi

DATA=$(mktemp -d "${TMPDIR:-/tmp}/achv-load.XXXXXX")
SERVER_PID=
SNAP_PID=
cleanup() {
  [ -n "$SNAP_PID" ] && kill "$SNAP_PID" 2>/dev/null || true
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  [ -n "${KEEP_LOG:-}" ] && cp "$DATA.log" "$KEEP_LOG"
  rm -rf "$DATA" "$DATA.log" "$DATA.perf" "$DATA.wrk"
}
trap cleanup EXIT

if [ "$TARGET" = engine ]; then
  "${ENGINE_BIN:-target/release/achievements-engine}" --listen "$HOST:$PORT" --data-dir "$DATA" \
    --management-key "$MKEY" --workers "$WORKERS" --snapshot-interval 0 \
    >"$DATA.log" 2>&1 &
elif [ "$TARGET" = baseline-durable ]; then
  target/release/examples/baseline --listen "$HOST:$PORT" --workers "$WORKERS" \
    --log "$DATA/baseline.log" >"$DATA.log" 2>&1 &
else
  target/release/examples/baseline --listen "$HOST:$PORT" --workers "$WORKERS" \
    >"$DATA.log" 2>&1 &
fi
SERVER_PID=$!
for _ in $(seq 1 300); do
  curl -sf "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DATA.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf "$BASE/readyz" >/dev/null || { echo "server not ready" >&2; cat "$DATA.log" >&2; exit 1; }

KEY=baseline-key
ACH=4
if [ "$TARGET" = engine ]; then
  M="Authorization: ManagementKey-v1 $MKEY"
  J="Content-Type: application/json"
  id() { grep -o '"id":[0-9]*' | head -1 | cut -d: -f2; }
  APP=$(curl -sf -XPOST "$BASE/v1/applications" -H "$M" -H "$J" \
    -d '{"name": "load", "timezone": "UTC"}' | id)
  KEY=$(curl -sf -XPOST "$BASE/v1/applications/$APP/api_keys" -H "$M" -H "$J" \
    -d '{"name": "load"}' | sed 's/.*"key":"\([^"]*\)".*/\1/')
  CAMPAIGN=$(curl -sf -XPOST "$BASE/v1/applications/$APP/campaigns" -H "$M" -H "$J" \
    -d '{"name": "load"}' | id)
  ACH=$(curl -sf -XPOST "$BASE/v1/applications/$APP/campaigns/$CAMPAIGN/achievements" \
    -H "$M" -H "$J" -d '{"name": "visits", "title": "Visits", "description": "",
      "target": 1000000000000, "period": "1W", "recurrencePolicy": "on_expiration"}' | id)
  [ -n "$APP" ] && [ -n "$KEY" ] && [ -n "$ACH" ] || { echo "setup failed" >&2; exit 1; }
fi

if [ "$PRELOAD" -gt 0 ]; then
  started=$(date +%s.%N)
  for ((b = 0; b < PRELOAD; b += 1000)); do
    end=$((b + 999 < PRELOAD - 1 ? b + 999 : PRELOAD - 1))
    body=$(printf "{\"integrationId\":\"pre-%07d\",\"achievementId\":$ACH,\"delta\":1}," $(seq "$b" "$end"))
    printf '{"events":[%s]}' "${body%,}" |
      curl -sf -XPOST "$BASE/v1/progress_events/batch?results=none" \
        -H "Authorization: ApiKey-v1 $KEY" -H "Content-Type: application/json" \
        --data-binary @- >/dev/null
  done
  echo "preloaded $PRELOAD pairs in $(echo "$(date +%s.%N) - $started" | bc) s" >&2
fi
if [ "$SETTLE" -gt 0 ]; then
  sleep "$SETTLE"
  echo "after ${SETTLE} s: $(curl -sf "$BASE/metrics" -H "Authorization: ManagementKey-v1 $MKEY" |
    grep -E '^achv_(frozen_)?pairs ' | tr '\n' ' ')" >&2
fi

if [ "$SNAPSHOTS" = 1 ]; then
  (
    while true; do
      t0=$(date +%s%N)
      curl -sf -XPOST "$BASE/v1/admin/snapshots" -H "Authorization: ManagementKey-v1 $MKEY" >/dev/null || true
      echo "snapshot took $(( ($(date +%s%N) - t0) / 1000000 )) ms" >&2
      sleep 1
    done
  ) &
  SNAP_PID=$!
fi

SECS=${DURATION%s}
PERF_PID=
if [ "$PERF" = 1 ]; then
  perf record -F 499 ${PERF_CALLGRAPH:--g} -p "$SERVER_PID" -o "$DATA.perf" -- sleep "$SECS" >/dev/null 2>&1 &
  PERF_PID=$!
fi

# The server's CPU time (user + system, clock ticks) before and after the run:
# its cost per request, which varies less between runs than the throughput.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
CPU_BEFORE=$(cpu_ticks)
echo "wrk: $TARGET $MODE, $DURATION, $CONNECTIONS connections, $THREADS threads, server workers $WORKERS, $(nproc) CPUs" >&2
WRK_MODE=single
[ "$MODE" = batch ] && WRK_MODE=batch
ACHV_KEY=$KEY ACHV_ACHIEVEMENT=$ACH ACHV_MODE=$WRK_MODE ACHV_CUSTOMERS=$CUSTOMERS \
  ACHV_EVENT_IDS=$([ "$MODE" = single-ids ] && echo 1 || echo 0) \
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --timeout 10s \
  -s scripts/progress_event.lua "$BASE" | tee "$DATA.wrk"
CPU_SECS=$(echo "($(cpu_ticks) - $CPU_BEFORE) / $(getconf CLK_TCK)" | bc -l)
REQUESTS=$(sed -n 's/^requests: \([0-9]*\) in.*/\1/p' "$DATA.wrk")
if [ -n "$REQUESTS" ] && [ "$REQUESTS" -gt 0 ]; then
  printf 'server CPU: %.1f s, %.1f us per request\n' "$CPU_SECS" \
    "$(echo "$CPU_SECS * 1000000 / $REQUESTS" | bc -l)" >&2
fi

if [ -n "$PERF_PID" ]; then
  wait "$PERF_PID" || true
  perf report -i "$DATA.perf" --no-children --percent-limit 1.5 --stdio --sort comm,dso,symbol 2>/dev/null | cut -c1-160 |
    grep -E "^ +[0-9]" | sed "s/ *$//" | head -40
  [ -n "${PERF_OUT:-}" ] && cp "$DATA.perf" "$PERF_OUT"
  rm -f "$DATA.perf"
fi
if [ "$TARGET" = engine ]; then
  echo "server RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$SERVER_PID/status)" >&2
fi
