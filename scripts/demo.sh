#!/usr/bin/env bash
# The README's demo command: install what is missing, build, and run the
# demo on the embedded default (in-process chips) in a fresh directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$top/build}
"$top/scripts/deps.sh"
BUILD_DIR=$BUILD_DIR "$top/scripts/build.sh"
work="$BUILD_DIR/demo"
rm -rf "$work"
exec "$BUILD_DIR/tools/mintline-demo" --dir "$work" "$@"
