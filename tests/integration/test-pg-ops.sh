#!/usr/bin/env bash
# OP-5, ID-3, ID-5, BN-4 on a real PostgreSQL registry (initdb'd here, see
# pg-lib.sh): what test-idread-server.sh, test-issuer-rotate.sh and
# test-server-privsep.sh show on SQLite, with one mintline-server serving
# ID reads (SAM emulator) and notes from one configuration file:
#   1. reader transactions (ID-3): every ended ID read is one transaction
#      record and one audit row naming the reader serial, its certificate
#      number, the card and the outcome; `show` counts them;
#   2. live revocation: a station and a reader revoked in the CRL are
#      refused at their first handshake message after SIGHUP while their
#      channels opened before it keep working; one revoke audit row per
#      revoked certificate, and none again at the next SIGHUP;
#   3. issuer-key retirement at the server: note-issuers changed on
#      SIGHUP (issuer-add / issuer-retire rows); an upload signed by the
#      retired key is refused (one register row with the reason), the new
#      key writes, the note written under the retired key stays GENUINE;
#   4. `audit --verify` over all these rows, and `audit --json` filtered
#      by time (--since/--until, unix seconds and ISO 8601).
# Exit 77 (skipped) without postgresql, SoftHSM2, OpenSC.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/pg-ops
HERE=$top/tests/integration
STATION=${MINTLINE_STATION:-$B/station/mintline-station}
MKIDCARD=${MINTLINE_MKIDCARD:-$B/tools/mintline-mkidcard}
FIXTURE=${IDREAD_FIXTURE:-$B/tests/integration/idread_fixture}
. "$HERE/pg-lib.sh"
pg_find || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 4 || exit	# 77 (skip) without SoftHSM2 / OpenSC
# ok, bad, expect_rc, idread, line_init, cards_init, feed
# shellcheck source=tests/integration/idread-lib.sh
. "$HERE/idread-lib.sh"
check() { if [ "$1" = "$2" ]; then ok "$3"; else bad "$3 (got $1, want $2)"; fi; }
count() { grep -c -- "$1" "$2" 2>/dev/null || true; }
wait_for() {	# SECONDS CMD...: poll CMD every 0.1 s
	local n=$(( $1 * 10 )); shift
	while ((n-- > 0)); do "$@" && return 0; sleep 0.1; done
	return 1
}

# ne_init made $W 0700 (root): the cluster (owned by nobody) lives beside it
pg_init "$W-pg" || { echo "cannot start PostgreSQL"; exit 1; }
URL=$PG_URL
SRV_PID=
stop_all() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null
	wait 2>/dev/null
	pg_stop immediate; pg_cleanup
}
trap stop_all EXIT

# ---- ceremony: the issuance keys, a second issuer key, the ID reader ----
ne_keys || { echo "key ceremony failed"; exit 1; }
ne_token mintline-issuer2 issuer --usage-sign
M="module-path=$NE_MODULE"
OLD_PUB=$NE_ISSUER_PEM
# the server's copy of the new issuer key is a PEM file (issuance-env.sh:
# the server never logs in to a station token)
pkcs11-tool --module "$NE_MODULE" --token-label mintline-issuer2 --read-object \
    --type pubkey --label issuer -o "$W/issuer2.der" >/dev/null 2>&1 &&
openssl pkey -pubin -inform DER -in "$W/issuer2.der" -out "$W/issuer2.pem" ||
    { echo "new issuer public key"; exit 1; }
NEW_PUB=$W/issuer2.pem
NEW_KEY="pkcs11:token=mintline-issuer2;object=issuer;type=private?$M&pin-source=file:$W/pins/issuer2.pin"
STNKEY="pkcs11:token=mintline-station;object=channel?pin-source=file:$W/pins/station.pin"
"$NE_CA" issue --dir "$W/ca" --role station --serial STN-0002 --p11 "$STNKEY" \
    --module "$NE_MODULE" --out "$W/station2.pem" >/dev/null &&
"$NE_CA" issue --dir "$W/ca" --role reader --serial RDR-0009 --p11 "$STNKEY" \
    --module "$NE_MODULE" --out "$W/reader.pem" >/dev/null || { echo "certificates"; exit 1; }
