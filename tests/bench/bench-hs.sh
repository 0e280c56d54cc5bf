#!/usr/bin/env bash
# Handshake benchmark (ID-2, ID-4): the in-process table (flows A/B vs TLS 1.3
# mutual auth, server CPU per full vs rejected handshake), then the real
# mintline-server over loopback with its key in SoftHSM2: legitimate
# flow-A handshakes/s alone and under forged first messages at 10x, and
# the server's own CPU accounting (stats line).
#
# Env: MINTLINE_BUILD_DIR, MINTLINE_BENCH_HS, MINTLINE_SERVER, MINTLINE_CA;
# BENCH_HS_N (in-process handshakes, 2000), BENCH_HS_SECONDS (per flood
# phase, 5), BENCH_HS_WORKERS (server workers, 2).
set -u
B=${MINTLINE_BUILD_DIR:-$(pwd)}
BENCH=${MINTLINE_BENCH_HS:-$B/tests/bench/bench-hs}
SERVER=${MINTLINE_SERVER:-$B/server/mintline-server}
CA=${MINTLINE_CA:-$B/tools/mintline-ca}
N=${BENCH_HS_N:-2000}
SECS=${BENCH_HS_SECONDS:-5}
WORKERS=${BENCH_HS_WORKERS:-2}

"$BENCH" -n "$N" || exit 1

for t in softhsm2-util pkcs11-tool; do
	command -v "$t" >/dev/null 2>&1 || { echo "skip server rows: $t missing"; exit 0; }
done
MODULE=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -e "$m" ] && MODULE=$m && break
done
[ -n "$MODULE" ] || { echo "skip server rows: no libsofthsm2.so"; exit 0; }

W=$B/tests/hs-bench
rm -rf "$W"
mkdir -p "$W/tokens"
cd "$W" || exit 1
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" > softhsm2.conf
export SOFTHSM2_CONF=$W/softhsm2.conf
echo 1234 > pin
softhsm2-util --init-token --free --label server --so-pin 12345678 --pin 1234 >/dev/null
pkcs11-tool --module "$MODULE" --token-label server --login --pin 1234 \
    --keypairgen --key-type EC:prime256v1 --id 01 --label srvkey >/dev/null 2>&1
KEY="pkcs11:token=server;object=srvkey?pin-source=file:$W/pin"
"$CA" init --dir ca >/dev/null
"$CA" issue --dir ca --role server --p11 "$KEY" --module "$MODULE" --out srv.pem >/dev/null
"$BENCH" mkreader --ca-dir ca --serial RDR-BENCH --out rdr --certno 7000
"$SERVER" enroll --registry reg.db rdr.pem >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER" --listen 127.0.0.1:$PORT --ca ca/root.pem --cert srv.pem --key "$KEY" \
    --module "$MODULE" --registry reg.db --workers "$WORKERS" > server.log 2>&1 &
SP=$!
trap 'kill $SP 2>/dev/null' EXIT
sleep 0.5
"$BENCH" flood --server 127.0.0.1:$PORT --ca ca/root.pem --cert rdr.pem \
    --key rdr.key --seconds "$SECS" --threads 2 --ratio 10
kill -USR1 $SP
sleep 0.3
echo "server (worker CPU, SoftHSM2 key, $WORKERS workers):"
grep stats: server.log | tail -1
