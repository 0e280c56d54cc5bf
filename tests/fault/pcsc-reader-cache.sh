#!/usr/bin/env bash
# Fault injection (ID-9, ID-12), PC/SC: is ID data left in the reader secure
# chip's cache past its idle timeout when the reader host dies?
#
# The reader chip and the ID card are mintline-chip processes behind a
# private pcscd (tests/integration/pcsc-env.sh), so the chip's RAM cache
# outlives `mintline-station reader` (unlike the in-process line, where the
# chip dies with the host).  Rounds:
#   1. orderly: read (server), read (chip), card away past --idle-timeout,
#      card back: the read goes to the server (ID-9);
#   2. host SIGKILLed while the data is cached; card away for longer than
#      the idle timeout; host and card back: the read must go to the
#      server, not be answered from the chip's cache;
#  1b. another PC/SC client resets the reader chip: reads go on (the host
#      logs in again with the PIN it keeps);
#   3. reader chip power cut (SIGKILL of its mintline-chip) while cached:
#      after it comes back nothing is answered from the cache (RAM only),
#      and the host should recover (known not to: reported as KNOWN).
#
#   tests/fault/pcsc-reader-cache.sh BUILD_DIR
# Exit 77 (skipped) without pcscd + vpcd, SoftHSM2, OpenSC or python3.
set -u
B=${1:-${MINTLINE_BUILD_DIR:-build}}
B=$(cd "$B" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/integration/pcsc-env.sh
source "$top/tests/integration/pcsc-env.sh"
pcsc_env_require
for t in softhsm2-util pkcs11-tool; do
	command -v "$t" >/dev/null 2>&1 || { echo "skip: $t missing"; exit 77; }
done
MODULE=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -e "$m" ] && MODULE=$m && break
done
[ -n "$MODULE" ] || { echo "skip: libsofthsm2.so missing"; exit 77; }
SERVER=$B/server/mintline-server
STATION=$B/station/mintline-station
CA=$B/tools/mintline-ca
CHIP=$B/chip-applet/mintline-chip
MKIDCARD=$B/tools/mintline-mkidcard
FIXTURE=$B/tests/integration/idread_fixture
for f in "$SERVER" "$STATION" "$CA" "$CHIP" "$MKIDCARD" "$FIXTURE"; do
	[ -x "$f" ] || { echo "skip: $f not built"; exit 77; }
