#!/usr/bin/env bash
# The README's demo: banknote issuance and verification end to end
# (BN-1..BN-8), on a fresh machine, with no manual step.
#
#   1. installs what is missing (scripts/deps.sh) and builds;
#   2. makes, under $BUILD_DIR/demo: a SoftHSM2 token directory holding
#      the server's keys (the chips' seal key, the channel key) and the
#      station's keys (issuer key, channel key), all made inside the
#      tokens and non-extractable; a CA with the server's and
#      the station's certificates; the issuer's feature key; $NOTES + 2
#      blank virtual note chips on an in-process line;
#   3. starts mintline-server (handshakes, channel, note registry);
#   4. provisions every chip (chip key inside, issuer and server keys,
#      lock) and enrols each chip key with the server;
#   5. issues a batch of $NOTES notes (one malformed line included, to show
#      it reported) and re-runs it (resume: nothing issued twice); shows a
#      station whose key is not authorised: reject-write, nothing written;
#   6. makes counterfeits: a chip written with a forged writer key, a
#      cloned chip, an altered feature record, a blank chip;
#   7. verifies every chip online (registry) and offline (chip alone),
#      prints the verdicts and a summary;
#   8. stops everything it started.
#
# Exit 0 when every outcome is the expected one.
# shellcheck disable=SC2119,SC2012
set -Eeuo pipefail
# A step that fails names itself (command, file, line) instead of ending
# the demo silently; subshells leave it to the command that ran them.
trap 'err_rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] || printf "%s: line %s: %s: exit %s\n" "${BASH_SOURCE[0]##*/}" "$LINENO" "${BASH_COMMAND%%[[:cntrl:]]*}" "$err_rc" >&2' ERR
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$top/build}
NOTES=${NOTES:-1000}
"$top/scripts/deps.sh"
BUILD_DIR=$BUILD_DIR "$top/scripts/build.sh"
work="$BUILD_DIR/demo"
rm -rf "$work"

# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$work" "$BUILD_DIR" 8 || { echo "demo: SoftHSM2/OpenSC missing" >&2; exit 1; }
trap ne_server_stop EXIT
fail=0
step() { printf '\n== %s\n' "$*"; }
expect() {	# got want what
	if [ "$1" = "$2" ]; then
		printf '   ok: %s\n' "$3"
	else
		printf '   UNEXPECTED: %s (got %s, want %s)\n' "$3" "$1" "$2"
		fail=1
	fi
}
t0=$(date +%s.%N)

step "key ceremony: SoftHSM2 tokens under $work/tokens, a CA, certificates"
ne_keys
echo "   seal key: pkcs11:token=mintline-server;object=seal (ECDH only); channel key: ...;object=channel"
echo "   issuer key: pkcs11:token=mintline-station;object=issuer; channel key: ...;object=channel"
echo "   CA: $work/ca/root.pem; server.pem, station.pem (station STN-0001, enrolled)"

step "manufacture $((NOTES + 2)) blank note chips; start mintline-server"
ne_chips $((NOTES + 2))
ne_server_start
echo "   server pid $NE_SERVER_PID on 127.0.0.1:$NE_PORT, note registry $NE_DB"

step "provision: chip key inside, issuer + server keys, lock; enrol each chip key"
ne_provision
expect "$(sqlite3 "$NE_DB" 'select count(*) from note_chip')" $((NOTES + 2)) \
    "$((NOTES + 2)) chip keys enrolled with the server"

step "issue $NOTES notes (BN-2..BN-7), 8 line positions, over the authenticated channel"
{ ne_batch "$NOTES"; echo "mx,00999999"; } >"$work/batch.csv"
rc=0
ne_issue --batch "$work/batch.csv" --no-progress --json >"$work/issue.jsonl" || rc=$?
grep -v '"result":"issued"' "$work/issue.jsonl" | grep -v '"summary"' | sed 's/^/   /' || true
expect "$rc" 2 "issue exit 2: everything issued but one malformed batch line (reported with its number)"
expect "$(grep -c '"result":"issued"' "$work/issue.jsonl")" "$NOTES" "$NOTES notes issued and acknowledged"
expect "$(sqlite3 "$NE_DB" 'select count(*) from note')" "$NOTES" "$NOTES notes in the registry"

step "re-run the same batch: resume from the journal"
ne_issue --batch "$work/batch.csv" --no-progress --json >"$work/issue2.jsonl" 2>"$work/issue2.err" || true
sed 's/^/   /' "$work/issue2.err"
expect "$(grep -c '"result":"issued"' "$work/issue2.jsonl" || true)" 0 "nothing issued twice"

step "a station whose key is not authorised (BN-4, BN-5): two more chips"
ne_chips 2 5000 "$work/rogue-chips"
ne_provision "$work/rogue-chips" >/dev/null 2>&1
ne_batch 2 RG >"$work/rogue.csv"
rrc=0
"$NE_STATION" issue --line "$NE_LINE" --chips "$work/rogue-chips" \
    --issuer-key "$NE_ROGUE_KEY" --feature-key "$NE_FKEY" "${NE_CONN[@]}" \
    --journal "$work/rogue-journal.db" --batch "$work/rogue.csv" --json \
    --no-progress >"$work/rogue.jsonl" 2>/dev/null || rrc=$?
