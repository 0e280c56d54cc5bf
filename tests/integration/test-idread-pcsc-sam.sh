#!/usr/bin/env bash
# A SAM reached like a real one (ID-10): mintline-server's pcsc: SAM
# back-end over a pool of two SAM modules (chip kind sam, made by
# mintline-mksam), each served by mintline-chip behind a private pcscd +
# vpcd.  Readers read ID cards through the server as in
# test-idread-server.sh; the server decodes every card on a SAM over PC/SC.
#
#   - a read through the PC/SC SAM gives the card's ID information;
#     a card made with another SAM key is refused ("SAM cannot decrypt");
#   - four readers read at once, over and over: both SAMs serve reads;
#   - one SAM's mintline-chip is killed (the SAM pulled out of its slot)
#     while the readers keep reading: no read fails, the server logs the
#     failed SAM and retries the read on the other one;
#   - the SAM put back is used again.
#
# Needs: pcscd + vpcd, softhsm2-util, pkcs11-tool, python3 (else 77).
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/pcsc-env.sh
. "$here/pcsc-env.sh"
pcsc_env_require

B=${MINTLINE_BUILD_DIR:-$here/../../build}
SERVER=$B/server/mintline-server
STATION=$B/station/mintline-station
MKIDCARD=$B/tools/mintline-mkidcard
MKSAM=$B/tools/mintline-mksam
CHIP=$B/chip-applet/mintline-chip
CA=$B/tools/mintline-ca
FIXTURE=$B/tests/integration/idread_fixture
W=$B/tests/idread-pcsc-sam
NREADERS=4
ROUNDS=${ROUNDS:-8}
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/issuance-env.sh"
ne_softhsm "$W" || exit 77
MODULE=$NE_MODULE
. "$here/idread-lib.sh"
SRV_PID=""
cleanup() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
	pcsc_env_cleanup
}
trap cleanup EXIT
cd "$W" || exit 1

# ---- the SAM pool: two SAMs behind the private pcscd ----
pcsc_env_start "$W/pcsc" 2 || { echo "FAIL - private pcscd did not start"; exit 1; }
cards_init
"$MKSAM" -q --sam-key "$W/sam.key" --serial SAM-01 "$W/sam1.img" &&
"$MKSAM" -q --sam-key "$W/sam.key" --serial SAM-02 "$W/sam2.img" ||
    { echo "FAIL - mintline-mksam"; exit 1; }
declare -A chip_pid
start_sam() {	# INDEX IMAGE
	local port_var=VPCD_PORT_$1
	"$CHIP" --port "${!port_var}" "$2" >>"$W/sam-$1.log" 2>&1 &
	chip_pid[$1]=$!
	pcsc_env_track "${chip_pid[$1]}"
}
start_sam 0 "$W/sam1.img"
start_sam 1 "$W/sam2.img"
sleep 1

# ---- server key, CA, readers (keys made inside their secure chips) ----
echo 1234 > hsm-pin
ne_srv_cert "$CA" "$W/hsm-pin" "mintline pcsc sam test root" || exit 1
for i in $(seq "$NREADERS"); do
	line_init "$W/line$i" multi "$W/rdr$i.der" "RDR-SAM-000$i"
	# each reader its own copy of the cards (an image is opened by one
	# process at a time)
	for c in A B X; do
		cp "$W/card$c.img" "$W/line$i/card$c.img" &&
		cp "$W/card$c.img.key" "$W/line$i/card$c.img.key" || exit 1
	done
	"$CA" issue --dir ca --role reader --serial "RDR-SAM-000$i" --pub "rdr$i.der" \
	    --out "rdr$i.pem" >/dev/null || exit 1
	"$SERVER" enroll --registry reg.db "rdr$i.pem" >/dev/null || exit 1
done

PORT=$(ne_free_port)
start_server() {
	# the SAM is a configuration setting: the sam key (file or option)
	ne_spawn server.log "$SERVER" --listen 127.0.0.1:$PORT --ca ca/root.pem \
	    --cert srv.pem --key "$SRVKEY" --module "$MODULE" --registry reg.db \
	    --workers 4 --sam "pcsc:" -v || return 1
	SRV_PID=$NE_SPAWN_PID
}
start_server || { echo "FAIL - server did not start"; exit 1; }
grep -q 'sam pcsc: 2 SAM(s)' server.log && ok "server found both SAMs behind pcscd" ||
    bad "server SAM pool: $(grep 'sam pcsc' server.log | tr '\n' ' ')"

