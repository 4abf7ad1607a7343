#!/usr/bin/env bash
# Runs each fuzz target for FUZZTIME. A target fails on a real finding (a new
# input written to testdata/fuzz) or on any other error. One failure is not
# a finding: Go 1.26's fuzz coordinator can end a run with a bare "context
# deadline exceeded" just as FUZZTIME runs out, having found nothing (a race
# in internal/fuzz, go.dev/issue/75804, fixed in Go 1.27). Such a run is
# repeated, up to five attempts in all.
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
  "./protocol FuzzArrayElements" "./protocol FuzzReplaceInvalidUTF8"
)
corpus() { ls "$1/testdata/fuzz/$2" 2>/dev/null | sort; }
for entry in "${targets[@]}"; do
  read -r pkg target <<<"$entry"
  for attempt in 1 2 3 4 5; do
    echo "== $target (attempt $attempt)"
    before=$(corpus "$pkg" "$target")
    out=$("$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1)
    status=$?
    echo "$out"
    [ "$status" = 0 ] && break
    after=$(corpus "$pkg" "$target")
    if [ "$before" != "$after" ]; then
      echo "fuzz: $target found a failing input:" >&2
      comm -13 <(echo "$before") <(echo "$after") | sed "s|^|  $pkg/testdata/fuzz/$target/|" >&2
      exit 1
    fi
    # The coordinator's race prints exactly this line under the FAIL.
    if ! grep -qx $'    context deadline exceeded' <<<"$out"; then
      echo "fuzz: $target failed without a finding, and not at the deadline" >&2
      exit 1
    fi
    if [ "$attempt" = 5 ]; then
      echo "fuzz: $target hit the coordinator's deadline race five times running" >&2
      exit 1
    fi
    echo "fuzz: $target ended at the deadline without a finding (go.dev/issue/75804); once more" >&2
  done
done
