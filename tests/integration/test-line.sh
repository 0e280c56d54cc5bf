#!/usr/bin/env bash
# The mint line and the desk running all day, on the in-process line
# (OP-1, OP-3, OP-4): mintline-station issue --follow / verify --follow
# with chips put into and taken out of the positions while they run.
#   1. server down: no chip is written (OP-3), the line pauses once with
#      the cause, retries, resumes by itself when the server is back;
#   2. a chip personalised without enrolment (as pkcs11-tool leaves it):
#      issue takes it off the line blank; enroll; provision enrols such
#      chips too; then it is issued; verify GENUINE online and offline;
#   3. issue --follow: chips arrive at any position and are issued; a
#      chip the server does not know is reported off the line; SIGTERM
#      stops it with the journal consistent;
#   4. verify --follow: one note after another, BLANK for a blank chip;
#   5. two stations with overlapping batches: each serial registered once.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / sqlite3.
# shellcheck disable=SC2119
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/line
command -v sqlite3 >/dev/null || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 4 || exit 77
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	ne_server_stop
}
trap cleanup EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"
written() {	# number of chips of DIR with a note written (offline desk)
	ne_verify --offline --chips "$1" --json 2>/dev/null | grep -vc '"verdict":"BLANK"'
}

ne_keys || { echo "key ceremony failed"; exit 1; }
ne_chips 12 0 "$W/chips" || exit 1
ne_server_start || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" --json >/dev/null
check $? 0 "provision: 12 chips personalised and enrolled"

# ---- 1. server down: nothing written, the line pauses ----
ne_server_stop
mkdir -p "$W/c1"; mv "$W"/chips/NOTE00000000000[012].chip* "$W/c1/"
ne_batch 3 SD >"$W/sd.csv"
ne_issue --chips "$W/c1" --journal "$W/j-sd.db" --batch "$W/sd.csv" --json \
    --no-progress --retry-secs 2 >"$W/sd.jsonl" 2>"$W/sd.err"
check $? 1 "server down: issue gives up (exit 1)"
check "$(written "$W/c1")" 0 "server down: no chip written (OP-3)"
check "$(count 'line paused' "$W/sd.err")" 1 "server down: the pause is said once"
check "$(count 'Connection refused' "$W/sd.err")" 1 "server down: with the cause (connection refused)"
check "$(count "handshake" "$W/sd.err")" 1 "server down: the connect error is not repeated per retry"
check "$(sqlite3 "$W/j-sd.db" 'select count(*) from issue_journal where state = 1')" 0 "server down: no note in doubt"
# the live status goes to stdout when stdout is a terminal (a pty from
# script(1)), not to stderr
script -qec "$(printf '%q ' "$NE_STATION" issue --line "$NE_LINE" --chips "$W/c1" \
    --issuer-key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" "${NE_CONN[@]}" \
    --journal "$W/j-sd.db" --batch "$W/sd.csv" --retry-secs 1) 2>$(printf '%q' "$W/tty.err")" \
    "$W/tty.out" >/dev/null 2>&1 </dev/null
more '] 0/3 notes' "$W/tty.out" 0 && ok "status line on stdout when it is a terminal" ||
    bad "no status line on the terminal stdout"
check "$(count '] 0/3 notes' "$W/tty.err")" 0 "... and none on stderr"
# SIGTERM while the line waits for the server: it says so, not a timeout
NE_EXEC=1 ne_issue --chips "$W/c1" --journal "$W/j-sd.db" --batch "$W/sd.csv" \
    --json --no-progress --follow >/dev/null 2>"$W/sd-term.err" &
st=$!
wait_for 20 grep -qs 'line paused' "$W/sd-term.err" || bad "no pause reported"
kill -TERM "$st"; wait "$st"
check $? 2 "SIGTERM while paused: exit 2 (notes not issued)"
check "$(count 'line stopped by SIGTERM while waiting for the server (server unreachable for' "$W/sd-term.err")" 1 \
    "SIGTERM while paused: the stop is put down to the signal"