read_one() {	# READER CARD OUT [extra...]: one read by reader N of CARD
	local n=$1 card=$2 out=$3
	shift 3
	feed "$W/line$n" "$card"
	"$STATION" id-read --link "inproc:$W/line$n" --pin-source "file:$W/line$n/pin" \
	    --server 127.0.0.1:$PORT --ca "$W/ca/root.pem" --cert "$W/rdr$n.pem" \
	    --timeout 10000 "$@" > "$out.out" 2> "$out.err"
}

# ---- one read through the PC/SC SAM; a card of another SAM key ----
read_one 1 "$W/line1/cardA.img" "$W/one" --json --photo "$W/photo.pgm"
rc=$?
cp "$W/one.out" "$W/out"
[ $rc = 0 ] && ok "read through the PC/SC SAM (exit 0)" || { bad "read through the PC/SC SAM: exit $rc"; sed 's/^/    /' "$W/one.err"; }
[ $rc = 0 ] && check_json "the ID information decoded by the SAM is complete"
read_one 1 "$W/line1/cardX.img" "$W/x"
rc=$?
[ $rc = 4 ] && grep -q "SAM cannot decrypt" "$W/x.err" &&
    ok "card of another SAM key refused by the SAM (exit 4, SAM cannot decrypt)" ||
    bad "card of another SAM key: exit $rc: $(cat "$W/x.err")"

# ---- many readers at once; a SAM pulled out in the middle ----
burst() {	# TAG: every reader reads ROUNDS times; "fails N" in $W/TAG.fails
	local i k pids=()
	for i in $(seq "$NREADERS"); do
		(
			f=0
			for k in $(seq "$ROUNDS"); do
				read_one "$i" "$W/line$i/card$([ $((k % 2)) = 0 ] && echo A || echo B).img" \
				    "$W/$1-$i-$k" || { f=$((f + 1)); cat "$W/$1-$i-$k.err" >&2; }
			done
			echo "$f" > "$W/$1-$i.fails"
		) 2>>"$W/$1.err" &
		pids+=($!)
	done
	wait "${pids[@]}"
	cat "$W/$1"-*.fails | awk '{ s += $1 } END { print s + 0 }'
}
f=$(burst calm)
[ "$f" = 0 ] && ok "$NREADERS readers x $ROUNDS reads at once through the SAM pool, none failed" ||
    bad "calm burst: $f read(s) failed: $(head -3 "$W/calm.err")"

# pulled out once a quarter of the reads are done (the readers keep going)
(
	for _ in $(seq 600); do
		[ "$(find "$W" -maxdepth 1 -name 'pulled-*.out' | wc -l)" -ge $((NREADERS * ROUNDS)) ] && break
		sleep 0.05
	done
	kill -KILL "${chip_pid[0]}"
) &
killer=$!
f=$(ROUNDS=$((ROUNDS * 4)) burst pulled)
wait $killer
[ "$f" = 0 ] && ok "SAM-01 pulled out during $NREADERS x $((ROUNDS * 4)) reads: no read failed" ||
    bad "with SAM-01 pulled out: $f read(s) failed: $(head -3 "$W/pulled.err")"
grep -q 'SAM SAM-01 in .* failed a read (.*); retrying it on another SAM' server.log &&
    ok "server: SAM-01 failed a read, the read was retried on another SAM" ||
    bad "server log has no retried read: $(grep 'sam pcsc' server.log | tail -3 | tr '\n' ' ')"

# ---- the SAM put back serves again ----
start_sam 0 "$W/sam1.img"
sleep 2
f=$(burst back)
[ "$f" = 0 ] && ok "reads after SAM-01 is back: none failed" || bad "after SAM-01 is back: $f failed"
grep -q 'sam pcsc: SAM SAM-01 is back in service' server.log &&
    ok "server: SAM-01 back in service" || bad "SAM-01 not taken back into the pool"
kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null; SRV_PID=""
for s in SAM-01 SAM-02; do
	n=$(sed -n "s/.*sam pcsc: SAM $s decoded \([0-9]*\) card(s).*/\1/p" server.log | tail -1)
	[ "${n:-0}" -gt 0 ] && ok "$s decoded $n card(s) (the pool serves many readers)" ||
	    bad "$s decoded no card"
done

echo "# $pass passed, $fail failed"
[ "$fail" = 0 ]
