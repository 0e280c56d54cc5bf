#!/usr/bin/env bash
# BN-7, adversarial: a sealed upload re-submitted by another station.
# Station 1 issues notes; station 2 (another enrolled station, its own
# channel key, no issuer key) reads the sealed uploads off the chips (GET
# SEALED answers anyone) and submits them over its own authenticated
# channel:
#   - notes station 1 registered: the first registration comes back
#     (NOTE_ST_AGAIN, same reg_id, same note), nothing new is registered;
#   - notes station 1 wrote but could not upload (server down, station
#     killed): station 2's upload registers them, once; station 1's resume
#     then gets the same registration;
#   - a reader certificate cannot upload at all;
# and the registry never holds a note twice or on two chips.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / sqlite3.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
RESUBMIT=${RESUBMIT:-$B/tests/integration/test-adversarial-resubmit}
W=$B/tests/adversarial-resubmit
command -v sqlite3 >/dev/null || exit 77
[ -x "$RESUBMIT" ] || { echo "skip: $RESUBMIT not built"; exit 77; }
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 4 || exit 77
trap ne_server_stop EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

ne_keys >/dev/null 2>&1 || { echo "key ceremony failed"; exit 1; }
ne_chips 10 || exit 1
ne_server_start || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" --json >/dev/null 2>"$W/provision.err" || { echo "provision failed"; exit 1; }

# station 2 and a reader, enrolled, each with its own channel key
ne_token mintline-station2 channel "--usage-sign --usage-derive"
ne_token mintline-reader channel "--usage-sign --usage-derive"
K2="pkcs11:token=mintline-station2;object=channel?pin-source=file:$W/pins/station2.pin"
KR="pkcs11:token=mintline-reader;object=channel?pin-source=file:$W/pins/reader.pin"
"$NE_CA" issue --dir "$W/ca" --role station --serial STN-0002 --p11 "$K2" \
    --module "$NE_MODULE" --out "$W/station2.pem" >/dev/null || exit 1
"$NE_CA" issue --dir "$W/ca" --role reader --serial RDR-R-0001 --p11 "$KR" \
    --module "$NE_MODULE" --out "$W/reader.pem" >/dev/null || exit 1
"$NE_SRV" enroll --registry "$NE_DB" "$W/station2.pem" \
    "$W/reader.pem" >/dev/null || exit 1
resubmit() {	# IMAGE CERT KEY [extra]
	"$RESUBMIT" "$1" --server "127.0.0.1:$NE_PORT" --ca "$W/ca/root.pem" \
	    --cert "$2" --key "$3" --module "$NE_MODULE" "${@:4}" 2>>"$W/resubmit.err"
}
notes() { sqlite3 "$NE_DB" 'select count(*) from note'; }

# ---- 1. notes station 1 registered ----
ne_batch 3 RS >"$W/batch1.csv"
ne_issue --batch "$W/batch1.csv" --json --no-progress >"$W/issue1.jsonl" 2>"$W/issue1.err"
check $? 0 "station 1 issues 3 notes"
check "$(notes)" 3 "3 notes registered"
sed -n 's/.*"note":"\([^"]*\)".*"chip":"\([^"]*\)".*"result":"issued".*"reg_id":\([0-9]*\).*/\1 \2 \3/p' \
    "$W/issue1.jsonl" > "$W/issued1"
while read -r note chip reg; do
	got=$(resubmit "$W/chips/$chip.chip" "$W/station2.pem" "$K2")
	check "$got" "status 1 reason 0 reg_id $reg note $note" \
	    "station 2 re-submits $note: the first registration, nothing new"
done < "$W/issued1"
check "$(notes)" 3 "still 3 notes registered"

# ---- 2. a reader certificate cannot upload ----
read -r note chip reg < "$W/issued1"
resubmit "$W/chips/$chip.chip" "$W/reader.pem" "$KR" --kind reader >/dev/null
check $? 1 "a reader's upload is refused"
grep -q "record from reader RDR-R-0001 refused" "$W/server.log" &&
    ok "server logs the reader's upload as refused" || bad "no refusal logged"

# ---- 3. notes station 1 wrote but did not upload: station 2 first ----
ne_server_stop
ne_batch 3 RS 4 >"$W/batch2.csv"
NE_EXEC=1 ne_issue --batch "$W/batch2.csv" --json --no-progress --retry-secs 30 \
    >"$W/issue2.jsonl" 2>"$W/issue2.err" &
st=$!
sleep 2
kill -9 "$st" 2>/dev/null
wait "$st" 2>/dev/null
ne_server_start || { bad "server restart"; exit 1; }
# ne_server_start matches the first start's "listening" line in the
# appended log: wait until the new server really accepts
python3 - "$NE_PORT" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        break
    except OSError:
        time.sleep(0.05)
PY
written=0
first=0
: > "$W/first"
for img in "$W"/chips/*.chip; do
	got=$(resubmit "$img" "$W/station2.pem" "$K2") || continue
	written=$((written + 1))
	case "$got" in
	"status 0 "*) first=$((first + 1)); echo "$got" >> "$W/first" ;;
	"status 1 "*) ;;
	*) bad "station 2 upload of $(basename "$img"): $got" ;;
	esac
done
echo "# $written chips carry a note; station 2 registered $first of them first"
[ "$first" -ge 1 ] && ok "notes written but not uploaded by station 1 registered by station 2's upload" ||
    echo "# (no in-doubt note this time: station 1 wrote nothing while the server was down)"
ne_issue --batch "$W/batch2.csv" --json --no-progress >"$W/issue3.jsonl" 2>"$W/issue3.err"
check $? 0 "station 1 resumes its batch"
while read -r _ _ _ _ _ reg _ note; do
	grep -q "\"note\":\"$note\".*\"reg_id\":$reg" "$W/issue3.jsonl" &&
	    ok "station 1's resume of $note gets station 2's registration $reg" ||
	    bad "station 1's resume of $note: $(grep "\"note\":\"$note\"" "$W/issue3.jsonl")"
done < "$W/first"
check "$(notes)" 6 "6 notes registered"
check "$(sqlite3 "$NE_DB" 'select count(distinct note_id) || "/" || count(distinct chip_serial) from note')" "6/6" \
    "none registered twice, none on two chips"
exit $((fail != 0))