check "$(count '^issue: server unreachable for' "$W/sd-term.err")" 0 "SIGTERM while paused: not reported as the retry time running out"
check "$(written "$W/c1")" 0 "SIGTERM while paused: no chip written"
# the server comes back while the line waits: it resumes by itself
NE_EXEC=1 ne_issue --chips "$W/c1" --journal "$W/j-sd.db" --batch "$W/sd.csv" \
    --json --no-progress --retry-secs 60 >"$W/sd2.jsonl" 2>"$W/sd2.err" &
st=$!
wait_for 20 grep -qs 'line paused' "$W/sd2.err" || bad "no pause reported"
ne_server_start || bad "server restart"
wait "$st"
check $? 0 "server back: the line resumed and issued the batch (exit 0)"
check "$(count 'line resumed' "$W/sd2.err")" 1 "server back: resume said once"
check "$(count '"result":"issued"' "$W/sd2.jsonl")" 3 "server back: 3 notes issued"

# ---- 2. a chip personalised but not enrolled (as pkcs11-tool leaves it) ----
ne_chips 2 100 "$W/c2" || exit 1
"$NE_STATION" provision --line "$NE_LINE" --chips "$W/c2" \
    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
    --so-pin-source "file:$NE_SOPIN" >/dev/null 2>&1
check $? 0 "two chips personalised without the server (not enrolled)"
ne_batch 2 NE >"$W/ne.csv"
ne_issue --chips "$W/c2" --journal "$W/j-ne.db" --batch "$W/ne.csv" --json \
    --no-progress >"$W/ne.jsonl" 2>"$W/ne.err"
check $? 2 "not enrolled: issue exit 2"
check "$(count '"result":"off_line"' "$W/ne.jsonl")" 2 "not enrolled: both chips reported off the line"
check "$(count 'not enrolled' "$W/ne.jsonl")" 2 "... with the reason"
check "$(written "$W/c2")" 0 "not enrolled: nothing written (never burnt)"
"$NE_STATION" enroll --line "$NE_LINE" --chips "$W/c2/NOTE000000000100.chip" \
    "${NE_CONN[@]}" --json >"$W/en.jsonl" 2>"$W/en.err"
check $? 0 "enroll: exit 0"
check "$(count '"result":"enrolled"' "$W/en.jsonl")" 1 "enroll: the chip enrolled"
ne_provision "$W/c2" --json >"$W/pe.jsonl" 2>"$W/pe.err"
check $? 0 "provision on locked chips: exit 0"
check "$(count '"result":"enrolled"' "$W/pe.jsonl")" 1 "provision enrols the locked chip the server did not know"
check "$(count '"result":"skipped"' "$W/pe.jsonl")" 1 "... and skips the one already enrolled"
"$NE_STATION" enroll --line "$NE_LINE" --chips "$W/c2" "${NE_CONN[@]}" \
    --json >"$W/en2.jsonl" 2>/dev/null
check "$(count '"result":"already_enrolled"' "$W/en2.jsonl")" 2 "enroll again: already enrolled"
ne_issue --chips "$W/c2" --journal "$W/j-ne.db" --batch "$W/ne.csv" --json \
    --no-progress >"$W/ne2.jsonl" 2>"$W/ne2.err"
check $? 0 "enrolled chips: issued (exit 0)"
ne_verify_online --chips "$W/c2" --json >"$W/ne-v.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/ne-v.jsonl")" 2 "enrolled chips: GENUINE online"
ne_verify --offline --chips "$W/c2" --json >"$W/ne-v2.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/ne-v2.jsonl")" 2 "enrolled chips: GENUINE offline"

