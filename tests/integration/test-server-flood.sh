#!/usr/bin/env bash
# Threat model "resource exhaustion: load/flood bound" (ID-5):
# mintline-server under two floods at once --
#   - forged first messages: flood_raw.py from 127.0.0.2, random bytes as
#     the first handshake message, new connection each time;
#   - forged readers: mintline-load with readers certified by a rogue CA
#     (the T1 attacker's own certificates), every one refused at its first
#     authenticated message (HS_ALERT_CERT);
# while a legitimate reader population (mintline-load, readers of the real
# CA) completes N flow-A and N flow-B handshakes.  Asserts: every
# legitimate handshake succeeds (bounded: --seconds, so "all N" means
# within that bound), both floods were running throughout and were refused
# (no forged handshake succeeded), and the server's own accounting
# (stats line) gives cpu_us_per_rejected less than half cpu_us_per_ok: a
# refusal costs the server less than a handshake does -- a ratio, not a
# timing.  Then a legitimate reader that does not read (mintline-load
# burst): PING records back to back, a reset while the server still
# answers them; the server closes those connections and keeps running.
# With MINTLINE_TEST_WAKE_DELAY_US=N (a -Dtest_hooks=true
# server; meson test server-flood-late-wake) every worker waits N us
# between handing a finished job back and waking the I/O thread, as a
# preempted worker does on a loaded machine; the same assertions hold.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / python3.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/server-flood${MINTLINE_TEST_WAKE_DELAY_US:+-late-wake}
N=${FLOOD_N:-200}
BURSTS=${FLOOD_BURSTS:-120}
LOAD=${MINTLINE_LOAD:-$B/tools/mintline-load}
RAW=${FLOOD_RAW:-$top/tests/integration/flood_raw.py}
command -v python3 >/dev/null || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 2 || exit 77
RAW_PID= ROGUE_PID=
cleanup() {
	[ -n "$RAW_PID" ] && kill "$RAW_PID" 2>/dev/null
	[ -n "$ROGUE_PID" ] && kill "$ROGUE_PID" 2>/dev/null
	ne_server_stop
	wait 2>/dev/null
}
trap cleanup EXIT
fail=0
ok()  { echo "ok - $*"; }
bad() { echo "FAIL - $*"; fail=1; }
field() { sed -n "s/.*[ :]$1=\([0-9.]*\).*/\1/p" <<<"$2" | tail -1; }

ne_keys || { echo "key ceremony failed"; exit 1; }
"$LOAD" setup --ca-dir "$W/ca" --registry "$NE_DB" \
    --readers 8 --out "$W/good.bundle" >/dev/null || { echo "load setup failed"; exit 1; }
"$NE_CA" init --dir "$W/rogue-ca" --cn "mintline demo root" >/dev/null &&
"$LOAD" setup --ca-dir "$W/rogue-ca" --registry "$W/rogue-registry.db" \
    --readers 8 --out "$W/rogue.bundle" >/dev/null || { echo "rogue setup failed"; exit 1; }
# A server that dies under the flood leaves a core in $W for the backtrace
# printed at the end (core_pattern "core": the process's directory): a
# -Dtest_hooks=true server with MINTLINE_TEST_CORE=1 stays dumpable (any
# other server is not, and leaves none).
ulimit -c unlimited 2>/dev/null || true
export MINTLINE_TEST_CORE=1
cd "$W" || exit 1
ne_server_start || { echo "server did not start"; tail -5 "$W/server.log"; exit 1; }

# the floods, bounded at 120 s, stopped when the legitimate runs are done
python3 "$RAW" "$NE_PORT" 127.0.0.2 120 4 >"$W/raw.out" 2>&1 &
RAW_PID=$!
"$LOAD" hs --server "127.0.0.1:$NE_PORT" --ca "$W/ca/root.pem" \
    --bundle "$W/rogue.bundle" --threads 4 --count 100000000 --seconds 120 \
    >"$W/rogue.out" 2>"$W/rogue.err" &
ROGUE_PID=$!
sleep 1	# both floods under way
for f in A B; do
	r=$("$LOAD" hs --server "127.0.0.1:$NE_PORT" --ca "$W/ca/root.pem" \
	    --bundle "$W/good.bundle" --threads 2 --count "$N" --seconds 120 \
	    --flow $f 2>"$W/good-$f.err" | grep '^result:')
	echo "# legitimate flow $f: $r"
	[ "$(field ok "$r")" = "$N" ] && [ "$(field errors "$r")" = 0 ] &&
	    ok "flow $f: all $N legitimate handshakes succeeded during the floods (bound 120 s)" ||
	    bad "flow $f under flood: $r ($(head -3 "$W/good-$f.err"))"
