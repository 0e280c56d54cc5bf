#!/usr/bin/env bash
# Secret hygiene (ID-12): transport keys, PINs and plaintext ID data do
# not stay in the memory of mintline-server and mintline-station after
# use.  A session runs with MINTLINE_TEST_KEYLOG (hs/hs.c, test-only: the
# process appends its transport keys to a file, like SSLKEYLOGFILE); once
# it has ended, test_secrets_scan.py stops the process, reads every
# readable mapping through /proc/PID/mem (what gcore would dump) and
# searches it for the key bytes (raw and hex), the PINs given through
# pin-source files, and the card's plaintext ID data.  A positive control
# (the key found while the session is still open) shows that the scan
# would see a key that was not wiped.
#
# Needs: softhsm2-util, pkcs11-tool, python3, a build with the key log
# (-Dtest_hooks=true), and permission to read the
# memory of our own children (else exit 77).
# Env: MINTLINE_BUILD_DIR.  SECRETS_STRICT=0 reports known findings in
# libraries we do not control (see docs/threat-model.md) without failing.
set -u
# ASan keeps freed memory in quarantine and stack frames on fake stacks
# (detect_stack_use_after_return): the snapshot would show copies that a
# normal build never has.  This test is for normal builds.
[ -n "${MINTLINE_SANITIZE:-}" ] && { echo "skip: not meaningful under ASan"; exit 77; }
B=${MINTLINE_BUILD_DIR:-$(pwd)}
SERVER=$B/server/mintline-server
STATION=$B/station/mintline-station
CA=$B/tools/mintline-ca
MKIDCARD=$B/tools/mintline-mkidcard
FIXTURE=$B/tests/integration/idread_fixture
SCAN=${SECRETS_SCAN:-$(cd "$(dirname "$0")" && pwd)/test_secrets_scan.py}
W=$B/tests/secrets
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/issuance-env.sh"
ne_softhsm "$W" || exit 77
MODULE=$NE_MODULE
cd "$W" || exit 1

pass=0 fail=0 known=0
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"
SRV_PID="" RD_PID="" ST_PID=""
cleanup() {
	for p in $ST_PID $RD_PID $SRV_PID; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
}
trap cleanup EXIT
hexof() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
ucs2() { printf '%s' "$1" | iconv -f UTF-8 -t UCS-2LE 2>/dev/null | od -An -tx1 | tr -d ' \n'; }

# PINs long and random, so that finding one in memory is not chance
SPIN=srvpin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
RPIN=rdrpin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
(umask 077; echo "$SPIN" > spin; echo "$RPIN" > rpin)
ne_srv_cert "$CA" "$W/spin" "mintline secrets root" || exit 1
softhsm2-util --init-token --free --label readers --so-pin 12345678 --pin "$RPIN" >/dev/null || exit 1
pkcs11-tool --module "$MODULE" --token-label readers --login --pin "$RPIN" \
    --keypairgen --key-type EC:prime256v1 --id 11 --label rdr >/dev/null 2>&1 || exit 1
RDRKEY="pkcs11:token=readers;object=rdr?pin-source=file:$W/rpin"
"$CA" issue --dir ca --role reader --serial RDR-S-0001 --p11 "$RDRKEY" --module "$MODULE" --out rdr.pem >/dev/null || exit 1
ENROLL=rdr.pem
IDREAD=0
if [ -x "$MKIDCARD" ] && [ -x "$FIXTURE" ]; then
	mkdir -p "$W/line" &&
	"$FIXTURE" init-reader "$W/line" multi "$W/chiprdr.der" >/dev/null &&
	"$CA" issue --dir ca --role reader --serial RDR-IDR-0001 --pub chiprdr.der --out chiprdr.pem >/dev/null &&
	"$MKIDCARD" --sam-key "$W/sam.key" --seed 11 -q "$W/cardA.img" &&
	IDREAD=1 && ENROLL="$ENROLL chiprdr.pem"
fi
"$SERVER" enroll --registry reg.db $ENROLL >/dev/null || exit 1

PORT=$(ne_free_port)
ne_spawn server.log env MINTLINE_TEST_KEYLOG="$W/srv.keys" \
    "$SERVER" --listen 127.0.0.1:$PORT --ca ca/root.pem --cert srv.pem \
    --key "$SRVKEY" --module "$MODULE" --registry reg.db --sam "emul:$W/sam.key" --workers 2 -v ||
    { echo "server did not start"; exit 1; }