# ---- 2b. a serial shorter than 16 bytes (space-padded on the chip) is
# shown without its padding in JSON and text lines ----
mkdir -p "$W/cpad"
"$NE_MKCHIP" note NOTE-PAD-01 "$W/cpad/pad.chip" >/dev/null || bad "mkchip NOTE-PAD-01"
ne_provision "$W/cpad" --json >"$W/pad.jsonl" 2>/dev/null
check "$(count '"chip":"NOTE-PAD-01","result":"personalised' "$W/pad.jsonl")" 1 "padded serial: provision JSON shows it trimmed"
ne_verify --offline --chips "$W/cpad" --json >"$W/padv.jsonl" 2>/dev/null
check "$(count '"chip":"NOTE-PAD-01","note":"","verdict":"BLANK"' "$W/padv.jsonl")" 1 "padded serial: verify JSON shows it trimmed"
ne_verify --offline --chips "$W/cpad" >"$W/padv.txt" 2>/dev/null
check "$(count 'chip NOTE-PAD-01: ' "$W/padv.txt")" 1 "padded serial: verify text shows it trimmed"
ne_batch 1 PD >"$W/pd.csv"
ne_issue --chips "$W/cpad" --journal "$W/j-pd.db" --batch "$W/pd.csv" --json \
    --no-progress >"$W/pd.jsonl" 2>/dev/null
check "$(count '"chip":"NOTE-PAD-01","result":"issued"' "$W/pd.jsonl")" 1 "padded serial: issued (the padded serial on the wire), shown trimmed"

# ---- 3. issue --follow: chips put in and taken out while it runs ----
L=$W/line
rm -f "$L"/pos-*
ne_chips 1 200 "$W/c3" && "$NE_STATION" provision --line "$NE_LINE" \
    --chips "$W/c3" --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
    --so-pin-source "file:$NE_SOPIN" >/dev/null 2>&1	# not enrolled
ne_batch 5 FL >"$W/fl.csv"
"$NE_STATION" issue --follow --line "$NE_LINE" --issuer-key "$NE_ISSUER_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-fl.db" \
    --batch "$W/fl.csv" --json >"$W/fl.jsonl" 2>"$W/fl.err" &
fl=$!; pids+=("$fl")
wait_for 20 grep -qs '"event":"waiting"' "$W/fl.jsonl" || bad "follow: no waiting event"
present() {	# present POS CHIP: put CHIP in position POS, wait for its result
	local before
	before=$(count '"result"' "$W/fl.jsonl")
	ln -sfn "$2" "$L/pos-0$1"
	wait_for 20 more '"result"' "$W/fl.jsonl" "$before" ||
	    bad "follow: no result for $2 at position $1"
	wait_for 10 grep -q "\"event\":\"done\",\"position\":$1" "$W/fl.jsonl"
	rm -f "$L/pos-0$1"
}
present 0 "$W/chips/NOTE000000000003.chip"
present 2 "$W/chips/NOTE000000000004.chip"
present 1 "$W/c3/NOTE000000000200.chip"
present 3 "$W/chips/NOTE000000000005.chip"
check "$(count '"result":"issued"' "$W/fl.jsonl")" 3 "follow: 3 chips issued at positions 0, 2, 3"
check "$(count '"result":"off_line"' "$W/fl.jsonl")" 1 "follow: the chip the server does not know is off the line"
kill -TERM "$fl"; wait "$fl"
check $? 2 "follow: SIGTERM stops the line (exit 2: 2 notes not issued)"
check "$(sqlite3 "$W/j-fl.db" 'select count(*) from issue_journal where state = 2')" 3 "follow: journal: 3 acknowledged"
check "$(sqlite3 "$W/j-fl.db" 'select count(*) from issue_journal where state = 1')" 0 "follow: journal: nothing in doubt"
check "$(written "$W/c3")" 0 "follow: the unknown chip left blank"

# ---- 4. verify --follow: one note after another ----
"$NE_STATION" verify --follow --line "$NE_LINE" --issuer-pub "$NE_ISSUER_PUB" \
    "${NE_CONN[@]}" --json >"$W/vf.jsonl" 2>"$W/vf.err" &