# the ID reader's key is made inside its reader secure chip (ID-14)
line_init "$W/idline" multi "$W/rdr.der"
"$NE_CA" issue --dir "$W/ca" --role reader --serial RDR-IDR-0001 --pub "$W/rdr.der" \
    --out "$W/rdr.pem" >/dev/null || { echo "ID reader certificate"; exit 1; }
cards_init
"$NE_SRV" enroll --registry "$URL" --factory "mint line 1" "$W/station.pem" \
    "$W/station2.pem" "$W/reader.pem" "$W/rdr.pem" >/dev/null &&
"$NE_CA" crl --dir "$W/ca" --out "$W/crl.pem" >/dev/null ||
    { echo "enrolment in PostgreSQL failed"; exit 1; }

conf() {	# conf ISSUERS...: the one configuration file, re-read on SIGHUP
	cat >"$W/server.conf" <<CONF
listen           = 127.0.0.1:$NE_PORT
ca               = $W/ca/root.pem
crl              = $W/crl.pem
cert             = $W/server.pem
key              = $NE_SERVER_KEY_HS
module           = $NE_MODULE
registry         = $URL
registry-pool    = 4
workers          = 2
sam              = emul:$W/sam.key
note-issuers     = $*
note-feature-key = $NE_FKEY
note-seal-key    = $NE_SERVER_KEY
CONF
}
conf "$OLD_PUB"
"$NE_SRV" --config "$W/server.conf" -v >>"$W/server.log" 2>&1 &
SRV_PID=$!
wait_for 20 grep -qs listening "$W/server.log" || { cat "$W/server.log"; echo "server did not start"; exit 1; }
reloads_past() { [ "$(count 'configuration reloaded' "$W/server.log")" -gt "$1" ]; }
hup() {		# SIGHUP, then wait until the server says it reloaded
	local before
	before=$(count 'configuration reloaded' "$W/server.log")
	kill -HUP "$SRV_PID"
	wait_for 20 reloads_past "$before" || bad "no reload after SIGHUP"
}
audit_n() { pg_psql "SELECT count(*) FROM audit WHERE $1"; }

# ---- 1. reader transactions (ID-3) in PostgreSQL ----
SRV_ARGS="--server 127.0.0.1:$NE_PORT --ca $W/ca/root.pem --cert $W/rdr.pem"
L=$W/idline
feed "$L" "$W/cardA.img"
expect_rc 0 "ID read through the server (--json, --photo)" idread "$L" --json --photo "$W/photo.pgm"
check_json "ID information complete, GB 11643 check digit valid, photo written"
feed "$L" "$W/cardB.img"
expect_rc 0 "ID read of card B, handshake B" idread "$L" --flow b
feed "$L" "$W/cardX.img"
expect_rc 4 "unknown card: the SAM cannot decrypt" idread "$L"
reads=$(pg_psql "SELECT count(*) FROM reader_events WHERE serial = 'RDR-IDR-0001' AND kind = 1 AND detail LIKE 'idread ok%'")
errs=$(pg_psql "SELECT count(*) FROM reader_events WHERE serial = 'RDR-IDR-0001' AND kind = 2 AND detail LIKE 'idread%'")
ended=$((reads + errs))
[ "$reads" -ge 2 ] && [ "$errs" -ge 1 ] &&
    ok "PostgreSQL: $reads read and $errs error records for RDR-IDR-0001" ||
    bad "PostgreSQL: $reads read and $errs error records, want >= 2 and >= 1"
tx=$("$NE_SRV" show --registry "$URL" RDR-IDR-0001 | sed -n 's/^transactions //p')
check "$tx" "$ended" "show: one transaction per ended read"
certno=$(openssl x509 -in "$W/rdr.pem" -noout -serial | sed 's/^serial=0*//')
check "$(audit_n "action = 'id-read' AND actor = 'RDR-IDR-0001' AND actor_certno = '$certno' AND subject_kind = 'card' AND subject <> '' AND at > 0")" \
    "$ended" "audit: one id-read row per ended read naming reader, certificate number $certno and card"
check "$(audit_n "action = 'id-read' AND outcome = 'ok'")" "$reads" "audit: the reads that succeeded have outcome ok"
check "$(audit_n "action = 'id-read' AND outcome <> 'ok' AND outcome <> ''")" "$errs" "audit: the failed read names its outcome"
"$NE_SRV" audit --registry "$URL" --reader RDR-IDR-0001 --json >"$W/reader.jsonl"
check "$(count '"action":"id-read"' "$W/reader.jsonl")" "$ended" "audit --reader --json lists the reads"

