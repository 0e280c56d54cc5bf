#!/usr/bin/env bash
# The README's test command: install what is missing, build, run every test
# suite (unit, integration) with meson, and end with one summary line.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$top/build}
"$top/scripts/deps.sh" || exit 1
BUILD_DIR=$BUILD_DIR "$top/scripts/build.sh" || exit 1
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@"
rc=$?
python3 - "$BUILD_DIR/meson-logs/testlog.json" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    res = t.get("result")
    if res in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif res == "SKIP":
        skip += 1
    else:
        fail += 1
print(f"{ok} passed, {fail} failed, {skip} skipped")
PY
exit $rc
