#!/usr/bin/env bash
# Connection limits are counted and logged (ID-5, docs/operations.md
# section 5): every HS_ALERT_BUSY the server sends at accept -- over
# max-unauth-per-addr, over max-unauth (half-open connections in total),
# over max-conns -- shows in the stats: line (busy= and its parts), in
# /metrics (mintline_connections_refused_total by reason) and in the log,
# rate-limited (a few summary lines, not one per refusal).
#
#   - 4 half-open connections from 127.0.0.2 held, then 400 more from it:
#     every one answered HS_ALERT_BUSY (per address);
#   - 4 authenticated channels (mintline-load idle) and 4 held from
#     127.0.0.3 make 12 = max-conns, then 50 from 127.0.0.4: HS_ALERT_BUSY
#     (max-conns);
#   - the channels closed, 8 half-open = max-unauth, then 100 from
#     127.0.0.5: HS_ALERT_BUSY (max-unauth).
# Exit 77 (skipped) without SoftHSM2 / OpenSC / python3.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/server-busy
LOAD=${MINTLINE_LOAD:-$B/tools/mintline-load}
command -v python3 >/dev/null || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 2 || exit 77
HOLD_PID= IDLE_PID=
cleanup() {
	[ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
	[ -n "$IDLE_PID" ] && kill "$IDLE_PID" 2>/dev/null
	ne_server_stop
	wait 2>/dev/null
}
trap cleanup EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"
field() { sed -n "s/.*[ :]$1=\([0-9.]*\).*/\1/p" <<<"$2" | tail -1; }

# hold N silent connections from SRC until killed; "held N" once open
hold() {	# src n
	python3 - "$NE_PORT" "$1" "$2" <<'PY' &
import signal, socket, sys, time
port, src, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ss = []
for _ in range(n):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    ss.append(s)
print("held %d" % n, flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
time.sleep(120)
PY
}
# N connections from SRC, one after the other; counts the answers
knock() {	# src n
	python3 - "$NE_PORT" "$1" "$2" <<'PY'
import socket, struct, sys
port, src, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
busy = other = 0
for _ in range(n):
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    b = b""
    try:
        while len(b) < 6:
            k = s.recv(6 - len(b))
            if not k:
                break
            b += k
    except OSError:
        pass
    s.close()
    if b == struct.pack(">I", 2) + bytes([0x7F, 14]):
        busy += 1
    else:
        other += 1
print("busy=%d other=%d" % (busy, other))
PY
}
ne_keys || { echo "key ceremony failed"; exit 1; }
"$LOAD" setup --ca-dir "$W/ca" --registry "$NE_DB" \
    --readers 4 --out "$W/good.bundle" >/dev/null || { echo "load setup failed"; exit 1; }
MPORT=$(ne_free_port)
ne_server_start --max-conns 12 --max-unauth 8 --max-unauth-per-addr 4 \
    --read-timeout 120000 --metrics-listen "127.0.0.1:$MPORT" ||
    { echo "server did not start"; exit 1; }

# per address
hold 127.0.0.2 4 >"$W/hold2.out"
HOLD_PID=$!
for _ in $(seq 50); do grep -q held "$W/hold2.out" && break; sleep 0.1; done
r=$(knock 127.0.0.2 400)
[ "$r" = "busy=400 other=0" ] && ok "400 connections over max-unauth-per-addr answered HS_ALERT_BUSY" || bad "per address: $r"
st=$(ne_server_stats)
echo "# $st"
[ "$(field busy_per_addr "$st")" = 400 ] && [ "$(field busy "$st")" = 400 ] &&
    ok "stats: busy=400 busy_per_addr=400" || bad "stats after 400 per-address refusals: $st"

# connections in total: 4 half-open + 4 authenticated channels + 4
# half-open = 12 = max-conns
open_now() { curl -s "http://127.0.0.1:$MPORT/metrics" | sed -n 's/^mintline_connections_open //p'; }
"$LOAD" idle --server "127.0.0.1:$NE_PORT" --ca "$W/ca/root.pem" \
    --bundle "$W/good.bundle" --conns 4 --threads 1 --hold 60 --seconds 90 \
    >"$W/idle.out" 2>&1 &
IDLE_PID=$!
for _ in $(seq 100); do [ "$(open_now)" = 8 ] && break; sleep 0.1; done
hold 127.0.0.3 4 >"$W/hold3.out"
H3=$!
for _ in $(seq 50); do grep -q held "$W/hold3.out" && break; sleep 0.1; done
r=$(knock 127.0.0.4 50)
[ "$r" = "busy=50 other=0" ] && ok "50 connections over max-conns answered HS_ALERT_BUSY" || bad "max-conns: $r"

# half-open in total: the channels gone, 8 half-open = max-unauth
kill "$IDLE_PID" 2>/dev/null
wait "$IDLE_PID" 2>/dev/null
IDLE_PID=
for _ in $(seq 100); do [ "$(open_now)" = 8 ] && break; sleep 0.1; done
r=$(knock 127.0.0.5 100)
[ "$r" = "busy=100 other=0" ] && ok "100 connections over max-unauth answered HS_ALERT_BUSY" || bad "max-unauth: $r"

st=$(ne_server_stats)
echo "# $st"
[ "$(field busy "$st")" = 550 ] && [ "$(field busy_per_addr "$st")" = 400 ] &&
    [ "$(field busy_unauth "$st")" = 100 ] && [ "$(field busy_conns "$st")" = 50 ] &&
    ok "stats: busy=550 = 400 per address + 100 half-open + 50 max-conns" ||
    bad "stats: $st"
m=$(curl -s "http://127.0.0.1:$MPORT/metrics")
grep -q '^mintline_connections_refused_total{reason="per_addr"} 400$' <<<"$m" &&
grep -q '^mintline_connections_refused_total{reason="max_unauth"} 100$' <<<"$m" &&
grep -q '^mintline_connections_refused_total{reason="max_conns"} 50$' <<<"$m" &&
grep -q '^mintline_handshake_rejections_total{reason="HS_ALERT_BUSY"} 550$' <<<"$m" &&
    ok "/metrics: refusals by reason 400/100/50, HS_ALERT_BUSY 550" ||
    bad "/metrics: $(grep -E 'refused_total|HS_ALERT_BUSY' <<<"$m" | tr '\n' ' ')"

kill "$HOLD_PID" "$H3" 2>/dev/null
wait "$HOLD_PID" "$H3" 2>/dev/null
HOLD_PID=
ne_server_stop
# rate-limited: the first refusal at once, then one summary per 10 s and
# one at exit; the sums add up to every refusal
lines=$(grep -c 'with HS_ALERT_BUSY' "$W/server.log")
sum=$(sed -n 's/.*refused \([0-9]*\) connection(s) with HS_ALERT_BUSY.*/\1/p' "$W/server.log" |
    awk '{ s += $1 } END { print s + 0 }')
[ "$lines" -ge 2 ] && [ "$lines" -le 10 ] && ok "BUSY logged in $lines rate-limited lines, not 550" ||
    bad "BUSY log lines: $lines"
[ "$sum" = 550 ] && ok "the BUSY log lines add up to 550 refusals" || bad "BUSY log lines add up to $sum"
grep 'with HS_ALERT_BUSY' "$W/server.log" | head -2 | sed 's/^/# /'
[ $fail = 0 ] || { echo "# server log (tail):"; tail -5 "$W/server.log"; }
exit $((fail != 0))
