#!/usr/bin/env bash
# Starts a local cluster on loopback for trying cluster mode: three
# nats-server processes forming a JetStream cluster and three engine nodes
# joined to it. Ctrl-C stops everything; the data stays in .cluster/ (run
# with CLEAN=1 to start afresh).
#
#   scripts/cluster.sh                 # nodes on 127.0.0.1:8081, :8082, :8083
#
# Environment:
#   BIN        engine binary (default: target/release/achievements-engine,
#              built first with `cargo build --release`)
#   DIR        where servers and nodes keep their files (default .cluster)
#   NODES      engine nodes to start (default 3)
#   LEASE_SECS lease length passed to the nodes (default 10)
#   CLEAN=1    remove DIR first
# nats-server comes from scripts/nats-server.sh (pinned, into .tools/nats).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR=${DIR:-$ROOT/.cluster}
NODES=${NODES:-3}
LEASE_SECS=${LEASE_SECS:-10}
NATS=$("$ROOT/scripts/nats-server.sh")
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  BIN="$ROOT/target/release/achievements-engine"
fi
[ "${CLEAN:-0}" = 1 ] && rm -rf "$DIR"
mkdir -p "$DIR"

pids=()
cleanup() {
  # Engine nodes first, gracefully (they hand their partitions over), then
  # the servers.
  for pid in "${pids[@]:3}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

routes="nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224"
for i in 0 1 2; do
  "$NATS" -a 127.0.0.1 -p $((4222 + i)) -n "n$i" -js -sd "$DIR/nats-$i" \
    --cluster_name achv --cluster "nats://127.0.0.1:$((6222 + i))" --routes "$routes" \
    >"$DIR/nats-$i.log" 2>&1 &
  pids+=($!)
done
urls="nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"

for i in $(seq 1 "$NODES"); do
  mkdir -p "$DIR/node-$i"
  "$BIN" --listen "127.0.0.1:$((8080 + i))" --data-dir "$DIR/node-$i" \
    --cluster "$urls" --node-id "node-$i" --lease-secs "$LEASE_SECS" \
    >"$DIR/node-$i.log" 2>&1 &
  pids+=($!)
done

for i in $(seq 1 "$NODES"); do
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$((8080 + i))/readyz" >/dev/null 2>&1 && break
    sleep 0.5
  done
done
echo "cluster up: nodes on $(seq -s ' ' -f 'http://127.0.0.1:%g' 8081 $((8080 + NODES)))"
echo "management key: $(cat "$DIR/node-1/management.key" 2>/dev/null || echo '(see node logs)')"
echo "ownership:      curl -H \"Authorization: ManagementKey-v1 \$KEY\" http://127.0.0.1:8081/v1/admin/cluster"
echo "logs in $DIR; Ctrl-C stops"
wait