# ---- 2. revocation on SIGHUP; established channels stay ----
ne_conn_as STN2 "$W/station2.pem"
ne_conn_as RDR "$W/reader.pem"
ne_hold "$W/held.out" 15000 "${STN2[@]}" --kind station || bad "held station channel"
held=$NE_HELD_PID
ne_hold "$W/rheld.out" 15000 "${RDR[@]}" || bad "held reader channel"
rheld=$NE_HELD_PID
"$NE_CA" revoke --dir "$W/ca" "$W/station2.pem" "$W/reader.pem" "$W/rdr.pem" >/dev/null &&
"$NE_CA" crl --dir "$W/ca" --out "$W/crl.pem" >/dev/null || bad "revoke"
hup
kill -0 "$held" 2>/dev/null && kill -0 "$rheld" 2>/dev/null ||
    bad "a held channel ended before the reload"
"$NE_STATION" handshake "${STN2[@]}" --kind station --timeout 5000 >"$W/late.out" 2>"$W/late.err"
check $? 4 "revoked station STN-0002 refused at its first message after SIGHUP"
"$NE_STATION" handshake "${RDR[@]}" --timeout 5000 >"$W/rlate.out" 2>"$W/rlate.err"
check $? 4 "revoked reader RDR-0009 refused at its first message after SIGHUP"
# the held channels are still open, so that their pings come after the
# reload and the refusals
kill -0 "$held" 2>/dev/null && kill -0 "$rheld" 2>/dev/null &&
    ok "both channels opened before the SIGHUP are still open" ||
    bad "a held channel ended before the refusals were checked"
feed "$L" "$W/cardA.img"
idread "$L"
rc=$?
[ "$rc" != 0 ] && grep -qi 'revoked' "$W/err" && ok "revoked ID reader RDR-IDR-0001 refused (exit $rc)" ||
    { bad "revoked ID reader: exit $rc"; sed 's/^/    /' "$W/err"; }
check "$(audit_n "action = 'id-read'")" "$ended" "... and no ID read recorded for it"
for c in STN-0002 RDR-0009 RDR-IDR-0001; do
	grep -q "HS_ALERT_REVOKED .*claim=$c\$" "$W/server.log" &&
	    ok "the server logged HS_ALERT_REVOKED for $c" || bad "no HS_ALERT_REVOKED for $c"
done
wait "$held"
check $? 0 "the station channel STN-0002 keeps working after the reload"
check "$(count 'channel ok after hold: 3' "$W/held.out")" 1 "... 3 pings after the reload"
wait "$rheld"
check $? 0 "the reader channel RDR-0009 keeps working after the reload"
check "$(count 'channel ok after hold: 3' "$W/rheld.out")" 1 "... 3 pings after the reload"
for c in station2 reader rdr; do
	n=$(openssl x509 -in "$W/$c.pem" -noout -serial | sed 's/^serial=0*//')
	check "$(audit_n "action = 'revoke' AND subject_kind = 'certificate' AND subject = '$n' AND outcome = 'revoked'")" 1 \
	    "audit: one revoke row for certificate $n ($c)"
done
hup
check "$(audit_n "action = 'revoke'")" 3 "a second SIGHUP with the same CRL adds no revoke row"

# PostgreSQL down at the SIGHUP: the revocation takes effect all the same
# (the CRL is the server's, not the registry's); its audit row is written
# at the first SIGHUP after the database is back
"$NE_CA" issue --dir "$W/ca" --role reader --serial RDR-0010 --p11 "$STNKEY" \
    --module "$NE_MODULE" --out "$W/reader10.pem" >/dev/null &&
