#!/usr/bin/env bash
# Handshakes (ID-2..ID-5): real mintline-server and mintline-station over
# loopback on a free port; server key and reader keys in a private SoftHSM2
# token directory under the build tree; every forged, replayed or
# malformed first message (ID-5) ends at the earliest message with a logged reason.
#
# Needs: softhsm2-util, pkcs11-tool, python3 (else exit 77 = skipped).
# Env (from meson): MINTLINE_SERVER, MINTLINE_STATION, MINTLINE_CA,
# HS_RAW (test_hs_raw.py), MINTLINE_BUILD_DIR.
set -u

B=${MINTLINE_BUILD_DIR:-$(pwd)}
SERVER=${MINTLINE_SERVER:-$B/server/mintline-server}
STATION=${MINTLINE_STATION:-$B/station/mintline-station}
CA=${MINTLINE_CA:-$B/tools/mintline-ca}
RAW=${HS_RAW:-$(cd "$(dirname "$0")" && pwd)/test_hs_raw.py}
W=$B/tests/hs-integration
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/issuance-env.sh"
ne_softhsm "$W" || exit 77
MODULE=$NE_MODULE
cd "$W" || exit 1
echo 1234 > pin
chmod 600 pin

# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"
SRV_PID=""
cleanup() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
}
trap cleanup EXIT


keygen() {	# token label id
	pkcs11-tool --module "$MODULE" --token-label "$1" --login --pin 1234 \
	    --keypairgen --key-type EC:prime256v1 --id "$3" --label "$2" \
	    >/dev/null 2>&1 || { echo "keygen $2 failed"; exit 1; }
}

# ---- ceremony: tokens, keys inside SoftHSM2, certificates ----
softhsm2-util --init-token --free --label server --so-pin 12345678 --pin 1234 >/dev/null
softhsm2-util --init-token --free --label readers --so-pin 12345678 --pin 1234 >/dev/null
keygen server srvkey 01
keygen readers rdr 11
SRVKEY="pkcs11:token=server;object=srvkey?pin-source=file:$W/pin"
RDRKEY="pkcs11:token=readers;object=rdr?pin-source=file:$W/pin"

"$CA" init --dir ca --cn "mintline test root" >/dev/null || exit 1
"$CA" init --dir ca2 --cn "another root" >/dev/null || exit 1
echo 9000 > ca2/serial	# certificate numbers are unique per root
issue() {	# dir role serial out [extra...]
	local d=$1 role=$2 serial=$3 out=$4
	shift 4
	if [ "$serial" = "-" ]; then
		"$CA" issue --dir "$d" --role "$role" --p11 "$RDRKEY" --module "$MODULE" --out "$out" "$@" >/dev/null
	else
		"$CA" issue --dir "$d" --role "$role" --serial "$serial" --p11 "$RDRKEY" --module "$MODULE" --out "$out" "$@" >/dev/null
	fi || { echo "issue $out failed"; exit 1; }
}
"$CA" issue --dir ca --role server --p11 "$SRVKEY" --module "$MODULE" --out srv.pem >/dev/null || exit 1
"$CA" issue --dir ca2 --role server --p11 "$SRVKEY" --module "$MODULE" --out srv-foreign.pem >/dev/null || exit 1
issue ca  reader  RDR-0001 good.pem
issue ca  station STN-0001 station.pem
issue ca2 reader  RDR-0002 foreign.pem
issue ca  reader  RDR-0003 expired.pem --backdate-days 10 --days 2
issue ca  reader  RDR-0004 revoked.pem
issue ca  reader  RDR-0005 flagged.pem
issue ca  reader  RDR-0006 unknown.pem
"$SERVER" enroll --registry reg.db --factory "line 1, lot 7" good.pem station.pem \
    foreign.pem expired.pem revoked.pem flagged.pem >/dev/null || { echo "enroll failed"; exit 1; }
