#!/usr/bin/env bash
# Runs each fuzz target for FUZZTIME. A target fails only on a real finding
# (a new input written to testdata/fuzz): go test -fuzz can also end with a
# bare "context deadline exceeded" when its time runs out while a worker is
# still minimising, which is no finding; such a run is repeated once.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-15s}
targets=(
  "./helper FuzzInboundMessage" "./helper FuzzJoinLeave" "./helper FuzzBrokerEnvelope"
  "./helper FuzzInflateMessage"
  "./protocol FuzzEnvelopeRoundTrip" "./protocol FuzzValidRoomName"
  "./protocol FuzzJSONDepthExceeds" "./protocol FuzzDecodeEnvelope"
  "./protocol FuzzObjectFields"
  "./protocol FuzzArrayElements"
)
corpus() { ls "$1/testdata/fuzz/$2" 2>/dev/null | sort; }
for entry in "${targets[@]}"; do
  read -r pkg target <<<"$entry"
  for attempt in 1 2; do
    echo "== $target (attempt $attempt)"
    before=$(corpus "$pkg" "$target")
    if "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"; then
      break
    fi
    after=$(corpus "$pkg" "$target")
    if [ "$before" != "$after" ]; then
      echo "fuzz: $target found a failing input:" >&2
      comm -13 <(echo "$before") <(echo "$after") | sed "s|^|  $pkg/testdata/fuzz/$target/|" >&2
      exit 1
    fi
    if [ "$attempt" = 2 ]; then
      echo "fuzz: $target failed twice without a finding" >&2
      exit 1
    fi
    echo "fuzz: $target ended without a finding (deadline while minimising); once more" >&2
  done
done