done
W=${FAULT_WORK:-$B/tests/fault/pcsc-cache}
rm -rf "$W"
mkdir -p "$W/tokens" "$W/line"
cd "$W" || exit 1
pass=0 fail=0
ok()  { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
SRV_PID="" RD_PID="" RCHIP="" CCHIP=""
cleanup() {
	for p in $RD_PID $SRV_PID; do kill "$p" 2>/dev/null; done
	pcsc_env_cleanup
}
trap cleanup EXIT

cat > softhsm2.conf <<CONF
directories.tokendir = $W/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF=$W/softhsm2.conf
echo 1234 > pin
softhsm2-util --init-token --free --label server --so-pin 12345678 --pin 1234 >/dev/null || exit 1
pkcs11-tool --module "$MODULE" --token-label server --login --pin 1234 \
    --keypairgen --key-type EC:prime256v1 --id 01 --label srvkey >/dev/null 2>&1 || exit 1
SRVKEY="pkcs11:token=server;object=srvkey?pin-source=file:$W/pin"
"$CA" init --dir ca --cn "mintline pcsc fault root" >/dev/null || exit 1
"$CA" issue --dir ca --role server --p11 "$SRVKEY" --module "$MODULE" --out srv.pem >/dev/null || exit 1
"$FIXTURE" init-reader "$W/line" multi "$W/chiprdr.der" >/dev/null || exit 1
"$CA" issue --dir ca --role reader --serial RDR-IDR-0001 --pub chiprdr.der --out chiprdr.pem >/dev/null || exit 1
"$MKIDCARD" --sam-key "$W/sam.key" --seed 11 -q "$W/cardA.img" || exit 1
"$SERVER" enroll --registry reg.db chiprdr.pem >/dev/null || exit 1
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER" --listen 127.0.0.1:$PORT --ca ca/root.pem \
    --cert srv.pem --key "$SRVKEY" --module "$MODULE" --registry reg.db --sam "emul:$W/sam.key" -v \
    > server.log 2>&1 &
SRV_PID=$!

pcsc_env_start "$W/pcsc" 2 || { echo "private pcscd did not start"; exit 1; }
reader_chip() {
	"$CHIP" --port "$VPCD_PORT_0" "$W/line/reader.img" >> rchip.log 2>&1 &
	RCHIP=$!
	pcsc_env_track "$RCHIP"
}
card_in() {
	"$CHIP" --port "$VPCD_PORT_1" "$W/cardA.img" >> card.log 2>&1 &
	CCHIP=$!
	pcsc_env_track "$CCHIP"
	sleep 0.5
}
card_out() {
	kill "$CCHIP" 2>/dev/null
	wait "$CCHIP" 2>/dev/null
	CCHIP=""
}
reader_chip
card_in
for _ in $(seq 100); do grep -q listening server.log && break; sleep 0.05; done

IDLE=600
reader_start() {
	rm -f rd.sock
	"$STATION" reader --link "pcsc:" --reader-slot 0 --card-slot 1 \
	    --pin-source "file:$W/line/pin" --server 127.0.0.1:$PORT \
	    --ca "$W/ca/root.pem" --cert "$W/chiprdr.pem" --timeout 5000 \
	    --socket "$W/rd.sock" --idle-timeout $IDLE -v >> reader.log 2>&1 &
	RD_PID=$!
	for _ in $(seq 200); do [ -S rd.sock ] && return 0; sleep 0.05; done
	return 1
}
rcmd() {
	python3 - "$W/rd.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
buf = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    buf += b
    lines = buf.decode(errors="replace").splitlines()
    if lines and buf.endswith(b"\n") and lines[-1].split(" ")[0] in ("ok", "error", "card"):
        print(lines[-1])
        break
PY
}

# ---- 1. orderly expiry ----
reader_start || { cat reader.log; echo "reader did not start"; exit 1; }
a=$(rcmd read); b=$(rcmd read)
[ "$a" = "ok server" ] && [ "$b" = "ok chip" ] &&
    ok "pcsc: first read from the server, second from the reader chip" ||
    { bad "pcsc: reads: '$a' '$b'"; tail -5 reader.log; }
card_out
sleep 1.2
card_in
c=$(rcmd read)
[ "$c" = "ok server" ] && ok "pcsc: after the idle timeout the read goes to the server" ||
    bad "pcsc: after the idle timeout: '$c' (want ok server)"

# ---- 1b. another PC/SC client resets the reader chip (OP-3) ----
# The reader host logged in once at start; after the reset it selects the
# applet and logs in again with the PIN it keeps, and reads go on.
CHECK=$B/tests/integration/pcsc_link_check
if [ -x "$CHECK" ] && "$CHECK" reset "$VPCD_READER_0" >/dev/null; then
	c=$(rcmd read)
	case "$c" in
	"ok server" | "ok chip") ok "pcsc: the reader host reads on after another client reset the reader chip ('$c')" ;;
	*) bad "pcsc: read after a reset of the reader chip by another client: '$c'"; tail -5 reader.log ;;
	esac
else
	bad "pcsc: could not reset the reader chip from another client"
fi

# ---- 2. the host SIGKILLed with the data cached ----
b=$(rcmd read)
[ "$b" = "ok chip" ] || echo "# (not cached before the kill: '$b')"
kill -9 "$RD_PID"; wait "$RD_PID" 2>/dev/null; RD_PID=""
card_out
sleep 1.5		# longer than the idle timeout, with nobody watching
card_in
reader_start || { bad "reader restart"; exit 1; }
c=$(rcmd read)
if [ "$c" = "ok chip" ]; then
	bad "I4 pcsc: ID data survived in the reader chip's cache past its idle timeout after the host was SIGKILLed"
else
	ok "I4 pcsc: host SIGKILLed, card away past the timeout: read goes to the server ('$c')"
fi

# ---- 3. reader chip power cut with the data cached ----
b=$(rcmd read)
kill -9 "$RCHIP"; wait "$RCHIP" 2>/dev/null
reader_chip
sleep 0.5
c=$(rcmd read)
sleep 2
d=$(rcmd read)
case "$c $d" in
*"ok chip"*) bad "pcsc: cache survived a power cut of the reader chip ('$c', '$d')" ;;
*) ok "pcsc: reader chip power cut while cached ('$b'): next reads '$c', '$d', not from the cache" ;;
esac
# Known limitation: the long-running reader survives a reset of the
# reader chip (1b) but does not re-open it after a power cut, which the
# link reports as a new chip, so every read fails, misreported as "no card
# in the field", until the host is restarted.  FAULT_STRICT=1 makes it a
# failure.
if [ "$d" = "ok server" ]; then
	ok "pcsc: the reader host recovers from the reader chip's power cut"
elif [ "${FAULT_STRICT:-0}" = 1 ]; then
	bad "pcsc: no recovery after the reader chip's power cut: '$d' (want ok server)"
else
	echo "# KNOWN: no recovery after the reader chip's power cut until the host restarts: '$d'"
fi
kill -TERM "$RD_PID" 2>/dev/null; wait "$RD_PID" 2>/dev/null; RD_PID=""
echo "# $pass passed, $fail failed"
[ "$fail" = 0 ]
