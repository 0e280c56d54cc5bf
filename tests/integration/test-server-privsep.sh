#!/usr/bin/env bash
# Integration test (BN-7, ID-10): mintline-server as a production service.
#   - privilege separation: the network process maps neither SoftHSM nor
#     libp11 and holds no copy of the HSM PIN; the monitor refuses a second
#     MON_ONCE request of one session (mon_check plays a compromised worker);
#     a lost HSM session (C_Finalize behind libp11) is re-opened by itself;
#   - the configuration file: errors name the line, CLI options override,
#     SIGHUP reloads it;
#   - the network core: per-address limit on unauthenticated connections,
#     a legitimate reader served during a flood from 127.0.0.2, slow and
#     garbage connections cut at the read timeout with bounded memory;
#   - /metrics (Prometheus text) shows the counters moving;
#   - SIGTERM drains an in-flight session, flushes the registry, exit 0;
#   - kill -9 of the monitor: the server drains and exits with status 1
#     (a supervisor restarts it; see docs/operations.md).
#
# Needs: softhsm2-util, pkcs11-tool, python3; root for /proc/PID/mem of a
# non-dumpable process (else that one check is skipped).  Exit 77 = skipped.
set -u

B=${MINTLINE_BUILD_DIR:-$(pwd)}
SERVER=${MINTLINE_SERVER:-$B/server/mintline-server}
STATION=${MINTLINE_STATION:-$B/station/mintline-station}
CA=${MINTLINE_CA:-$B/tools/mintline-ca}
MONITOR=${MINTLINE_MONITOR:-$B/server/mintline-monitor}
MON_CHECK=${MON_CHECK:-$B/tests/integration/mon_check}
W=$B/tests/privsep-integration
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/issuance-env.sh"
ne_softhsm "$W" || exit 77
MODULE=$NE_MODULE
cd "$W" || exit 1
# a PIN that occurs nowhere else, so that finding it in memory means
# something
PIN="Qv7pin-PRIVSEP-4x9Zk2"
printf '%s\n' "$PIN" > pin
chmod 600 pin

# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"
SRV_PID=""
cleanup() {
	[ -n "$SRV_PID" ] && kill -9 "$SRV_PID" 2>/dev/null
	[ -n "${FLOOD_PID:-}" ] && kill "$FLOOD_PID" 2>/dev/null
	wait 2>/dev/null
}
trap cleanup EXIT

# ---- ceremony ----
ne_srv_cert "$CA" "$W/pin" "privsep test root" || { echo "server key failed"; exit 1; }
softhsm2-util --init-token --free --label readers --so-pin 12345678 --pin "$PIN" >/dev/null
pkcs11-tool --module "$MODULE" --token-label readers --login --pin "$PIN" \
    --keypairgen --key-type EC:prime256v1 --id 11 --label rdr \
    >/dev/null 2>&1 || { echo "keygen rdr failed"; exit 1; }
RDRKEY="pkcs11:token=readers;object=rdr?pin-source=file:$W/pin"
"$CA" issue --dir ca --role reader --serial RDR-0001 --p11 "$RDRKEY" --module "$MODULE" --out good.pem >/dev/null || exit 1
"$SERVER" enroll --registry reg.db good.pem >/dev/null || { echo "enroll failed"; exit 1; }

