#!/usr/bin/env bash
# The README's test command: install what is missing, build, run every test
# suite (unit, integration, docs) with meson, then the same suites again in
# an AddressSanitizer + UBSan build, the unit tests under valgrind memcheck,
# and each libFuzzer target for a bounded time.  Ends with ONE summary line
# over all passes, "N passed, N failed, N skipped", and exits non-zero if
# anything failed.  Arguments go to the first `meson test` only.
#
# Then the README's demo (scripts/demo.sh, NOTES=20) on the normal build,
# counted as one more test in the summary.
#
# Every build here has the test seams (-Dtest_hooks=true: the transport-key
# log, the station's --inject-* and loopback server, the power-cut hook);
# an installed build never has them (tests/check-layout.sh).
#
# Build directories (each configured once, then rebuilt incrementally):
#   BUILD_DIR       build/            gcc, the normal build; valgrind runs here
#   ASAN_BUILD_DIR  $BUILD_DIR-asan   gcc, -Db_sanitize=address,undefined
#   FUZZ_BUILD_DIR  $BUILD_DIR-fuzz   clang, -Dfuzz=true + ASan/UBSan
#
# Knobs (CI sets none of them, so CI runs everything):
#   MINTLINE_QUICK=1       only the first pass (normal build, all suites)
#   MINTLINE_ASAN=0        skip the sanitizer pass
#   MINTLINE_VALGRIND=0    skip the valgrind pass
#   MINTLINE_FUZZ=0        skip the fuzz pass
#   MINTLINE_JOBS=N        parallel tests per pass (default: nproc)
#   MINTLINE_DEMO=0        skip the demo
#   MINTLINE_DEMO_NOTES=N  the demo's batch size (default 20)
#   MINTLINE_WERROR=1      compiler warnings are errors (CI sets it)
#
# Fuzzing for longer than CI does: tests/fuzz/run-fuzzers.sh BUILD SECONDS.
# No `set -e`: a failed pass is counted and the others still run.  A
# failed command outside a pass still names itself (the ERR trap).
set -Euo pipefail
trap 'err_rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] || printf "%s: line %s: %s: exit %s\n" "${BASH_SOURCE[0]##*/}" "$LINENO" "${BASH_COMMAND%%[[:cntrl:]]*}" "$err_rc" >&2' ERR
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$top/build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-$BUILD_DIR-asan}
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$BUILD_DIR-fuzz}
jobs=${MINTLINE_JOBS:-$(nproc 2>/dev/null || echo 2)}
do_asan=${MINTLINE_ASAN:-1}
do_vg=${MINTLINE_VALGRIND:-1}
do_fuzz=${MINTLINE_FUZZ:-1}
do_demo=${MINTLINE_DEMO:-1}
werror=-Dwerror=false
[ "${MINTLINE_WERROR:-0}" = 1 ] && werror=-Dwerror=true
if [ "${MINTLINE_QUICK:-0}" = 1 ]; then
	do_asan=0 do_vg=0 do_fuzz=0
fi

# One line per pass, "label|testlog.json|rc|seconds|note|expected", summed
# at the end (expected: how many tests `meson test --list` announced).
passes=$(mktemp "${TMPDIR:-/tmp}/mintline-test.XXXXXX")
trap 'rm -f "$passes"' EXIT

# record LABEL LOG RC SECONDS [NOTE]: a pass that ran meson test (LOG is its
# testlog JSON), or that could not or is one test itself (LOG empty:
# counted as one pass when RC is 0, one skip when RC is 77, one failure
# otherwise).
record() {
	printf '%s|%s|%s|%s|%s|%s\n' "$1" "$2" "$3" "$4" "${5:-}" "${6:-0}" \
	    >>"$passes"
}

# summary: print the per-pass lines and the total; status 1 if anything
# failed.
summary() {
	local rc=0
	python3 - "$passes" "$SECONDS" <<'PY' || rc=$?
import json, sys
tot = [0, 0, 0]
lines = []
for row in open(sys.argv[1]):
    label, log, rc, secs, note, want = row.rstrip("\n").split("|", 5)
    ok = fail = skip = 0
    bad = []
    try:
        for line in open(log) if log else ():
            t = json.loads(line)
            res = t.get("result")
            if res in ("OK", "EXPECTEDFAIL"):
                ok += 1
            elif res == "SKIP":
                skip += 1
            else:
                fail += 1
                bad.append(t.get("name", "?").split(" / ")[-1])
    except OSError:
        pass
    missing = int(want) - (ok + fail + skip)
    if missing > 0 and ok + fail + skip > 0:
        # meson stopped early (a test that could not be started)
        fail += missing
        bad.append(f"{missing} test(s) never ran")
    if ok + fail + skip == 0:
        # The pass never got to its tests (setup or build failed) or
        # was not possible here.
        if rc == "77":
            skip = 1
        elif rc == "0" and not log:
            ok = 1				# a one-test pass (the demo)
        else:
            fail = 1
            bad.append(note or "no test results")
    elif rc not in ("0", "77") and fail == 0:
        fail = 1				# meson failed after the tests
        bad.append(note or f"exit status {rc}")
    msg = f"  {label:<9} {ok:4d} passed, {fail} failed, {skip} skipped ({secs}s)"
    if note and rc == "77":
        msg += f": {note}"
    if bad:
        msg += "  FAILED: " + ", ".join(bad)
    lines.append(msg)
    for i, n in enumerate((ok, fail, skip)):
        tot[i] += n
print(f"test passes ({sys.argv[2]} s in all):")
print("\n".join(lines))
print(f"{tot[0]} passed, {tot[1]} failed, {tot[2]} skipped")
sys.exit(1 if tot[1] else 0)
PY
	return "$rc"
}

