#!/usr/bin/env bash
# compare.sh — the standard load matrix against the original (Ignis
# WebSocketServerHelper on Bun) and our demo, in one run, on one Redis, with
# one load tool (cmd/fxws-bench). Each case runs REPS times per implementation,
# interleaved, the first of each pair alternating (original, ours, ours,
# original, …), so that drifting background load and what one run leaves
# behind hit both alike, every run on a freshly started server pinned to
# SERVER_CPU while the load and Redis run on LOAD_CPU. The medians and the
# ratios ours / original go into docs/performance.md between the
# "compare:begin" and "compare:end" markers.
#
# Environment (all optional):
#   REPS=3                 repetitions per case and implementation
#   SCALE=full             full: the sizes of the issue; quick: about 1/10
#   CASES="bcast-1k echo-100"  run only these cases (names as in the table below)
#   IMPLS="original ours"  implementations to run; "base ours" compares this tree with
#                          the demo built from BASE_REV (a git revision), e.g. to check
#                          that a change is no regression (then set OUT to a scratch file)
#   SERVER_CPU=0 LOAD_CPU=1
#   OUT=docs/performance.md
#   REF_DIR=../shared/reference   the original's harness (start.sh, server.ts)
#   NOTE="..."             a line put above the generated table (e.g. "preliminary")
#   OURS_LOG_LEVEL=debug   run our demo with LOG_LEVEL (debug logs every connection,
#                          as the original does at its default level)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
REPS=${REPS:-3}
SCALE=${SCALE:-full}
IMPLS=${IMPLS:-original ours}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-docs/performance.md}
REF_DIR=${REF_DIR:-$repo/../shared/reference}
NOTE=${NOTE:-}

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# name|scenario|instances|encrypted|fxws-bench flags
cases_full='
conns-10k|conns|1|0|-n 10000 -hold 10s
conns-19.5k|conns|1|0|-n 19500 -hold 10s
bcast-1k|broadcast|1|0|-n 1000 -rate 100 -duration 10s -via redis
bcast-10k|broadcast|1|0|-n 10000 -rate 10 -duration 10s -via redis
rooms-10k|rooms|1|0|-n 10000 -rooms 100 -rate 1000 -duration 10s -via redis
echo-100|echo|1|0|-n 100 -duration 10s
cross-2x1k|cross|2|0|-n 2000 -rate 35 -duration 10s -via rest
enc-1k|encrypted|1|1|-n 1000 -rate 20 -duration 10s -via redis
enc-1k-max|encrypted|1|1|-n 1000 -rate 200 -duration 10s -via redis
enc-10k|encrypted|1|1|-n 10000 -rate 10 -duration 10s -via redis
'
cases_quick='
conns-1k|conns|1|0|-n 1000 -hold 3s
bcast-500|broadcast|1|0|-n 500 -rate 100 -duration 5s -via redis
bcast-2k|broadcast|1|0|-n 2000 -rate 10 -duration 5s -via redis
rooms-1k|rooms|1|0|-n 1000 -rooms 10 -rate 100 -duration 5s -via redis
echo-100|echo|1|0|-n 100 -duration 5s
cross-2x200|cross|2|0|-n 400 -rate 50 -duration 5s -via rest
enc-200|encrypted|1|1|-n 200 -rate 10 -duration 5s -via redis
'
case "$SCALE" in
  full) matrix=$cases_full ;;
  quick) matrix=$cases_quick ;;
  *) die "SCALE must be full or quick" ;;
esac
if [ -n "${CASES:-}" ]; then
  filtered=''
  for c in $CASES; do
    line=$(printf '%s\n' "$matrix" | grep "^$c|" || true)
    [ -n "$line" ] || die "unknown case $c (SCALE=$SCALE)"
    filtered+="$line"$'\n'
  done
  matrix=$filtered
fi

command -v redis-server >/dev/null || die "redis-server not found"
[ -x "$REF_DIR/start.sh" ] || die "the original's harness is not at $REF_DIR (set REF_DIR)"
[ "$REPS" -ge 1 ] 2>/dev/null || die "REPS must be a positive number"