"$SERVER" flag --registry reg.db RDR-0005 >/dev/null || exit 1
"$CA" revoke --dir ca revoked.pem >/dev/null || exit 1
"$CA" crl --dir ca --out crl.pem >/dev/null || exit 1

# ---- server ----
PORT=$(ne_free_port)
ne_spawn server.log "$SERVER" --listen 127.0.0.1:$PORT --ca ca/root.pem \
    --crl crl.pem --cert srv.pem --key "$SRVKEY" --module "$MODULE" \
    --registry reg.db --read-timeout 1500 --workers 2 -v ||
    { echo "server did not start"; exit 1; }
SRV_PID=$NE_SPAWN_PID

station() {	# cert flow [extra...]
	local cert=$1 flow=$2
	shift 2
	"$STATION" handshake --server 127.0.0.1:${SPORT:-$PORT} --flow "$flow" \
	    --ca ca/root.pem --cert "$cert" --key "$RDRKEY" --module "$MODULE" \
	    --timeout 5000 "$@" >> station.log 2>&1
}
expect_exit() {	# want desc cmd...
	local want=$1 desc=$2
	shift 2
	"$@"
	local got=$?
	[ "$got" = "$want" ] && ok "$desc (exit $got)" || bad "$desc: exit $got, want $want"
}
expect_log() {	# pattern desc
	sleep 0.2
	grep -q -- "$1" server.log && ok "$2: logged $1" || bad "$2: no \"$1\" in server.log"
}

for f in A B; do
	expect_exit 0 "flow $f reader handshake + channel" station good.pem $f --count 3
	expect_exit 0 "flow $f station handshake" station station.pem $f --kind station
done

for f in A B; do
	: > server.log.mark
	expect_exit 4 "flow $f: cert from another CA refused" station foreign.pem $f
	expect_exit 4 "flow $f: expired cert refused" station expired.pem $f
	expect_exit 4 "flow $f: revoked cert refused" station revoked.pem $f
	expect_exit 4 "flow $f: flagged reader refused" station flagged.pem $f
	expect_exit 4 "flow $f: unregistered reader refused" station unknown.pem $f
	expect_exit 4 "flow $f: serial != certificate refused" station good.pem $f --serial RDR-0009
	expect_exit 4 "flow $f: station cert claimed as reader" station station.pem $f --kind reader
done
expect_log "HS_ALERT_CERT" "foreign/expired"
expect_log "HS_ALERT_REVOKED" "revoked"
expect_log "HS_ALERT_RISK" "flagged"
expect_log "HS_ALERT_UNKNOWN" "unregistered"
expect_log "HS_ALERT_IDENTITY" "serial mismatch"

# server certificate not from the reader's root: the reader refuses
PORT2=$(ne_free_port)
ne_spawn server2.log "$SERVER" --listen 127.0.0.1:$PORT2 --ca ca/root.pem \
    --cert srv-foreign.pem --key "$SRVKEY" --module "$MODULE" --registry reg.db ||
    bad "server with a foreign certificate did not start"
P2=$NE_SPAWN_PID
for f in A B; do
	SPORT=$PORT2 expect_exit 5 "flow $f: server cert not from root refused by reader" station good.pem $f
done
kill $P2; wait $P2 2>/dev/null

