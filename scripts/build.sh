#!/usr/bin/env bash
# Configure (once) and build mintline into $BUILD_DIR (default: build).
# Arguments are meson options (-Dname=value): given to `meson setup` the
# first time, to `meson configure` after.  The build's output goes to
# $BUILD_DIR/mintline-build.log; compiler warnings and errors are shown.
set -Eeuo pipefail
trap 'err_rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] || printf "%s: line %s: %s: exit %s\n" "${BASH_SOURCE[0]##*/}" "$LINENO" "${BASH_COMMAND%%[[:cntrl:]]*}" "$err_rc" >&2' ERR
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$top/build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
	# the whole output on failure; on success only meson's summary()
	setup_log=$(mktemp "${TMPDIR:-/tmp}/mintline-setup.XXXXXX")
	if ! meson setup "$BUILD_DIR" "$top" "$@" >"$setup_log" 2>&1; then
		cat "$setup_log" >&2
		rm -f "$setup_log"
		exit 1
	fi
	sed -n '/^mintline [0-9]/,/^Found ninja/p' "$setup_log" | sed '$d'
	rm -f "$setup_log"
elif [ $# -gt 0 ]; then
	meson configure "$BUILD_DIR" "$@" >/dev/null
fi
log=$BUILD_DIR/mintline-build.log
if ! ninja -C "$BUILD_DIR" >"$log" 2>&1; then
	grep -E -A6 'error|FAILED|warning:' "$log" | tail -n 80 >&2 || true
	echo "build: ninja -C $BUILD_DIR failed; full log: $log" >&2
	exit 1
fi
# A warning is a finding too (CI builds with --werror).
grep -E -A4 'warning:' "$log" >&2 || true
