# shellcheck shell=bash
# The integration tests' result lines and small waits, sourced by every
# test script that prints "ok" / "FAIL" lines (one home for them):
#
#   ok MSG			a check passed ("ok   - MSG")
#   bad MSG			a check failed ("FAIL - MSG"); fail counts them
#   check GOT WANT MSG		ok when GOT = WANT, else bad naming both
#   count PATTERN FILE		lines of FILE matching PATTERN (0 if no FILE)
#   more PATTERN FILE N		more than N such lines
#   wait_for SECONDS CMD...	run CMD every 0.1 s until it succeeds
#   die MSG			a failure the test cannot go on after: exit 1
#   skip MSG			what the test needs is missing: exit 77
#   work_cleanup DIR		remove the work directory DIR, or keep it
#				(and say so) after a failure or with KEEP_WORK
#
# A script ends with `exit $((fail != 0))` (fail is a count: 256 failures
# must not exit 0) or prints "# $pass passed, $fail failed".

pass=0
fail=0
ok()  { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
check() { if [ "$1" = "$2" ]; then ok "$3"; else bad "$3 (got '$1', want '$2')"; fi; }
die() { echo "FAIL - $*"; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
count() { grep -c -- "$1" "$2" 2>/dev/null || true; }
more() { [ "$(count "$1" "$2")" -gt "$3" ]; }
wait_for() {
	local n=$(($1 * 10))
	shift
	while ((n-- > 0)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
work_cleanup() {
	if [[ ${KEEP_WORK:-} || $fail -gt 0 ]]; then
		echo "work directory kept: $1" >&2
	else
		rm -rf "$1"
	fi
}