sed -n '/"summary"/!s/^/   /p' "$work/rogue.jsonl"
expect "$rrc" 2 "issue exit 2: nothing issued"
expect "$(grep -c '"result":"reject_write"' "$work/rogue.jsonl")" 2 "every chip answered reject-write"
ne_verify --offline --chips "$work/rogue-chips" >"$work/rogue-verdicts.txt" 2>/dev/null || true
expect "$(grep -c 'blank chip' "$work/rogue-verdicts.txt")" 2 "nothing was written: both chips still blank"

step "counterfeits"
chips=$work/chips
# The chips the line wrote and the two it left blank (positions work in
# parallel, so which ones is not fixed): the first two written chips are
# the originals of the clone and of the altered note.
mapfile -t issued < <(sed -n 's/.*"chip":"\([^"]*\)","result":"issued".*/\1/p' "$work/issue.jsonl" | sort)
mapfile -t blank < <(comm -23 <(cd "$chips" && ls -- *.chip | sed 's/\.chip$//' | sort) \
    <(printf '%s\n' "${issued[@]}"))
expect "${#blank[@]}" 2 "two chips left blank by the line"
if [ "${#blank[@]}" -lt 2 ] || [ "${#issued[@]}" -lt 2 ]; then
	echo "demo: FAILED (no chips to make counterfeits from)"
	exit 1
fi
n5=${issued[0]}
n7=${issued[1]}
g5=$chips/$n5.chip
g7=$chips/$n7.chip
c1=$chips/${blank[0]}.chip
c2=$chips/${blank[1]}.chip
"$NE_MKCHIP" note FORGED0000000001 "$chips/FORGED0000000001.chip" >/dev/null
"$NE_FAKE" forge "$g5" "$chips/FORGED0000000001.chip" MX 77777777
echo "   FORGED0000000001: a counterfeiter's chip written with a forged writer key (note MX77777777)"
"$NE_FAKE" clone "$g5" "$c1"
echo "   $(basename "$c1" .chip): a clone of chip $n5 (chip serial, record and station signature copied; the chip key cannot be)"
"$NE_FAKE" alter "$g7"
echo "   $n7: a genuine note whose feature record is then altered in the chip memory"
echo "   $(basename "$c2" .chip): a blank chip (personalised, never written)"

step "verification desk, online (registry over the channel): verdict per note"
vrc=0
ne_verify_online --chips "$chips" >"$work/verdicts.txt" 2>"$work/verify.err" || vrc=$?
sed -n '/COUNTERFEIT/s/^/   /p' "$work/verdicts.txt"
awk '/^GENUINE/ && n++ < 3 { print "   " $0 }' "$work/verdicts.txt"
echo "   ... ($(grep -c GENUINE "$work/verdicts.txt") GENUINE lines in $work/verdicts.txt)"
sed 's/^/   /' "$work/verify.err"
expect "$vrc" 3 "verify exit 3 (a counterfeit among the notes)"
expect "$(grep -c GENUINE "$work/verdicts.txt")" $((NOTES - 1)) "$((NOTES - 1)) GENUINE"
expect "$(grep -c 'FORGED0000000001: unauthorized writer' "$work/verdicts.txt")" 1 "forged writer key: unauthorized writer"
expect "$(grep -c "^COUNTERFEIT .* chip $n5: chip key mismatch or clone" "$work/verdicts.txt")" 1 "cloned chip: chip key mismatch or clone"
expect "$(grep -c "^GENUINE .* chip $n5" "$work/verdicts.txt")" 1 "... while the genuine chip $n5 stays GENUINE"
expect "$(grep -c "^COUNTERFEIT .* chip $n7: feature mismatch" "$work/verdicts.txt")" 1 "altered feature record: feature mismatch"
expect "$(grep -c 'blank chip' "$work/verdicts.txt")" 1 "blank chip: blank chip"

step "verification desk, offline (station signature + chip proof, no network)"
orc=0
ne_verify --offline --chips "$chips" >"$work/verdicts-offline.txt" 2>"$work/verify-offline.err" || orc=$?
sed -n '/COUNTERFEIT/s/^/   /p' "$work/verdicts-offline.txt"
sed 's/^/   /' "$work/verify-offline.err"
expect "$orc" 3 "offline verify exit 3"

step "stop"
ne_server_stop
sed -n 's/^.*stats:/   server stats:/p' "$work/server.log" | tail -n 1
echo "   flagged: $(sqlite3 "$NE_DB" 'select count(*) from note_flag') (note, chip) pair(s); rejects by reason: $(sqlite3 "$NE_DB" "select coalesce(group_concat(reason || '=' || count, ' '), 'none') from note_reject")"

t1=$(date +%s.%N)
printf '\nsummary: %d notes issued and registered exactly once; %d GENUINE, %d COUNTERFEIT (online); %.1f s in all\n' \
    "$(sqlite3 "$NE_DB" 'select count(*) from note')" \
    "$(grep -c GENUINE "$work/verdicts.txt")" "$(grep -c COUNTERFEIT "$work/verdicts.txt")" \
    "$(awk "BEGIN { print $t1 - $t0 }")"
if [ "$fail" != 0 ]; then
	echo "demo: FAILED (see above)"
	exit 1
fi
echo "demo: every outcome as expected"