pin_server=() pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c "$SERVER_CPU")
  pin_load=(taskset -c "$LOAD_CPU")
else
  log "warning: no taskset or fewer than 2 cores: nothing is pinned"
fi

work=$(mktemp -d /tmp/fxws-compare.XXXXXX)
results=$work/results.jsonl
: >"$results"
owned=() # pids this script started

stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${owned[@]}"; do stop_pid "$pid"; done
  log "work files kept in $work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Server ports come from below the kernel's ephemeral range: a port in it
# can be free when checked and then taken by one of the load's own outgoing
# connections before the server binds it ("address already in use").
eph_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$eph_lo" -gt 12000 ] 2>/dev/null || eph_lo=32768
next_port=$((10000 + RANDOM % (eph_lo - 12000)))
# free_port sets PORT_FOUND (not echoed: a subshell would lose next_port).
free_port() {
  while ! port_free "$next_port"; do next_port=$((next_port + 1)); done
  PORT_FOUND=$next_port
  next_port=$((next_port + 1))
}

log "building the load tool and the demo"
go build -o "$work/fxws-bench" ./cmd/fxws-bench
if [[ " $IMPLS " == *" ours "* ]]; then
  go build -o "$work/demo" ./examples/demo
fi
if [[ " $IMPLS " == *" base "* ]]; then
  [ -n "${BASE_REV:-}" ] || die "IMPLS names base: set BASE_REV to a git revision"
  git worktree add --detach "$work/base-src" "$BASE_REV" >/dev/null 2>&1 || die "cannot check out $BASE_REV"
  (cd "$work/base-src" && go build -o "$work/base-demo" ./examples/demo) || die "cannot build the demo at $BASE_REV"
  git worktree remove --force "$work/base-src"
fi
impl_a=${IMPLS%% *} impl_b=${IMPLS##* }

# A port that refuses connections may still be taken by an outgoing
# socket: try a few.
for attempt in 1 2 3 4 5; do
  free_port
  redis_port=$PORT_FOUND
  "${pin_load[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --maxclients 10000 </dev/null >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for i in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
  if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    owned+=($redis_pid)
    break
  fi
  stop_pid "$redis_pid"
done
REDIS_URL=redis://127.0.0.1:$redis_port
redis-cli -p "$redis_port" ping >/dev/null 2>&1 || die "redis did not start (see $work/redis.log)"
log "redis on $redis_port"

# start_server impl encrypted port: starts one instance, prints its pid.
start_server() {
  local impl=$1 enc=$2 port=$3 pid i
  local env=(PORT="$port" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" QUIET=1)
  # The original logs two lines per connection whatever QUIET says; ours
  # logs them at debug, so OURS_LOG_LEVEL=debug compares CPU per connect
  # with both logging alike.
  [ "$impl" != original ] && [ -n "${OURS_LOG_LEVEL:-}" ] && env+=(LOG_LEVEL="$OURS_LOG_LEVEL")
  [ "$enc" = 1 ] && env+=(REQUIRE_ENCRYPTION=1)
  case $impl in
    original) env "${env[@]}" "${pin_server[@]}" "$REF_DIR/start.sh" </dev/null >>"$work/$impl-$port.log" 2>&1 & ;;
    ours) env "${env[@]}" "${pin_server[@]}" "$work/demo" </dev/null >>"$work/$impl-$port.log" 2>&1 & ;;
    base) env "${env[@]}" "${pin_server[@]}" "$work/base-demo" </dev/null >>"$work/$impl-$port.log" 2>&1 & ;;
    *) die "unknown implementation $impl" ;;
  esac
  pid=$! # start.sh and taskset exec, so this is the server process itself
  for i in $(seq 300); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
      echo "$pid"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  die "$impl did not become healthy on $port (see $work/$impl-$port.log)"
}

