#!/usr/bin/env bash
# bench-issue: sets up SoftHSM2 tokens (scripts/issuance-env.sh), runs
# bench_issue (in-process figures), then the same `issue` through
# mintline-server over the authenticated channel for the end-to-end row.
#   NOTES=1000 THREADS=2 tests/bench/bench-issue.sh [BUILD_DIR]
# shellcheck disable=SC2119
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-${MINTLINE_BUILD_DIR:-$top/build}}
W=$B/tests/bench-issue
NOTES=${NOTES:-1000}
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" "${POSITIONS:-8}" || exit 77
trap ne_server_stop EXIT
ne_keys || exit 1
mkdir -p "$W/bench" "$W/bench/chips" "$W/bench/line"
echo "${POSITIONS:-8}" >"$W/bench/line/positions"
BENCH_DIR=$W/bench BENCH_ISSUER_KEY=$NE_ISSUER_KEY BENCH_ISSUER_PUB=$NE_ISSUER_PUB \
BENCH_SERVER_KEY=$NE_SERVER_KEY BENCH_FEATURE_KEY=$NE_FKEY \
BENCH_NOTES=$NOTES BENCH_THREADS=${THREADS:-2} \
    "${MINTLINE_BENCH_ISSUE:-$B/tests/bench/bench-issue}" || exit 1
# End to end through mintline-server (handshakes, channel, HSM, registry).
ne_chips "$NOTES" || exit 1
ne_server_start || exit 1
ne_provision >/dev/null 2>&1 || exit 1
ne_batch "$NOTES" >"$W/batch.csv"
t0=$(date +%s.%N)
ne_issue --batch "$W/batch.csv" --no-progress >/dev/null 2>"$W/issue.err" || { cat "$W/issue.err"; exit 1; }
t1=$(date +%s.%N)
awk -v n="$NOTES" -v a="$t0" -v b="$t1" 'BEGIN { printf "  end to end over the hs channel (mintline-server, %d positions) %6.0f notes/s\n", ENVIRON["POSITIONS"] ? ENVIRON["POSITIONS"] : 8, n / (b - a) }'
ne_verify_online --chips "$W/chips" >/dev/null 2>"$W/verify.err"
sed 's/^verify: /  desk over the channel: /' "$W/verify.err"
