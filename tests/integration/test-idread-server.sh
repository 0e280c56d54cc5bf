#!/usr/bin/env bash
# ID-card reading (ID-6..ID-13) against a real mintline-server over loopback:
# the server's key in a private SoftHSM2 token, the reader's key generated
# inside the reader secure chip (in-process line) and certified by the test
# CA, handshake A (and B once), the SAM emulator behind the server
# (--sam).  The scenarios are those of test-idread-loopback.sh
# (idread-lib.sh), plus the per-reader read records in the registry (ID-3).
#
# Needs: softhsm2-util, pkcs11-tool, python3, sqlite3 (else 77 = skipped).
set -u
command -v sqlite3 >/dev/null 2>&1 || { echo "skip: sqlite3 missing"; exit 77; }

B=${MINTLINE_BUILD_DIR:-$(pwd)}
SERVER=${MINTLINE_SERVER:-$B/server/mintline-server}
STATION=${MINTLINE_STATION:-$B/station/mintline-station}
MKIDCARD=${MINTLINE_MKIDCARD:-$B/tools/mintline-mkidcard}
CA=${MINTLINE_CA:-$B/tools/mintline-ca}
FIXTURE=${IDREAD_FIXTURE:-$B/tests/integration/idread_fixture}
W=$B/tests/idread-server
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/issuance-env.sh"
ne_softhsm "$W" || exit 77
MODULE=$NE_MODULE
. "$(dirname "$0")/idread-lib.sh"
SRV_PID=""
cleanup() {
	[ -n "$RD_PID" ] && kill "$RD_PID" 2>/dev/null
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
}
trap cleanup EXIT
cd "$W" || exit 1
echo 1234 > hsm-pin

# ---- ceremony ----
ne_srv_cert "$CA" "$W/hsm-pin" "mintline idread test root" || exit 1
# the reader key is made inside the reader secure chip (ID-14)
line_init "$W/line" multi "$W/rdr.der"
LINE_READY=1
"$CA" issue --dir ca --role reader --serial RDR-IDR-0001 --pub rdr.der --out rdr.pem >/dev/null || exit 1
"$SERVER" enroll --registry reg.db --factory "idread test line" rdr.pem >/dev/null || exit 1
cards_init

PORT=$(ne_free_port)
ne_spawn server.log "$SERVER" --listen 127.0.0.1:$PORT \
    --ca ca/root.pem --cert srv.pem --key "$SRVKEY" --module "$MODULE" \
    --registry reg.db --sam "emul:$W/sam.key" --workers 4 -v ||
    { echo "server did not start"; exit 1; }
SRV_PID=$NE_SPAWN_PID

SRV_ARGS="--server 127.0.0.1:$PORT --ca $W/ca/root.pem --cert $W/rdr.pem"
scenarios

feed "$W/line" "$W/cardB.img"
expect_rc 0 "handshake B, then a read" idread "$W/line" --flow b

# ID-3: a read record (and error records) per reader in the registry
kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null; SRV_PID=""
reads=$(sqlite3 reg.db "select count(*) from reader_events where serial='RDR-IDR-0001' and kind=1 and detail like 'idread ok%'")
errs=$(sqlite3 reg.db "select count(*) from reader_events where serial='RDR-IDR-0001' and kind=2 and detail like 'idread%'")
[ "${reads:-0}" -ge 10 ] && ok "registry: $reads read records for the reader" || bad "registry: $reads read records"
[ "${errs:-0}" -ge 2 ] && ok "registry: $errs error records (unknown card, lost packet, removal)" || bad "registry: $errs error records"
# ID-3 transactions and the audit trail (OP-5): every ended read is one
# transaction record and one audit row naming reader, certificate number,
# card and outcome; `show` counts the transactions
ended=$((reads + errs))
tx=$("$SERVER" show --registry reg.db RDR-IDR-0001 | sed -n 's/^transactions //p')
[ "$tx" = "$ended" ] && ok "show: $tx transactions, one per ended read" ||
    bad "show: transactions $tx, want $ended"
arows=$(sqlite3 reg.db "select count(*) from audit where action='id-read' and actor='RDR-IDR-0001' and actor_certno <> '' and subject_kind='card' and subject <> ''")
[ "$arows" = "$ended" ] && ok "audit: $arows id-read rows" || bad "audit: $arows id-read rows, want $ended"
okrows=$(sqlite3 reg.db "select count(*) from audit where action='id-read' and outcome='ok'")
[ "$okrows" = "$reads" ] && ok "audit: $okrows id-read rows with outcome ok" ||
    bad "audit: $okrows ok rows, want $reads"
"$SERVER" audit --registry reg.db --reader RDR-IDR-0001 --json > audit.jsonl
[ "$(grep -c '"action":"id-read"' audit.jsonl)" = "$ended" ] &&
    ok "audit --reader lists the reads" || bad "audit --reader: $(head -2 audit.jsonl)"
"$SERVER" audit --registry reg.db --verify >/dev/null && ok "audit --verify: chain intact" ||
    bad "audit --verify failed"

echo "# $pass passed, $fail failed"
[ "$fail" = 0 ]
