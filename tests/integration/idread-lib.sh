# Shared by test-idread-loopback.sh and test-idread-server.sh (sourced).
# Needs: W (work dir), STATION, MKIDCARD, FIXTURE; sets up the line and
# cards and defines the scenario functions.  SRV_ARGS: the --server (and
# --ca/--cert) arguments of the station.

# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

# line DIR multi|single [PUB.der]: a reader chip at pos-00
line_init() {
	rm -rf "$1"
	mkdir -p "$1"
	"$FIXTURE" init-reader "$@" || { echo "fixture failed"; exit 1; }
}

feed() {	# LINE IMG|-
	if [ "$2" = "-" ]; then
		rm -f "$1/pos-01"
	else
		ln -sfn "$2" "$1/pos-01.new" && mv -T "$1/pos-01.new" "$1/pos-01"
	fi
}

cards_init() {	# sam key file, cards A B (good) and X (another SAM key)
	"$MKIDCARD" --sam-key "$W/sam.key" --seed 11 -q "$W/cardA.img" || exit 1
	"$MKIDCARD" --sam-key "$W/sam.key" --seed 22 -q "$W/cardB.img" || exit 1
	"$MKIDCARD" --sam-key "$W/other.key" --seed 33 -q "$W/cardX.img" || exit 1
}

idread() {	# LINE [extra...]: one-shot read; stdout/stderr to files
	local line=$1
	shift
	"$STATION" id-read --link "inproc:$line" --pin-source "file:$line/pin" \
	    $SRV_ARGS --timeout 5000 "$@" > "$W/out" 2> "$W/err"
}

expect_rc() {	# want desc cmd...
	local want=$1 desc=$2
	shift 2
	"$@"
	local got=$?
	if [ "$got" = "$want" ]; then
		ok "$desc (exit $got)"
	else
		bad "$desc: exit $got, want $want"
		sed 's/^/    /' "$W/err"
	fi
}

# A valid GB 11643 number in the JSON output, and the photo.
check_json() {	# desc
	python3 - "$W/out" "$W/photo.pgm" <<'PY' && ok "$1" || bad "$1"
import json, os, sys
d = json.load(open(sys.argv[1]))
n = d["id_number"]
w = [2 ** (17 - i) % 11 for i in range(17)]
c = "10X98765432"[sum(int(a) * b for a, b in zip(n[:17], w)) % 11]
assert len(n) == 18 and n[17] == c, n
for k in ("name", "sex", "nation", "birth_date", "address",
          "issuing_authority", "valid_from", "valid_until"):
    assert d[k], k
assert os.path.getsize(sys.argv[2]) == d["photo_bytes"] > 0
PY
}

# ---- the long-running reader on a UNIX socket ----
RD_PID=""
reader_start() {	# LINE [extra...]
	local line=$1
	shift
	rm -f "$W/rd.sock"
	"$STATION" reader --link "inproc:$line" --pin-source "file:$line/pin" \
	    $SRV_ARGS --timeout 5000 --socket "$W/rd.sock" "$@" \
	    > "$W/reader.log" 2>&1 &
	RD_PID=$!
	for i in $(seq 100); do
		[ -S "$W/rd.sock" ] && return 0
		sleep 0.05
	done
	cat "$W/reader.log"
	echo "reader did not start"
	exit 1
}
reader_stop() {
	[ -n "$RD_PID" ] || return 0
	kill -TERM "$RD_PID" 2>/dev/null
	wait "$RD_PID"
	local rc=$?
	RD_PID=""
	[ "$rc" = 0 ] && ok "reader shut down cleanly (cache cleared)" ||
	    bad "reader exit $rc"
}
rcmd() {	# COMMAND: prints the status line
	python3 - "$W/rd.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
buf = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    buf += b
    lines = buf.decode(errors="replace").splitlines()
    if lines and buf.endswith(b"\n") and lines[-1].split(" ")[0] in ("ok", "error", "card"):
        print(lines[-1])
        break
s.close()
PY
}
expect_say() {	# want desc command
	local got
	got=$(rcmd "$3")
	case "$got" in
	"$1"*) ok "$2 ($got)" ;;
	*) bad "$2: got \"$got\", want \"$1\"" ;;
	esac
}