NOK=0	# successful handshakes of RDR-0001 (the registry must have them all)
station() {	# flow [extra...]
	local flow=$1
	shift
	"$STATION" handshake --server 127.0.0.1:$PORT --flow "$flow" \
	    --ca ca/root.pem --cert good.pem --key "$RDRKEY" --module "$MODULE" \
	    --timeout 5000 "$@" >> station.log 2>&1 || return 1
	NOK=$((NOK + 1))
}
scrape() {	# prints the /metrics body
	python3 - "$MPORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
b = b""
while True:
    k = s.recv(65536)
    if not k:
        break
    b += k
head, _, body = b.partition(b"\r\n\r\n")
sys.stdout.write(head.split(b"\r\n")[0].decode() + "\n" + body.decode())
PY
}
metric() {	# name-with-labels: its value
	scrape | awk -v k="$1" '$1 == k { print $2 }'
}
wait_log() {	# pattern file
	for i in $(seq 100); do
		grep -q -- "$1" "$2" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- configuration file ----
cat > bad.conf <<CONF
# comment
listen = 127.0.0.1:1

workers = 2
read-timeout = soon
CONF
out=$("$SERVER" --config bad.conf --check-config 2>&1)
echo "$out" | grep -q "bad.conf:5: read-timeout: bad value" && ok "config error names the file, line and key ($out)" || bad "config error: $out"
printf 'listen = 127.0.0.1:1\nno-such-key = 1\n' > bad2.conf
out=$("$SERVER" --config bad2.conf --check-config 2>&1)
echo "$out" | grep -q "bad2.conf:2: no-such-key: unknown key" && ok "unknown key: file, line 2, the key" || bad "unknown key: $out"
# one configuration channel: every setting is a key (and an option), the
# environment variables of older servers are not read, and --print-config
# shows the effective configuration with the PIN elided
cat > print.conf <<CONF
note-issuers = /etc/mintline/issuer.pem
sam = emul:/srv/sam.key
key = pkcs11:token=t;object=k?pin-value=SECRET77
CONF
out=$(MINTLINE_NOTE_ISSUERS=/env.pem MINTLINE_SAM=emul:/env.key MINTLINE_REGISTRY_POOL=3 \
    "$SERVER" --config print.conf --registry-pool 5 --print-config 2>&1)
if echo "$out" | grep -qx "note-issuers *= /etc/mintline/issuer.pem" &&
   echo "$out" | grep -qx "sam *= emul:/srv/sam.key" &&
   echo "$out" | grep -qx "registry-pool *= 5" &&
   echo "$out" | grep -q "pin-value=(elided)" && ! echo "$out" | grep -q "SECRET77" &&
   ! echo "$out" | grep -q "/env"; then
	ok "--print-config: file and options, environment ignored, PIN elided"
else
	bad "--print-config: $out"
fi
for k in listen registry registry-pool note-issuers note-feature-key note-seal-key sam idread-deadline idread-max-rounds; do
	echo "$out" | grep -q "^$k " || bad "--print-config lacks $k"
done
for v in MINTLINE_NOTE_DB MINTLINE_NOTE_ISSUERS MINTLINE_NOTE_FEATURE_KEY MINTLINE_NOTE_SEAL_KEY MINTLINE_SAM MINTLINE_REGISTRY_POOL; do
	for exe in "$SERVER" "$(dirname "$SERVER")/mintline-monitor"; do
		if strings "$exe" | grep -q "$v"; then bad "$exe still names $v"; fi
	done
done
# the audit command (OP-5): the history of a note or a station, as text
# and JSON lines, with time filters; --verify finds a row that was not
# appended through the registry (its hash does not match)
"$SERVER" audit --registry audit.db --verify | grep -q "0 row(s), hash chain intact" &&
    ok "audit --verify on an empty trail" || bad "audit --verify, empty"
sqlite3 audit.db "INSERT INTO audit VALUES (1, 1765123200, 'register', 'STN-0001', '1A', 'note', 'MX00000001', 'ok', 'reg 7', zeroblob(32), zeroblob(32));
    INSERT INTO audit VALUES (2, 1765209600, 'refuse', 'STN-0002', '2B', 'note', 'MX00000001', 'dup_serial', 'a \"quote\"', zeroblob(32), zeroblob(32));
    INSERT INTO audit VALUES (3, 1765209601, 'enrol', 'STN-0002', '2B', 'chip', 'NOTE000000000001', 'ok', '', zeroblob(32), zeroblob(32));"
[ "$("$SERVER" audit --registry audit.db --note MX00000001 | wc -l)" = 2 ] &&
    ok "audit --note: the note's 2 rows" || bad "audit --note"
"$SERVER" audit --registry audit.db --station STN-0002 --since 2025-12-08 --json |
    python3 -c 'import json,sys; r=[json.loads(l) for l in sys.stdin]; assert [x["id"] for x in r]==[2,3] and r[0]["detail"]=="a \"quote\""' &&
    ok "audit --station --since --json: JSON lines" || bad "audit --json"
[ -z "$("$SERVER" audit --registry audit.db --until 2025-12-06)" ] &&
    ok "audit --until before every row: nothing" || bad "audit --until"
out=$("$SERVER" audit --registry audit.db --verify 2>&1) &&
    bad "audit --verify accepted rows with wrong hashes" ||
    { echo "$out" | grep -q "audit row 1: its hash does not match" &&
      ok "audit --verify names the bad row ($out)" || bad "audit --verify: $out"; }
printf 'key pkcs11:token=a?pin-value=SECRET99\n' > bad3.conf
out=$("$SERVER" --config bad3.conf --check-config 2>&1)
echo "$out" | grep -q "bad3.conf:1: " && ! echo "$out" | grep -q SECRET99 && ok "malformed line reported without echoing the value" || bad "bad3: $out"
"$SERVER" --config /nonexistent.conf --check-config >/dev/null 2>&1 && bad "missing --config accepted" || ok "missing --config refused"
"$SERVER" --check-config >/dev/null 2>&1 && ok "no configuration file: defaults run" || bad "defaults refused"

PORT=$(ne_free_port)
MPORT=$(ne_free_port)
cat > server.conf <<CONF
# mintline-server test configuration
listen        = 127.0.0.1:1
ca            = $W/ca/root.pem
cert          = $W/srv.pem
key           = $SRVKEY
module        = $MODULE
registry      = $W/reg.db
workers       = 2
read-timeout  = 1500
max-unauth-per-addr = 8
metrics-listen = 127.0.0.1:$MPORT
drain-timeout = 8000
log-format    = kv
CONF
# the command line overrides the file (listen)
ne_spawn server.log "$SERVER" --config server.conf --listen 127.0.0.1:$PORT -v ||
    { echo "server did not start"; exit 1; }
SRV_PID=$NE_SPAWN_PID
grep -q "listening on 127.0.0.1:$PORT" server.log &&
    ok "server started from the configuration file, --listen overrode it" ||
    bad "--listen did not override the file: $(grep listening server.log)"
grep -q '^ts=.* level=warn prog=mintline-server msg="listening' server.log && ok "key=value log lines" || bad "log format: $(head -2 server.log)"

MON_PID=$(pgrep -P "$SRV_PID" -f mintline-monitor | head -1)
[ -n "$MON_PID" ] && ok "monitor process $MON_PID under server $SRV_PID" || bad "no monitor process"

# ---- privilege separation ----
station A --count 2 && ok "flow A handshake through the monitor" || bad "flow A"
station B --count 2 && ok "flow B handshake through the monitor" || bad "flow B"
if grep -Eq 'softhsm|/libp11\.so' /proc/$SRV_PID/maps; then
	bad "network process maps the PKCS#11 module or libp11: $(grep -E 'softhsm|libp11\.so' /proc/$SRV_PID/maps | head -2)"
else
	ok "network process maps neither softhsm nor libp11"
fi
# The same by construction: the worker links keys/'s interface and the
# monitor client, never keys/key_p11.c (docs/architecture.md, "Keys").
if readelf -d "$SERVER" | grep -q 'NEEDED.*libp11\.so' ||
    nm "$SERVER" | grep -Eq ' [TtDd] (key_p11_|PKCS11_)'; then
	bad "mintline-server is linked with libp11 or keys/key_p11.c"
else
	ok "mintline-server links neither libp11 nor the libp11 key implementation"
fi
nm "$MONITOR" | grep -q ' [Tt] key_p11_open' && ok "(control) the monitor links key_p11_open" || bad "monitor lacks key_p11_open"
grep -q softhsm /proc/$MON_PID/maps && ok "(control) the monitor maps softhsm" || bad "monitor has no softhsm mapping"
memsearch() {	# pid needle: exit 0 found, 1 absent, 2 unreadable or error
	python3 - "$1" "$2" <<'PY'
import re, sys
pid, needle = sys.argv[1], sys.argv[2].encode()
CHUNK = 1 << 20
def search():
    maps = open("/proc/%s/maps" % pid).read().splitlines()
    mem = open("/proc/%s/mem" % pid, "rb", 0)
    nread = 0
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        if not m or m.group(3)[0] != "r" or "[vvar]" in line or "[vsyscall]" in line:
            continue
        a, b = int(m.group(1), 16), int(m.group(2), 16)
        if b - a > (1 << 30):
            continue        # sanitizer shadow reservations, never data
        prev = b""
        for off in range(a, b, CHUNK):
            try:
                mem.seek(off)
                data = mem.read(min(CHUNK, b - off))
            except OSError:
                prev = b""
                continue
            nread += len(data)
            if needle in prev[-len(needle):] + data:
                return 0
            prev = data
    return 1 if nread > 0 else 2
try:
    sys.exit(search())
except OSError:
    sys.exit(2)
PY
}
memsearch "$SRV_PID" "$PIN"
case $? in
0) bad "the HSM PIN is in the network process's memory" ;;
1) ok "the HSM PIN is nowhere in the network process's memory" ;;
*) echo "skip - /proc/$SRV_PID/mem not readable (not root?)" ;;
esac
memsearch "$SRV_PID" "pin-source=file:$W/pin"
case $? in
0) ok "(control) the same search finds the key URI (PIN file name) there" ;;
1) bad "(control) memory search does not find the key URI" ;;
esac
"$MON_CHECK" "$MONITOR" "$MODULE" "$SRVKEY" > mon_check.log 2>&1 && ok "monitor: MON_ONCE and session rules (mon_check: $(grep -c '^ok' mon_check.log) checks)" || { cat mon_check.log; bad "mon_check"; }
grep -q "session 1: a second SIGN_TRANSCRIPT (MON_ONCE) refused" mon_check.log && ok "second SIGN_TRANSCRIPT of one session refused" || bad "MON_ONCE sign"
grep -q "^ok   - key_p11: sign after the session was lost (reconnected)" mon_check.log && ok "HSM session lost (module finalized): reconnected, re-logged in, signed" || bad "HSM reconnect"

