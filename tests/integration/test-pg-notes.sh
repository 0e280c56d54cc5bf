#!/usr/bin/env bash
# BN-7, BN-8: banknote registration through two mintline-server instances that
# share one PostgreSQL registry (readers, chips and notes in one database;
# the note settings in a configuration file).  Two stations issue two batches at once, one
# through each server; a third station tries serials already issued, on
# other chips, through the other server; one server is killed (-9) under
# load and its station resumes through the OTHER server.  Then: every note
# registered exactly once, none on two chips, the duplicates refused
# before any chip is written, every issued note GENUINE online.  The
# audit trail (OP-5) in the shared database: one row per registration
# naming the station, across the kill and the outage; a refused enrolment
# naming chip, station and reason; a row per online desk check;
# `audit --verify` intact, and failing on the row edited with the trigger
# disabled.
# Exit 77 (skipped) without postgresql, SoftHSM2, OpenSC.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/pg-notes
NOTES=${NOTES:-120}
HERE=$top/tests/integration
. "$HERE/pg-lib.sh"
pg_find || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 4 || exit 77
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

# ne_init made $W 0700 (root): the cluster (owned by nobody) lives beside it
pg_init "$W-pg" || { echo "cannot start PostgreSQL"; exit 1; }
URL=$PG_URL
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; pg_stop immediate; pg_cleanup; }
trap stop_all EXIT

ne_keys || { echo "key ceremony failed"; exit 1; }
"$NE_SRV" enroll --registry "$URL" --factory "mint line 1" "$W/station.pem" >/dev/null ||
    { echo "enroll in PostgreSQL failed"; exit 1; }

# what both servers share: one configuration file
cat >"$W/server.conf" <<CONF
ca               = $W/ca/root.pem
cert             = $W/server.pem
key              = $NE_SERVER_KEY_HS
module           = $NE_MODULE
registry         = $URL
registry-pool    = 4
workers          = 2
note-issuers     = $NE_ISSUER_PEM
note-feature-key = $NE_FKEY
note-seal-key    = $NE_SERVER_KEY
CONF
start_srv() {	# name port (a restart appends to the log)
	ne_spawn "$W/$1.log" "$NE_SRV" --config "$W/server.conf" \
	    --listen "127.0.0.1:$2" || return 1
	eval "PID_$1=$NE_SPAWN_PID"
	PIDS+=("$NE_SPAWN_PID")
}
PA=$(pg_free_port); PB=$(pg_free_port)
start_srv A "$PA" && start_srv B "$PB" || { echo "servers did not start"; exit 1; }
ok "two servers, notes in $URL"

conn() {	# port
	echo --server "127.0.0.1:$1" --ca "$W/ca/root.pem" --cert "$W/station.pem" \
	    --module "$NE_MODULE" \
	    --key "pkcs11:token=mintline-station;object=channel?pin-source=file:$W/pins/station.pin"
}
line() {	# name: an in-process line with its own chips
	mkdir -p "$W/$1" "$W/$1-chips"
	echo 4 > "$W/$1/positions"
}
issue() {	# name port batch [extra]
	local n=$1 port=$2 batch=$3
	shift 3
	# shellcheck disable=SC2046
	"$NE_STATION" issue --line "inproc:$W/$n" --chips "$W/$n-chips" \
	    --issuer-key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" $(conn "$port") \
	    --journal "$W/$n.journal" --batch "$batch" --json --no-progress "$@"
}
for n in s1 s2 s3; do line $n; done
ne_chips "$NOTES" 0 "$W/s1-chips" && ne_chips "$NOTES" 100000 "$W/s2-chips" &&
    ne_chips 5 200000 "$W/s3-chips" || exit 1
# shellcheck disable=SC2046
for n in s1:$PA s2:$PB s3:$PB; do
	"$NE_STATION" provision --line "inproc:$W/${n%%:*}" --chips "$W/${n%%:*}-chips" \
	    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
	    --so-pin-source "file:$NE_SOPIN" $(conn "${n#*:}") --json >/dev/null ||
	    bad "provision ${n%%:*}"
done
check "$(pg_psql 'SELECT count(*) FROM note_chip')" $((2 * NOTES + 5)) "chips enrolled through both servers"

