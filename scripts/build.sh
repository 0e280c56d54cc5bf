#!/usr/bin/env bash
# Configure (once) and build mintline into $BUILD_DIR (default: build).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$top/build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
	meson setup "$BUILD_DIR" "$top" "$@" >/dev/null
fi
ninja -C "$BUILD_DIR" >/dev/null
