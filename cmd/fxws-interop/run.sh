#!/usr/bin/env bash
# `make interop`: the original (npm @venizia/ignis-helpers 0.0.7 on Bun, via
# ../shared/reference/start.sh) and our demo on one fresh Redis, then
# fxws-interop checks delivery both ways. Needs redis-server, Go, and npm
# (the first run installs the original into $REF_HOME, default
# /tmp/fxws-reference). Not part of CI.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
REF_START=${REF_START:-$repo/../shared/reference/start.sh}
if [ ! -x "$REF_START" ] && [ ! -f "$REF_START" ]; then
  echo "interop: $REF_START not found (set REF_START to the reference harness's start.sh)" >&2
  exit 2
fi
command -v redis-server >/dev/null || { echo "interop: redis-server not installed" >&2; exit 2; }

free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
pids+=($!)
ref_port=$(free_port)
our_port=$(free_port)
while [ "$our_port" = "$ref_port" ]; do our_port=$(free_port); done
redis_url="redis://127.0.0.1:$redis_port"

go build -o "$tmp/demo" ./examples/demo
go build -o "$tmp/fxws-interop" ./cmd/fxws-interop

PORT=$ref_port REDIS_URL=$redis_url QUIET=1 bash "$REF_START" >"$tmp/ref.log" 2>&1 &
pids+=($!)
PORT=$our_port REDIS_URL=$redis_url "$tmp/demo" >"$tmp/demo.log" 2>&1 &
pids+=($!)

echo "interop: redis :$redis_port, original (ignis) :$ref_port, demo (fxws) :$our_port"
status=0
"$tmp/fxws-interop" \
  -a "http://127.0.0.1:$ref_port" -a-name ignis -a-local-user-send \
  -b "http://127.0.0.1:$our_port" -b-name fxws \
  -redis "127.0.0.1:$redis_port" || status=$?
if [ "$status" != 0 ]; then
  echo "--- original's log"; tail -n 30 "$tmp/ref.log" || true
  echo "--- demo's log"; tail -n 30 "$tmp/demo.log" || true
fi
exit "$status"