# ---- recorded sessions through a proxy: replay, splice, switch, tamper ----
wait_ready() {	# file: the proxy prints "ready" once it listens
	for i in $(seq 100); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
record() {	# flow out [tamper-frame]
	local pp
	pp=$(ne_free_port)
	rm -f "$2.ready"
	if [ $# -ge 3 ]; then
		python3 "$RAW" proxy "$pp" "$PORT" "$2" --tamper-client "$3" > "$2.ready" &
	else
		python3 "$RAW" proxy "$pp" "$PORT" "$2" > "$2.ready" &
	fi
	local ppid=$!
	wait_ready "$2.ready" || bad "proxy for $2 did not start"
	SPORT=$pp station good.pem "$1" --count 2
	local rc=$?
	wait $ppid
	return $rc
}
record A recA.json || bad "recording flow A"
record B recB.json || bad "recording flow B"
raw() { python3 "$RAW" "$@"; }
want_alert() {	# code desc cmd...
	local code=$1 desc=$2
	shift 2
	local got
	got=$("$@")
	[ "$got" = "alert $code" ] && ok "$desc ($got)" || bad "$desc: got \"$got\", want alert $code"
}
want_alert 4 "flow A: reader message replayed from an earlier session" raw replay $PORT recA.json
want_alert 4 "flow B: reader message replayed from an earlier session" raw replay $PORT recB.json
want_alert 3 "flow switch A -> B mid-handshake" raw switch $PORT recA.json recB.json
want_alert 3 "flow switch B -> A mid-handshake" raw switch $PORT recB.json recA.json
want_alert 1 "truncated reader message" raw truncate $PORT recA.json
want_alert 1 "oversized frame" raw oversize $PORT
want_alert 12 "silent client times out" raw silent $PORT
expect_log "HS_ALERT_R1" "replay"
expect_log "HS_ALERT_UNEXPECTED" "flow switch"
expect_log "HS_ALERT_FORMAT" "truncated/oversized"
expect_log "HS_ALERT_TIMEOUT" "timeout"

# splice of two concurrent sessions: KEYREQ on a new connection, then the
# authenticated message recorded from a session that is still open
pp=$(ne_free_port)
rm -f recC.ready
python3 "$RAW" proxy "$pp" "$PORT" recC.json > recC.ready &
ppid=$!
wait_ready recC.ready || bad "proxy for recC did not start"
SPORT=$pp station good.pem A --hold 1500 &
stpid=$!
sleep 0.7
want_alert 4 "splice of two concurrent sessions" raw replay $PORT recC.json
wait $stpid
wait $ppid

record A recT.json 1
rc=$?
[ $rc = 4 ] && ok "forged reader signature refused (exit $rc)" || bad "forged signature: exit $rc, want 4"
expect_log "HS_ALERT_SIG" "forged signature"
record B recT2.json 2
rc=$?
[ $rc != 0 ] && ok "tampered channel record ends the session (exit $rc)" || bad "tampered record accepted"
expect_log "record refused" "tampered record"

# a channel frame header over HS_MAX_FRAME after the handshake (ID-5):
# ALERT HS_ALERT_FORMAT and the connection closed at once, not after
# --idle-timeout
pp=$(ne_free_port)
rm -f recO.ready
python3 "$RAW" proxy "$pp" "$PORT" recO.json --oversize-client 2 > recO.ready &
ppid=$!
wait_ready recO.ready || bad "proxy for recO did not start"
SPORT=$pp station good.pem B --count 2 >/dev/null 2>&1
wait $ppid
got=$(grep '^oversize:' recO.ready)
ms=$(sed -n 's/.* after \([0-9]*\) ms/\1/p' <<<"$got")
case $got in
"oversize: alert 1 closed after "*)
	[ "${ms:-9999}" -lt 1000 ] && ok "oversized channel frame: ALERT then close within a second ($got)" ||
	    bad "oversized channel frame: closed too late ($got)";;
*)	bad "oversized channel frame: got \"$got\", want alert 1 and close";;
esac
expect_log "record frame header over" "oversized channel frame"

# ---- the reader key inside a reader secure chip, through our module ----
P11M=${MINTLINE_PKCS11_MODULE:-$B/pkcs11/mintline-pkcs11.so}
MKCHIP=${MINTLINE_MKCHIP:-$B/tools/mintline-mkchip}
if [ -n "${MINTLINE_SANITIZE:-}" ]; then
	# pkcs11-tool is not sanitized: it cannot load our ASan-built module
	# (tests/meson.build, setup 'sanitize')
	echo "skip - chip-backed reader: not in the sanitizer pass"