ne_batch "$NOTES" MA 1 > "$W/a.csv"
ne_batch "$NOTES" MB 1 > "$W/b.csv"
# station 1 through A, station 2 through B, at once; A killed mid-batch
issue s1 "$PA" "$W/a.csv" --retry-secs 5 > "$W/s1-1.jsonl" 2> "$W/s1.err" &
S1=$!
# both stations share one SoftHSM2 token directory here, and two processes
# loading keys from it at the same instant can fail ("issuer key: I/O
# error"): start station 2 once station 1 has its first acknowledgement
for _ in $(seq 100); do
	[ -s "$W/s1-1.jsonl" ] && break
	sleep 0.05
done
issue s2 "$PB" "$W/b.csv" > "$W/s2.jsonl" 2> "$W/s2.err" &
S2=$!
for _ in $(seq 200); do	# kill A once a quarter of station 1's batch is in
	[ "$(pg_psql "SELECT count(*) FROM note WHERE note_id LIKE 'MA%'")" -ge $((NOTES / 4)) ] && break
	sleep 0.05
done
kill -9 "$PID_A"
wait "$PID_A" 2>/dev/null
sleep 0.2
before=$(pg_psql "SELECT count(*) FROM note WHERE note_id LIKE 'MA%'")
[ "$before" -gt 0 ] && [ "$before" -lt "$NOTES" ] &&
    ok "server A killed (-9) under load, $before of station 1's $NOTES notes registered" ||
    ok "server A killed (-9) with $before of station 1's $NOTES notes registered (timing)"
wait "$S1"
wait "$S2"; rc2=$?
check "$rc2" 0 "station 2 (server B) finished its batch while A died"
# station 1 resumes through B: in-doubt uploads are answered with the
# registration A made
issue s1 "$PB" "$W/a.csv" > "$W/s1-2.jsonl" 2>> "$W/s1.err"
check $? 0 "station 1 resumed through server B"
again=$(cat "$W"/s1-*.jsonl | grep -c '"result":"already_registered"\|"result":"completed"')
ok "in-doubt or repeated uploads answered with the first registration: $again"

# the same serials on other chips, through B: the pre-check (OP-3) refuses
# them before AUTHORIZE WRITE, so the chips stay blank and nothing needs
# flagging (flags are for a serial found on two written chips)
ne_batch 5 MA 1 > "$W/dup.csv"
issue s3 "$PB" "$W/dup.csv" > "$W/s3.jsonl" 2> "$W/s3.err"
check "$(grep -c '"result":"issued"' "$W/s3.jsonl")" 0 "duplicate serials on other chips: none issued"
check "$(grep -c '"result":"registered_elsewhere".*chip left blank' "$W/s3.jsonl")" 5 "duplicate serials refused before writing, chips left blank"
check "$(pg_psql "SELECT count(*) FROM note_flag WHERE note_id LIKE 'MA%'")" 0 "no chip written, so none flagged"

check "$(pg_psql 'SELECT count(*) FROM note')" $((2 * NOTES)) "every note registered"
check "$(pg_psql 'SELECT count(*) - count(DISTINCT note_id) FROM note')" 0 "registered exactly once"
check "$(pg_psql 'SELECT count(*) - count(DISTINCT chip_serial) FROM note')" 0 "no chip carries two notes"

# PostgreSQL stopped while a station issues through B: registrations are
# refused (nothing acknowledged), the server says why, and once the
# database is back the resumed batch completes with every note once.
line s4
ne_chips 240 300000 "$W/s4-chips" || exit 1
# shellcheck disable=SC2046
"$NE_STATION" provision --line "inproc:$W/s4" --chips "$W/s4-chips" \
    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
    --so-pin-source "file:$NE_SOPIN" $(conn "$PB") --json >/dev/null || bad "provision s4"
ne_batch 240 MC 1 > "$W/c.csv"
issue s4 "$PB" "$W/c.csv" --retry-secs 3 > "$W/s4-1.jsonl" 2> "$W/s4.err" &
S4=$!
for _ in $(seq 200); do
	[ "$(pg_psql "SELECT count(*) FROM note WHERE note_id LIKE 'MC%'")" -ge 5 ] && break
	sleep 0.02
done
pg_stop fast
wait "$S4"
grep -q "registry: unavailable" "$W/B.log" &&
    ok "database down under server B: \"$(grep -m1 -o 'registry: unavailable.*' "$W/B.log")\"" ||
    bad "server B did not say the registry is unavailable"