failures=0
commands=()
for rep in $(seq "$REPS"); do
  while IFS='|' read -r name scenario instances enc flags; do
    [ -n "$name" ] || continue
    # Alternate which implementation goes first, so that what a run leaves
    # behind (TIME_WAIT sockets, a warm page cache) falls on each alike.
    order=$IMPLS
    [ $((rep % 2)) = 0 ] && order=$(echo "$IMPLS" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "")}')
    for impl in $order; do
      pids=() urls=()
      for k in $(seq "$instances"); do
        free_port
        port=$PORT_FOUND
        pid=$(start_server "$impl" "$enc" "$port")
        owned+=("$pid")
        pids+=("$pid")
        urls+=("ws://127.0.0.1:$port/ws")
      done
      sleep 1
      url_list=$(IFS=,; echo "${urls[*]}")
      pid_list=$(IFS=,; echo "${pids[*]}")
      log "$name ($impl, run $rep/$REPS)"
      before=$(wc -l <"$results")
      # shellcheck disable=SC2086 # flags are meant to split
      if ! timeout --signal=INT --kill-after=30 900 "${pin_load[@]}" "$work/fxws-bench" "$scenario" -url "$url_list" -redis "$REDIS_URL" \
        -server-pid "$pid_list" -label "$impl" -case "$name" -rep "$rep" $flags </dev/null >>"$results" 2>>"$work/bench.log"; then
        failures=$((failures + 1))
        log "  run failed (see $work/bench.log)"
      fi
      if [ "$(wc -l <"$results")" -gt "$before" ]; then
        # Show the figures of this run.
        "$work/fxws-bench" report -a "$impl_a" -b "$impl_b" <(tail -n 1 "$results") | grep "^| $name" | cut -d'|' -f3,4,5 >&2 || true
      fi
      for pid in "${pids[@]}"; do stop_pid "$pid"; done
      if [ "$rep" = 1 ] && [ "$impl" = "${IMPLS%% *}" ]; then
        extra=''
        [ "$enc" = 1 ] && extra=', REQUIRE_ENCRYPTION=1'
        commands+=("$name: $instances server instance(s)$extra; fxws-bench $scenario $flags")
      fi
    done
  done <<<"$matrix"
done

"$work/fxws-bench" report -a "$impl_a" -b "$impl_b" "$results" >"$work/table.md"

bun_version=$("${REF_HOME:-/tmp/fxws-reference}/node_modules/.bin/bun" --version 2>/dev/null || echo unknown)
{
  echo "<!-- compare:begin (generated by scripts/compare.sh; do not edit by hand) -->"
  echo "## Latest comparison"
  echo
  [ -n "$NOTE" ] && { echo "**$NOTE**"; echo; }
  echo "Run on $(date -u +'%Y-%m-%d %H:%M UTC') with \`SCALE=$SCALE REPS=$REPS\`: $(nproc) cores," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), Linux $(uname -r)," \
    "$(go version | cut -d' ' -f3), Bun $bun_version, open-file limit $(ulimit -n)." \
    "Server on core $SERVER_CPU, load and Redis on core $LOAD_CPU; one implementation at a time," \
    "each run on a freshly started server; cells are median (min–max, runs)."
  echo
  cat "$work/table.md"
  echo
  echo "Cases:"
  echo
  for c in "${commands[@]}"; do echo "- \`$c\`"; done
  echo
  echo "<details><summary>Raw results (one JSON line per run)</summary>"
  echo
  echo '```'
  cat "$results"
  echo '```'
  echo
  echo "</details>"
  echo "<!-- compare:end -->"
} >"$work/section.md"

mkdir -p "$(dirname "$OUT")"
if [ -f "$OUT" ] && grep -q '<!-- compare:begin' "$OUT"; then
  awk -v sec="$work/section.md" '
    /<!-- compare:begin/ { while ((getline l < sec) > 0) print l; skip = 1; next }
    /<!-- compare:end/ { skip = 0; next }
    !skip { print }' "$OUT" >"$work/out.md"
  cp "$work/out.md" "$OUT"
else
  { [ -f "$OUT" ] && cat "$OUT" && echo; cat "$work/section.md"; } >"$work/out.md"
  cp "$work/out.md" "$OUT"
fi
log "wrote $OUT ($failures failed runs)"
[ "$failures" = 0 ]
