#!/bin/bash
#
# The real PC/SC path: a private pcscd with two vpcd readers, a note chip and
# a reader chip served by two mintline-chip processes, reached by OpenSC's
# opensc-tool, by pcsc_scan and by our own "pcsc:" chip link.  Then power
# cuts: SIGKILL a mintline-chip in the middle of a burst of store commits,
# restart it on the same image, and check the image loads with the state
# before or after the interrupted commit, nothing else.
#
# Exit 0 pass, 1 fail, 77 skipped (no pcscd / vpcd / opensc-tool / way to
# isolate pcscd).  PCSC_ENV_DEBUG=1 makes pcscd log APDUs to
# $work/pcscd.log; KEEP_WORK=1 keeps the work directory.

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/pcsc-env.sh
. "$here/pcsc-env.sh"

build=${MINTLINE_BUILD_DIR:-$here/../../build}
CHIP=${MINTLINE_CHIP:-$build/chip-applet/mintline-chip}
MKCHIP=${MINTLINE_MKCHIP:-$build/tools/mintline-mkchip}
CHECK=${PCSC_LINK_CHECK:-$build/tests/integration/pcsc_link_check}

# Protocol constants (chip-applet/chip_proto.h).
AID_PREFIX=A0000008884D4C01		# CHIP_AID_PREFIX; the kind byte follows
KIND_READER=01 KIND_NOTE=02		# enum chip_kind
GET_CHIP_INFO=00CA010000		# GET DATA, GD_CHIP_INFO
SO_PIN=86420135				# set by the first INIT TOKEN of a burst
KILL_ROUNDS=${KILL_ROUNDS:-3}

NOTE_SERIAL=PCSC-NOTE-0001
READER_SERIAL=PCSC-RDR-0001

# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

for x in "$CHIP" "$MKCHIP" "$CHECK"; do
	[[ -x $x ]] || die "$x not built (set MINTLINE_BUILD_DIR)"
done
pcsc_env_require
command -v opensc-tool >/dev/null || _pcsc_skip "opensc-tool not installed"

work=$build/tests/integration/pcsc-work
rm -rf "$work"
mkdir -p "$work" || die "cannot create $work"
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	pcsc_env_cleanup
	work_cleanup "$work"
}
trap cleanup EXIT

pcsc_env_start "$work" 2 || die "private pcscd did not start"
echo "pcscd: mode $PCSC_ENV_MODE, PCSCLITE_CSOCK_NAME=$PCSCLITE_CSOCK_NAME"

# ---- two chips, two readers ----

"$MKCHIP" note "$NOTE_SERIAL" "$work/note.img" ||
    die "mintline-mkchip note"
"$MKCHIP" reader "$READER_SERIAL" "$work/reader.img" ||
    die "mintline-mkchip reader"
"$MKCHIP" note "$NOTE_SERIAL" "$work/note.img" 2>/dev/null &&
    bad "mintline-mkchip overwrote an existing image"

declare -A chip_pid
start_chip() {		# INDEX IMAGE
	local port_var=VPCD_PORT_$1
	"$CHIP" --verbose --port "${!port_var}" "$2" >>"$work/chip-$1.log" 2>&1 &
	chip_pid[$1]=$!
	pcsc_env_track "${chip_pid[$1]}"
}
wait_slot() {		# INDEX present|absent
	local reader_var=VPCD_READER_$1
	"$CHECK" wait "pcsc:${!reader_var}" 0 "$2" 15000 >/dev/null
}

start_chip 0 "$work/note.img"
start_chip 1 "$work/reader.img"
wait_slot 0 present || die "note chip never appeared in $VPCD_READER_0"
wait_slot 1 present || die "reader chip never appeared in $VPCD_READER_1"
ok "both chips present"

# ---- OpenSC and pcsc-tools see them ----

