#!/usr/bin/env bash
# Installs the Debian packages openfrp uses, only when they are missing and only as root.
#   system-deps.sh build a C compiler and Python's headers, for the analyzer's native fold
#                        (without them it is left out and the analyzer reads through DuckDB)
#   system-deps.sh run   what `make run` needs for a real desktop: Xvfb, xrandr, xauth, an xterm
#                        and its font
#   system-deps.sh test  (default) that plus what the tests use: Chromium (report and browser
#                        terminal), Node.js (the browser terminal's state machine), X utilities
#                        (xev, xdpyinfo), coturn and nftables (STUN/TURN probes), iproute2
#                        (network namespaces), redis-server (the registry shared by hosts),
#                        nginx (the TLS front end)
#   system-deps.sh bench that plus the peers the benchmarks run beside openfrp: ffmpeg (ffplay's
#                        motion, x11grab + libx264), x11vnc, websockify and noVNC
set -euo pipefail
profile="${1:-test}"
need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want gcc gcc
include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)"
[ -z "$include" ] || [ -e "$include/Python.h" ] || need+=(python3-dev)
if [ "$profile" != build ]; then
  want Xvfb xvfb
  want xrandr x11-xserver-utils
  want xauth xauth
  want xterm xterm
  # the xterm's and the browser's text: one monospace and sans family is enough
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
fi
if [ "$profile" = test ] || [ "$profile" = bench ]; then
  want chromium chromium
  want xev x11-utils
  want ip iproute2
  want node nodejs
  want turnserver coturn
  want nft nftables
  want redis-server redis-server
  want nginx nginx
fi
if [ "$profile" = bench ]; then
  want ffmpeg ffmpeg
  want x11vnc x11vnc
  want websockify websockify
  [ -e /usr/share/novnc/vnc.html ] || need+=(novnc)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]}; install them or run as root (what needs them is skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
