#!/usr/bin/env bash
# More line positions and desks than the server takes handshakes from one
# address (OP-1, BN-1, BN-8 at scale): a server with max-unauth-per-addr 2
# answers HS_ALERT_BUSY to most of 24 positions opening their channels at
# once; the station waits for its turn and tries again, so provisioning,
# issuance and 24 desks (verify, with and without --follow) all finish
# with every note GENUINE, and the server counted the refusals.
# Exit 77 (skipped) without SoftHSM2 / OpenSC.
# shellcheck disable=SC2119
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/desk-busy
P=24
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" "$P" || exit 77
trap ne_server_stop EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

ne_keys || { echo "key ceremony failed"; exit 1; }
ne_chips "$P" || exit 1
ne_server_start --max-unauth-per-addr 2 || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" --json >/dev/null 2>"$W/provision.err"
check $? 0 "provision on $P positions past the per-address limit"
ne_batch "$P" >"$W/batch.csv"
ne_issue --batch "$W/batch.csv" --no-progress --json --workers "$P" \
    >"$W/issue.jsonl" 2>"$W/issue.err"
check $? 0 "issue on $P positions: exit 0"
check "$(grep -c '"result":"issued"' "$W/issue.jsonl")" "$P" "every note issued"
ne_verify_online --chips "$W/chips" --workers "$P" --json \
    >"$W/verify.jsonl" 2>"$W/verify.err"
check $? 0 "$P desks at once (verify): exit 0"
check "$(grep -c '"verdict":"GENUINE"' "$W/verify.jsonl")" "$P" "every note GENUINE"
# a desk runs until stopped: stopped once every chip has its verdict
ne_verify_online --chips "$W/chips" --workers "$P" --json --follow \
    >"$W/follow.jsonl" 2>"$W/follow.err" &
vp=$!
for ((i = 0; i < 300; i++)); do
	[ "$(grep -c '"verdict"' "$W/follow.jsonl")" -ge "$P" ] && break
	sleep 0.1
done
kill -TERM "$vp"
wait "$vp"
check "$(grep -c '"verdict":"GENUINE"' "$W/follow.jsonl")" "$P" "$P desks (verify --follow): every note GENUINE"
check "$(grep -c 'no verdict' "$W/follow.err")" 0 "$P desks (verify --follow): no note without a verdict"
ne_server_stop
busy=$(sed -n 's/.* busy_per_addr=\([0-9]*\) .*/\1/p' "$W/server.log" | tail -1)
[ "${busy:-0}" -gt 0 ] && ok "the server refused $busy handshakes over the per-address limit" ||
    bad "the server never reached its per-address limit (busy_per_addr=${busy:-?}): the test proves nothing"
exit $((fail != 0))
