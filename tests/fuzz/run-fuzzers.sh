#!/usr/bin/env bash
# Run the libFuzzer targets of a -Dfuzz=true build, each for SECONDS, on a
# copy of its seed corpus (tests/fuzz/corpus/<target>), so the tree is
# never written.  Fails if any target finds a crash, leak, timeout or
# sanitizer report; the reproducer and the log are kept and their path
# printed.
#
# Usage: run-fuzzers.sh BUILD_DIR SECONDS [TARGET...]
#        BUILD_DIR is a -Dfuzz=true build (set up with clang if absent)
#        TARGET is the name after fuzz_ (apdu, tlv, store, chip, ...);
#        default: every fuzz_* target built in BUILD_DIR
set -Eeu
trap 'err_rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] || printf "%s: line %s: %s: exit %s\n" "${BASH_SOURCE[0]##*/}" "$LINENO" "${BASH_COMMAND%%[[:cntrl:]]*}" "$err_rc" >&2' ERR

if [ $# -lt 2 ]; then
	echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
	exit 2
fi
build=$1
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# A build directory that does not exist yet is set up here, so that one
# command does everything: clang, libFuzzer, ASan + UBSan.
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" "$top" -Dfuzz=true -Dtest_hooks=true \
	    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
	for t in ${*:-apdu tlv store chip}; do
		ninja -C "$build" "tests/fuzz/fuzz_$t" >/dev/null
	done
fi
if [ -d "$build/tests/fuzz" ]; then
	bindir=$build/tests/fuzz
else
	bindir=$build
fi
targets=$*
if [ -z "$targets" ]; then
	# every target that was built
	for exe in "$bindir"/fuzz_*; do
		if [ -f "$exe" ] && [ -x "$exe" ]; then
			targets="$targets ${exe##*/fuzz_}"
		fi
	done
fi
# Sanitizer reports end the run (UBSan would otherwise print and go on).
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
export UBSAN_OPTIONS ASAN_OPTIONS
work=$(mktemp -d "${TMPDIR:-/tmp}/mintline-fuzz.XXXXXX")
status=0

for t in $targets; do
	exe=$bindir/fuzz_$t
	if [ ! -x "$exe" ]; then
		echo "fuzz_$t: $exe not built (configure with CC=clang -Dfuzz=true)" >&2
		status=1
		continue
	fi
	mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
	if [ -d "$here/corpus/$t" ]; then
		cp "$here/corpus/$t/"* "$work/$t/corpus/" 2>/dev/null || true
	fi
	if "$exe" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 \
	    -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
	    "$work/$t/corpus" >"$work/$t/log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log")
		cov=$(grep -o 'cov: [0-9]*' "$work/$t/log" | tail -1)
		echo "fuzz_$t: ok, ${runs:-?} runs in ${secs}s, $cov," \
		    "corpus $(ls "$work/$t/corpus" | wc -l)"
	else
		echo "fuzz_$t: FAILED; log and reproducer in $work/$t" >&2
		tail -n 60 "$work/$t/log" >&2
		ls -l "$work/$t/artifacts" >&2
		status=1
	fi
done
if [ "$status" -eq 0 ]; then
	rm -rf "$work"
fi
exit "$status"
