#!/usr/bin/env bash
# bench-line-pcsc: the mint line and the desk on PC/SC readers (OP-1, OP-3),
# through a private pcscd with vpcd readers (tests/integration/pcsc-env.sh),
# each chip a mintline-chip process, through mintline-server (SQLite).
#   1. `issue --follow` on READERS readers with chips arriving continuously:
#      a feeder per reader inserts a chip, waits for its result line, takes
#      it off and inserts the next.  notes/s from the first insertion to the
#      last result.
#   2. `verify --follow` (the desk): NOTES_DESK notes presented one after
#      another; latency from insertion (the chip process started on the
#      reader's port) to the verdict line printed (time-stamped as the
#      desk's stdout is read), median and p99.
# Short on purpose (the machine is shared): ROUNDS chips per reader.
#   READERS=8 ROUNDS=3 NOTES_DESK=24 tests/bench/bench-line-pcsc.sh [BUILD_DIR]
# Exit 77 (skipped) without pcscd + vpcd, SoftHSM2, OpenSC.
# shellcheck disable=SC2119
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=$(cd "${1:-${MINTLINE_BUILD_DIR:-$top/build}}" && pwd) || exit 1
W=$B/tests/bench-line-pcsc
CHIP=${MINTLINE_CHIP:-$B/chip-applet/mintline-chip}
CHECK=${PCSC_LINK_CHECK:-$B/tests/integration/pcsc_link_check}
READERS=${READERS:-8}
ROUNDS=${ROUNDS:-3}
NOTES_DESK=${NOTES_DESK:-24}
rm -rf "$W"
# shellcheck source=tests/integration/pcsc-env.sh
. "$top/tests/integration/pcsc-env.sh"
pcsc_env_require
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 1 || exit 77
bg=()
cleanup() {
	local p
	for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
	ne_server_stop
	pcsc_env_cleanup
}
trap cleanup EXIT
die() { echo "bench-line-pcsc: $*" >&2; exit 1; }
seen() { grep -qs -- "$1" "$2"; }
wait_for() { local n=$(( $1 * 50 )); shift; while ((n-- > 0)); do "$@" && return 0; sleep 0.02; done; return 1; }
chipname() { printf 'NOTE%012d' "$1"; }

pcsc_env_start "$W/pcsc" "$READERS" || die "private pcscd did not start"
NE_LINE=pcsc:mintline-vpcd
ne_keys || die "key ceremony failed"
ne_server_start --max-unauth-per-addr 1024 || die "server did not start"
N=$((READERS * ROUNDS))
ne_chips "$N" 0 "$W/chips" || exit 1
# personalise and enrol, READERS at a time
for ((i = 0; i < N; i += READERS)); do
	for ((k = 0; k < READERS && i + k < N; k++)); do
		pcsc_chip_insert $k "$W/chips/$(chipname $((i + k))).chip"
	done
	"$NE_STATION" provision --line "$NE_LINE" --issuer-pub "$NE_ISSUER_PUB" \
	    --server-pub "$NE_SERVER_PUB" --so-pin-source "file:$NE_SOPIN" \
	    "${NE_CONN[@]}" >>"$W/prov.log" 2>&1 || die "provision of chips $i.. failed"
	for ((k = 0; k < READERS; k++)); do pcsc_chip_remove $k; done
done

echo "bench-line-pcsc: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machine), $READERS vpcd readers, private pcscd $PCSC_ENV_MODE"

# ---- 1. issue --follow, chips arriving continuously on every reader ----
ne_batch "$N" LP >"$W/lp.csv"
"$NE_STATION" issue --follow --line "$NE_LINE" --issuer-key "$NE_ISSUER_KEY" \
    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j-lp.db" \
    --batch "$W/lp.csv" --json >"$W/lp.jsonl" 2>"$W/lp.err" &
