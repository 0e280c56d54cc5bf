#!/usr/bin/env bash
# Issuer-key rotation on PC/SC (BN-4): a private pcscd with vpcd readers
# (tests/integration/pcsc-env.sh), each chip a mintline-chip process.
#   1. chips personalised with the old issuer key; one note issued under it;
#   2. mintline-station rotate-issuer on the line (pcsc:), authorised by
#      the old key: the new key added, the old one retired, on both chips
#      in the readers; pkcs11-tool -O over PC/SC lists the new key only;
#   3. the server retires the old key on SIGHUP (no restart); the old key
#      can no longer write (reject-write, chip blank), the new key writes;
#      the note written under the old key still verifies GENUINE.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / sqlite3 / pcscd + vpcd.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/issuer-rotate-pcsc
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
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"
cleanup() {
	ne_server_stop
	pcsc_env_cleanup
}
trap cleanup EXIT

pcsc_env_start "$W/pcsc" 2 || { echo "private pcscd did not start"; exit 1; }
ne_keys || { echo "key ceremony failed"; exit 1; }
ne_token mintline-issuer2 issuer --usage-sign
M="module-path=$NE_MODULE"
pkcs11-tool --module "$NE_MODULE" --token-label mintline-issuer2 --read-object \
    --type pubkey --label issuer -o "$W/issuer2.der" >/dev/null 2>&1 &&
pkcs11-tool --module "$NE_MODULE" --token-label mintline-station --read-object \
    --type pubkey --label issuer -o "$W/issuer1.der" >/dev/null 2>&1 &&
openssl pkey -pubin -inform DER -in "$W/issuer2.der" -out "$W/issuer2.pem" ||
    { echo "new issuer public key"; exit 1; }
OLD_PUB=$NE_ISSUER_PEM
OLD_KEY=$NE_ISSUER_KEY
NEW_PUB=$W/issuer2.pem
NEW_KEY="pkcs11:token=mintline-issuer2;object=issuer;type=private?$M&pin-source=file:$W/pins/issuer2.pin"

NE_SRV_WORKERS=2
ne_server_conf "$OLD_PUB"
ne_server_start || { echo "server did not start"; cat "$W/server.log"; exit 1; }

# ---- 1. personalised with the old key; one note under it ----
LINE0=pcsc:$VPCD_READER_0
LINE1=pcsc:$VPCD_READER_1
ne_chips 3 0 "$W/chips" || exit 1
for i in 0 1 2; do
	pcsc_chip_insert 0 "$W/chips/NOTE00000000000$i.chip"
	"$NE_STATION" provision --line "$LINE0" --issuer-pub "$NE_ISSUER_PUB" \
	    --server-pub "$NE_SERVER_PUB" --so-pin-source "file:$NE_SOPIN" \
	    "${NE_CONN[@]}" >>"$W/prov.log" 2>&1 ||
	    bad "provision NOTE00000000000$i on PC/SC"
	pcsc_chip_remove 0
done
pcsc_chip_insert 0 "$W/chips/NOTE000000000000.chip"
ne_batch 1 PA >"$W/pa.csv"
"$NE_STATION" issue --line "$LINE0" --issuer-key "$OLD_KEY" --feature-key "$NE_FKEY" \
    "${NE_CONN[@]}" --journal "$W/j-a.db" --batch "$W/pa.csv" --json --no-progress \
    >"$W/pa.jsonl" 2>"$W/pa.err"
check $? 0 "old key: a note issued on PC/SC before the rotation"
pcsc_chip_remove 0

# ---- 2. rotate-issuer on the PC/SC line ----
pcsc_chip_insert 0 "$W/chips/NOTE000000000001.chip"
pcsc_chip_insert 1 "$W/chips/NOTE000000000002.chip"
"$NE_STATION" rotate-issuer --line pcsc:mintline-vpcd --add "$NEW_PUB" \
    --retire "$OLD_PUB" --issuer-key "$OLD_KEY" --json >"$W/rot.jsonl" 2>"$W/rot.err"
check $? 0 "rotate-issuer on PC/SC: exit 0"
check "$(count '"result":"rotated","added":1,"retired":1' "$W/rot.jsonl")" 2 "... both chips in the readers rotated"
hexpt() { tail -c 65 "$1" | od -An -tx1 | tr -d ' \n'; }
MINTLINE_PKCS11_TRANSPORT=$LINE0 pkcs11-tool --module "$MODULE" --slot-index 0 -O \
    >"$W/p11.out" 2>&1
check "$(grep -c 'label: *issuer' "$W/p11.out")" 1 "pkcs11-tool -O over PC/SC: one issuer key"
grep -q "$(hexpt "$W/issuer2.der")" "$W/p11.out" && ! grep -q "$(hexpt "$W/issuer1.der")" "$W/p11.out" &&
    ok "... the new key, not the old" || bad "pkcs11-tool -O: wrong issuer key listed"

# ---- 3. the server retires the old key; old cannot write, new can ----
ne_server_conf "$NEW_PUB"
kill -HUP "$NE_SERVER_PID"
wait_for 10 grep -q 'issuer key .* retired' "$W/server.log" &&
    ok "server: the old key retired on SIGHUP" || bad "server: no retirement logged"
ne_batch 1 PB >"$W/pb.csv"
"$NE_STATION" issue --line "$LINE0" --issuer-key "$OLD_KEY" --feature-key "$NE_FKEY" \
    "${NE_CONN[@]}" --journal "$W/j-b.db" --batch "$W/pb.csv" --json --no-progress \
    >"$W/pb.jsonl" 2>"$W/pb.err"
[ $? != 0 ] && ok "old key on the rotated chip: issue fails" || bad "old key: issued"
check "$(count '"result":"reject_write"' "$W/pb.jsonl")" 1 "... reject-write, the chip stays blank"
ne_batch 1 PC >"$W/pc.csv"
"$NE_STATION" issue --line "$LINE1" --issuer-key "$NEW_KEY" --feature-key "$NE_FKEY" \
    "${NE_CONN[@]}" --journal "$W/j-c.db" --batch "$W/pc.csv" --json --no-progress \
    >"$W/pc.jsonl" 2>"$W/pc.err"
check $? 0 "new key: a note issued on PC/SC after the rotation"
"$NE_STATION" verify --line "$LINE1" --issuer-pub "$OLD_PUB" --issuer-pub "$NEW_PUB" \
    "${NE_CONN[@]}" --json >"$W/vc.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/vc.jsonl")" 1 "the new key's note: GENUINE online"
pcsc_chip_remove 1
pcsc_chip_remove 0
pcsc_chip_insert 0 "$W/chips/NOTE000000000000.chip"
"$NE_STATION" verify --line "$LINE0" --issuer-pub "$OLD_PUB" --issuer-pub "$NEW_PUB" \
    "${NE_CONN[@]}" --json >"$W/va.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/va.jsonl")" 1 "the retired key's note: still GENUINE online"
pcsc_chip_remove 0
kill -0 "$NE_SERVER_PID" 2>/dev/null && ok "no restart: the same server process" || bad "server gone"

[ $fail = 0 ] || { echo "--- server.log"; tail -30 "$W/server.log"; }
exit $((fail != 0))
