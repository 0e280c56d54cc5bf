#!/bin/bash
#
# bench-chip.sh: run bench-chip with its PC/SC rows.  Starts a private
# pcscd with two vpcd readers (tests/integration/pcsc-env.sh: never the
# system pcscd), two mintline-chip processes serving two reader chips, runs
#
#	bench-chip --pcsc pcsc:mintline-vpcd ARGS...
#
# and stops everything it started.  Without pcscd / vpcd / a way to isolate
# pcscd, the PC/SC rows print "skipped" and the other rows still run.
#
#   tests/bench/bench-chip.sh [BENCH-CHIP ARGS...]    e.g. --seconds 2
#
# MINTLINE_BUILD_DIR picks the build tree (default: ../../build from here);
# MINTLINE_BENCH_CHIP, MINTLINE_CHIP and MINTLINE_MKCHIP override the
# binaries.  Exit status: bench-chip's.

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/pcsc-env.sh
. "$here/../integration/pcsc-env.sh"

build=${MINTLINE_BUILD_DIR:-$here/../../build}
BENCH=${MINTLINE_BENCH_CHIP:-$build/tests/bench/bench-chip}
CHIP=${MINTLINE_CHIP:-$build/chip-applet/mintline-chip}
MKCHIP=${MINTLINE_MKCHIP:-$build/tools/mintline-mkchip}

for x in "$BENCH" "$CHIP" "$MKCHIP"; do
	if [[ ! -x $x ]]; then
		echo "bench-chip.sh: $x not built (set MINTLINE_BUILD_DIR)" >&2
		exit 1
	fi
done

# pcsc_env_require exits 77 when something is missing: ask in a subshell.
why=$( (pcsc_env_require) 2>&1 >/dev/null)
if [[ -n $why ]]; then
	exec "$BENCH" --pcsc-skipped "${why#SKIP: }" "$@"
fi

mkdir -p "$build/tests/bench" || exit 1
work=$(mktemp -d "$build/tests/bench/pcsc-bench.XXXXXX") || exit 1
cleanup() {
	pcsc_env_cleanup
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skip=
if ! pcsc_env_start "$work" 2 2>"$work/env.log"; then
	skip="private pcscd did not start: $(tail -n 1 "$work/env.log")"
fi
if [[ -z $skip ]]; then
	for i in 0 1; do
		port_var=VPCD_PORT_$i
		"$MKCHIP" reader "BENCH-PCSC-$i" "$work/reader-$i.img" >/dev/null ||
		    skip="mintline-mkchip failed"
		"$CHIP" --port "${!port_var}" "$work/reader-$i.img" \
		    >"$work/chip-$i.log" 2>&1 &
		pcsc_env_track $!
	done
fi
if [[ -n $skip ]]; then
	"$BENCH" --pcsc-skipped "$skip" "$@"
else
	# pcsc-env.sh exported PCSCLITE_CSOCK_NAME: only our readers are seen.
	"$BENCH" --pcsc "pcsc:mintline-vpcd" "$@"
fi