SRV_PID=$NE_SPAWN_PID

# scan PID LABEL=HEX...: sets FOUND to the labels found; exits 77 if the
# memory cannot be read
scan() {
	local out pids=$1 kid
	shift
	for kid in $(ps -o pid= --ppid "$pids" 2>/dev/null); do
		pids="$pids,$kid"	# helpers: the server's HSM monitor
	done
	out=$(python3 "$SCAN" "$pids" "$@")
	local rc=$?
	[ $rc = 77 ] && { echo "skip: $out"; exit 77; }
	[ $rc = 0 ] || { echo "$out"; bad "scan of pid $1 failed"; FOUND="?"; return; }
	echo "$out" | sed 's/^/    /'
	FOUND=$(echo "$out" | sed -n 's/^found \([^ ]*\) .*/\1/p' | tr '\n' ' ')
}
needles_for() {	# FILE LINE
	local c s
	c=$(sed -n "${2}p" "$1" | cut -d' ' -f2)
	s=$(sed -n "${2}p" "$1" | cut -d' ' -f3)
	[ -n "$c" ] && [ -n "$s" ] || return 1
	echo "k_c2s=$c k_s2c=$s k_c2s_hex=$(hexof "$c") k_s2c_hex=$(hexof "$s")"
}

# ---- 1. server: transport keys after the session ----
"$STATION" handshake --server 127.0.0.1:$PORT --flow A --ca ca/root.pem \
    --cert rdr.pem --key "$RDRKEY" --module "$MODULE" --count 2 --hold 2500 \
    > station.log 2>&1 &
ST_PID=$!
for _ in $(seq 100); do [ -s srv.keys ] && break; sleep 0.05; done
sleep 0.3
N=$(needles_for srv.keys 1) || { bad "no key logged: build without -Dtest_hooks=true?"; echo "skip"; exit 77; }
scan "$SRV_PID" $N
case " $FOUND " in
*" k_c2s "*) ok "control: the server's live session key is found by the scan" ;;
*) bad "control: the live session key was not found (the scan would miss a leak)" ;;
esac
wait "$ST_PID"; rc=$?; ST_PID=""
[ "$rc" = 0 ] || bad "station handshake exit $rc"
sleep 0.5	# the server sees CLOSE, frees the session
scan "$SRV_PID" $N
[ -z "$FOUND" ] && ok "server: flow A transport keys gone after the session ended" ||
    bad "server: flow A transport keys still in memory after the session: $FOUND"

"$STATION" handshake --server 127.0.0.1:$PORT --flow B --ca ca/root.pem \
    --cert rdr.pem --key "$RDRKEY" --module "$MODULE" --count 2 >> station.log 2>&1 ||
    bad "station flow B handshake"
sleep 0.5
N=$(needles_for srv.keys 2) || bad "no key logged for flow B"
scan "$SRV_PID" $N
[ -z "$FOUND" ] && ok "server: flow B transport keys gone after the session ended" ||
    bad "server: flow B transport keys still in memory after the session: $FOUND"

# a session cut off without CLOSE (the client killed): keys gone once the
# server notices the dead connection
"$STATION" handshake --server 127.0.0.1:$PORT --flow A --ca ca/root.pem \
    --cert rdr.pem --key "$RDRKEY" --module "$MODULE" --count 1 --hold 5000 \
    >> station.log 2>&1 &
ST_PID=$!
for _ in $(seq 100); do [ "$(wc -l < srv.keys)" -ge 3 ] && break; sleep 0.05; done
sleep 0.3
kill -9 "$ST_PID"; wait "$ST_PID" 2>/dev/null; ST_PID=""
sleep 0.5
N=$(needles_for srv.keys 3) || bad "no key logged for the killed session"
scan "$SRV_PID" $N
[ -z "$FOUND" ] && ok "server: keys of a session whose client was SIGKILLed gone" ||
    bad "server: keys of a killed client's session still in memory: $FOUND"

# ---- 2. server: the HSM PIN given through pin-source ----
scan "$SRV_PID" "hsm_pin=$(hexof "$SPIN")"
if [ -z "$FOUND" ]; then
	ok "server: HSM PIN (pin-source) not in memory"
else
	echo "# KNOWN: the HSM PIN stays in server memory (see docs/threat-model.md: libp11 keeps a copy for re-login)"
	known=$((known + 1))
	[ "${SECRETS_STRICT:-0}" = 1 ] && bad "server: HSM PIN in memory"