# ---- metrics ----
hs_a=$(metric 'mintline_handshakes_total{flow="A"}')
[ "$hs_a" = "1" ] && ok "metrics: handshakes A = 1" || bad "metrics: handshakes A = '$hs_a'"
station A --count 1
hs_a2=$(metric 'mintline_handshakes_total{flow="A"}')
[ "$hs_a2" = "2" ] && ok "metrics: handshakes A moved to 2" || bad "metrics: handshakes A = '$hs_a2'"
scrape | grep -q '^mintline_handshake_duration_seconds_bucket{le="+Inf"} 3$' && ok "metrics: latency histogram counts 3 handshakes" || bad "histogram: $(scrape | grep duration_seconds_count)"
scrape | grep -q '^# TYPE mintline_handshake_rejections_total counter' && ok "metrics: TYPE lines" || bad "no TYPE lines"
st=$(python3 -c "
import socket
s=socket.create_connection(('127.0.0.1',$MPORT)); s.sendall(b'GET /nope HTTP/1.0\r\n\r\n'); print(s.recv(100).split(b'\r\n')[0].decode())")
[ "$st" = "HTTP/1.0 404 Not Found" ] && ok "metrics: other paths 404" || bad "metrics 404: $st"
st=$(python3 -c "
import socket
s=socket.create_connection(('127.0.0.1',$MPORT)); s.sendall(b'GET /metrics HTTP/1.0\r\n' + b'X: ' + b'a'*4000)
try:
    print(s.recv(100).split(b'\r\n')[0].decode() or 'closed')
except ConnectionError:
    print('closed')")
case $st in "HTTP/1.0 431"*|closed) ok "metrics: oversized request refused ($st)" ;; *) bad "oversized request: $st" ;; esac