pg_start || bad "restart PostgreSQL"
issued1=$(grep -c '"result":"issued"' "$W/s4-1.jsonl")
ok "station during the outage: $issued1 issued (acknowledged) before, $(grep -c '"result":"not_issued"\|"result":"error"' "$W/s4-1.jsonl") refused or left in doubt"
for _ in $(seq 30); do	# B reconnects by itself (backoff <= 5 s)
	issue s4 "$PB" "$W/c.csv" > "$W/s4-2.jsonl" 2>> "$W/s4.err" && break
	sleep 1
done
check "$(pg_psql "SELECT count(*) FROM note WHERE note_id LIKE 'MC%'")" 240 "after the database came back: the whole batch registered"
missing=0
for n in $(sed -n 's/.*"note":"\([^"]*\)".*"result":"issued".*/\1/p' "$W/s4-1.jsonl"); do
	[ "$(pg_psql "SELECT count(*) FROM note WHERE note_id = '$n'")" = 1 ] || missing=$((missing + 1))
done
check "$missing" 0 "every note acknowledged before the outage is in the registry"

# online verification through A (restarted), notes issued through B too
start_srv A "$PA" || bad "restart A"
# shellcheck disable=SC2046
"$NE_STATION" verify --line "inproc:$W/s2" --issuer-pub "$NE_ISSUER_PUB" \
    $(conn "$PA") --chips "$W/s2-chips" --json > "$W/v2.jsonl" 2>/dev/null
check "$(grep -c '"verdict":"GENUINE"' "$W/v2.jsonl")" "$NOTES" "notes registered through B verify GENUINE through A"

# OP-3 across servers: two stations (STN-0001, STN-0002) issue the SAME
# serials at once, one through A and one through B.  The pre-check's
# serial reservation is a registry row, so each serial is promised to one
# chip: the loser's chip stays blank (held), no chip is written and then
# refused at upload, nothing flagged.  B restarted in between: the
# promises survive a restart.
"$NE_CA" issue --dir "$W/ca" --role station --serial STN-0002 \
    --p11 "pkcs11:token=mintline-station;object=channel?pin-source=file:$W/pins/station.pin" \
    --module "$NE_MODULE" --out "$W/station2.pem" >/dev/null &&
"$NE_SRV" enroll --registry "$URL" --factory "mint line 2" "$W/station2.pem" >/dev/null ||
    bad "second station certificate"
M=40
for n in s5 s6; do line $n; done
ne_chips "$M" 400000 "$W/s5-chips" && ne_chips "$M" 500000 "$W/s6-chips" || exit 1
# shellcheck disable=SC2046
for n in s5:$PA s6:$PB; do
	"$NE_STATION" provision --line "inproc:$W/${n%%:*}" --chips "$W/${n%%:*}-chips" \
	    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
	    --so-pin-source "file:$NE_SOPIN" $(conn "${n#*:}") --json >/dev/null ||
	    bad "provision ${n%%:*}"
done
ne_batch "$M" MD 1 > "$W/d.csv"
issue s5 "$PA" "$W/d.csv" > "$W/s5.jsonl" 2> "$W/s5.err" &
S5=$!
# shellcheck disable=SC2046
"$NE_STATION" issue --line "inproc:$W/s6" --chips "$W/s6-chips" \
    --issuer-key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" \
    $(conn "$PB" | sed "s|$W/station.pem|$W/station2.pem|") \
    --journal "$W/s6.journal" --batch "$W/d.csv" --json --no-progress \
    > "$W/s6.jsonl" 2> "$W/s6.err"
