#!/usr/bin/env bash
# `make lab`: JupyterLab from .venv at exercises/, on this computer only.
#
#   make lab                      port 8888 (or the next free one), a fresh random token
#   make lab PORT=9000            another port
#   LAB_OPEN_BROWSER=1 make lab   also open a browser tab (default: only when a desktop is detected)
#
# The server listens on 127.0.0.1 only, so nobody else on the network can reach it; the
# token keeps out other programs and users of this computer.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="$ROOT/.venv/bin/python"
JUPYTER="$ROOT/.venv/bin/jupyter"
PORT="${PORT:-8888}"

if [ ! -x "$JUPYTER" ]; then
  echo "No .venv yet: run 'make lab' (it installs everything first) or 'make install'." >&2
  exit 1
fi

TOKEN="${LAB_TOKEN:-$("$PY" -c 'import secrets; print(secrets.token_hex(24))')}"
args=(lab --ip=127.0.0.1 --ServerApp.root_dir="$ROOT/exercises" --IdentityProvider.token="$TOKEN")
[ "$(id -u)" -eq 0 ] && args+=(--allow-root)

# a free port from $PORT upwards, so the link printed below is the right one
PORT="$("$PY" - "$PORT" <<'PY'
import socket, sys
start = int(sys.argv[1])
for port in range(start, start + 50):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
else:
    sys.exit(f"no free port in {start}..{start + 49}: choose one with make lab PORT=N")
PY
)"
args+=(--port="$PORT" --ServerApp.port_retries=0)

open_browser="${LAB_OPEN_BROWSER:-}"
if [ -z "$open_browser" ]; then
  open_browser=0
  if [ "$(uname)" = Darwin ] || { [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "$(id -u)" -ne 0 ]; }; then
    open_browser=1
  fi
fi
[ "$open_browser" = 1 ] || args+=(--no-browser)

banner() {
  cat <<EOT

  ------------------------------------------------------------------------
  JupyterLab is running at the exercises. Open this link in your browser:

      http://127.0.0.1:$PORT/lab?token=$TOKEN

  Your work is saved in exercises/<assignment>/<assignment>.ipynb:
  that file is what you hand in.
  Stop JupyterLab with Ctrl+C here (twice).
  ------------------------------------------------------------------------

EOT
}
# print the link once the server answers, below its start-up log (JupyterLab hides the token)
banner_when_ready() {
  for _ in $(seq 1 240); do
    kill -0 "$1" 2>/dev/null || return 0
    if "$PY" -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" \
         "http://127.0.0.1:$PORT/api/status?token=$TOKEN" 2>/dev/null; then
      banner
      return 0
    fi
    sleep 0.5
  done
}

echo "Starting JupyterLab at exercises/ on http://127.0.0.1:$PORT (the link with its token follows)..."
( banner_when_ready $$ & )   # detached: nothing is left for JupyterLab to reap
exec "$JUPYTER" "${args[@]}"
