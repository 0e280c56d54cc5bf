#!/usr/bin/env bash
# The mint line and the desk on PC/SC (OP-1, OP-3, OP-4): a private pcscd
# with vpcd readers (tests/integration/pcsc-env.sh), each chip a
# mintline-chip process; a chip is "inserted" by starting its process on a
# reader's port and "removed" by stopping it, while the station runs.
#   1. a note personalised with stock pkcs11-tool over PC/SC, as
#      docs/admin.md says; enroll; issue; verify GENUINE online and offline;
#   2. issue --follow: chips inserted at any reader and issued; the server
#      stopped: the next chip is not written, the line pauses and resumes
#      by itself when the server is back;
#   3. verify --follow: one note after another, BLANK for a blank chip;
#   4. chips pulled (SIGKILL of the card) in the middle of issuance, again
#      and again: the store keeps each chip blank or written, the journal
#      agrees, a re-presented chip is completed, no serial twice;
#   5. readers plugged in and out while issue --follow runs (pcscd
#      restarted with 6 readers, then 4): new readers become positions,
#      a reader gone is reported and the others go on;
#   6. a chip pulled exactly during WRITE FEATURE (after the write, before
#      the answer: mintline-chip --latency holds the answer) and one pulled
#      during AUTHORIZE WRITE: the station reports it, keeps the note for
#      that chip, completes the written one and issues the blank one when
#      they come back; the journal agrees, nothing twice.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / sqlite3 / pcscd + vpcd.
# shellcheck disable=SC2119
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/line-pcsc
CHIP=${MINTLINE_CHIP:-$B/chip-applet/mintline-chip}
MODULE=${MINTLINE_PKCS11_MODULE:-$B/pkcs11/mintline-pkcs11.so}
CHECK=${PCSC_LINK_CHECK:-$B/tests/integration/pcsc_link_check}
command -v sqlite3 >/dev/null || exit 77
rm -rf "$W"
# shellcheck source=tests/integration/pcsc-env.sh
. "$here/pcsc-env.sh"
pcsc_env_require
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 1 || exit 77
NR=4
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"
bg=()
cleanup() {
	local p
	for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
	ne_server_stop
	pcsc_env_cleanup
}
trap cleanup EXIT

# six readers' ports held from the start (section 5 restarts pcscd on them)
pcsc_env_start "$W/pcsc" 6 || { echo "private pcscd did not start"; exit 1; }
port0=$PCSC_ENV_PORT_FIRST
NE_LINE=pcsc:mintline-vpcd
ne_keys || { echo "key ceremony failed"; exit 1; }
ne_server_start || { echo "server did not start"; exit 1; }
ne_chips 30 0 "$W/chips" || exit 1
provision_one() {	# provision_one IMAGE [ARGS]: on reader 0
	pcsc_chip_insert 0 "$1"
	"$NE_STATION" provision --line "pcsc:$VPCD_READER_0" \
	    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
	    --so-pin-source "file:$NE_SOPIN" "${@:2}" >/dev/null 2>&1
	local rc=$?
	pcsc_chip_remove 0
	return $rc
}

# ---- 1. pkcs11-tool personalisation over PC/SC (docs/admin.md) ----
SO=$(cat "$NE_SOPIN")
pkcs11-tool --module "$NE_MODULE" --token-label mintline-station \
    --read-object --type pubkey --label issuer -o "$W/issuer.der" >/dev/null 2>&1 &&
pkcs11-tool --module "$NE_MODULE" --token-label mintline-server \
    --read-object --type pubkey --label seal -o "$W/server.der" >/dev/null 2>&1 ||
    bad "public keys exported with pkcs11-tool"
