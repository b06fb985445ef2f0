#!/usr/bin/env bash
# Runs Schemathesis (pinned, from PyPI, into .tools/schemathesis) against a
# freshly started engine and its own GET /openapi.json: every operation with
# bounded generated examples, checking that no answer is a 5xx and that
# every answer (status, content type, headers, body) conforms to the
# document. Management operations run with the management key, integration
# operations with an application's key.
#
#   scripts/schemathesis.sh                 # builds the debug binary if needed
#   MAX_EXAMPLES=100 scripts/schemathesis.sh
#
# Environment: MAX_EXAMPLES (default 25 per operation), SEED (default 1),
# BIN (an engine binary to use instead of building one), CARGO_TARGET_DIR.
set -euo pipefail
VERSION=4.32.5
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV=$ROOT/.tools/schemathesis
MAX_EXAMPLES=${MAX_EXAMPLES:-25}
SEED=${SEED:-1}

mkdir -p "$ROOT/.tools"
(
  flock 9
  if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
  fi
) 9>"$VENV.lock"

if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --bin achievements-engine)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/achievements-engine"
fi

WORK=$(mktemp -d)
KEY=schemathesis-management-key
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
"$BIN" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --management-key "$KEY" \
  --snapshot-interval 0 >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 200); do
  curl -sf "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "$BASE/readyz" >/dev/null || { cat "$WORK/server.log"; exit 1; }

# Something to find: an application, its key, a campaign, an achievement
# and a customer with progress (ids 1, 2, 3 and 4 on a new data directory).
M="Authorization: ManagementKey-v1 $KEY"
J="Content-Type: application/json"
curl -sf -XPOST "$BASE/v1/applications" -H "$M" -H "$J" -d '{"name":"shop"}' >/dev/null
API_KEY=$(curl -sf -XPOST "$BASE/v1/applications/1/api_keys" -H "$M" -H "$J" -d '{"name":"st"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
curl -sf -XPOST "$BASE/v1/applications/1/campaigns" -H "$M" -H "$J" -d '{"name":"c"}' >/dev/null
curl -sf -XPOST "$BASE/v1/applications/1/campaigns/3/achievements" -H "$M" -H "$J" \
  -d '{"name":"coffee","title":"Coffee","description":"","target":5,"period":"1W"}' >/dev/null
curl -sf -XPOST "$BASE/v1/progress_events" -H "Authorization: ApiKey-v1 $API_KEY" -H "$J" \
  -d '{"integrationId":"jane","achievementId":4,"delta":2}' >/dev/null

# A third pass aims every path at the data above (ids 1, 3, 4 and the
# customer jane), so that generated bodies and queries reach the handlers'
# logic rather than a 404.
cat >"$WORK/known-ids.toml" <<'TOML'
[parameters]
"path.applicationId" = 1
"path.campaignId" = 3
"path.achievementId" = 4
"path.integrationId" = "jane"
TOML

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
run() {
  local config=()
  if [ "${1:-}" = --known-ids ]; then
    config=(--config-file "$WORK/known-ids.toml")
    shift
  fi
  "$VENV/bin/schemathesis" "${config[@]}" run "$BASE/openapi.json" \
    --checks "$CHECKS" --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
    --phases examples,coverage,fuzzing --request-timeout 20 --workers 1 \
    --suppress-health-check all --no-color "$@"
}
status=0
echo "== management key: every operation but the integration API's"
run -H "$M" --exclude-tag integration || status=$?
echo "== integration key: the integration API and the feed"
run -H "Authorization: ApiKey-v1 $API_KEY" --include-tag integration || status=$?
echo "== integration key, aimed at the seeded application, achievement and customer"
run --known-ids -H "Authorization: ApiKey-v1 $API_KEY" --include-tag integration || status=$?
echo "== management key, aimed at the seeded application, campaign and achievement"
run --known-ids -H "$M" --exclude-tag integration || status=$?
if grep -q "panicked" "$WORK/server.log"; then
  echo "the server panicked:"; grep -A5 panicked "$WORK/server.log"; status=1
fi
exit $status