fi

# ---- 3. station reader: keys, PIN, plaintext ID after the idle timeout ----
if [ "$IDREAD" = 1 ]; then
	L=$W/line
	ln -sfn "$W/cardA.img" "$L/pos-01"
	rm -f rd.sock
	MINTLINE_TEST_KEYLOG=$W/rdr.keys "$STATION" reader --link "inproc:$L" \
	    --pin-source "file:$L/pin" --server 127.0.0.1:$PORT \
	    --ca "$W/ca/root.pem" --cert "$W/chiprdr.pem" --timeout 5000 \
	    --socket "$W/rd.sock" --idle-timeout 600 --json > reader.log 2>&1 &
	RD_PID=$!
	for _ in $(seq 100); do [ -S rd.sock ] && break; sleep 0.05; done
	ans=$(python3 - "$W/rd.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(b"read\n")
buf = b""
while not buf.endswith(b"\n") or buf.decode(errors="replace").splitlines()[-1].split(" ")[0] not in ("ok", "error"):
    b = s.recv(65536)
    if not b:
        break
    buf += b
open("read.out", "wb").write(buf)
print(buf.decode(errors="replace").splitlines()[-1])
PY
)
	case "$ans" in "ok server"*) ok "reader: read answered by the server" ;; *) bad "reader: read: $ans" ;; esac
	idn=$(sed -n 's/.*"id_number":"\([0-9X]*\)".*/\1/p' read.out | head -1)
	name=$(sed -n 's/.*"name":"\([^"]*\)".*/\1/p' read.out | head -1)
	addr=$(sed -n 's/.*"address":"\([^"]*\)".*/\1/p' read.out | head -1)
	[ -n "$idn" ] && [ -n "$name" ] || bad "reader: no ID data in the answer"
	ID_NEEDLES="id_ascii=$(hexof "$idn") id_ucs2=$(ucs2 "$idn") name_utf8=$(hexof "$name") name_ucs2=$(ucs2 "$name") addr_utf8=$(hexof "$addr") addr_ucs2=$(ucs2 "$addr")"
	sleep 0.3
	N=$(needles_for rdr.keys 1) || bad "reader: no key logged"
	scan "$RD_PID" $N
	[ -z "$FOUND" ] && ok "reader: transport keys gone after the read's session" ||
	    bad "reader: transport keys still in memory after the session: $FOUND"
	# the server (SAM output, re-encrypted for the reader) after the session
	scan "$SRV_PID" $ID_NEEDLES
	[ -z "$FOUND" ] && ok "server: no plaintext ID data in memory after the read's session" ||
	    bad "server: plaintext ID data in memory after the session: $FOUND"
	# the card leaves; after the idle timeout the cache is cleared
	rm -f "$L/pos-01"
	sleep 1.5
	scan "$RD_PID" $ID_NEEDLES
	[ -z "$FOUND" ] && ok "reader: no plaintext ID data (number, name, address; UTF-8 and UCS-2) in memory after the idle timeout" ||
	    bad "reader: plaintext ID data in memory after the idle timeout: $FOUND"
	kill -TERM "$RD_PID"; wait "$RD_PID" 2>/dev/null; RD_PID=""
fi

# ---- 4. station handshake holding the reader key through PKCS#11: its
# PIN (pin-source) while the channel is open, after the login ----
"$STATION" handshake --server 127.0.0.1:$PORT --flow A --ca ca/root.pem \
    --cert rdr.pem --key "$RDRKEY" --module "$MODULE" --count 1 --hold 3000 \
    >> station.log 2>&1 &
ST_PID=$!
for _ in $(seq 100); do [ "$(wc -l < srv.keys)" -ge 4 ] && break; sleep 0.05; done
sleep 0.3
scan "$ST_PID" "token_pin=$(hexof "$RPIN")"
if [ -z "$FOUND" ]; then
	ok "station: token PIN (pin-source) not in memory after login"
else
	echo "# KNOWN: the token PIN stays in station memory (libp11 keeps a copy for re-login)"
	known=$((known + 1))
	[ "${SECRETS_STRICT:-0}" = 1 ] && bad "station: token PIN in memory"
fi
kill "$ST_PID" 2>/dev/null; wait "$ST_PID" 2>/dev/null; ST_PID=""

echo "# $pass passed, $fail failed, $known known findings"
[ "$fail" = 0 ]
