#!/usr/bin/env bash
# The verification desk end to end on counterfeits (BN-8, threat model
# §3 T3/T4): a small batch issued with SoftHSM2 and mintline-server, then
# build/tools/mintline-counterfeit makes a chip written with a forged
# writer key, a clone of a genuine chip, a genuine note with an altered
# feature record, and a blank chip.  `mintline-station verify`, online and
# offline, must call each COUNTERFEIT with its reason, every other note
# GENUINE, and exit 0 (all genuine) / 3 (a counterfeit among them).
# Also (threat model "export the HSM private key"): the server's and the
# station issuer's private keys in SoftHSM2 are sensitive, never
# extractable, and their value cannot be read.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / sqlite3.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/counterfeit-desk
NOTES=${NOTES:-20}
command -v sqlite3 >/dev/null || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 4 || exit 77
trap ne_server_stop EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

ne_keys || { echo "key ceremony failed"; exit 1; }
ne_chips $((NOTES + 2)) || exit 1
ne_server_start || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" --json >/dev/null
check $? 0 "provision: every chip personalised and enrolled"
ne_batch "$NOTES" >"$W/batch.csv"
ne_issue --batch "$W/batch.csv" --no-progress --json >"$W/issue.jsonl" 2>"$W/issue.err"
check $? 0 "issue exit 0"
check "$(grep -c '"result":"issued"' "$W/issue.jsonl")" "$NOTES" "$NOTES notes issued"

chips=$W/chips
# before any counterfeit: exit 0, everything issued GENUINE, the 2 blank
# chips (not issued) COUNTERFEIT "blank chip" -> take those 2 aside first
mapfile -t blank < <(comm -23 <(cd "$chips" && ls -- *.chip | sed 's/\.chip$//' | sort) \
    <(sed -n 's/.*"chip":"\([^"]*\)","result":"issued".*/\1/p' "$W/issue.jsonl" | sort))
check "${#blank[@]}" 2 "two chips left blank by the line"
mkdir -p "$W/aside"
for b in "${blank[@]}"; do mv "$chips/$b.chip"* "$W/aside/"; done
ne_verify_online --chips "$chips" >"$W/v-genuine.txt" 2>"$W/v-genuine.err"
check $? 0 "online, only genuine notes: verify exit 0"
check "$(grep -c '^GENUINE' "$W/v-genuine.txt")" "$NOTES" "online, only genuine notes: $NOTES GENUINE"
ne_verify --offline --chips "$chips" >"$W/v-genuine-off.txt" 2>"$W/v-genuine-off.err"
check $? 0 "offline, only genuine notes: verify exit 0"
check "$(grep -c '^GENUINE' "$W/v-genuine-off.txt")" "$NOTES" "offline, only genuine notes: $NOTES GENUINE"
for b in "${blank[@]}"; do mv "$W/aside/$b.chip"* "$chips/"; done

# the counterfeits
printf -v g5 'NOTE%012d' 5
printf -v g7 'NOTE%012d' 7
c1=${blank[0]}
c2=${blank[1]}
"$NE_MKCHIP" note FORGED0000000001 "$chips/FORGED0000000001.chip" >/dev/null &&
"$NE_FAKE" forge "$chips/$g5.chip" "$chips/FORGED0000000001.chip" MX 77777777 >/dev/null
check $? 0 "counterfeit: forged-writer chip made"
"$NE_FAKE" clone "$chips/$g5.chip" "$chips/$c1.chip" >/dev/null
check $? 0 "counterfeit: clone of $g5 made on $c1"
"$NE_FAKE" alter "$chips/$g7.chip" >/dev/null
check $? 0 "counterfeit: feature record of $g7 altered"

for mode in online offline; do
	if [ $mode = online ]; then
		ne_verify_online --chips "$chips" >"$W/v-$mode.txt" 2>"$W/v-$mode.err"
	else
		ne_verify --offline --chips "$chips" >"$W/v-$mode.txt" 2>"$W/v-$mode.err"
	fi
	check $? 3 "$mode: verify exit 3 (counterfeits among the notes)"
	v=$W/v-$mode.txt
	check "$(grep -c '^GENUINE' "$v")" $((NOTES - 1)) "$mode: $((NOTES - 1)) GENUINE (every issued note but the altered one)"
	check "$(grep -c '^COUNTERFEIT' "$v")" 3 "$mode: 3 COUNTERFEIT"
	check "$(grep -c '^COUNTERFEIT .*FORGED0000000001: unauthorized writer' "$v")" 1 "$mode: forged writer key: COUNTERFEIT unauthorized writer"
	check "$(grep -c "^COUNTERFEIT .*chip $g5: chip key mismatch or clone" "$v")" 1 "$mode: cloned chip: COUNTERFEIT chip key mismatch or clone"
	check "$(grep -c "^GENUINE .*chip $g5\b" "$v")" 1 "$mode: the genuine original $g5 stays GENUINE"
	if [ $mode = online ]; then	# the registry holds the issued record
		check "$(grep -c "^COUNTERFEIT .*chip $g7: feature mismatch" "$v")" 1 "$mode: altered feature record: COUNTERFEIT feature mismatch"
	else	# no registry: the station signature over the record breaks
		check "$(grep -c "^COUNTERFEIT .*chip $g7: unauthorized writer (station signature does not verify)" "$v")" 1 "$mode: altered feature record: COUNTERFEIT unauthorized writer (station signature does not verify)"
	fi
	check "$(grep -c "^BLANK .*$c2.*blank chip" "$v")" 1 "$mode: blank chip: BLANK (no note written), not COUNTERFEIT"
done

# ---- the HSM private keys: sensitive, never extractable, value unreadable
# (p11_key_attrs: C_GetAttributeValue through the SoftHSM2 module itself;
# pkcs11-tool --read-object refuses private keys on its own, so it proves
# nothing about the token)
P11_KEY_ATTRS=${P11_KEY_ATTRS:-$B/tests/integration/p11_key_attrs}
for tok in server:seal server:channel station:issuer station:channel; do
	"$P11_KEY_ATTRS" "$NE_MODULE" "mintline-${tok%%:*}" "${tok#*:}" \
	    "$W/pins/${tok%%:*}.pin"
	r=$?
	[ $r = 0 ] || bad "p11_key_attrs mintline-${tok%%:*}/${tok#*:} exit $r"
done

# control: the checker does fail on a key made extractable
softhsm2-util --init-token --free --label mintline-control --so-pin 12345678 \
    --pin 123456 >/dev/null &&
pkcs11-tool --module "$NE_MODULE" --token-label mintline-control --login \
    --pin 123456 --keypairgen --key-type EC:prime256v1 --label weak --id 01 \
    --extractable >/dev/null 2>&1
if [ $? = 0 ]; then
	(umask 077; echo 123456 >"$W/pins/control.pin")
	"$P11_KEY_ATTRS" "$NE_MODULE" mintline-control weak "$W/pins/control.pin" >"$W/control.txt" 2>&1
	r=$?
	[ $r = 1 ] && grep -q '^FAIL - .*CKA_EXTRACTABLE false' "$W/control.txt" &&
	    ok "(control) p11_key_attrs fails on an extractable key" ||
	    bad "(control) p11_key_attrs on an extractable key: exit $r"
else
	echo "# (control skipped: this pkcs11-tool cannot make an extractable key)"
fi

ne_server_stop
exit $((fail != 0))
