#!/usr/bin/env bash
# ID-card reading (ID-6..ID-13), without a network server: mintline-station
# id-read / reader on the in-process line (a reader secure chip, ID card
# stand-ins made by mintline-mkidcard) with --server loopback:emul:KEY,
# i.e. the server's ID-reading code and the SAM emulator in process.
# test-idread-server.sh runs the same scenarios against mintline-server.
set -u
command -v python3 >/dev/null 2>&1 || { echo "skip: python3 missing"; exit 77; }
B=${MINTLINE_BUILD_DIR:-$(pwd)}
STATION=${MINTLINE_STATION:-$B/station/mintline-station}
MKIDCARD=${MINTLINE_MKIDCARD:-$B/tools/mintline-mkidcard}
FIXTURE=${IDREAD_FIXTURE:-$B/tests/integration/idread_fixture}
W=$B/tests/idread-loopback
rm -rf "$W"
mkdir -p "$W"
. "$(dirname "$0")/idread-lib.sh"
trap '[ -n "$RD_PID" ] && kill "$RD_PID" 2>/dev/null' EXIT

cards_init
SRV_ARGS="--server loopback:emul:$W/sam.key"
scenarios

echo "# $pass passed, $fail failed"
[ "$fail" = 0 ]