done
kill -0 "$RAW_PID" 2>/dev/null && ok "forged-first-message flood still running when the legitimate runs ended" || bad "raw flood ended early: $(cat "$W/raw.out")"
kill -0 "$ROGUE_PID" 2>/dev/null && ok "forged-reader flood still running when the legitimate runs ended" || bad "rogue flood ended early: $(tail -2 "$W/rogue.out")"
kill "$RAW_PID" "$ROGUE_PID" 2>/dev/null
wait "$RAW_PID" 2>/dev/null; wait "$ROGUE_PID" 2>/dev/null
RAW_PID= ROGUE_PID=
echo "# raw flood: $(cat "$W/raw.out")"
# The server's stats line (SIGUSR1).  Flow B ends with the reader's
# message, so the server may still be finishing the last handshakes when
# mintline-load is done: ask again until all are counted (up to ~10 s).
# No stats line when the server died: 0s, so the checks below report it.
st= okn=0
for _ in $(seq 100); do
	kill -0 "$NE_SERVER_PID" 2>/dev/null || break
	nst=$(grep -c 'stats:' "$W/server.log")
	kill -USR1 "$NE_SERVER_PID"
	for _ in $(seq 100); do
		[ "$(grep -c 'stats:' "$W/server.log")" -gt "$nst" ] && break
		sleep 0.02
	done
	st=$(grep 'stats:' "$W/server.log" | tail -1)
	oka=$(field hs_ok_a "$st") okb=$(field hs_ok_b "$st")
	okn=$(( ${oka:-0} + ${okb:-0} ))
	[ "$okn" -ge $((2 * N)) ] && break
	sleep 0.1
done
echo "# server $st"
[ "$okn" = $((2 * N)) ] && ok "server: exactly $((2 * N)) handshakes succeeded (no forged one)" || bad "server: $okn handshakes ok, want $((2 * N))"
rej=$(field rejected "$st")
cert=$(field HS_ALERT_CERT "$st")
# the floods out-numbered the legitimate handshakes (typically 20 to 1)
[ "${rej:-0}" -ge "$okn" ] && ok "server refused $rej flood connections while serving $okn handshakes" || bad "only ${rej:-0} refusals for $okn handshakes: the flood did not load the server"
[ "${cert:-0}" -ge 50 ] && ok "forged readers refused with HS_ALERT_CERT ($cert)" || bad "forged readers: HS_ALERT_CERT=${cert:-0}"
raw_rej=$(( rej - ${cert:-0} ))
[ "$raw_rej" -ge 50 ] && ok "forged first messages refused ($raw_rej, other alerts)" || bad "forged first messages refused: $raw_rej"
cok=$(field cpu_us_per_ok "$st")
crej=$(field cpu_us_per_rejected "$st")
if awk -v r="$crej" -v o="$cok" 'BEGIN { exit !(o > 0 && r * 2 < o) }'; then
	ok "cpu_us_per_rejected $crej < cpu_us_per_ok $cok / 2 (refusal cheaper than a handshake)"
else
	bad "cpu_us_per_rejected $crej not below half of cpu_us_per_ok $cok"
fi
# A reader that does not read (after the stats: its handshakes are not
# counted above): PING records back to back, then a reset while the
# server still answers them, also while the record's job is running.
r=$("$LOAD" burst --server "127.0.0.1:$NE_PORT" --ca "$W/ca/root.pem" \
    --bundle "$W/good.bundle" --threads 2 --count "$BURSTS" --seconds 60 \
    2>"$W/burst.err" | grep '^result:')
echo "# reset bursts: $r"
[ "$(field ok "$r")" = "$BURSTS" ] &&
    ok "$BURSTS readers reset their connection amid unread replies" ||
    bad "reset bursts: $r ($(head -3 "$W/burst.err"))"
kill -0 "$NE_SERVER_PID" 2>/dev/null && ok "server still running" || bad "server died"
[ $fail = 0 ] || { echo "# server log (tail):"; tail -n 5 "$W/server.log"; echo "# rogue flood:"; tail -n 3 "$W/rogue.err" "$W/rogue.out"; }
for core in "$W"/core*; do
	[ -f "$core" ] && command -v gdb >/dev/null || continue
	echo "# $core: backtrace"
	gdb -q -batch -ex 'thread apply all bt 12' "$NE_SRV" "$core" 2>&1 | sed 's/^/#   /' | head -120
done
exit $fail
