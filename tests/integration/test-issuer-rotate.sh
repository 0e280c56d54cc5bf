#!/usr/bin/env bash
# Key changes without downtime (ID-5, BN-4, OP-5), on the in-process line,
# following docs/operations.md ("Revoking and rotating keys while running"):
#   1. a station's and a reader's channels open before a SIGHUP keep
#      working after it; the same certificates, revoked in the new CRL, are
#      refused at their next handshake; no restart (one server pid);
#      a renewed server certificate (same key) is taken on SIGHUP, a
#      certificate that is not the server's is refused and the running
#      one stays (OP-6);
#   2. issuer-key rotation: chips personalised with the old issuer key get
#      the new one added and the old one retired (mintline-station
#      rotate-issuer, authorised by the old key's signature, or the SO
#      PIN; again: unchanged; a written note: never changed; a key not on
#      the chip: refused); the server's note-issuers changes to the new key
#      on SIGHUP (audit rows issuer-add / issuer-retire);
#   3. the old key can no longer write: a rotated chip refuses its
#      authorisation (reject-write, chip left blank), and the server
#      refuses its upload from a chip that was not rotated; the new key
#      writes; the note written under the old key before the rotation
#      still verifies GENUINE, online and offline.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / sqlite3.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/issuer-rotate
command -v sqlite3 >/dev/null || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 4 || exit 77
cleanup() { ne_server_stop; wait 2>/dev/null; }
trap cleanup EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

ne_keys || { echo "key ceremony failed"; exit 1; }
# the new issuer key, in a token of its own
ne_token mintline-issuer2 issuer --usage-sign
M="module-path=$NE_MODULE"
OLD_PUB=$NE_ISSUER_PEM
OLD_KEY=$NE_ISSUER_KEY
# on SIGHUP a new issuer key is a PEM file (the monitor reads pkcs11:
# public keys at start-up only)
pkcs11-tool --module "$NE_MODULE" --token-label mintline-issuer2 --read-object \
    --type pubkey --label issuer -o "$W/issuer2.der" >/dev/null 2>&1 &&
openssl pkey -pubin -inform DER -in "$W/issuer2.der" -out "$W/issuer2.pem" ||
    { echo "new issuer public key"; exit 1; }
NEW_PUB=$W/issuer2.pem
NEW_KEY="pkcs11:token=mintline-issuer2;object=issuer;type=private?$M&pin-source=file:$W/pins/issuer2.pin"
# a second station certificate (revoked below) and an empty CRL
"$NE_CA" issue --dir "$W/ca" --role station --serial STN-0002 \
    --p11 "pkcs11:token=mintline-station;object=channel?pin-source=file:$W/pins/station.pin" \
    --module "$NE_MODULE" --out "$W/station2.pem" >/dev/null &&
"$NE_CA" issue --dir "$W/ca" --role reader --serial RDR-0009 \
    --p11 "pkcs11:token=mintline-station;object=channel?pin-source=file:$W/pins/station.pin" \
    --module "$NE_MODULE" --out "$W/reader.pem" >/dev/null &&
"$NE_SRV" enroll --registry "$NE_DB" --factory "mint line 2" "$W/station2.pem" \
    "$W/reader.pem" >/dev/null &&
"$NE_CA" crl --dir "$W/ca" --out "$W/crl.pem" >/dev/null || { echo "setup failed"; exit 1; }

NE_SRV_WORKERS=2
ne_server_conf "$OLD_PUB" "crl = $W/crl.pem"
ne_server_start || { echo "server did not start"; cat "$W/server.log"; exit 1; }
hup() { ne_server_reload || bad "no reload after SIGHUP"; sleep 0.2; }
STN2=() RDR=()
for a in "${NE_CONN[@]}"; do
	b=$a
	[ "$a" = "$W/station.pem" ] && a=$W/station2.pem && b=$W/reader.pem
	STN2+=("$a")
	RDR+=("$b")
done