"$NE_SRV" enroll --registry "$URL" "$W/reader10.pem" >/dev/null || bad "RDR-0010 certificate"
ne_conn_as RDR10 "$W/reader10.pem"
"$NE_STATION" handshake "${RDR10[@]}" --timeout 5000 >"$W/r10.out" 2>&1
check $? 0 "reader RDR-0010 accepted before its revocation"
"$NE_CA" revoke --dir "$W/ca" "$W/reader10.pem" >/dev/null &&
"$NE_CA" crl --dir "$W/ca" --out "$W/crl.pem" >/dev/null || bad "revoke RDR-0010"
pg_stop fast
hup
grep -Eq 'SIGHUP: revocations of CRL .* not in the audit trail: registry: PostgreSQL .*(unavailable|connection lost|going away)' "$W/server.log" &&
    ok "database down at the SIGHUP: \"$(grep -m1 -o 'SIGHUP: revocations of CRL .*' "$W/server.log" | sed "s|$W/||")\"" ||
    bad "database down at the SIGHUP: no error logged for the revoke row"
"$NE_STATION" handshake "${RDR10[@]}" --timeout 5000 >"$W/r10.out" 2>&1
check $? 4 "... RDR-0010 refused all the same"
grep -q "HS_ALERT_REVOKED .*claim=RDR-0010\$" "$W/server.log" &&
    ok "... with HS_ALERT_REVOKED" || bad "RDR-0010: not refused as revoked"
pg_start || bad "restart PostgreSQL"
r10=$(openssl x509 -in "$W/reader10.pem" -noout -serial | sed 's/^serial=0*//')
# the server reconnects by itself (backoff <= 5 s): SIGHUP once a second
# until the row is there
for _ in $(seq 30); do
	hup
	[ "$(audit_n "action = 'revoke' AND subject = '$r10'" 2>/dev/null)" = 1 ] && break
	sleep 1
done
check "$(audit_n "action = 'revoke' AND subject = '$r10'")" 1 \
    "database back: a SIGHUP writes the revoke row for $r10"
check "$(audit_n "action = 'revoke'")" 4 "... and only that one"

# ---- 3. issuer-key retirement at the server ----
# chips that accept both keys: the server alone decides which key writes
ne_chips 3 0 "$W/chips" || exit 1
"$NE_STATION" provision --line "$NE_LINE" --chips "$W/chips" --issuer-pub "$OLD_PUB" \
    --issuer-pub "$NEW_PUB" --server-pub "$NE_SERVER_PUB" \
    --so-pin-source "file:$NE_SOPIN" "${NE_CONN[@]}" --json >"$W/prov.jsonl" 2>"$W/prov.err"
check $? 0 "3 chips personalised with both issuer keys, enrolled in PostgreSQL"
for x in old retired new; do mkdir -p "$W/$x"; done
mv "$W/chips/NOTE000000000000.chip"* "$W/old/"
mv "$W/chips/NOTE000000000001.chip"* "$W/retired/"
mv "$W/chips/NOTE000000000002.chip"* "$W/new/"
issue() {	# DIR KEY PREFIX
	ne_batch 1 "$3" >"$W/$3.csv"
	"$NE_STATION" issue --line "$NE_LINE" --chips "$W/$1" --issuer-key "$2" \
	    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-$1.db" \
	    --batch "$W/$3.csv" --json --no-progress >"$W/$1.jsonl" 2>"$W/$1.err"
}
issue old "$NE_ISSUER_KEY" OA
check $? 0 "old key: a note issued before its retirement"
conf "$NEW_PUB"
hup
grep -q 'issuer key .* retired' "$W/server.log" && grep -q 'issuer key .* added' "$W/server.log" &&
    ok "note-issuers re-read on SIGHUP (one key added, one retired)" ||
    bad "no issuer key change logged after SIGHUP"
check "$(audit_n "action = 'issuer-add' AND subject_kind = 'issuer' AND outcome = 'ok'")" 1 "audit: one issuer-add row"
check "$(audit_n "action = 'issuer-retire' AND subject_kind = 'issuer' AND outcome = 'ok'")" 1 "audit: one issuer-retire row"
issue retired "$NE_ISSUER_KEY" OR
[ $? != 0 ] && ok "retired key: issue fails" || bad "retired key: issue succeeded"
grep -q 'upload refused: chip NOTE000000000001: writer not authorised' "$W/server.log" &&
    ok "... the server refuses the upload signed by the retired key" ||
    bad "server: no refusal for the retired key"
check "$(pg_psql "SELECT count(*) FROM note WHERE note_id LIKE 'OR%'")" 0 "... no note registered"
check "$(audit_n "action = 'register' AND subject = 'NOTE000000000001' AND outcome <> 'ok' AND actor = 'STN-0001' AND actor_certno <> ''")" 1 \
    "audit: the refused upload is one row naming chip, station and reason ($(pg_psql "SELECT outcome FROM audit WHERE action = 'register' AND subject = 'NOTE000000000001'" | head -1))"