vf=$!; pids+=("$vf")
desk() {	# desk CHIP: present at position 1, wait for the verdict
	local before
	before=$(count '"verdict"' "$W/vf.jsonl")
	ln -sfn "$1" "$L/pos-01"
	wait_for 20 more '"verdict"' "$W/vf.jsonl" "$before" ||
	    bad "desk: no verdict for $1"
	before=$(count '"event":"waiting","position":1' "$W/vf.jsonl")
	rm -f "$L/pos-01"
	wait_for 10 more '"event":"waiting","position":1' "$W/vf.jsonl" "$before" ||
	    bad "desk: position 1 not waiting again after removal"
}
desk "$W/chips/NOTE000000000003.chip"
desk "$W/c3/NOTE000000000200.chip"
desk "$W/chips/NOTE000000000004.chip"
kill -TERM "$vf"; wait "$vf"
check "$(count '"verdict":"GENUINE"' "$W/vf.jsonl")" 2 "desk: two notes GENUINE"
check "$(count '"verdict":"BLANK"' "$W/vf.jsonl")" 1 "desk: the blank chip BLANK (not COUNTERFEIT)"
check "$(count '"verdict":"COUNTERFEIT"' "$W/vf.jsonl")" 0 "desk: no COUNTERFEIT"

# ---- 5. two stations, overlapping batches ----
# a second station: its own certificate (STN-0002), enrolled at the server
"$NE_CA" issue --dir "$W/ca" --role station --serial STN-0002 \
    --p11 "pkcs11:token=mintline-station;object=channel?pin-source=file:$W/pins/station.pin" \
    --module "$NE_MODULE" --out "$W/station2.pem" >/dev/null &&
"$NE_SRV" enroll --registry "$NE_DB" --factory "mint line 2" \
    "$W/station2.pem" >/dev/null || bad "second station enrolled"
ne_server_stop; ne_server_start || bad "server restart with station 2"
CONN2=("${NE_CONN[@]}")
for i in "${!CONN2[@]}"; do [ "${CONN2[$i]}" = "$W/station.pem" ] && CONN2[$i]=$W/station2.pem; done
ne_chips 40 300 "$W/c5a" && ne_chips 40 400 "$W/c5b" &&
ne_provision "$W/c5a" >/dev/null 2>&1 && ne_provision "$W/c5b" >/dev/null 2>&1
mkdir -p "$W/line-b"; echo 4 >"$W/line-b/positions"
ne_batch 40 OV 1 >"$W/ov-a.csv"; ne_batch 40 OV 21 >"$W/ov-b.csv"	# OV21..40 in both
ne_issue --chips "$W/c5a" --journal "$W/j-a.db" --batch "$W/ov-a.csv" --json \
    --no-progress --workers 1 >"$W/ov-a.jsonl" 2>"$W/ov-a.err" &
a=$!
# the second station starts once the first is issuing (both open the one
# SoftHSM token directory)
wait_for 20 grep -qs '"result":"issued"' "$W/ov-a.jsonl"
"$NE_STATION" issue --workers 1 --line "inproc:$W/line-b" --chips "$W/c5b" \
    --issuer-key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" "${CONN2[@]}" \
    --journal "$W/j-b.db" --batch "$W/ov-b.csv" --json --no-progress \
    >"$W/ov-b.jsonl" 2>"$W/ov-b.err"
wait "$a"
check "$(sqlite3 "$NE_DB" "select count(*) from note where note_id like 'OV%'")" 60 "two stations: 60 serials registered"
check "$(sqlite3 "$NE_DB" "select count(distinct note_id) from note where note_id like 'OV%'")" 60 "two stations: each once"
check "$(( $(written "$W/c5a") + $(written "$W/c5b") ))" 60 "two stations: 60 chips written, the losers' chips blank"
check "$(cat "$W"/ov-*.jsonl | grep -c '"result":"refused"')" 0 "two stations: no upload refused (decided before writing)"
check "$(cat "$W"/ov-*.jsonl | grep -c '"result":"registered_elsewhere"\|"result":"held"')" 20 "two stations: the 20 shared serials reported by the station that lost them"
echo "# two stations: $(cat "$W"/ov-*.jsonl | grep -c '"result":"held"') serial(s) lost while the other station held them"

exit $((fail != 0))