out=$(opensc-tool -l 2>&1)
echo "$out" | sed 's/^/  opensc-tool -l | /'
for i in 0 1; do
	reader_var=VPCD_READER_$i
	grep -Eq "^[0-9]+ +Yes .*${!reader_var}\$" <<<"$out" ||
	    bad "opensc-tool -l: no card in ${!reader_var}"
done
if command -v pcsc_scan >/dev/null; then
	out=$(timeout 10 pcsc_scan -r 2>&1)
	for i in 0 1; do
		reader_var=VPCD_READER_$i
		grep -Fq "${!reader_var}" <<<"$out" ||
		    bad "pcsc_scan -r does not list ${!reader_var}"
	done
	ok "pcsc_scan -r lists both readers"
fi

# opensc-tool's reader number for a reader name.
opensc_reader_no() {
	opensc-tool -l 2>/dev/null |
	    awk -v name="$1" 'substr($0, length($0) - length(name) + 1) == name { print $1; exit }'
}

# Send APDUs with opensc-tool and print the last answer as HEX SW.
opensc_apdus() {	# READER_NO APDU...
	local no=$1 a args=()
	shift
	for a in "$@"; do
		args+=(-s "$a")
	done
	opensc-tool -c default -r "$no" "${args[@]}" 2>&1 | python3 -c '
import re, sys
text = sys.stdin.read()
blocks = re.split(r"Received \(SW1=0x([0-9a-fA-F]{2}), SW2=0x([0-9a-fA-F]{2})\)", text)
if len(blocks) < 4:
    sys.stderr.write(text)
    sys.exit(1)
sw = (blocks[-3] + blocks[-2]).upper()
data = ""
for line in blocks[-1].splitlines():
    m = re.match(r"^((?:[0-9A-Fa-f]{2} )+)", line)
    if m:
        data += m.group(1).replace(" ", "")
print(data.upper(), sw)'
}

hex_of() {
	printf '%s' "$1" | od -An -tx1 | tr -d ' \n' | tr a-f A-F
}

check_opensc_chip() {	# INDEX KIND SERIAL
	local reader_var=VPCD_READER_$1 no ans data sw
	no=$(opensc_reader_no "${!reader_var}")
	[[ -n $no ]] || {
		bad "opensc-tool does not list ${!reader_var}"
		return
	}
	ans=$(opensc_apdus "$no" "00A4040009${AID_PREFIX}$2" "$GET_CHIP_INFO") || {
		bad "opensc-tool --send-apdu on reader $no"
		return
	}
	read -r data sw <<<"$ans"
	[[ $sw == 9000 ]] || bad "GET DATA on reader $no: SW $sw"
	# C1 10 <serial, space padded to 16>
	[[ $data == *C110$(hex_of "$(printf '%-16s' "$3")")* ]] ||
	    bad "GET DATA on reader $no: serial $3 not in $data"
	[[ $sw == 9000 && $data == *C110$(hex_of "$(printf '%-16s' "$3")")* ]] &&
	    ok "opensc-tool: SELECT + GET DATA on ${!reader_var} reads $3"
	ans=$(opensc_apdus "$no" "00A4040009${AID_PREFIX}0F")
	read -r data sw <<<"$ans"
	[[ $sw != 9000 ]] || bad "SELECT of an unknown AID answered 9000"
}
check_opensc_chip 0 "$KIND_NOTE" "$NOTE_SERIAL"
check_opensc_chip 1 "$KIND_READER" "$READER_SERIAL"

# ---- our own chip link over PC/SC ----

# "pcsc:" is every reader of the (private) pcscd: both of ours.
if "$CHECK" selftest pcsc: >"$work/selftest.out" 2>&1; then
	ok "pcsc_link_check selftest (pcsc:)"
else
	bad "pcsc_link_check selftest"
fi
sed 's/^/  selftest | /' "$work/selftest.out"
grep -q "^serial=$NOTE_SERIAL\$" "$work/selftest.out" ||
    bad "chip link did not read the note serial"