wait "$S5"
i5=$(grep -c '"result":"issued"' "$W/s5.jsonl"); i6=$(grep -c '"result":"issued"' "$W/s6.jsonl")
check "$((i5 + i6))" "$M" "overlapping batches through A and B: each serial issued once ($i5 + $i6)"
check "$(pg_psql "SELECT count(*) FROM note WHERE note_id LIKE 'MD%'")" "$M" "overlapping batches: every serial registered once"
check "$(pg_psql "SELECT count(*) FROM note_flag WHERE note_id LIKE 'MD%'")" 0 "overlapping batches: no chip written then refused (none flagged)"
check "$(cat "$W/s5.jsonl" "$W/s6.jsonl" | grep -v '^{"summary"' | grep -vc '"result":"\(issued\|held\|not_issued\|registered_elsewhere\)"')" 0 "overlapping batches: every note issued, or its chip left blank (held, registered elsewhere)"
# a promise survives a server restart: reserve by hand, restart B, ask
pg_psql "INSERT INTO note_reservation VALUES ('MD99999999', 'NOTE000000499999', 'STN-0009', extract(epoch from now())::bigint + 600)" >/dev/null
kill "$PID_B"; wait "$PID_B" 2>/dev/null
start_srv B "$PB" || bad "restart B"
ne_batch 1 MD 99999999 > "$W/e.csv"
line s7
ne_chips 1 600000 "$W/s7-chips" || exit 1
# shellcheck disable=SC2046
"$NE_STATION" provision --line "inproc:$W/s7" --chips "$W/s7-chips" \
    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
    --so-pin-source "file:$NE_SOPIN" $(conn "$PB") --json >"$W/s7-prov.jsonl" 2>&1 ||
    { cat "$W/s7-prov.jsonl"; bad "provision s7"; }
issue s7 "$PB" "$W/e.csv" > "$W/s7.jsonl" 2>/dev/null
check "$(grep -c '"result":"held"' "$W/s7.jsonl")" 1 "a serial reserved before B restarted is still held for its chip"

# ---- the audit trail, written by both servers into one chain ----
check "$(pg_psql "SELECT count(*) FROM audit WHERE action = 'register' AND outcome = 'ok'")" \
    "$(pg_psql 'SELECT count(*) FROM note')" "audit: one register row per registered note"
check "$(pg_psql "SELECT count(*) FROM audit a JOIN note n ON n.note_id = a.subject WHERE a.action = 'register' AND a.outcome = 'ok' AND a.actor IN ('STN-0001', 'STN-0002') AND a.actor_certno <> '' AND a.detail = 'chip ' || n.chip_serial")" \
    "$(pg_psql 'SELECT count(*) FROM note')" "audit: each names the station, its certificate number and the chip"
check "$(pg_psql "SELECT count(*) FROM reader_events WHERE serial IN ('STN-0001', 'STN-0002') AND kind = 4")" \
    "$(pg_psql 'SELECT count(*) FROM note')" "one transaction record per registration"
check "$(pg_psql "SELECT count(*) FROM audit WHERE action = 'desk-check' AND outcome = 'ok' AND actor = 'STN-0001'")" "$NOTES" "audit: one desk-check row with verdict ok per GENUINE note"
# a chip with an enrolled serial and another key: refused, one row
line s8
ne_chips 1 0 "$W/s8-chips" || exit 1
# shellcheck disable=SC2046
"$NE_STATION" provision --line "inproc:$W/s8" --chips "$W/s8-chips" \
    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
    --so-pin-source "file:$NE_SOPIN" $(conn "$PA") --json >/dev/null 2>&1
check "$(pg_psql "SELECT count(*) FROM audit WHERE action = 'enrol' AND subject_kind = 'chip' AND subject = 'NOTE000000000000' AND outcome = 'enrol_conflict' AND actor = 'STN-0001' AND actor_certno <> '' AND at > 0")" 1 \
    "audit: refused enrolment names chip, station, certificate number and reason"
"$NE_SRV" audit --registry "$URL" --verify > "$W/verify.out" 2>&1
check $? 0 "audit --verify: $(cat "$W/verify.out")"
pg_psql "UPDATE audit SET outcome = 'forged' WHERE id = 5" >/dev/null 2>&1 &&
    bad "audit: the schema let an update through" || ok "audit: the schema refuses an update"
pg_psql "ALTER TABLE audit DISABLE TRIGGER audit_no_change; UPDATE audit SET outcome = 'forged' WHERE id = 5; ALTER TABLE audit ENABLE TRIGGER audit_no_change" >/dev/null
"$NE_SRV" audit --registry "$URL" --verify > "$W/verify-bad.out" 2>&1
check $? 1 "audit --verify fails after a tampered row"
grep -q "audit row 5" "$W/verify-bad.out" && ok "audit --verify names row 5" ||
    bad "audit --verify does not name row 5: $(cat "$W/verify-bad.out")"

exit $((fail != 0))
