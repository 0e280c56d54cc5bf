#!/usr/bin/env bash
# bench-line: a line with real chip latency (BN-1..BN-8 at scale).  For P
# in POSITIONS, `mintline-station issue` on P in-process positions whose
# chips take the time of the chip latency profile (DIR/latency, default:
# a contactless secure element, docs/benchmarks.md), end to end through
# mintline-server (handshake A per position, channel, HSM in SoftHSM2,
# SQLite registry); then `verify --follow` desks on the same chips (stopped
# once every chip has its verdict), through the
# same server.  Prints per row: notes/s, the ideal rate (positions / chip
# time per note, the chip time being what the profile charged, as the
# line's own log reports it), their ratio, and the host CPU per note
# (user + system: the station process; mintline-server and its monitor).
#   POSITIONS="8 64 256" ROUNDS=6 PROFILE=default tests/bench/bench-line.sh [BUILD_DIR]
# ROUNDS chips per position per row; keep each row well under a minute.
# shellcheck disable=SC2119
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${1:-${MINTLINE_BUILD_DIR:-$top/build}}" && pwd) || exit 1
W=$B/tests/bench-line
POSITIONS=${POSITIONS:-8 64 256}
ROUNDS=${ROUNDS:-6}
PROFILE=${PROFILE:-default}
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 8 || exit 77
trap ne_server_stop EXIT
ne_keys || exit 1
# the server's default limits: one address for every position, the
# station keeps its handshakes in flight under max-unauth-per-addr.
# Workers sized for a line (docs/capacity.md): a worker holds a request
# through its HSM round trip and registry commit, so 4 (the default)
# queue the requests of 256 positions; NE_SRV_WORKERS=4 to compare.
NE_SRV_WORKERS=${NE_SRV_WORKERS:-16} ne_server_start || exit 1
HZ=$(getconf CLK_TCK)

# CPU ticks (user + system) of a process and its children (the monitor).
tree_ticks() {
	local p t=0 f
	for p in "$1" $(pgrep -P "$1"); do
		f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + ${f% *} + ${f#* }))
	done
	echo "$t"
}

# run_timed OUTFILE CMD...: wall seconds, station CPU seconds, server CPU
# seconds on one line "wall st_cpu srv_cpu"; CMD's stderr to OUTFILE.
run_timed() {
	local out=$1 s0 s1 t0 t1
	shift
	s0=$(tree_ticks "$NE_SERVER_PID")
	t0=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$out.cpu" "$@" >/dev/null 2>"$out"
	local rc=$?
	t1=$(date +%s.%N)
	s1=$(tree_ticks "$NE_SERVER_PID")
	awk -v a="$t0" -v b="$t1" -v s="$((s1 - s0))" -v hz="$HZ" \
	    '{ printf "%.3f %.3f %.3f\n", b - a, $1 + $2, s / hz }' "$out.cpu"
	return $rc
}

# run_follow OUTFILE N CMD...: as run_timed, for a command that runs
# until stopped (a desk: verify --follow --json): stopped with SIGTERM
# once its stdout (OUTFILE.out) holds N verdicts, or after 60 s.
run_follow() {
	local out=$1 n=$2 s0 s1 t0 t1 tp sp i
	shift 2
	s0=$(tree_ticks "$NE_SERVER_PID")
	t0=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$out.cpu" "$@" >"$out.out" 2>"$out" &
	tp=$!
	for ((i = 0; i < 600; i++)); do
		[ "$(grep -c '"verdict"' "$out.out")" -ge "$n" ] && break
		kill -0 "$tp" 2>/dev/null || break
		sleep 0.1
	done
	for sp in $(pgrep -P "$tp"); do
		kill -TERM "$sp"
	done
	wait "$tp"
	local rc=$?
	t1=$(date +%s.%N)
	s1=$(tree_ticks "$NE_SERVER_PID")
	awk -v a="$t0" -v b="$t1" -v s="$((s1 - s0))" -v hz="$HZ" \
	    '{ printf "%.3f %.3f %.3f\n", b - a, $1 + $2, s / hz }' "$out.cpu"
	[ "$(grep -c '"verdict"' "$out.out")" -ge "$n" ] && return $rc
	echo "bench-line: $n verdicts expected, $(grep -c '"verdict"' "$out.out") given" >>"$out"
	return 1
}

# chip seconds charged by the latency model, from the line's log line
chip_secs() {
	sed -n 's/.*latency model: \([0-9]*\) APDUs, \([0-9.]*\) s of chip time.*/\2/p' "$1" | tail -1
}

row() {	# row WHAT P NOTES "wall st srv" CHIPSECS
	awk -v what="$1" -v p="$2" -v n="$3" -v tt="$4" -v c="$5" -v prof="$(basename "$PROFILE" .profile)" \
	    'BEGIN { split(tt, t, " ");
		rate = n / t[1]; ideal = (c > 0) ? p / (c / n) : 0;
		ratio = (ideal > 0) ? 100 * rate / ideal : 0;
		printf "| %-7s | %4d | %-7s | %5d | %8.1f | %8.1f | %5.0f%% | %6.0f + %6.0f us | %11.1f ms |\n",
		    what, p, prof, n, rate, ideal, ratio, 1e6 * t[2] / n,
		    1e6 * t[3] / n, (c > 0) ? 1000 * c / n : 0 }'
}

