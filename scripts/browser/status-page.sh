#!/usr/bin/env bash
# Browser test of the status page: start a node on a free loopback port, register instances, load `/` and an
# app page in headless Chromium, check what the rendered DOM shows, and save screenshots.
#
# Usage: scripts/browser/status-page.sh [OUT_DIR]   (needs /usr/bin/chromium: apt-get install -y chromium)
# Exit codes: 0 pass, 1 fail, 77 Chromium missing (skipped).
set -euo pipefail
cd "$(dirname "$0")/../.."

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
  echo "status-page: $CHROMIUM not found; install it with: apt-get install -y chromium" >&2
  exit 77
fi
OUT=${1:-target/browser}
mkdir -p "$OUT"
WORK=$(mktemp -d)
NODE_PID=
cleanup() {
  [[ -n $NODE_PID ]] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cargo build --quiet --bin discovery
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
./target/debug/discovery --addr "$ADDR" --data-dir "$WORK/data" >"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://$ADDR/healthz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://$ADDR/healthz" >/dev/null || { echo "status-page: node did not start" >&2; cat "$WORK/node.log" >&2; exit 1; }

register() { # env appid hostname status
  curl -sf -d "zone=sh001&env=$1&appid=$2&hostname=$3&status=$4&addrs=grpc://10.0.0.1:9000&version=v1" \
    "http://$ADDR/discovery/register" | grep -q '"code":0'
}
register dev demo.svc host-a 1
register dev demo.svc host-b 1
register dev demo.svc host-c 2
register prod goim.comet comet-1 1

chrome() {
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$WORK/profile-$RANDOM" "$@" 2>/dev/null
}
fail=0
expect() { # file pattern description
  if grep -q -- "$2" "$1"; then echo "ok: $3"; else echo "FAIL: $3 (no '$2')"; fail=1; fi
}

chrome --dump-dom "http://$ADDR/" >"$WORK/index.html"
expect "$WORK/index.html" '<td>Leader</td>' "the member table shows the leader"
expect "$WORK/index.html" 'demo.svc</a></td><td>2</td><td>3</td>' "demo.svc: 2 up of 3 instances"
expect "$WORK/index.html" 'goim.comet</a></td><td>1</td><td>1</td>' "goim.comet in env prod"
expect "$WORK/index.html" 'id="guard"' "self-preservation state"
chrome --dump-dom "http://$ADDR/ui/app?env=dev&appid=demo.svc" >"$WORK/app.html"
expect "$WORK/app.html" '<td>host-a</td><td>up</td>' "app page lists host-a as up"
expect "$WORK/app.html" '<td>host-c</td><td>waiting</td>' "app page lists host-c as waiting"
chrome --window-size=1100,800 --screenshot="$PWD/$OUT/status-page.png" "http://$ADDR/"
chrome --window-size=1100,600 --screenshot="$PWD/$OUT/app-page.png" "http://$ADDR/ui/app?env=dev&appid=demo.svc"
for png in status-page app-page; do
  [[ -s $OUT/$png.png ]] && echo "ok: screenshot $OUT/$png.png" || { echo "FAIL: no screenshot $png"; fail=1; }
done
if ((fail)); then echo "status-page: FAILED"; exit 1; fi
echo "status-page: passed"