echo lock >"$W/lock.txt"
pcsc_chip_insert 0 "$W/chips/NOTE000000000000.chip"
M=(--module "$MODULE" --slot-index 0)
export MINTLINE_PKCS11_TRANSPORT=pcsc:$VPCD_READER_0
{ pkcs11-tool "${M[@]}" --init-token --label "note 0000" --so-pin "$SO" &&
  pkcs11-tool "${M[@]}" --login --login-type so --so-pin "$SO" \
      --keypairgen --key-type EC:prime256v1 --label chip --id 01 &&
  pkcs11-tool "${M[@]}" --login --login-type so --so-pin "$SO" \
      --write-object "$W/issuer.der" --type pubkey --label issuer &&
  pkcs11-tool "${M[@]}" --login --login-type so --so-pin "$SO" \
      --write-object "$W/server.der" --type pubkey --label server &&
  pkcs11-tool "${M[@]}" --login --login-type so --so-pin "$SO" \
      --write-object "$W/lock.txt" --type data --application-label mintline-lock --label lock
} >"$W/p11.log" 2>&1
check $? 0 "pkcs11-tool personalised a note over PC/SC (docs/admin.md)"
unset MINTLINE_PKCS11_TRANSPORT
ne_batch 1 PK >"$W/pk.csv"
"$NE_STATION" issue --line "pcsc:$VPCD_READER_0" --issuer-key "$NE_ISSUER_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-pk.db" \
    --batch "$W/pk.csv" --json --no-progress >"$W/pk0.jsonl" 2>&1
check "$(count '"result":"off_line"' "$W/pk0.jsonl")" 1 "before enrolment: the chip goes off the line, blank (not burnt)"
"$NE_STATION" enroll --line "pcsc:$VPCD_READER_0" "${NE_CONN[@]}" --json \
    >"$W/en.jsonl" 2>"$W/en.err"
check $? 0 "enroll over PC/SC: exit 0"
check "$(count '"result":"enrolled"' "$W/en.jsonl")" 1 "enroll: the pkcs11-tool chip enrolled"
"$NE_STATION" issue --line "pcsc:$VPCD_READER_0" --issuer-key "$NE_ISSUER_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-pk.db" \
    --batch "$W/pk.csv" --json --no-progress >"$W/pk.jsonl" 2>"$W/pk.err"
check $? 0 "issue on the enrolled pkcs11-tool chip: exit 0"
"$NE_STATION" verify --line "pcsc:$VPCD_READER_0" --issuer-pub "$NE_ISSUER_PUB" \
    "${NE_CONN[@]}" >"$W/pk-v.txt" 2>/dev/null
check "$(count '^GENUINE PK00000001' "$W/pk-v.txt")" 1 "pkcs11-tool chip: GENUINE online"
"$NE_STATION" verify --line "pcsc:$VPCD_READER_0" --issuer-pub "$NE_ISSUER_PUB" \
    --offline >"$W/pk-v2.txt" 2>/dev/null
check "$(count '^GENUINE PK00000001' "$W/pk-v2.txt")" 1 "pkcs11-tool chip: GENUINE offline"
pcsc_chip_remove 0

# personalise the rest with provision, four readers at a time
for ((i = 1; i < 30; i += NR)); do
	for ((k = 0; k < NR && i + k < 30; k++)); do
		printf -v s 'NOTE%012d' $((i + k))
		pcsc_chip_insert $k "$W/chips/$s.chip"
	done
	"$NE_STATION" provision --line "$NE_LINE" --issuer-pub "$NE_ISSUER_PUB" \
	    --server-pub "$NE_SERVER_PUB" --so-pin-source "file:$NE_SOPIN" \
	    "${NE_CONN[@]}" >>"$W/prov.log" 2>&1 || bad "provision of chips $i.."
	for ((k = 0; k < NR; k++)); do pcsc_chip_remove $k; done
done
check "$(sqlite3 "$NE_DB" 'select count(*) from note_chip')" 30 "30 chips personalised and enrolled over PC/SC"

# ---- 2. issue --follow: chips come and go on every reader ----
ne_batch 20 FP >"$W/fp.csv"
"$NE_STATION" issue --follow --line "$NE_LINE" --issuer-key "$NE_ISSUER_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-fp.db" \
    --batch "$W/fp.csv" --json >"$W/fp.jsonl" 2>"$W/fp.err" &