echo "bench-line: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), profile $PROFILE, $ROUNDS chips per position"
echo "| job     |    P | profile | notes |  notes/s |  ideal/s | ratio | CPU/note station + server | chip time/note |"
echo "| ---     | ---: | ---     | ---:  |     ---: |     ---: |  ---: |                      ---: |           ---: |"
first=1
for P in $POSITIONS; do
	n=$((P * ROUNDS))
	dir=$W/chips-$P
	ne_chips "$n" "$first" "$dir" || exit 1
	# personalisation at full speed: the model is for the line's work
	rm -f "$W/line/latency"
	echo "$P" >"$W/line/positions"
	ne_provision "$dir" >/dev/null 2>&1 || { echo "bench-line: provision failed" >&2; exit 1; }
	ne_batch "$n" MX "$first" >"$W/batch-$P.csv"
	if [ "$PROFILE" = default ]; then
		echo default >"$W/line/latency"
	else
		cp "$PROFILE" "$W/line/latency"
	fi
	t=$(ML_LOG_LEVEL=info run_timed "$W/issue-$P.err" "$NE_STATION" issue \
	    --line "$NE_LINE" --chips "$dir" --issuer-key "$NE_ISSUER_KEY" \
	    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/journal-$P.db" \
	    --batch "$W/batch-$P.csv" --no-progress --workers "$P") ||
	    { echo "bench-line: issue on $P positions failed:" >&2; tail -5 "$W/issue-$P.err" >&2; exit 1; }
	# the line's own time (from the first handshake to the last note),
	# not the process's: start-up (token login) is not line throughput
	t="$(sed -n 's/^issue: .*; \([0-9.]*\) s, [0-9]* notes\/s$/\1/p' "$W/issue-$P.err") ${t#* }"
	row issue "$P" "$n" "$t" "$(chip_secs "$W/issue-$P.err")"
	# P desks (verify --follow), every chip presented once; the desk's
	# own time, from its first handshakes to the last verdict
	t=$(ML_LOG_LEVEL=info run_follow "$W/verify-$P.err" "$n" "$NE_STATION" \
	    verify --follow --json --line "$NE_LINE" --chips "$dir" \
	    --issuer-pub "$NE_ISSUER_PUB" "${NE_CONN[@]}" --workers "$P") ||
	    { echo "bench-line: verify on $P positions failed:" >&2; tail -5 "$W/verify-$P.err" >&2; exit 1; }
	t="$(sed -n 's/^verify: .*; \([0-9.]*\) s to the last verdict.*/\1/p' "$W/verify-$P.err") ${t#* }"
	row desks "$P" "$n" "$t" "$(chip_secs "$W/verify-$P.err")"
	first=$((first + n))
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
