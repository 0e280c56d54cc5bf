#!/usr/bin/env bash
# Handshake benchmark (ID-2, ID-4): the in-process table (flows A/B vs TLS 1.3
# mutual auth, server CPU per full vs rejected handshake), then the real
# mintline-server over loopback with its key in SoftHSM2: legitimate
# flow-A handshakes/s alone and under forged first messages at 10x, and
# the server's own CPU accounting (stats line); the real server's CPU per
# handshake against the in-process figure, against an OpenSSL TLS 1.3
# mutual-auth server over loopback (bench-hs tls-loopback), against the floors of its
# shape (bench-floor: loopback TCP against a null server, a process round
# trip), and its HSM monitor's CPU per signature against SoftHSM2's raw
# C_Sign back to back and paced as the monitor signs (bench-pkcs11 -r -g),
# same run.
#
# Env: MINTLINE_BUILD_DIR, MINTLINE_BENCH_HS, MINTLINE_SERVER, MINTLINE_CA,
# MINTLINE_LOAD, MINTLINE_BENCH_PKCS11, MINTLINE_BENCH_FLOOR; BENCH_HS_LOAD_N (real-server handshakes, 1 thread, 1000);
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

OUT=$(mktemp)
"$BENCH" -n "$N" >"$OUT" || { cat "$OUT"; exit 1; }
cat "$OUT"

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
mv "$OUT" inproc.out
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
# The real server's CPU per flow A handshake, worker and monitor (which
# makes the HSM signature) apart, legitimate clients only: mintline-load,
# 1 client thread, loopback; against the in-process server figure above.
LOAD=${MINTLINE_LOAD:-$B/tools/mintline-load}
if [ -x "$LOAD" ]; then
	ticks() { cut -d' ' -f14,15 "/proc/$1/stat" 2>/dev/null | awk '{ print $1 + $2 }'; }
	HZ=$(getconf CLK_TCK)
	MP=$(pgrep -P $SP | head -1)
	"$LOAD" setup --ca-dir ca --registry reg.db --readers 50 --out load.bundle >/dev/null 2>&1
	s0=$(ticks $SP); m0=$(ticks "$MP")
	"$LOAD" hs --server 127.0.0.1:$PORT --ca ca/root.pem --bundle load.bundle \
	    --threads 1 --count "${BENCH_HS_LOAD_N:-1000}" --seconds 20 > load.out 2>&1
	s1=$(ticks $SP); m1=$(ticks "$MP")
	ok=$(sed -n 's/^result: .* ok=\([0-9]*\) .*/\1/p' load.out)
	rate=$(sed -n 's/^result: .* rate=\([0-9.]*\)\/s .*/\1/p' load.out)
	# the anchor of the monitor: SoftHSM2's own C_Sign, same machine,
	# same minute (bench-pkcs11 -r: one thread, CPU per signature), back
	# to back, and paced as the monitor signs (-g: idle for the mean
	# interval between the handshakes of the run above before each)
	P11B=${MINTLINE_BENCH_PKCS11:-$(dirname "$BENCH")/bench-pkcs11}
	gap=$(awk -v r="${rate:-0}" 'BEGIN { g = (r > 0) ? int(1e6 / r) : 0; if (g > 999999) g = 999999; print g }')
	raw="" paced=""
	if [ -x "$P11B" ]; then
		"$P11B" -r -s 1 -g "$gap" "$MODULE" > raw.out
		raw=$(sed -n 's/^SoftHSM2 raw C_Sign ECDSA P-256, 1 thread: .*, \([0-9.]*\) us of CPU per signature$/\1/p' raw.out)
		paced=$(sed -n 's/.*idle [0-9]* us before each: .*, \([0-9.]*\) us of CPU per signature$/\1/p' raw.out)
	fi
	# the anchor of the real server: a TLS 1.3 mutual-auth server over
	# loopback, one client thread, the same number of handshakes
	tlsl=$("$BENCH" tls-loopback -n "${BENCH_HS_LOAD_N:-1000}")
	tls_rate=$(echo "$tlsl" | sed -n 's/.*: \([0-9]*\) handshakes\/s, server \([0-9]*\) us.*/\1/p')
	tls_cpu=$(echo "$tlsl" | sed -n 's/.*: \([0-9]*\) handshakes\/s, server \([0-9]*\) us.*/\2/p')
	# the floors of the real server's shape on this machine, same minute
	FLOOR=${MINTLINE_BENCH_FLOOR:-$(dirname "$BENCH")/bench-floor}
	ipc="" tcp="" tcph=""
	if [ -x "$FLOOR" ]; then
		ipc=$("$FLOOR" ipc -n 3000 --gap "$gap" | sed -n 's/.*answering process \([0-9.]*\) us.*/\1/p')
		tcp=$("$FLOOR" tcp -n 3000 | sed -n 's/.*: \([0-9.]*\) us of CPU per connection.*/\1/p')
		tcph=$("$FLOOR" tcp -n 3000 --handoff | sed -n 's/.*: \([0-9.]*\) us of CPU per connection.*/\1/p')
	fi
	awk -v ok="${ok:-0}" -v s="$((s1 - s0))" -v m="$((m1 - m0))" -v hz="$HZ" \
	    -v inproc="$(sed -n 's/^| mintline flow A | [0-9]* | \([0-9]*\) us .*/\1/p' inproc.out)" \
	    -v raw="${raw:-0}" -v paced="${paced:-0}" -v gap="$gap" \
	    -v ipc="${ipc:-0}" -v tcp="${tcp:-0}" -v tcph="${tcph:-0}" \
	    -v rate="${rate:-0}" -v tls_rate="${tls_rate:-0}" -v tls_cpu="${tls_cpu:-0}" \
	    'BEGIN { if (ok == 0) { print "real server per handshake: no handshake completed"; exit }
		w = 1e6 * s / hz / ok; mo = 1e6 * m / hz / ok;
		x = (inproc > 0) ? (w + mo) / inproc : 0;
		printf "real server, flow A, 1 client thread, %d handshakes: server process %.0f us + monitor %.0f us = %.0f us of CPU per handshake; in process %s us: %.2fx (goal <= 2x)\n",
		    ok, w, mo, w + mo, inproc, x
		if (tls_rate > 0)
			printf "against a TLS 1.3 mutual-auth server over loopback, same minute (OpenSSL, one thread, 1 client thread): %.0f against %.0f handshakes/s (%.2fx), %.0f against %.0f us of server CPU per handshake (%.2fx)\n",
			    rate, tls_rate, rate / tls_rate, w + mo, tls_cpu, (w + mo) / tls_cpu
		if (tcp > 0)
			printf "floors, same minute: a loopback TCP connection of the same shape against a null server %.0f us (one thread, blocking) or %.0f us (epoll I/O thread + worker, our shape); a monitor round trip %.0f us; in process + those = %.0f us, %.2fx in process\n",
			    tcp, tcph, ipc, inproc + tcph + ipc, (inproc > 0) ? (inproc + tcph + ipc) / inproc : 0
		# one HSM signature per flow A handshake, made by the monitor
		if (raw > 0) {
			printf "HSM monitor: %.0f us of CPU per signature (request, C_Sign, reply); SoftHSM2 raw C_Sign back to back %.1f us: %.2fx (goal <= 1.5x)\n",
			    mo, raw, mo / raw
			if (paced > 0)
				printf "HSM monitor against SoftHSM2 raw C_Sign paced as the monitor signs (idle %d us before each, the mean interval above): %.1f us: %.2fx\n",
				    gap, paced, mo / paced
		} else
			print "HSM monitor: no raw C_Sign anchor (bench-pkcs11 missing)" }'
fi
"$BENCH" flood --server 127.0.0.1:$PORT --ca ca/root.pem --cert rdr.pem \
    --key rdr.key --seconds "$SECS" --threads 2 --ratio 10
kill -USR1 $SP
sleep 0.3
echo "server (worker CPU, SoftHSM2 key, $WORKERS workers):"
grep stats: server.log | tail -1
