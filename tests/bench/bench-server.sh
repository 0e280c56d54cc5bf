#!/usr/bin/env bash
# Server benchmark, with mintline-load against a real
# mintline-server on loopback (server key in SoftHSM2, readers with
# software keys and certificates from mintline-ca's code):
#   1. idle authenticated channels held and the server's RSS
#      (goal: 10,000 in under 1 GiB)
#   2. note registrations/s through the registry back-ends in the same run:
#      SQLite (registry_sqlite.c, group commit) and PostgreSQL (registry_pg.c, a
#      private cluster, see tests/integration/pg-lib.sh)
#   3. handshakes/s with 1 and 2 server worker threads (goal >= 1.8x on 2
#      cores), with the server's own CPU per handshake from its stats line
# Not a timed test: it prints figures; docs/benchmarks.md keeps them.
#
#   tests/bench/bench-server.sh BUILD_DIR
# Env: BENCH_CONNS (10000), BENCH_READERS (1000), BENCH_REGS (5000),
# BENCH_HS (4000), BENCH_THREADS (load threads, 8).
set -u
B=${1:-${MINTLINE_BUILD_DIR:-$(pwd)}}
B=$(cd "$B" && pwd)
SERVER=$B/server/mintline-server
CA=$B/tools/mintline-ca
LOAD=$B/tools/mintline-load
HERE=$(cd "$(dirname "$0")" && pwd)
CONNS=${BENCH_CONNS:-10000}
READERS=${BENCH_READERS:-1000}
REGS=${BENCH_REGS:-5000}
HS=${BENCH_HS:-4000}
THREADS=${BENCH_THREADS:-8}

for t in softhsm2-util pkcs11-tool python3; do
	command -v "$t" >/dev/null 2>&1 || { echo "skip: $t missing"; exit 0; }
done
MODULE=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -e "$m" ] && MODULE=$m && break
done
[ -n "$MODULE" ] || { echo "skip: no libsofthsm2.so"; exit 0; }

W=$B/tests/server-bench
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

# 10,000 sockets on each side, plus headroom
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), RLIMIT_NOFILE $(ulimit -n)"

"$LOAD" setup --ca-dir ca --registry reg.db --readers "$READERS" --out bundle | sed 's/^/# /'

SP=""
trap '[ -n "$SP" ] && kill $SP 2>/dev/null' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() {	# workers [extra args]
	local w=$1
	shift
	PORT=$(free_port)
	"$SERVER" --listen 127.0.0.1:$PORT --ca ca/root.pem --cert srv.pem \
	    --key "$KEY" --module "$MODULE" --registry reg.db --workers "$w" \
	    --max-conns $((CONNS + 1000)) "$@" > server.log 2>&1 &
	SP=$!
	for i in $(seq 100); do
		grep -q listening server.log 2>/dev/null && return 0
		sleep 0.1
	done
	cat server.log
	exit 1
}
cpu_ticks() {	# utime + stime of a process and its children (the
		# monitor that holds the HSM session), in clock ticks
	local p t=0
	for p in "$1" $(pgrep -P "$1"); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
stop_server() {
	kill -USR1 "$SP"
	sleep 0.3
	STATS=$(grep 'stats:' server.log | tail -1 | sed 's/.*stats: //')
	kill "$SP"
	wait "$SP" 2>/dev/null
	SP=""
}

echo
echo "## 1. idle authenticated channels ($CONNS, $READERS reader certificates, 2 workers)"
start_server 2
"$LOAD" idle --server 127.0.0.1:$PORT --ca ca/root.pem --bundle bundle \
    --conns "$CONNS" --threads "$THREADS" --hold 3 --server-pid "$SP" --seconds 300 |
    grep '^result'
stop_server

echo
echo "## 2. registrations/s ($REGS notes, $THREADS threads; same run)"
"$LOAD" reg --registry "sqlite:$W/notes.db" --count "$REGS" --threads "$THREADS" |
    grep '^result: registrations'
. "$HERE/../integration/pg-lib.sh"
if pg_find >/dev/null && pg_init "$W/pg" >/dev/null 2>&1; then
	trap '[ -n "$SP" ] && kill $SP 2>/dev/null; pg_stop immediate; pg_cleanup' EXIT
	"$LOAD" reg --registry "$PG_URL" --count "$REGS" --threads "$THREADS" |
	    grep '^result: registrations'
	"$LOAD" reg --registry-pool 1 --registry "$PG_URL" --count "$REGS" \
	    --first 1000000 --threads "$THREADS" | grep '^result: registrations' |
	    sed 's/$/ (pool=1 connection)/'
	pg_stop fast
	pg_cleanup
else
	echo "(PostgreSQL not available: row skipped)"
fi

echo
echo "## 3. handshakes/s, 1 vs 2 server workers ($HS flow-A handshakes, $THREADS client threads)"
for w in 1 2; do
	start_server "$w"
	"$LOAD" hs --server 127.0.0.1:$PORT --ca ca/root.pem --bundle bundle \
	    --count 200 --threads "$THREADS" >/dev/null	# warm the caches
	c0=$(cpu_ticks "$SP")
	t0=$(date +%s.%N)
	"$LOAD" hs --server 127.0.0.1:$PORT --ca ca/root.pem --bundle bundle \
	    --count "$HS" --threads "$THREADS" | grep '^result' | sed "s/^result: /result: workers=$w /"
	c1=$(cpu_ticks "$SP")
	t1=$(date +%s.%N)
	stop_server
	echo "   server + monitor CPU during the run: $(awk -v c="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 100 * c / hz / (b - a) }')% of one core"
	echo "   server: $STATS"
done

echo
echo "## 4. records over established channels (2,000 channels, PING, 2 workers)"
start_server 2
"$LOAD" ping --server 127.0.0.1:$PORT --ca ca/root.pem --bundle bundle \
    --conns 2000 --threads "$THREADS" --count 10000000 --seconds 5 | grep '^result'
stop_server