grep -q "^serial=$READER_SERIAL\$" "$work/selftest.out" ||
    bad "chip link did not read the reader serial"

# ---- power cuts in the middle of store commits ----

# In round 1 a second link holds on across the cut: the generation must
# move on when the chip comes back.
"$CHECK" swap "pcsc:$VPCD_READER_0" 0 30000 >"$work/swap.out" 2>&1 &
swap=$!
_pcsc_wait_for 10 grep -q '^armed' "$work/swap.out" ||
    bad "swap watcher did not start"

for ((round = 1; round <= KILL_ROUNDS; round++)); do
	"$CHECK" burst "pcsc:$VPCD_READER_0" 0 "$SO_PIN" 1000000 \
	    >"$work/burst-$round.out" 2>&1 &
	burst=$!
	# 0.3 .. 1.0 s of commits, then the power cut.
	sleep "0.$((3 + RANDOM % 7))"
	kill -KILL "${chip_pid[0]}"
	wait "${chip_pid[0]}" 2>/dev/null
	if ! wait "$burst"; then
		bad "round $round: burst did not end on the lost chip"
		sed 's/^/  burst | /' "$work/burst-$round.out"
	fi
	acked=$(sed -n 's/^acked=//p' "$work/burst-$round.out")
	wait_slot 0 absent || bad "round $round: killed chip still present"

	start_chip 0 "$work/note.img"
	wait_slot 0 present || die "round $round: restarted chip never appeared"
	if ! "$CHECK" info "pcsc:$VPCD_READER_0" 0 >"$work/info-$round.out"; then
		bad "round $round: restarted chip does not answer"
		continue
	fi
	label=$(sed -n 's/^label=//p' "$work/info-$round.out")
	serial=$(sed -n 's/^serial=//p' "$work/info-$round.out")
	[[ $serial == "$NOTE_SERIAL" ]] ||
	    bad "round $round: serial reads back as '$serial'"
	before=$(printf 'burst-%06d' "$acked")
	after=$(printf 'burst-%06d' $((acked + 1)))
	if [[ $label == "$before" || $label == "$after" ]]; then
		ok "round $round: $acked commits acked, image holds $label"
	else
		bad "round $round: $acked commits acked, image holds '$label'" \
		    "(want $before or $after)"
	fi
done
if wait "$swap"; then
	ok "link across the cut: $(grep '^generation' "$work/swap.out")"
else
	bad "link across the cut"
fi
sed 's/^/  swap | /' "$work/swap.out"
grep -q "chip_open\|cannot open" "$work/chip-0.log" &&
    bad "a restarted mintline-chip could not open its image"

# The other chip went on untouched.
"$CHECK" info "pcsc:$VPCD_READER_1" 0 >"$work/info-reader.out" &&
    grep -q "^serial=$READER_SERIAL\$" "$work/info-reader.out" ||
    bad "reader chip lost while the note chip was cut"

# ---- pcscd restart: the chips reconnect by themselves ----

first=$PCSC_ENV_PORT_FIRST
pcsc_env_stop
PCSC_ENV_PORT_BASE=$first pcsc_env_start "$work" 2 ||
    die "private pcscd did not restart on port $first"
if wait_slot 0 present && wait_slot 1 present; then
	ok "both chips reconnected to the restarted pcscd"
else
	bad "chips did not reconnect after a pcscd restart"
fi

# ---- SIGTERM is a clean exit ----

kill -TERM "${chip_pid[1]}"
wait "${chip_pid[1]}"
rc=$?
[[ $rc == 0 ]] && ok "mintline-chip exits 0 on SIGTERM" ||
    bad "mintline-chip exit status $rc on SIGTERM"
wait_slot 1 absent || bad "stopped chip still present"

if ((fail > 0)); then
	echo "$fail failure(s); logs in $work" >&2
	exit 1
fi
exit 0