fp=$!; bg+=("$fp")
wait_for 20 grep -qs '"event":"waiting"' "$W/fp.jsonl" || bad "follow: no waiting event"
present() {	# present READER CHIPNO: insert, wait for a result, remove
	local before; printf -v s 'NOTE%012d' "$2"
	before=$(count '"result"' "$W/fp.jsonl")
	pcsc_chip_insert "$1" "$W/chips/$s.chip"
	wait_for 30 more '"result"' "$W/fp.jsonl" "$before" || bad "follow: no result for $s at reader $1"
	pcsc_chip_remove "$1"
}
present 0 1; present 3 2; present 1 3; present 2 4
check "$(count '"result":"issued"' "$W/fp.jsonl")" 4 "follow: 4 chips issued on readers 0, 3, 1, 2"
# the server goes away: the chip inserted now is not written
ne_server_stop
pcsc_chip_insert 2 "$W/chips/NOTE000000000005.chip"
wait_for 20 grep -qs 'line paused' "$W/fp.err" || bad "follow: no pause reported"
sleep 1
check "$(count '"result":"issued"' "$W/fp.jsonl")" 4 "server down: nothing issued meanwhile"
ne_server_start || bad "server restart"
wait_for 30 more '"result":"issued"' "$W/fp.jsonl" 4 || bad "follow: no issue after the server came back"
check "$(count 'line resumed' "$W/fp.err")" 1 "server back: the line resumed by itself"
pcsc_chip_remove 2
kill -TERM "$fp"; wait "$fp"
check "$(sqlite3 "$W/j-fp.db" 'select count(*) from issue_journal where state = 2')" 5 "follow: journal: 5 acknowledged"
check "$(sqlite3 "$W/j-fp.db" 'select count(*) from issue_journal where state = 1')" 0 "follow: journal: nothing in doubt"

# ---- 3. verify --follow on PC/SC ----
"$NE_STATION" verify --follow --line "$NE_LINE" --issuer-pub "$NE_ISSUER_PUB" \
    "${NE_CONN[@]}" --json >"$W/vf.jsonl" 2>"$W/vf.err" &
vf=$!; bg+=("$vf")
wait_for 20 grep -qs '"event":"waiting"' "$W/vf.jsonl" || bad "desk: no waiting event"
desk() {	# desk READER CHIPNO
	local before; printf -v s 'NOTE%012d' "$2"
	before=$(count '"verdict"' "$W/vf.jsonl")
	pcsc_chip_insert "$1" "$W/chips/$s.chip"
	wait_for 30 more '"verdict"' "$W/vf.jsonl" "$before" || bad "desk: no verdict for $s"
	pcsc_chip_remove "$1"
}
desk 1 1; desk 1 29; desk 3 2
kill -TERM "$vf"; wait "$vf"
check "$(count '"verdict":"GENUINE"' "$W/vf.jsonl")" 2 "desk (PC/SC): two notes GENUINE"
check "$(count '"verdict":"BLANK"' "$W/vf.jsonl")" 1 "desk (PC/SC): the blank chip BLANK"

# ---- 4. chips pulled mid-issuance ----
ne_batch 15 TR >"$W/tr.csv"
"$NE_STATION" issue --follow --line "$NE_LINE" --issuer-key "$NE_ISSUER_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-tr.db" \
    --batch "$W/tr.csv" --json >"$W/tr.jsonl" 2>"$W/tr.err" &
tr=$!; bg+=("$tr")
wait_for 20 grep -qs '"event":"waiting"' "$W/tr.jsonl"
for i in $(seq 10 21); do
	printf -v s 'NOTE%012d' "$i"
	pcsc_chip_insert -n $((i % NR)) "$W/chips/$s.chip"
	sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
	pcsc_chip_remove $((i % NR)) KILL	# mid-write or not: a power cut