# ---- 1. revocation on SIGHUP; an established channel stays ----
# held 8 s: long enough to be open across the reload (checked below)
ne_hold "$W/held.out" 8000 "${STN2[@]}" --kind station || bad "held channel: no handshake"
held=$NE_HELD_PID
ne_hold "$W/rheld.out" 8000 "${RDR[@]}" || bad "held reader channel: no handshake"
rheld=$NE_HELD_PID
"$NE_CA" revoke --dir "$W/ca" "$W/station2.pem" "$W/reader.pem" >/dev/null &&
"$NE_CA" crl --dir "$W/ca" --out "$W/crl.pem" >/dev/null || bad "revoke STN-0002"
hup
# the held channels must still be open now, or the checks below prove nothing
if kill -0 "$held" 2>/dev/null && kill -0 "$rheld" 2>/dev/null &&
    ! grep -qs 'after hold' "$W/held.out" "$W/rheld.out"; then
	ok "both held channels are open across the reload"
else
	bad "a held channel ended before the reload"
fi
"$NE_STATION" handshake "${STN2[@]}" --kind station --timeout 5000 >"$W/late.out" 2>"$W/late.err"
check $? 4 "revoked station STN-0002 refused at its first message after SIGHUP"
"$NE_STATION" handshake "${RDR[@]}" --timeout 5000 >"$W/rlate.out" 2>"$W/rlate.err"
check $? 4 "revoked reader RDR-0009 refused at its first message after SIGHUP"
grep -q HS_ALERT_REVOKED "$W/server.log" && ok "... logged HS_ALERT_REVOKED" ||
    bad "no HS_ALERT_REVOKED in the server log"
wait "$held"
check $? 0 "the channel STN-0002 opened before the SIGHUP keeps working after it"
check "$(count 'channel ok after hold: 3' "$W/held.out")" 1 "... 3 pings after the reload"
wait "$rheld"
check $? 0 "the reader channel RDR-0009 opened before the SIGHUP keeps working after it"
check "$(count 'channel ok after hold: 3' "$W/rheld.out")" 1 "... 3 pings after the reload"
kill -0 "$NE_SERVER_PID" 2>/dev/null && ok "no restart: the same server process" || bad "server gone"

# ---- 1b. a renewed server certificate (the same key) on SIGHUP ----
srvno() { sed -n 's/^handshake A ok .*: server server certno \([0-9A-Fa-f]*\)$/\1/p' "$1"; }
"$NE_STATION" handshake "${NE_CONN[@]}" --kind station --timeout 5000 >"$W/c0.out" 2>&1
old_no=$(srvno "$W/c0.out")
ne_hold "$W/cheld.out" 6000 "${NE_CONN[@]}" --kind station || bad "held channel: no handshake"
cheld=$NE_HELD_PID
cp "$W/server.pem" "$W/server-old.pem"
"$NE_CA" issue --dir "$W/ca" --role server --p11 "$NE_SERVER_KEY_HS" \
    --module "$NE_MODULE" --out "$W/server.pem" >/dev/null || bad "renewed server certificate"
hup
grep -q 'SIGHUP: server certificate chain .* reloaded' "$W/server.log" &&
    ok "SIGHUP: the renewed server certificate taken" || bad "no server certificate reload logged"
"$NE_STATION" handshake "${NE_CONN[@]}" --kind station --timeout 5000 >"$W/c1.out" 2>&1
check $? 0 "a handshake after the renewal"
new_no=$(srvno "$W/c1.out")
[ -n "$old_no" ] && [ -n "$new_no" ] && [ "$old_no" != "$new_no" ] &&
    ok "... presents the new certificate ($old_no -> $new_no)" ||
    bad "server certificate number before '$old_no', after '$new_no'"
check "$(sqlite3 "$NE_DB" "select count(*) from audit where action = 'server-cert' and subject = '$new_no'")" 1 "audit: one server-cert row naming it"
# a certificate for another key is refused; the renewed one stays
"$NE_CA" issue --dir "$W/ca" --role station --serial STN-0003 \
    --p11 "pkcs11:token=mintline-station;object=channel?pin-source=file:$W/pins/station.pin" \
    --module "$NE_MODULE" --out "$W/server.pem" >/dev/null || bad "wrong certificate"
hup
grep -q 'server certificate chain .* not taken: not a server certificate' "$W/server.log" &&
    ok "SIGHUP: a station certificate as --cert is refused, named" || bad "no refusal of a wrong --cert logged"