issue new "$NEW_KEY" NN
check $? 0 "new key: a note issued after the rotation"
ne_verify_online --chips "$W/old" --json >"$W/vold.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/vold.jsonl")" 1 "the note written under the retired key: GENUINE online"
"$NE_STATION" verify --line "$NE_LINE" --issuer-pub "$NEW_PUB" "${NE_CONN[@]}" \
    --chips "$W/new" --json >"$W/vnew.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/vnew.jsonl")" 1 "the note written under the new key: GENUINE online"
check "$(audit_n "action = 'register' AND outcome = 'ok'")" 2 "audit: one register row per registered note"
kill -0 "$SRV_PID" 2>/dev/null && ok "no restart: the same server process" || bad "server gone"

# ---- 4. audit --verify and the time filters ----
# every row is written; wait for the clock to pass the last one so that
# a row written now falls after the split below
last=$(pg_psql "SELECT max(at) FROM audit")
after() { [ "$(date +%s)" -gt "$1" ]; }
wait_for 5 after "$last" || bad "clock"
total=$(pg_psql "SELECT count(*) FROM audit")
"$NE_SRV" audit --registry "$URL" --verify >"$W/verify.out" 2>&1
check $? 0 "audit --verify: $(cat "$W/verify.out")"
grep -q "^audit: $total row(s), hash chain intact" "$W/verify.out" &&
    ok "audit --verify checked all $total rows" || bad "audit --verify: $(cat "$W/verify.out"), want $total rows"
"$NE_SRV" audit --registry "$URL" --json >"$W/all.jsonl"
check "$(wc -l <"$W/all.jsonl")" "$total" "audit --json: every row"
# split at the issuer-add row: rows before it (ID reads, revocations) and
# from it on (the key change, the notes)
T=$(pg_psql "SELECT at FROM audit WHERE action = 'issuer-add'")
iso=$(date -u -d "@$T" +%Y-%m-%dT%H:%M:%SZ)
"$NE_SRV" audit --registry "$URL" --since "$T" --json >"$W/since.jsonl"
"$NE_SRV" audit --registry "$URL" --since "$iso" --json >"$W/since-iso.jsonl"
"$NE_SRV" audit --registry "$URL" --until "$((T - 1))" --json >"$W/until.jsonl"
"$NE_SRV" audit --registry "$URL" --since "$T" --until "$T" --json >"$W/at.jsonl"
python3 - "$W" "$T" <<'PY' && ok "audit --json --since/--until $T ($iso): exactly the rows of their time range, split with none lost" || bad "audit --json time filters"
import json, sys
w, t = sys.argv[1], int(sys.argv[2])
rows = lambda f: [json.loads(l) for l in open(f"{w}/{f}")]
all_, since, since_iso, until, at = map(rows, ("all.jsonl", "since.jsonl",
    "since-iso.jsonl", "until.jsonl", "at.jsonl"))
ids = lambda rs: [r["id"] for r in rs]
assert ids(since) == [r["id"] for r in all_ if r["at"] >= t], "since"
assert since == since_iso, "ISO 8601 and unix seconds differ"
assert ids(until) == [r["id"] for r in all_ if r["at"] < t], "until"
assert ids(at) == [r["id"] for r in all_ if r["at"] == t] and at, "since = until"
assert sorted(ids(since) + ids(until)) == ids(all_), "split"
assert any(r["action"] == "issuer-add" for r in since), "issuer-add"
assert since and until, "both sides non-empty"
PY
"$NE_SRV" audit --registry "$URL" --station STN-0001 --since "$T" --json >"$W/stn.jsonl"
check "$(count '"action":"register"' "$W/stn.jsonl")" \
    "$(audit_n "action = 'register' AND actor = 'STN-0001' AND at >= $T")" "audit --station --since: STN-0001's uploads from the split on"
check "$("$NE_SRV" audit --registry "$URL" --until 2000-01-01 | wc -l)" 0 "audit --until before every row: nothing"

echo "# $pass passed, $fail failed"
[ "$fail" = 0 ] || { echo "--- server.log"; tail -40 "$W/server.log"; }
[ "$fail" = 0 ]