lp=$!; bg+=("$lp")
wait_for 30 seen '"event":"waiting"' "$W/lp.jsonl" || die "issue --follow did not start"
feeder() {	# feeder READER: chips READER, READER + READERS, ... in turn
	local r=$1 c s
	trap 'kill "${PCSC_CHIP_PID[$r]:-}" 2>/dev/null' EXIT
	for ((c = r; c < N; c += READERS)); do
		s=$(chipname "$c")
		pcsc_chip_insert "$r" "$W/chips/$s.chip" || { echo "reader $r: $s not seen" >&2; return 1; }
		wait_for 60 seen "\"chip\":\"$s\",\"result\"" "$W/lp.jsonl" ||
		    { echo "reader $r: no result for $s" >&2; return 1; }
		pcsc_chip_remove "$r"
	done
}
t0=$EPOCHREALTIME
fpids=()
for ((r = 0; r < READERS; r++)); do feeder "$r" & fpids+=($!); done
ffail=0
for p in "${fpids[@]}"; do wait "$p" || ffail=1; done
t1=$EPOCHREALTIME
kill -TERM "$lp"; wait "$lp"
issued=$(grep -c '"result":"issued"' "$W/lp.jsonl")
if [ "$ffail" != 0 ] || [ "$issued" != "$N" ]; then
	die "issue --follow: $issued of $N issued (see $W/lp.jsonl, $W/lp.err)"
fi
awk -v a="$t0" -v b="$t1" -v n="$N" -v r="$READERS" 'BEGIN {
	printf "issue --follow, %d readers, chips arriving continuously: %d notes in %.2f s = %.2f notes/s (insertion, issuance, removal per chip: %.0f ms per reader)\n",
	    r, n, b - a, n / (b - a), 1000 * (b - a) * r / n }'

# ---- 2. the desk: insertion to verdict printed ----
mkfifo "$W/vf.pipe"
"$NE_STATION" verify --follow --line "$NE_LINE" --issuer-pub "$NE_ISSUER_PUB" \
    "${NE_CONN[@]}" --json >"$W/vf.pipe" 2>"$W/vf.err" &
vf=$!; bg+=("$vf")
# time-stamp each line as it is printed
while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done <"$W/vf.pipe" >"$W/vf.ts" &
bg+=($!)
wait_for 30 seen '"event":"waiting"' "$W/vf.ts" || die "verify --follow did not start"
: >"$W/lat.txt"
verdicts() { grep -c "\"chip\":\"$s\",\"note\"" "$W/vf.ts"; }	# of chip $s
new_verdict() { [ "$(verdicts)" -gt "$before" ]; }
for ((d = 0; d < NOTES_DESK; d++)); do
	c=$((d % N)); r=$((d % READERS)); s=$(chipname "$c")
	before=$(verdicts)
	ti=$EPOCHREALTIME
	pcsc_chip_insert "$r" "$W/chips/$s.chip" || die "desk: reader $r does not see $s"
	wait_for 30 new_verdict ||
	    die "desk: no verdict for $s"
	tv=$(grep "\"chip\":\"$s\",\"note\"" "$W/vf.ts" | tail -1 | cut -d' ' -f1)
	grep "\"chip\":\"$s\",\"note\"" "$W/vf.ts" | tail -1 | grep -q '"verdict":"GENUINE"' ||
	    die "desk: $s not GENUINE"
	awk -v a="$ti" -v b="$tv" 'BEGIN { printf "%.1f\n", 1000 * (b - a) }' >>"$W/lat.txt"
	pcsc_chip_remove "$r"
done
kill -TERM "$vf"; wait "$vf" 2>/dev/null
sort -n "$W/lat.txt" | awk '{ v[NR] = $1 } END {
	p50 = v[int((NR + 1) / 2)]; i99 = int(0.99 * NR + 0.999); if (i99 < 1) i99 = 1
	printf "verify --follow (desk), %d notes one after another: insertion to verdict printed: median %.1f ms, p99 %.1f ms, max %.1f ms\n",
	    NR, p50, v[i99], v[NR] }'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
