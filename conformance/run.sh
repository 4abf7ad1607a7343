#!/usr/bin/env bash
# Runs the conformance suite against the original (Ignis on Bun, through
# /work/shared/reference/start.sh or $REF_START) and against our demo, both
# started here with the same settings on one throwaway redis-server, and
# prints a pass/fail/skip summary per implementation.
#
# Settings (environment): AUTH_TIMEOUT_MS (1000), HEARTBEAT_INTERVAL_MS (250),
# HEARTBEAT_TIMEOUT_MS (2000), MAX_PAYLOAD_LENGTH (131072), RUN (a -run
# pattern), REF_START (the original's start script), IMPLS ("ignis fxws").
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
REF_START=${REF_START:-/work/shared/reference/start.sh}
IMPLS=${IMPLS:-ignis fxws}
export AUTH_TIMEOUT_MS=${AUTH_TIMEOUT_MS:-1000}
export HEARTBEAT_INTERVAL_MS=${HEARTBEAT_INTERVAL_MS:-250}
export HEARTBEAT_TIMEOUT_MS=${HEARTBEAT_TIMEOUT_MS:-2000}
export MAX_PAYLOAD_LENGTH=${MAX_PAYLOAD_LENGTH:-131072}
export CONFORMANCE_AUTH_TIMEOUT_MS=$AUTH_TIMEOUT_MS
export CONFORMANCE_HEARTBEAT_INTERVAL_MS=$HEARTBEAT_INTERVAL_MS
export CONFORMANCE_HEARTBEAT_TIMEOUT_MS=$HEARTBEAT_TIMEOUT_MS
export CONFORMANCE_MAX_PAYLOAD_LENGTH=$MAX_PAYLOAD_LENGTH
export QUIET=1 HOST=127.0.0.1

work=$(mktemp -d)
pids=()
redis_pid=""
cleanup() {
	for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
	sleep 0.3
	rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work"; }
}
trap cleanup EXIT

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

wait_healthy() { # port pid
	for _ in $(seq 1 600); do
		curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

echo "== build"
(cd "$root" && go build -o "$work/demo" ./examples/demo && go test -c -o "$work/conformance.test" ./conformance) || exit 1

rport=$(free_port)
redis-server --port "$rport" --save '' --appendonly no --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" || exit 1
for _ in $(seq 1 50); do [ -s "$work/redis.pid" ] && break; sleep 0.1; done
redis_pid=$(cat "$work/redis.pid")
export REDIS_URL="redis://127.0.0.1:$rport"

declare -A summary
status=0
for impl in $IMPLS; do
	case $impl in
	ignis) cmd="exec $REF_START" ;;
	fxws) cmd="exec $work/demo" ;;
	*) echo "unknown impl $impl"; exit 2 ;;
	esac
	port=$(free_port)
	echo "== $impl on :$port ($cmd)"
	PORT=$port setsid sh -c "$cmd" >"$work/$impl.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	if ! wait_healthy "$port" "$pid"; then
		echo "$impl did not start:"; tail -n 30 "$work/$impl.log"
		summary[$impl]="did not start"; status=1; continue
	fi
	(cd "$root/conformance" && CONFORMANCE_URL="http://127.0.0.1:$port" CONFORMANCE_IMPL=$impl \
		CONFORMANCE_SERVER_CMD="$cmd" "$work/conformance.test" -test.v -test.count=1 \
		${RUN:+-test.run "$RUN"} 2>&1) | tee "$work/$impl.out" | grep -E '^\s*--- (FAIL|SKIP)|^\s+\S+_test\.go:[0-9]+:|^(ok|FAIL|PASS)$'
	[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
	kill -TERM -- "-$pid" 2>/dev/null
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	pass=$(grep -cE '^\s*--- PASS' "$work/$impl.out")
	fail=$(grep -cE '^\s*--- FAIL' "$work/$impl.out")
	skip=$(grep -cE '^\s*--- SKIP' "$work/$impl.out")
	summary[$impl]="pass $pass, fail $fail, skip $skip (tests and subtests)"
done

echo "== summary (AUTH_TIMEOUT_MS=$AUTH_TIMEOUT_MS HEARTBEAT_INTERVAL_MS=$HEARTBEAT_INTERVAL_MS HEARTBEAT_TIMEOUT_MS=$HEARTBEAT_TIMEOUT_MS MAX_PAYLOAD_LENGTH=$MAX_PAYLOAD_LENGTH)"
for impl in $IMPLS; do
	echo "$impl: ${summary[$impl]}"
	grep -E '^--- FAIL' "$work/$impl.out" | sed 's/^/    /'
done
exit $status