# run_meson LABEL BUILD LOGNAME [meson test args...]: the pass's time
# counts from $t0, which the caller sets before building.
run_meson() {
	local label=$1 dir=$2 logname=$3 rc want
	shift 3
	rm -f "$dir/meson-logs/$logname"
	echo "=== $label: meson test -C $dir $*" >&2
	want=$(meson test -C "$dir" --list "$@" 2>/dev/null | grep -cE '^[^ ]+ / ') ||
	    want=0
	meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "$@"
	rc=$?
	record "$label" "$dir/meson-logs/$logname" "$rc" $((SECONDS - t0)) "" \
	    "$want"
}

# build DIR [TARGET...]: ninja, quiet unless it fails.
build() {
	local dir=$1 log
	shift
	log=$dir/mintline-build.log
	if ! ninja -C "$dir" "$@" >"$log" 2>&1; then
		grep -E -B2 -A8 'error|FAILED' "$log" | tail -n 60 >&2
		echo "build in $dir failed; full log: $log" >&2
		return 1
	fi
}

# setup_dir DIR [meson setup args...]: configure DIR once; later runs
# only set the options (-D...) again.
setup_dir() {
	local dir=$1
	shift
	local log
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null
		return
	fi
	log=$(mktemp "${TMPDIR:-/tmp}/mintline-setup.XXXXXX")
	if ! meson setup "$dir" "$top" "$@" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		rm -f "$log"
		return 1
	fi
	rm -f "$log"
}

if ! "$top/scripts/deps.sh"; then
	record deps "" 1 0 "scripts/deps.sh failed"
	summary || exit 1
fi

# 1. The normal build, every suite.
t0=$SECONDS
main_built=0
if BUILD_DIR=$BUILD_DIR "$top/scripts/build.sh" -Dtest_hooks=true "$werror"; then
	main_built=1
	run_meson tests "$BUILD_DIR" testlog.json "$@"
else
	record tests "" 1 $((SECONDS - t0)) "build failed"
fi

# 2. AddressSanitizer + UBSan: every suite again, but 'host-dlopen'
#    (tests/meson.build says why).
if [ "$do_asan" = 1 ]; then
	t0=$SECONDS
	if setup_dir "$ASAN_BUILD_DIR" -Dtest_hooks=true "$werror" -Db_sanitize=address,undefined \
	    -Db_lundef=false -Dc_args=-fno-sanitize-recover=all &&
	    build "$ASAN_BUILD_DIR"; then
		run_meson asan "$ASAN_BUILD_DIR" testlog-sanitize.json \
		    --setup sanitize --no-rebuild
	else
		record asan "" 1 $((SECONDS - t0)) "ASan build failed"
	fi
fi

# 3. The unit tests under valgrind memcheck, in the normal build.
if [ "$do_vg" = 1 ]; then
	if ! command -v valgrind >/dev/null; then
		record valgrind "" 77 0 "valgrind not installed"
	elif [ "$main_built" = 1 ]; then
		t0=$SECONDS
		run_meson valgrind "$BUILD_DIR" testlog-valgrind.json \
		    --setup valgrind --suite unit --no-rebuild
	fi
fi

# 4. libFuzzer targets, each for the time its meson test gives it (the
#    'fuzz' suite, tests/fuzz/meson.build).  Only the fuzz targets are
#    built in this directory.
if [ "$do_fuzz" = 1 ]; then
	t0=$SECONDS
	if ! command -v clang >/dev/null; then
		record fuzz "" 77 0 "clang not installed"
	elif ! CC=clang setup_dir "$FUZZ_BUILD_DIR" -Dfuzz=true -Dtest_hooks=true "$werror" \
	    -Db_sanitize=address,undefined -Db_lundef=false ||
	    ! ninja -C "$FUZZ_BUILD_DIR" build.ninja >/dev/null; then
		record fuzz "" 1 $((SECONDS - t0)) "fuzz configure failed"
	else
		targets=$(meson introspect "$FUZZ_BUILD_DIR" --targets |
		    python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    if t["name"].startswith("fuzz_") and t["type"] == "executable":
        print(os.path.relpath(t["filename"][0], sys.argv[1]))
' "$FUZZ_BUILD_DIR")
		if [ -z "$targets" ]; then
			record fuzz "" 77 0 "no fuzz targets"
		elif ! build "$FUZZ_BUILD_DIR" $targets; then
			record fuzz "" 1 $((SECONDS - t0)) "fuzz build failed"
		else
			run_meson fuzz "$FUZZ_BUILD_DIR" testlog.json \
			    --suite fuzz --no-rebuild
		fi
	fi
fi

# 5. The README's demo, on the normal build, with a small batch.
if [ "$do_demo" = 1 ] && [ "$main_built" = 1 ]; then
	t0=$SECONDS
	echo "=== demo: NOTES=${MINTLINE_DEMO_NOTES:-20} scripts/demo.sh" >&2
	demo_log=$BUILD_DIR/demo.log
	NOTES=${MINTLINE_DEMO_NOTES:-20} BUILD_DIR=$BUILD_DIR \
	    "$top/scripts/demo.sh" >"$demo_log" 2>&1
	rc=$?
	if [ "$rc" != 0 ]; then
		tail -n 40 "$demo_log" >&2
	fi
	record demo "" "$rc" $((SECONDS - t0)) "scripts/demo.sh exit $rc, log: $demo_log"
fi

summary && exit 0
exit 1