"$NE_STATION" handshake "${NE_CONN[@]}" --kind station --timeout 5000 >"$W/c2.out" 2>&1
check "$(srvno "$W/c2.out")" "$new_no" "... and the renewed certificate stays in use"
wait "$cheld"
check $? 0 "a channel opened before the renewal keeps working after it"
"$NE_CA" issue --dir "$W/ca" --role server --p11 "$NE_SERVER_KEY_HS" \
    --module "$NE_MODULE" --out "$W/server.pem" >/dev/null || bad "server certificate again"

# ---- 2. rotation: a note under the old key first, then the chips ----
ne_chips 5 0 "$W/chips" || exit 1
ne_provision "$W/chips" >/dev/null 2>&1
check $? 0 "5 chips personalised with the old issuer key and enrolled"
for x in a b c d e; do mkdir -p "$W/$x"; done
mv "$W/chips/NOTE000000000000.chip"* "$W/a/"	# written under the old key
mv "$W/chips/NOTE000000000001.chip"* "$W/b/"	# rotated: old key refused
mv "$W/chips/NOTE000000000002.chip"* "$W/b/"	# rotated: new key writes
mv "$W/chips/NOTE000000000003.chip"* "$W/d/"	# rotated with the SO PIN
mv "$W/chips/NOTE000000000004.chip"* "$W/e/"	# not rotated
ne_batch 1 OA >"$W/oa.csv"
ne_issue --chips "$W/a" --journal "$W/j-a.db" --batch "$W/oa.csv" --json \
    --no-progress >"$W/oa.jsonl" 2>"$W/oa.err"
check $? 0 "old key: a note issued before the rotation"

rot() { "$NE_STATION" rotate-issuer --line "$NE_LINE" --json "$@"; }
rot --chips "$W/b" --add "$NEW_PUB" --retire "$OLD_PUB" --issuer-key "$OLD_KEY" \
    >"$W/rb.jsonl" 2>"$W/rb.err"
check $? 0 "rotate-issuer (authorised by the old key): exit 0"
check "$(count '"result":"rotated","added":1,"retired":1' "$W/rb.jsonl")" 2 "... 2 chips: new key added, old key retired"
rot --chips "$W/b" --add "$NEW_PUB" --retire "$OLD_PUB" --issuer-key "$OLD_KEY" \
    >"$W/rb2.jsonl" 2>/dev/null
check "$(count '"result":"unchanged"' "$W/rb2.jsonl")" 2 "again: unchanged (idempotent)"
# pkcs11-tool -O lists a chip's issuer keys (GET DATA 04): the new one only
hexpt() { tail -c 65 "$1" | od -An -tx1 | tr -d ' \n'; }
{
	mkdir -p "$W/p11line"; echo 1 >"$W/p11line/positions"
	ln -sfn "$W/b/NOTE000000000001.chip" "$W/p11line/pos-00"
	echo "transport inproc:$W/p11line" >"$W/p11.conf"
	MINTLINE_PKCS11_CONF=$W/p11.conf pkcs11-tool --module "$B/pkcs11/mintline-pkcs11.so" \
	    --slot-index 0 -O >"$W/p11.out" 2>&1
	check "$(grep -c 'label: *issuer' "$W/p11.out")" 1 "pkcs11-tool -O: one issuer key on the rotated chip"
	pkcs11-tool --module "$NE_MODULE" --token-label mintline-station --read-object \
	    --type pubkey --label issuer -o "$W/issuer1.der" >/dev/null 2>&1
	grep -q "$(hexpt "$W/issuer2.der")" "$W/p11.out" && ! grep -q "$(hexpt "$W/issuer1.der")" "$W/p11.out" &&
	    ok "... the new key, not the old" || bad "pkcs11-tool -O: wrong issuer key listed"
}
rot --chips "$W/a" --add "$NEW_PUB" --issuer-key "$OLD_KEY" >"$W/ra.jsonl" 2>/dev/null
check "$(count '"result":"written"' "$W/ra.jsonl")" 1 "a written note is never changed"
rot --chips "$W/d" --add "$NEW_PUB" --retire "$OLD_PUB" --issuer-key "$NEW_KEY" \
    >"$W/rd.jsonl" 2>/dev/null
check $? 2 "a key not installed on the chip cannot rotate it (exit 2)"
check "$(count '"result":"refused"' "$W/rd.jsonl")" 1 "... reported refused"
rot --chips "$W/d" --add "$NEW_PUB" --retire "$OLD_PUB" \
    --so-pin-source "file:$NE_SOPIN" >"$W/rd2.jsonl" 2>/dev/null