done
sleep 1
# every pulled chip comes back once, and is completed or issued
for i in $(seq 10 21); do
	printf -v s 'NOTE%012d' "$i"
	before=$(count '"result"' "$W/tr.jsonl")
	pcsc_chip_insert 0 "$W/chips/$s.chip"
	wait_for 20 more '"result"' "$W/tr.jsonl" "$before" || true
	pcsc_chip_remove 0
done
kill -TERM "$tr"; wait "$tr"
reg=$(sqlite3 "$NE_DB" "select count(*) from note where note_id like 'TR%'")
check "$(sqlite3 "$NE_DB" "select count(distinct note_id) from note where note_id like 'TR%'")" "$reg" "pulled chips: no serial registered twice"
check "$(sqlite3 "$NE_DB" "select count(distinct chip_serial) from note where note_id like 'TR%'")" "$reg" "pulled chips: no chip carries two serials"
check "$(sqlite3 "$W/j-tr.db" 'select count(*) from issue_journal where state = 2')" "$reg" "pulled chips: journal acknowledged = registered ($reg)"
check "$(sqlite3 "$W/j-tr.db" 'select count(*) from issue_journal where state = 1')" 0 "pulled chips: nothing left in doubt after re-presenting"
echo "# pulled chips: $reg of 12 issued, $(count '"result":"completed"' "$W/tr.jsonl") completed on re-presentation"

# ---- 5. readers plugged in and out ----
# the line starts with 4 readers; then pcscd comes back with 6, then 4
pcsc_env_stop
PCSC_ENV_PORT_BASE=$port0 pcsc_env_start "$W/pcsc" 4 || bad "pcscd restart with 4 readers"
ne_batch 6 HP >"$W/hp.csv"
"$NE_STATION" issue --follow --line "$NE_LINE" --issuer-key "$NE_ISSUER_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-hp.db" \
    --batch "$W/hp.csv" --json >"$W/hp.jsonl" 2>"$W/hp.err" &
hp=$!; bg+=("$hp")
wait_for 20 grep -qs '"event":"waiting"' "$W/hp.jsonl" || bad "hotplug: no waiting event"
hp_present() {	# hp_present READER CHIPNO
	local before; printf -v s 'NOTE%012d' "$2"
	before=$(count '"result"' "$W/hp.jsonl")
	pcsc_chip_insert "$1" "$W/chips/$s.chip"
	wait_for 30 more '"result"' "$W/hp.jsonl" "$before" || bad "hotplug: no result for $s at reader $1"
	pcsc_chip_remove "$1"
}
hp_present 1 22
pcsc_env_stop
wait_for 20 grep -qs '"event":"gone"' "$W/hp.jsonl" || bad "hotplug: readers gone not reported"
PCSC_ENV_PORT_BASE=$port0 pcsc_env_start "$W/pcsc" 6 || bad "pcscd restart with 6 readers"
wait_for 20 grep -qs '"event":"waiting","position":5' "$W/hp.jsonl" ||
    bad "hotplug: the readers plugged in did not become positions 4 and 5"
hp_present 5 23
hp_present 0 24
pcsc_env_stop
PCSC_ENV_PORT_BASE=$port0 pcsc_env_start "$W/pcsc" 4 || bad "pcscd restart with 4 readers"
hp_present 2 25
kill -TERM "$hp"; wait "$hp"
check "$(count '"result":"issued"' "$W/hp.jsonl")" 4 "hotplug: 4 chips issued across pcscd restarts, on an added reader too"
check "$(grep -c '"chip":"NOTE000000000023","result":"issued"' "$W/hp.jsonl")" 1 "hotplug: the chip on the added reader 5 issued"
check "$(grep -o '"event":"waiting","position":[45],"reader":"mintline-vpcd-2 00 0[01]"' "$W/hp.jsonl" | sort -u | wc -l)" 2 "hotplug: the two readers plugged in became positions 4 and 5"
check "$(grep -c '"event":"gone","position":[45]}' "$W/hp.jsonl")" 2 "hotplug: the two readers unplugged reported gone"
check "$(sqlite3 "$W/j-hp.db" 'select count(*) from issue_journal where state = 1')" 0 "hotplug: journal: nothing in doubt"

