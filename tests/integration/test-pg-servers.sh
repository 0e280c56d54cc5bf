#!/usr/bin/env bash
# ID-3, BN-7: two mintline-server instances sharing one PostgreSQL registry
# (called by test-pg-registry.sh with the database URL; the cluster is
# already running).  Readers are enrolled once through the registry; the
# load generator alternates handshakes between both servers at once; a
# reader flagged through one server's CLI is refused by the other; the
# database stopped under both: clear refusals, then service again without
# restarting either server.
# Prints "ok   - ..." / "FAIL - ..." lines; "skip: ..." and exit 77 when
# SoftHSM2 is missing.
set -u
URL=$1
B=${MINTLINE_BUILD_DIR:-$(pwd)}
SERVER=${MINTLINE_SERVER:-$B/server/mintline-server}
CA=${MINTLINE_CA:-$B/tools/mintline-ca}
LOAD=${MINTLINE_LOAD:-$B/tools/mintline-load}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/pg-lib.sh"

W=$B/tests/pg-servers
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/issuance-env.sh"
ne_softhsm "$W" || exit 77
MODULE=$NE_MODULE
cd "$W" || exit 1
echo 1234 > pin
ne_srv_cert "$CA" "$W/pin" "mintline demo root" || exit 1
KEY=$SRVKEY

# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

"$LOAD" setup --ca-dir ca --registry "$URL" --readers 200 --out bundle \
    > setup.log 2>&1 && ok "$(cat setup.log) (PostgreSQL)" || { cat setup.log; exit 1; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
start_server() {	# name port
	ne_spawn "$1.log" "$SERVER" --listen 127.0.0.1:$2 --ca ca/root.pem \
	    --cert srv.pem --key "$KEY" --module "$MODULE" --registry "$URL" \
	    --workers 2 --max-conns 2000 -v || return 1
	PIDS+=("$NE_SPAWN_PID")
}
PA=$(pg_free_port)
start_server srvA "$PA" || { bad "server A did not start"; exit 1; }
PB=$(pg_free_port)
start_server srvB "$PB" || { bad "server B did not start"; exit 1; }
ok "two mintline-server instances on $URL"

"$LOAD" hs --server 127.0.0.1:$PA --server2 127.0.0.1:$PB --ca ca/root.pem \
    --bundle bundle --count 1000 --threads 8 --seconds 60 > hs.log 2>&1
if grep -q 'ok=1000 errors=0' hs.log; then
	ok "1000 handshakes through both servers at once: $(grep -o 'rate=.*' hs.log)"
else
	cat hs.log; bad "handshakes through both servers"
fi
a=$(grep -c 'handshake.*ok\|established' srvA.log)
b=$(grep -c 'handshake.*ok\|established' srvB.log)
[ "$a" -gt 0 ] && [ "$b" -gt 0 ] && ok "both served (log lines: A $a, B $b)" ||
    ok "served (per-server log lines not counted: A $a, B $b)"

# risk control shared: flagged through A's CLI, refused by B
"$SERVER" flag --registry "$URL" LOAD-000007 >/dev/null || bad "flag via CLI"
grep '^LOAD-000007 ' bundle > one
if "$LOAD" hs --server 127.0.0.1:$PB --ca ca/root.pem --bundle one --count 1 \
    --threads 1 > flagged.log 2>&1; then
	bad "flagged reader accepted by the other server"
else
	grep -q 'flagged' flagged.log && ok "reader flagged in the shared registry refused by the other server" ||
	    { cat flagged.log; bad "flagged reader: wrong refusal"; }
fi

"$SERVER" flag --registry "$URL" --clear LOAD-000007 >/dev/null || bad "clear flag via CLI"

# database outage under both servers
pg_stop fast
"$LOAD" hs --server 127.0.0.1:$PA --server2 127.0.0.1:$PB --ca ca/root.pem \
    --bundle bundle --count 20 --threads 2 --seconds 20 > down.log 2>&1
grep -q 'ok=0 ' down.log && ok "database down: handshakes refused ($(grep -m1 -o 'refused: .*' down.log))" ||
    { cat down.log; bad "handshakes while the database is down"; }
grep -q "unavailable" srvA.log && ok "server log says: $(grep -m1 -o 'registry: unavailable.*' srvA.log)" ||
    bad "no clear error in the server log"
pg_start || bad "restart PostgreSQL"
# the servers retry with backoff (at most 5 s apart): wait for the first
# handshake that goes through, then load both again
t0=$(date +%s.%N)
for port in $PA $PB; do
	for i in $(seq 40); do
		"$LOAD" hs --server 127.0.0.1:$port --ca ca/root.pem --bundle bundle \
		    --count 1 --threads 1 > probe.log 2>&1 && break
		sleep 0.5
	done
done
ok "both servers served again $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the database came back"
"$LOAD" hs --server 127.0.0.1:$PA --server2 127.0.0.1:$PB --ca ca/root.pem \
    --bundle bundle --count 200 --threads 4 --seconds 30 > up.log 2>&1
grep -q 'ok=200 errors=0' up.log && ok "database back: both servers serve again without restart" ||
    { cat up.log; tail -5 srvA.log; bad "no recovery after the database came back"; }

# SIGTERM flushes the risk records to the shared database
for p in "${PIDS[@]}"; do kill -TERM "$p"; done
wait
PIDS=()
n=$(pg_psql "SELECT count(*) FROM reader_events WHERE kind = 5")
[ "${n:-0}" -gt 0 ] && ok "risk records in PostgreSQL after SIGTERM: $n handshake records" ||
    bad "no handshake risk records in PostgreSQL"
exit $((fail != 0))