elif [ -e "$P11M" ] && [ -x "$MKCHIP" ]; then
	mkdir -p line
	"$MKCHIP" reader RDR-CHIP-01 chip.img >/dev/null && ln -sf "$W/chip.img" line/pos-00 &&
	echo 1 > line/positions
	export MINTLINE_PKCS11_TRANSPORT=inproc:$W/line MINTLINE_PKCS11_CONF=$W/none.conf
	P11="pkcs11-tool --module $P11M"
	echo 123456 > chippin
	if $P11 --token-label reader --init-token --label "Reader A" --so-pin 87654321 >/dev/null 2>&1 &&
	    $P11 --token-label "Reader A" --init-pin --so-pin 87654321 --pin 123456 >/dev/null 2>&1 &&
	    $P11 --token-label "Reader A" --login --pin 123456 --keypairgen \
	        --key-type EC:prime256v1 --id 01 --label rdrkey >/dev/null 2>&1; then
		CHIPKEY="pkcs11:token=Reader%20A%20RDR-CHIP-01;object=rdrkey?pin-source=file:$W/chippin"
		"$CA" issue --dir ca --role reader --serial RDR-CHIP-01 --p11 "$CHIPKEY" \
		    --module "$P11M" --out chip.pem >/dev/null &&
		"$SERVER" enroll --registry reg.db chip.pem >/dev/null ||
		    bad "chip reader certificate"
		for f in A B; do
			expect_exit 0 "flow $f with the key in the reader secure chip (mintline-pkcs11.so)" \
			    "$STATION" handshake --server 127.0.0.1:$PORT --flow $f --ca ca/root.pem \
			    --cert chip.pem --key "$CHIPKEY" --module "$P11M" --count 2
		done
	else
		bad "reader chip token setup through mintline-pkcs11.so"
	fi
else
	echo "skip - chip-backed reader: $P11M or $MKCHIP not built"
fi

# revocation while running: a new CRL on SIGHUP takes effect at once,
# even for a certificate whose good verdict is cached
issue ca reader RDR-0007 late.pem
"$SERVER" enroll --registry reg.db late.pem >/dev/null
expect_exit 0 "late reader accepted before its revocation" station late.pem A
"$CA" revoke --dir ca late.pem >/dev/null && "$CA" crl --dir ca --out crl.pem >/dev/null
kill -HUP $SRV_PID
sleep 0.3
expect_exit 4 "late reader refused after CRL reload (SIGHUP)" station late.pem A
grep -q "claim=RDR-0007" server.log && grep "claim=RDR-0007" server.log | grep -q HS_ALERT_REVOKED &&
    ok "revocation after reload logged HS_ALERT_REVOKED" || bad "no HS_ALERT_REVOKED for RDR-0007"

# risk records (ID-3): handshakes and refusals after authentication of
# the identity are written to the registry in batches
sleep 0.5
show() { "$SERVER" show --registry reg.db "$1" | sed -n "s/^$2 //p"; }
h=$(show RDR-0001 handshakes)
rf=$(show RDR-0001 refused)
fl=$(show RDR-0005 refused)
[ "${h:-0}" -ge 4 ] && ok "registry: RDR-0001 has $h handshakes recorded" || bad "registry handshakes: '$h'"
[ "${rf:-0}" -ge 1 ] && ok "registry: RDR-0001 has $rf refusal(s) recorded (forged signature)" || bad "registry refusals: '$rf'"
[ "${fl:-0}" -ge 2 ] && ok "registry: flagged RDR-0005 has $fl refusals recorded" || bad "registry flagged refusals: '$fl'"

kill -USR1 $SRV_PID
sleep 0.3
grep stats: server.log | tail -1

echo "passed $pass, failed $fail"
[ $fail = 0 ] || { echo "--- server.log"; cat server.log; exit 1; }
exit 0
