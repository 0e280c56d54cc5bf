#!/usr/bin/env bash
# ID-card reading benchmark (ID-6..ID-13): bench-idread's in-process rows, then
# first/second read latency against a real mintline-server on loopback TCP
# (server key in SoftHSM2, reader key inside the reader secure chip).  The
# server rows are skipped when SoftHSM2 is missing.
#
#   meson test -C BUILD --benchmark idread      (or run this script)
set -u
B=${MINTLINE_BUILD_DIR:-$(pwd)}
BENCH=${MINTLINE_BENCH_IDREAD:-$B/tests/bench/bench-idread}
SERVER=${MINTLINE_SERVER:-$B/server/mintline-server}
MKIDCARD=${MINTLINE_MKIDCARD:-$B/tools/mintline-mkidcard}
CA=${MINTLINE_CA:-$B/tools/mintline-ca}
FIXTURE=${IDREAD_FIXTURE:-$B/tests/integration/idread_fixture}
ITERS=${IDREAD_BENCH_ITERS:-300}

echo "== in process (loopback link, SAM emulator) =="
"$BENCH" --iters "$ITERS" || exit 1

MODULE=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -e "$m" ] && MODULE=$m && break
done
if [ -z "$MODULE" ] || ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null; then
	echo "== mintline-server rows skipped: SoftHSM2 / pkcs11-tool missing =="
	exit 0
fi
W=$B/tests/idread-bench
rm -rf "$W"
mkdir -p "$W/tokens" "$W/line"
cd "$W" || exit 1
SRV_PID=""
trap '[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null' EXIT
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" > softhsm2.conf
export SOFTHSM2_CONF=$W/softhsm2.conf
echo 1234 > hsm-pin
softhsm2-util --init-token --free --label server --so-pin 12345678 --pin 1234 >/dev/null || exit 1
pkcs11-tool --module "$MODULE" --token-label server --login --pin 1234 \
    --keypairgen --key-type EC:prime256v1 --id 01 --label srvkey >/dev/null 2>&1 || exit 1
SRVKEY="pkcs11:token=server;object=srvkey?pin-source=file:$W/hsm-pin"
"$CA" init --dir ca --cn "bench root" >/dev/null || exit 1
"$CA" issue --dir ca --role server --p11 "$SRVKEY" --module "$MODULE" --out srv.pem >/dev/null || exit 1
"$FIXTURE" init-reader "$W/line" multi "$W/rdr.der" || exit 1
"$CA" issue --dir ca --role reader --serial RDR-IDR-0001 --pub rdr.der --out rdr.pem >/dev/null || exit 1
"$SERVER" enroll --registry reg.db rdr.pem >/dev/null || exit 1
# software reader keys for the server throughput rows (the server cannot
# tell them from chip keys; 64 reader chips would only slow the set-up)
NREADERS=${IDREAD_BENCH_READERS:-64}
mkdir -p readers
"$BENCH" --gen-readers "$NREADERS" readers || exit 1
for i in $(seq 0 $((NREADERS - 1))); do
	n=$(printf %04d "$i")
	"$CA" issue --dir ca --role reader --serial "RDR-BENCH-$n" \
	    --pub "readers/r$n.der" --out "readers/r$n.pem" >/dev/null || exit 1
done
"$SERVER" enroll --registry reg.db readers/r*.pem >/dev/null || exit 1
"$MKIDCARD" --sam-key sam.key --seed 5 -q card.img || exit 1
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER" --listen 127.0.0.1:$PORT \
    --ca ca/root.pem --cert srv.pem --key "$SRVKEY" --module "$MODULE" \
    --registry reg.db --sam "emul:$W/sam.key" --workers 4 > server.log 2>&1 &
SRV_PID=$!
for i in $(seq 50); do grep -q listening server.log 2>/dev/null && break; sleep 0.1; done
echo "== mintline-server over loopback TCP (handshake A every first read) =="
"$BENCH" --iters "$ITERS" --server 127.0.0.1:$PORT --ca ca/root.pem \
    --cert rdr.pem --line "$W/line" --card "$W/card.img" \
    --readers "$W/readers" --sam-key "$W/sam.key" --threads 1,4,16,64
