#!/usr/bin/env bash
# Encrypted broadcast, ours (examples/encrypted) vs the original (shared/reference, Bun), plain next
# to it, measured by the same client in one run. Needs redis-server and the reference harness.
# Usage: encryption/internal/encload/compare.sh [clients...]   (from the module root; default 1000 10000)
# PIN=1 pins each server to core 0 and the load client to core 1 (design.md's rule for ratios);
# PIN=0 lets both float, so ours can use every core (the original runs on one JS thread either way).
set -euo pipefail
clients=("${@:-1000 10000}"); read -ra clients <<<"${clients[*]}"
ref=${REF:-/work/shared/reference}
pin=${PIN:-1}
srvpin=(); cltpin=()
if [ "$pin" = 1 ]; then srvpin=(taskset -c 0); cltpin=(taskset -c 1); fi
tmp=$(mktemp -d)
go build -o "$tmp/encsrv" ./examples/encrypted
go build -o "$tmp/encload" ./encryption/internal/encload
rport=$((20000 + RANDOM % 12000)) # below the ephemeral range
redis-server --port "$rport" --save '' --daemonize yes --pidfile "$tmp/redis.pid" >/dev/null
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; kill "$(cat "$tmp/redis.pid")" 2>/dev/null || true; }
trap cleanup EXIT
wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }
started=0 # pid of the server process last started
start_ours() { # port, REQUIRE_ENCRYPTION
  PORT=$1 REQUIRE_ENCRYPTION=$2 TICK_MS=0 WELCOME=0 QUIET=1 "${srvpin[@]}" "$tmp/encsrv" >/dev/null 2>&1 &
  started=$!; pids+=("$started"); wait_up "$1"; }
start_ref() { # port, REQUIRE_ENCRYPTION
  (cd "$ref" && PORT=$1 REDIS_URL=redis://127.0.0.1:$rport QUIET=1 REQUIRE_ENCRYPTION=$2 "${srvpin[@]}" ./start.sh) >/dev/null 2>&1 &
  pids+=($!); wait_up "$1"
  started=$(ss -ltnpH "sport = :$1" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1); pids+=("$started"); }
load() { # label port pid encrypt n m
  "${cltpin[@]}" "$tmp/encload" -label "$1" -ws "ws://127.0.0.1:$2/ws" -rest "http://127.0.0.1:$2" -pid "$3" -encrypt="$4" -n "$5" -m "$6" 2>/dev/null; }
base=$((10000 + RANDOM % 9000))
start_ours $base 0; p1=$started
start_ours $((base+1)) 1; p2=$started
start_ref $((base+2)) 1; p3=$started
start_ref $((base+3)) 0; p4=$started
for n in "${clients[@]}"; do
  m=$(( n >= 10000 ? 10 : 50 ))
  load ours $base "$p1" false "$n" "$m"
  load ours $((base+1)) "$p2" true "$n" "$m"
  load original $((base+3)) "$p4" false "$n" "$m"
  load original $((base+2)) "$p3" true "$n" "$m"
done