check $? 0 "rotate-issuer with the SO PIN: exit 0"

ne_server_conf "$NEW_PUB" "crl = $W/crl.pem"
hup
grep -q 'issuer key .* retired' "$W/server.log" && grep -q 'issuer key .* added' "$W/server.log" &&
    ok "server: note-issuers re-read on SIGHUP (one key added, one retired)" ||
    bad "server: no issuer key change logged after SIGHUP"
check "$(sqlite3 "$NE_DB" "select count(*) from audit where action = 'issuer-add' and subject_kind = 'issuer'")" 1 "audit: one issuer-add row"
check "$(sqlite3 "$NE_DB" "select count(*) from audit where action = 'issuer-retire' and subject_kind = 'issuer'")" 1 "audit: one issuer-retire row"

# ---- 3. the old key cannot write; the new one can; old notes verify ----
written() {	# chips of DIR with a note written (offline desk)
	"$NE_STATION" verify --line "$NE_LINE" --offline --chips "$1" --issuer-pub "$OLD_PUB" \
	    --json 2>/dev/null | grep -vc '"verdict":"BLANK"'
}
mkdir -p "$W/b1" "$W/b2"
mv "$W/b/NOTE000000000001.chip"* "$W/b1/"; mv "$W/b/NOTE000000000002.chip"* "$W/b2/"
ne_batch 1 OB >"$W/ob.csv"
"$NE_STATION" issue --line "$NE_LINE" --chips "$W/b1" --issuer-key "$OLD_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-b.db" \
    --batch "$W/ob.csv" --json --no-progress >"$W/ob.jsonl" 2>"$W/ob.err"
[ $? != 0 ] && ok "retired key on a rotated chip: issue fails" || bad "retired key: issue succeeded"
check "$(count '"result":"reject_write"' "$W/ob.jsonl")" 1 "... the chip rejects the write (reject-write)"
check "$(written "$W/b1")" 0 "... and stays blank"
ne_batch 1 OE >"$W/oe.csv"
"$NE_STATION" issue --line "$NE_LINE" --chips "$W/e" --issuer-key "$OLD_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-e.db" \
    --batch "$W/oe.csv" --json --no-progress >"$W/oe.jsonl" 2>"$W/oe.err"
[ $? != 0 ] && ok "retired key on a chip not rotated: issue fails" || bad "retired key: issue succeeded"
grep -q 'upload refused: chip NOTE000000000004: writer not authorised' "$W/server.log" &&
    ok "... the server refuses the upload signed by the retired key" ||
    bad "server: no refusal for the retired key"
check "$(sqlite3 "$NE_DB" "select count(*) from note where note_id like 'OB%' or note_id like 'OE%'")" 0 "retired key: no note registered"
ne_batch 2 NC >"$W/nc.csv"
mv "$W/d/"* "$W/b2/"
"$NE_STATION" issue --line "$NE_LINE" --chips "$W/b2" --issuer-key "$NEW_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-c.db" \
    --batch "$W/nc.csv" --json --no-progress >"$W/nc.jsonl" 2>"$W/nc.err"
check $? 0 "new key: 2 notes issued after the rotation (key and SO rotated chips)"
ne_verify_online --chips "$W/a" --json >"$W/va.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/va.jsonl")" 1 "the note written under the retired key: GENUINE online"
"$NE_STATION" verify --line "$NE_LINE" --issuer-pub "$OLD_PUB" --issuer-pub "$NEW_PUB" \
    --offline --chips "$W/a" --json >"$W/va2.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/va2.jsonl")" 1 "... and offline (old and new key listed)"
"$NE_STATION" verify --line "$NE_LINE" --issuer-pub "$OLD_PUB" --issuer-pub "$NEW_PUB" \
    "${NE_CONN[@]}" --chips "$W/b2" --json >"$W/vc.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/vc.jsonl")" 2 "the notes written under the new key: GENUINE online"
kill -0 "$NE_SERVER_PID" 2>/dev/null && ok "still the same server process" || bad "server gone"

[ $fail = 0 ] || { echo "--- server.log"; tail -40 "$W/server.log"; }
exit $((fail != 0))