# ---- floods, slow and garbage clients ----
rss() { awk '/^VmRSS/ {print $2}' /proc/$SRV_PID/status; }
rss0=$(rss)
# 40 silent connections from 127.0.0.2 (limit 8 per address), held open
python3 - "$PORT" > flood.log 2>&1 <<'PY' &
import socket, sys, time
socks, refused = [], 0
for i in range(40):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", int(sys.argv[1])))
    socks.append(s)
time.sleep(0.5)
for s in socks:
    s.settimeout(0.05)
    try:
        b = s.recv(16)
        if b[-2:] == b"\x7f\x0e":
            refused += 1
    except (socket.timeout, ConnectionError):
        pass
print("refused-busy", refused, flush=True)
time.sleep(6)
PY
FLOOD_PID=$!
sleep 1
station A --count 1 && ok "a reader from 127.0.0.1 is served during the flood from 127.0.0.2" || bad "reader not served during flood"
wait_log "refused-busy" flood.log
grep -q "refused-busy 32" flood.log && ok "per-address limit: 32 of 40 flood connections refused busy" || bad "flood: $(cat flood.log)"
pa=$(metric 'mintline_connections_refused_total{reason="per_addr"}')
[ "${pa:-0}" -ge 32 ] && ok "metrics: per_addr refusals = $pa" || bad "metrics per_addr = '$pa'"
# slow (1 byte per 0.3 s) and garbage clients
python3 - "$PORT" > slow.log 2>&1 <<'PY'
import os, socket, sys, time, threading
port = int(sys.argv[1])
res = {}
def slow(i):
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.time()
    try:
        for b in b"\x00\x00\x01\x00" + b"x" * 100:
            s.sendall(bytes([b]))
            time.sleep(0.3)
    except (BrokenPipeError, ConnectionError):
        pass
    res["slow%d" % i] = time.time() - t0
def garbage(i):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(os.urandom(65536))
        s.settimeout(5)
        while s.recv(4096):
            pass
        res["garbage%d" % i] = "closed"
    except (socket.timeout,):
        res["garbage%d" % i] = "open"
    except ConnectionError:
        res["garbage%d" % i] = "closed"