# inject_scenarios LINE: upload damage and card removal (test seams).
inject_scenarios() {
	local L=$1 f
	for f in "loss:--inject-loss 300" "corruption:--inject-corrupt 300" \
	    "duplication:--inject-dup 500" "reordering:--inject-reorder" \
	    "all at once:--inject-loss 150 --inject-corrupt 100 --inject-dup 100 --inject-reorder"; do
		local name=${f%%:*} args=${f#*:}
		expect_rc 0 "$name recovered" idread "$L" -v --inject-seed 4 $args
		if [ "$name" = "duplication" ] || [ "$name" = "reordering" ]; then
			grep -q " 0 retransmission rounds" "$W/err" && ok "$name: no retransmission needed" || bad "$name: rounds"
		else
			grep -Eq " [1-9][0-9]* retransmission rounds" "$W/err" && ok "$name: selective retransmission used" || bad "$name: no retransmission seen"
		fi
	done
	expect_rc 0 "one packet per record (PKT records), with loss" idread "$L" --pkts-per-record 1 --inject-loss 300 --inject-seed 9 -v
	grep -Eq " [1-9][0-9]* retransmission rounds" "$W/err" && ok "PKT records: selective retransmission used" || bad "PKT records: no retransmission seen"
	expect_rc 5 "a packet that never arrives ends the upload" idread "$L" --inject-never 2
	grep -q "did not complete" "$W/err" && ok "never: clear message" || bad "never: message"

	expect_rc 3 "card removed mid-read" idread "$L" --inject-remove-after 3
	[ -e "$L/pos-01" ] && bad "card still in the field" || ok "card gone from the field"
}

scenarios() {
	local L=$W/line
	[ -n "${LINE_READY:-}" ] || line_init "$L" multi
	feed "$L" -
	expect_rc 3 "no card in the field" idread "$L"
	grep -q "no card" "$W/err" && ok "no card: clear message" || bad "no card: message"

	feed "$L" "$W/cardA.img"
	expect_rc 0 "first read (--json, --photo)" idread "$L" --json --photo "$W/photo.pgm"
	check_json "ID information complete, GB 11643 check digit valid, photo written"
	expect_rc 0 "text output" idread "$L"
	grep -q "^ID number: " "$W/out" && ok "text output has the ID number" || bad "text output"

	# The --inject-* options exist only in a -Dtest_hooks=true build.
	if "$STATION" id-read --help 2>&1 | grep -q -- --inject-loss; then
		inject_scenarios "$L"
	else
		echo "skip: --inject-* scenarios (a build without -Dtest_hooks=true)"
	fi
	feed "$L" "$W/cardX.img"
	expect_rc 4 "unknown card: the SAM cannot decrypt" idread "$L"
	grep -q "SAM cannot decrypt" "$W/err" && ok "unknown card: clear message" || bad "unknown card: message"

	# long-running reader on stdin
	feed "$L" "$W/cardA.img"
	printf 'status\nread\nread\nbogus\n' | "$STATION" reader --link "inproc:$L" \
	    --pin-source "file:$L/pin" $SRV_ARGS --timeout 5000 --json > "$W/stdin.out" 2> "$W/err"
	[ "$(grep -c '"id_number"' "$W/stdin.out")" = 2 ] &&
	    grep -q '^card present$' "$W/stdin.out" &&
	    grep -q '^ok server$' "$W/stdin.out" && grep -q '^ok chip$' "$W/stdin.out" &&
	    grep -q '^error ML_ERR_ARG' "$W/stdin.out" &&
	    ok "reader on stdin: status, read (server), read (chip), bad command" ||
	    { bad "reader on stdin"; sed 's/^/    /' "$W/stdin.out" "$W/err"; }

	# long-running reader: second read from the chip, multi-card cache
	reader_start "$L"
	expect_say "ok server" "reader: first read goes to the server" read
	expect_say "ok chip" "reader: second read answered by the secure chip" read
	feed "$L" "$W/cardB.img"
	sleep 0.2
	expect_say "ok server" "reader: card B goes to the server" read
	feed "$L" "$W/cardA.img"
	sleep 0.2
	expect_say "ok chip" "reader (multi-card): card A still cached" read
	feed "$L" "$W/cardX.img"
	sleep 0.2
	expect_say "error ML_ERR_AUTH" "reader: unknown card is a clear error" read
	expect_say "error ML_ERR_AUTH" "reader: unknown card not cached" read
	expect_say "ok" "reader: forget" forget
	feed "$L" "$W/cardA.img"
	sleep 0.2
	expect_say "ok server" "reader: after forget, to the server again" read
	reader_stop

	# single-card mode (ID-13): a different card clears the store first
	reader_start "$L" --cache-mode single --so-pin-source "file:$L/so-pin"
	expect_say "ok server" "single-card: card A first read" read
	expect_say "ok chip" "single-card: card A second read" read
	feed "$L" "$W/cardB.img"
	sleep 0.2
	expect_say "ok server" "single-card: card B" read
	feed "$L" "$W/cardA.img"
	sleep 0.2
	expect_say "ok server" "single-card: card A again goes to the server (store was cleared)" read
	reader_stop

	# idle timeout (ID-9, ID-12)
	reader_start "$L" --idle-timeout 400 --cache-mode multi --so-pin-source "file:$L/so-pin"
	expect_say "ok server" "idle: first read" read
	expect_say "ok chip" "idle: second read from the chip" read
	feed "$L" -
	sleep 0.2
	feed "$L" "$W/cardA.img"
	sleep 0.2
	expect_say "ok chip" "idle: card back before the timeout, still cached" read
	feed "$L" -
	sleep 0.9
	feed "$L" "$W/cardA.img"
	sleep 0.2
	expect_say "ok server" "idle: after the timeout, to the server again" read
	reader_stop
}