# ---- 6. pulled during WRITE FEATURE and during AUTHORIZE WRITE ----
printf '7A 3000000\n' >"$W/slow-write.lat"	# INS 7A answers after 3 s
printf '78 3000000\n' >"$W/slow-auth.lat"	# INS 78 answers after 3 s
ne_batch 4 MW >"$W/mw.csv"
"$NE_STATION" issue --follow --line "$NE_LINE" --issuer-key "$NE_ISSUER_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-mw.db" \
    --batch "$W/mw.csv" --json >"$W/mw.jsonl" 2>"$W/mw.err" &
mw=$!; bg+=("$mw")
wait_for 20 grep -qs '"event":"waiting"' "$W/mw.jsonl" || bad "mid-write: no waiting event"
intents() { sqlite3 "$W/j-mw.db" 'select count(*) from issue_journal where state = 1' 2>/dev/null; }
intents_are() { [ "$(intents)" = "$1" ]; }	# for wait_for (evaluated each time)
pull_during() {	# pull_during CHIPNO PROFILE: insert slow, pull once it is at it
	local s before
	printf -v s 'NOTE%012d' "$1"
	before=$(count '"result":"error"' "$W/mw.jsonl")
	pcsc_chip_insert -n 0 "$W/chips/$s.chip" --latency "$2"
	wait_for 20 intents_are 1 || bad "mid-write: no intent for $s"
	sleep 1	# inside the 3 s the chip holds its answer
	pcsc_chip_remove 0 KILL
	wait_for 20 more '"result":"error"' "$W/mw.jsonl" "$before" ||
	    bad "mid-write: the pull of $s not reported"
	wait_for 10 intents_are 1 || bad "mid-write: $s not in doubt"
}
again() {	# again CHIPNO RESULT: re-present, expect RESULT for its note
	local s before
	printf -v s 'NOTE%012d' "$1"
	before=$(count "\"result\":\"$2\"" "$W/mw.jsonl")
	pcsc_chip_insert 1 "$W/chips/$s.chip"
	wait_for 30 more "\"result\":\"$2\"" "$W/mw.jsonl" "$before" ||
	    bad "mid-write: $s not $2 when re-presented"
	pcsc_chip_remove 1
}
pull_during 26 "$W/slow-write.lat"
check "$(grep -c '"chip":"NOTE000000000026","result":"error","reason":"WRITE FEATURE interrupted' "$W/mw.jsonl")" 1 "pulled during WRITE FEATURE: reported"
again 26 completed
check "$(grep -c '"note":"MW00000001".*"chip":"NOTE000000000026","result":"completed"' "$W/mw.jsonl")" 1 "pulled during WRITE: the written chip completed with its note"
pull_during 27 "$W/slow-auth.lat"
check "$(grep -c '"chip":"NOTE000000000027","result":"error","reason":"AUTHORIZE WRITE failed' "$W/mw.jsonl")" 1 "pulled during AUTHORIZE WRITE: reported"
again 27 issued
check "$(grep -c '"note":"MW00000002".*"chip":"NOTE000000000027","result":"issued"' "$W/mw.jsonl")" 1 "pulled during AUTHORIZE: the blank chip issued its held note on return"
kill -TERM "$mw"; wait "$mw"
check "$(sqlite3 "$NE_DB" "select count(*) from note where note_id like 'MW%'")" 2 "mid-write: 2 notes registered"
check "$(sqlite3 "$NE_DB" "select count(distinct chip_serial) from note where note_id like 'MW%'")" 2 "mid-write: on 2 chips, once each"
check "$(sqlite3 "$W/j-mw.db" 'select count(*) from issue_journal where state = 2')" 2 "mid-write: journal agrees (2 acknowledged)"
check "$(sqlite3 "$W/j-mw.db" 'select count(*) from issue_journal where state = 1')" 0 "mid-write: nothing left in doubt"
exit $((fail != 0))
