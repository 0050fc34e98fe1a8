#!/usr/bin/env bash
# Installs the Debian packages the tests use, only when they are missing and only as root:
# Chromium (report and browser terminal), Xvfb (the display), Node.js (the browser terminal's
# state machine), coturn and nftables (the STUN/TURN probes), iproute2 (network namespaces),
# redis-server (the registry shared by several hosts).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
command -v xsetroot >/dev/null 2>&1 || need+=(x11-xserver-utils)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v turnserver >/dev/null 2>&1 || need+=(coturn)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]}; install them or run as root (the tests that need them skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