ts = [threading.Thread(target=slow, args=(i,)) for i in range(4)]
ts += [threading.Thread(target=garbage, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join("%s=%s" % (k, v if isinstance(v, str) else "%.1f" % v) for k, v in sorted(res.items())))
PY
slowest=$(tr ' ' '\n' < slow.log | awk -F= '/^slow/ { if ($2 > m) m = $2 } END { print m + 0 }')
awk -v t="$slowest" 'BEGIN { exit !(t < 5) }' && ok "slow clients cut at the read timeout (slowest lasted ${slowest}s of a 30 s trickle)" || bad "slow clients: $(cat slow.log)"
grep -q "garbage0=closed garbage1=closed garbage2=closed garbage3=closed" slow.log && ok "garbage clients closed" || bad "garbage: $(cat slow.log)"
wait "$FLOOD_PID" 2>/dev/null
FLOOD_PID=""
sleep 0.5
rss1=$(rss)
[ $((rss1 - rss0)) -lt 20000 ] && ok "memory bounded: RSS ${rss0} -> ${rss1} kB" || bad "RSS grew ${rss0} -> ${rss1} kB"
open=$(metric mintline_connections_open)
[ "$open" = "0" ] && ok "metrics: no connection left open" || bad "open connections: $open"

# ---- SIGHUP reloads the configuration ----
sed -i 's/^max-unauth-per-addr = 8/max-unauth-per-addr = 2/' server.conf
kill -HUP "$SRV_PID"
wait_log "configuration reloaded" server.log && ok "SIGHUP: configuration reloaded" || bad "SIGHUP reload not logged"
n=$(python3 - "$PORT" <<'PY'
import socket, sys, time
socks = []
for i in range(4):
    s = socket.socket(); s.bind(("127.0.0.3", 0)); s.connect(("127.0.0.1", int(sys.argv[1]))); socks.append(s)
time.sleep(0.3)
n = 0
for s in socks:
    s.settimeout(0.05)
    try:
        if s.recv(16)[-2:] == b"\x7f\x0e": n += 1
    except (socket.timeout, ConnectionError):
        pass
print(n)
PY
)
[ "$n" = "2" ] && ok "reloaded limit applies: 2 of 4 refused" || bad "after reload: $n refused"
printf 'bogus line\n' >> server.conf
kill -HUP "$SRV_PID"
wait_log "configuration not reloaded" server.log && ok "SIGHUP with a broken file: old configuration stays" || bad "broken reload"
grep -q 'server.conf:[0-9]*: expected' server.log && ok "reload error names the file and line" || bad "reload error without line"
kill -0 "$SRV_PID" && ok "server still running" || bad "server died on a bad reload"
sed -i '/^bogus line$/d' server.conf

# ---- SIGTERM drains an in-flight session ----
( "$STATION" handshake --server 127.0.0.1:$PORT --flow A --ca ca/root.pem \
    --cert good.pem --key "$RDRKEY" --module "$MODULE" --count 3 --hold 800 \
    >> station.log 2>&1 ) &
ST=$!
sleep 0.4
kill -TERM "$SRV_PID"
wait "$ST"; st_rc=$?
wait "$SRV_PID"; srv_rc=$?
SRV_PID=""
[ "$st_rc" = 0 ] && NOK=$((NOK + 1))
[ "$st_rc" = 0 ] && ok "in-flight session finished during the drain" || bad "station exit $st_rc during drain"
[ "$srv_rc" = 0 ] && ok "SIGTERM: server exit 0" || bad "SIGTERM: server exit $srv_rc"
grep -q "drain: all connections finished" server.log && ok "drain logged" || bad "no drain in log"
after=$("$SERVER" show --registry reg.db RDR-0001 | awk '/^handshakes/ {print $2}')
[ "$after" = "$NOK" ] && ok "registry flushed on exit: all $NOK handshakes recorded" || bad "registry has $after handshakes, want $NOK"
sleep 0.3
kill -0 "$MON_PID" 2>/dev/null && bad "monitor outlived the server" || ok "monitor exited with the server"

# ---- kill -9 of the monitor ----
ne_spawn server2.log "$SERVER" --config server.conf --listen 127.0.0.1:$PORT ||
    bad "restart"
SRV_PID=$NE_SPAWN_PID
MON_PID=$(pgrep -P "$SRV_PID" -f mintline-monitor | head -1)
station A && ok "restarted server works" || bad "restarted server"
kill -9 "$MON_PID"
for i in $(seq 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
wait "$SRV_PID"; rc=$?
SRV_PID=""
[ "$rc" = 1 ] && ok "monitor killed: server drained and exited with status 1" || bad "monitor killed: server exit $rc"
grep -q "monitor (HSM key) exited" server2.log && ok "monitor loss logged" || bad "monitor loss not logged"

[ "$fail" = 0 ] && echo "all passed" || echo "some checks FAILED"
exit $((fail != 0))
