#!/usr/bin/env bash
# The web console in a real browser: headless Chromium driven by Selenium
# (tests/browser/console_test.py) against a freshly started server.
#
# Installs what it needs when it is missing: Debian's chromium and
# chromium-driver (apt-get), and a pinned Selenium in a virtualenv under
# .tools/browser. Builds the binary when needed (honouring CARGO_TARGET_DIR),
# starts it on a free loopback port with a temporary data directory, waits
# for /readyz, runs the test and always stops the server.
#
#   scripts/console-test.sh                                # the test
#   SCREENSHOTS_DIR=docs/console scripts/console-test.sh   # + screenshots
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# 4.52.0 wants a certifi newer than the package index offers here.
SELENIUM_VERSION=4.51.0
export CHROMIUM_BINARY=/usr/bin/chromium
export CHROMEDRIVER_BINARY=/usr/bin/chromedriver

# --- Chromium and its driver (Debian packages) ------------------------------
if [ ! -x "$CHROMIUM_BINARY" ] || [ ! -x "$CHROMEDRIVER_BINARY" ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y chromium chromium-driver; then
        $sudo apt-get update
        $sudo apt-get install -y chromium chromium-driver
    fi
fi

# --- Selenium, pinned, in its own virtualenv --------------------------------
venv=$root/.tools/browser
if ! "$venv/bin/python" -c "import sys, selenium; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION"
fi
# Selenium Manager must not try to download a browser or a driver: both are
# given explicitly, and the network reaches package registries only.
export SE_OFFLINE=true

# --- The server -------------------------------------------------------------
cargo build --bin achievements-engine
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
binary=$target_dir/debug/achievements-engine

work=$(mktemp -d)
server=""
cleanup() {
    status=$?
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
        echo "--- server log (last 40 lines) ---" >&2
        tail -n 40 "$work/server.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="console-test-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
"$binary" --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --management-key "$key" --snapshot-interval 0 >"$work/server.log" 2>&1 &
server=$!

base="http://127.0.0.1:$port"
python3 - "$base/readyz" "$server" <<'PY'
import os, sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    try:
        os.kill(int(sys.argv[2]), 0)
    except OSError:
        sys.exit("the server exited before it became ready")
    if time.monotonic() > deadline:
        sys.exit(f"the server did not become ready at {sys.argv[1]}")
    time.sleep(0.2)
PY

CONSOLE_BASE_URL=$base MANAGEMENT_KEY=$key "$venv/bin/python" tests/browser/console_test.py
