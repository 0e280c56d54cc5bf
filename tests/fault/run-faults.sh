#!/usr/bin/env bash
# Fault-injection campaign (docs/threat-model.md).
#
#   tests/fault/run-faults.sh BUILD_DIR [ROUNDS [SEED]]
#
# A real mintline-server (SoftHSM2 key, SAM emulator, SQLite registry) and
# mintline-station, with tests/fault/mintline-faultproxy between them on
# loopback.  ROUNDS seeded rounds (default 20) are spread over
#   (a) handshakes A/B + PING records through the proxy, some with the
#       station SIGKILLed at a random point;
#   (b) ID reads (id-read) through the proxy, one SIGKILL of the server,
#       and the long-running reader's cache expiry under faults;
#   (c) banknote issuance batches through the proxy, with SIGKILL of the
#       station (on the in-process line that is a power cut of the note
#       chip in the middle of whatever APDU it was running) and of the
#       server, then a clean run to completion.
# Round r uses proxy seed SEED*1000+r and a fault profile picked from it,
# so "run-faults.sh B 1 S" style reruns reproduce a failure (the proxy log
# of every round stays in BUILD_DIR/tests/fault/).
#
# Invariants checked (exit 1 on the first broken one, with the round):
#   I1 no session accepted without both authentications: a station that
#      reports success has a matching "handshake X ok" on the server; a
#      round whose every client frame is corrupted adds none; every
#      accepted identity is an enrolled one;
#   I2 no crash: station exit < 128 unless we killed it; the server answers
#      a clean handshake after every phase;
#   I3 ID data: a successful read prints exactly the card's ID number; a
#      damaged session never turns into another card's data or a SAM
#      verdict (exit 4);
#   I4 no ID data left in the reader cache past its idle timeout: after
#      the timeout a read goes to the server again (never "ok chip");
#   I5 issuance: no acknowledged note lost, none registered twice, none on
#      two chips, no chip half-written (every chip verifies GENUINE or
#      blank, nothing else), journal and registry agree.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / python3 / sqlite3.
set -u
B=${1:-${MINTLINE_BUILD_DIR:-build}}
B=$(cd "$B" && pwd)
ROUNDS=${2:-20}
SEED=${3:-1}
top=$(cd "$(dirname "$0")/../.." && pwd)
for t in softhsm2-util pkcs11-tool python3 sqlite3; do
	command -v "$t" >/dev/null 2>&1 || { echo "skip: $t missing"; exit 77; }
done
MODULE=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -e "$m" ] && MODULE=$m && break
done
[ -n "$MODULE" ] || { echo "skip: libsofthsm2.so missing"; exit 77; }
SERVER=$B/server/mintline-server
STATION=$B/station/mintline-station
CA=$B/tools/mintline-ca
MKIDCARD=$B/tools/mintline-mkidcard
FIXTURE=$B/tests/integration/idread_fixture
PROXY=$B/tests/fault/mintline-faultproxy
for f in "$SERVER" "$STATION" "$CA" "$PROXY"; do
	[ -x "$f" ] || { echo "skip: $f not built"; exit 77; }
done
W=${FAULT_WORK:-$B/tests/fault/work}
rm -rf "$W"
mkdir -p "$W/tokens" "$W/rounds"
cd "$W" || exit 1
t_start=$(date +%s)

fail=0
pass=0
ok()  { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
SRV_PID="" PX_PID="" RD_PID=""
cleanup() {
	for p in $RD_PID $PX_PID $SRV_PID; do
		kill "$p" 2>/dev/null
	done
	[ -n "${NE_SERVER_PID:-}" ] && kill "$NE_SERVER_PID" 2>/dev/null
	wait 2>/dev/null
}
trap cleanup EXIT
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cat > softhsm2.conf <<CONF
directories.tokendir = $W/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF=$W/softhsm2.conf
echo 1234 > pin
chmod 600 pin

# ---- ceremony: server key in SoftHSM2, a reader key in SoftHSM2 (for
# the handshake rounds) and one inside an in-process reader chip (ID
# reads); certificates from a test CA; both readers enrolled ----
softhsm2-util --init-token --free --label server --so-pin 12345678 --pin 1234 >/dev/null || exit 1
softhsm2-util --init-token --free --label readers --so-pin 12345678 --pin 1234 >/dev/null || exit 1
for k in "server srvkey 01" "readers rdr 11"; do
	set -- $k
	pkcs11-tool --module "$MODULE" --token-label "$1" --login --pin 1234 \
	    --keypairgen --key-type EC:prime256v1 --id "$3" --label "$2" \
	    >/dev/null 2>&1 || { echo "keygen $2 failed"; exit 1; }
done
SRVKEY="pkcs11:token=server;object=srvkey?pin-source=file:$W/pin"
RDRKEY="pkcs11:token=readers;object=rdr?pin-source=file:$W/pin"
"$CA" init --dir ca --cn "mintline fault root" >/dev/null || exit 1
"$CA" issue --dir ca --role server --p11 "$SRVKEY" --module "$MODULE" --out srv.pem >/dev/null || exit 1
"$CA" issue --dir ca --role reader --serial RDR-F-0001 --p11 "$RDRKEY" --module "$MODULE" --out rdr.pem >/dev/null || exit 1
ENROLL="rdr.pem"
IDREAD=0
if [ -x "$MKIDCARD" ] && [ -x "$FIXTURE" ]; then
	mkdir -p line
	"$FIXTURE" init-reader "$W/line" multi "$W/chiprdr.der" >/dev/null &&
	"$CA" issue --dir ca --role reader --serial RDR-IDR-0001 --pub chiprdr.der --out chiprdr.pem >/dev/null &&
	"$MKIDCARD" --sam-key "$W/sam.key" --seed 11 -q "$W/cardA.img" &&
	"$MKIDCARD" --sam-key "$W/sam.key" --seed 22 -q "$W/cardB.img" &&
	IDREAD=1 && ENROLL="$ENROLL chiprdr.pem"
fi
"$SERVER" enroll --registry reg.db --factory "fault line" $ENROLL >/dev/null || { echo "enroll failed"; exit 1; }

# SoftHSM2's file backend rewrites token.object in place (truncate, then
# write) at login; a process SIGKILLed in between leaves it empty and the
# token, with its keys, is gone for good.  That is a finding about the
# default deployment (docs/threat-model.md), not about our code: it is
# reported as KNOWN (FAIL with FAULT_STRICT=1) and the token restored from
# a copy made after the ceremony, so that the campaign goes on.
known=0
tokens_backup() {	# TOKENDIR
	rm -rf "$1.bak"
	cp -a "$1" "$1.bak"
}
tokens_check() {	# TOKENDIR what
	local d
	for d in "$1"/*/; do
		[ -s "$d/token.object" ] && continue
		echo "# KNOWN: SoftHSM2 token $(basename "$d") lost (empty token.object) after $2"
		known=$((known + 1))
		[ "${FAULT_STRICT:-0}" = 1 ] && bad "SoftHSM2 token destroyed by $2"
		rm -rf "$d"
		cp -a "$1.bak/$(basename "$d")" "$d"
	done
}
tokens_backup "$W/tokens"

PORT=$(free_port)
server_start() {
	"$SERVER" --listen 127.0.0.1:$PORT \
	    --ca ca/root.pem --cert srv.pem --key "$SRVKEY" --module "$MODULE" \
	    --registry reg.db --sam "emul:$W/sam.key" --workers 4 --read-timeout 1500 \
	    --idle-timeout 5000 -v >> server.log 2>&1 &
	SRV_PID=$!
	for _ in $(seq 100); do
		[ "$(grep -c "listening" server.log 2>/dev/null)" -ge "${1:-1}" ] && return 0
		sleep 0.05
	done
	return 1
}
server_start 1 || { cat server.log; echo "server did not start"; exit 1; }
nstarts=1

# ---- the proxy, one per round ----
# profile N: a fault mix picked from the round's seed
PROFILES=(
	"--drop 0.2"
	"--corrupt 0.3"
	"--dup 0.3"
	"--reorder 0.4"
	"--delay-ms 150"
	"--cut 0.1"
	"--drop 0.05 --corrupt 0.05 --dup 0.05 --reorder 0.1 --delay-ms 40"
	"--bytes --corrupt 0.2 --delay-ms 20"
	"--c2s-corrupt 1"			# every client frame damaged
	"--s2c-dup 0.5 --c2s-reorder 0.5"
)
PXPORT=""
proxy_start() {	# seed profile...
	local seed=$1
	shift
	PXPORT=$(free_port)
	"$PROXY" --listen 127.0.0.1:$PXPORT --connect 127.0.0.1:$PORT \
	    --seed "$seed" --lifetime-ms 30000 "$@" \
	    > "$W/rounds/proxy-$seed.log" 2>&1 &
	PX_PID=$!
	for _ in $(seq 100); do
		grep -q listening "$W/rounds/proxy-$seed.log" 2>/dev/null && return 0
		sleep 0.02
	done
	return 1
}
proxy_stop() {
	[ -n "$PX_PID" ] && kill "$PX_PID" 2>/dev/null && wait "$PX_PID" 2>/dev/null
	PX_PID=""
}
srv_ok_count() {	# handshakes the server accepted so far
	grep -c "handshake [AB] ok:" "$W/server.log"
}
clean_handshake() {	# desc: the server still serves (I2)
	"$STATION" handshake --server 127.0.0.1:$PORT --flow A --ca ca/root.pem \
	    --cert rdr.pem --key "$RDRKEY" --module "$MODULE" --timeout 3000 \
	    --count 2 >> station.log 2>&1 &&
	    ok "$1: server answers a clean handshake" ||
	    bad "$1: server does not answer a clean handshake"
}

# Split ROUNDS: half handshakes, the rest ID reads and issuance.
if [ "$ROUNDS" -lt 3 ]; then
	RH=$ROUNDS RI=0 RN=0
else
	RH=$(( (ROUNDS + 1) / 2 ))
	RI=$(( (ROUNDS - RH + 1) / 2 ))
	RN=$(( ROUNDS - RH - RI ))
fi
r=0

# ---- (a) handshakes ----
h_ok=0 h_fail=0
for ((i = 0; i < RH; i++, r++)); do
	seed=$((SEED * 1000 + r))
	prof=${PROFILES[$((seed % ${#PROFILES[@]}))]}
	flow=$([ $((seed / 3 % 2)) = 0 ] && echo A || echo B)
	proxy_start "$seed" $prof || { bad "round $r: proxy did not start"; continue; }
	before=$(srv_ok_count)
	killed=0
	if [ $((seed % 4)) = 3 ]; then
		# SIGKILL the station at a random point of a longer session
		"$STATION" handshake --server 127.0.0.1:$PXPORT --flow $flow \
		    --ca ca/root.pem --cert rdr.pem --key "$RDRKEY" --module "$MODULE" \
		    --timeout 1500 --count 20 --hold 300 >> "$W/rounds/station-$seed.log" 2>&1 &
		st=$!
		sleep "0.$(printf %02d $((seed * 37 % 60 + 5)))"
		kill -9 $st 2>/dev/null && killed=1
		wait $st 2>/dev/null
		rc=$?
		tokens_check "$W/tokens" "SIGKILL of the station (round $r)"
	else
		"$STATION" handshake --server 127.0.0.1:$PXPORT --flow $flow \
		    --ca ca/root.pem --cert rdr.pem --key "$RDRKEY" --module "$MODULE" \
		    --timeout 1500 --count 3 >> "$W/rounds/station-$seed.log" 2>&1
		rc=$?
	fi
	proxy_stop
	sleep 0.1
	after=$(srv_ok_count)
	echo "# round $r seed $seed flow $flow [$prof]: station exit $rc${killed:+ (killed=$killed)}, server accepted $((after - before))"
	if [ "$killed" = 0 ] && [ "$rc" -ge 128 ]; then
		bad "round $r: station crashed (exit $rc)"
	fi
	if [ "$rc" = 0 ]; then
		h_ok=$((h_ok + 1))
		[ "$after" -gt "$before" ] || bad "round $r: I1 station succeeded but the server accepted no handshake"
	else
		h_fail=$((h_fail + 1))
	fi
	case "$prof" in
	"--c2s-corrupt 1")
		[ "$after" = "$before" ] && [ "$rc" != 0 ] ||
		    bad "round $r: I1 a session with every client frame corrupted was accepted"
		;;
	esac
	kill -0 "$SRV_PID" 2>/dev/null || { bad "round $r: I2 server died"; server_start $((++nstarts)); }
done
if [ "$RH" -gt 0 ]; then
	ok "(a) $RH handshake rounds: $h_ok completed, $h_fail refused or broken, no invariant broken above"
	bogus=$(grep "handshake [AB] ok:" server.log | grep -Ecv "reader (RDR-F-0001|RDR-IDR-0001) ")
	[ "$bogus" = 0 ] && ok "I1 every accepted identity is an enrolled reader" ||
	    bad "I1 $bogus accepted handshakes for an identity that was not enrolled"
	clean_handshake "(a)"
fi

# ---- (b) ID reads ----
if [ "$IDREAD" = 1 ] && [ "$RI" -gt 0 ]; then
	L=$W/line
	ln -sfn "$W/cardA.img" "$L/pos-01"
	SRV_ARGS="--ca $W/ca/root.pem --cert $W/chiprdr.pem"
	"$STATION" id-read --link "inproc:$L" --pin-source "file:$L/pin" \
	    --server 127.0.0.1:$PORT $SRV_ARGS --timeout 5000 --json > ref.json 2> ref.err ||
	    { cat ref.err; bad "(b) clean reference read failed"; }
	want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id_number"])' ref.json 2>/dev/null)
	# I4: the reader's cache expires on time; after the idle timeout a
	# read goes to the server again (slow, chunked transport; before the
	# damaging rounds, whose dead uploads count against the reader's
	# per-peer limit on the server until their deadline)
	seed=$((SEED * 1000 + 999))
	proxy_start "$seed" --delay-ms 80 --bytes || bad "proxy"
	rm -f rd.sock
	"$STATION" reader --link "inproc:$L" --pin-source "file:$L/pin" \
	    --server 127.0.0.1:$PXPORT $SRV_ARGS --timeout 1500 --socket "$W/rd.sock" \
	    --idle-timeout 400 > reader.log 2>&1 &
	RD_PID=$!
	for _ in $(seq 100); do [ -S rd.sock ] && break; sleep 0.05; done
	rcmd() {
		python3 - "$W/rd.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
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
PY
	}
	cached=0
	for k in 1 2 3 4 5; do	# the faults may break a read; retry
		a=$(rcmd read)
		case "$a" in "ok "*) break ;; esac
	done
	b=$(rcmd read)
	[ "$b" = "ok chip" ] && cached=1
	rm -f "$L/pos-01"
	sleep 1.0
	ln -sfn "$W/cardA.img" "$L/pos-01"
	sleep 0.2
	c=$(rcmd read)
	echo "# reader: '$a' '$b' then after the idle timeout '$c'"
	if [ "$c" = "ok chip" ]; then
		bad "I4 ID data still in the reader cache after its idle timeout"
	elif [ "$cached" = 1 ]; then
		ok "I4 reader cache cleared after its idle timeout (second read was from the chip, third not)"
	else
		ok "I4 reader cache not used after its idle timeout (faults prevented the cached read: '$b')"
	fi
	# the reader host SIGKILLed with the card's data cached (no orderly
	# CACHE CLEAR): on the in-process line that is the reader chip's power
	# cut, and its cache is RAM only; a restarted reader asks the server
	a=$(rcmd read)
	kill -9 "$RD_PID" 2>/dev/null
	wait "$RD_PID" 2>/dev/null
	rm -f rd.sock
	"$STATION" reader --link "inproc:$L" --pin-source "file:$L/pin" \
	    --server 127.0.0.1:$PXPORT $SRV_ARGS --timeout 1500 --socket "$W/rd.sock" \
	    --idle-timeout 400 >> reader.log 2>&1 &
	RD_PID=$!
	for _ in $(seq 100); do [ -S rd.sock ] && break; sleep 0.05; done
	c=$(rcmd read)
	echo "# reader: '$a', SIGKILL, restarted: '$c'"
	if [ "$c" = "ok chip" ]; then
		bad "I4 ID data survived a SIGKILL of the reader host in the reader cache"
	else
		ok "I4 reader host SIGKILLed with data cached: nothing cached after restart ('$c')"
	fi
	kill -TERM "$RD_PID" 2>/dev/null
	wait "$RD_PID" 2>/dev/null
	RD_PID=""
	proxy_stop
	for ((i = 0; i < RI; i++, r++)); do
		seed=$((SEED * 1000 + r))
		prof=${PROFILES[$((seed % ${#PROFILES[@]}))]}
		proxy_start "$seed" $prof || { bad "round $r: proxy did not start"; continue; }
		killsrv=0
		[ "$i" = 1 ] && killsrv=1
		"$STATION" id-read --link "inproc:$L" --pin-source "file:$L/pin" \
		    --server 127.0.0.1:$PXPORT $SRV_ARGS --timeout 1500 --json \
		    > "$W/rounds/idread-$seed.json" 2> "$W/rounds/idread-$seed.err" &
		st=$!
		if [ "$killsrv" = 1 ]; then
			sleep "0.$(printf %02d $((seed * 53 % 40 + 5)))"
			kill -9 "$SRV_PID" 2>/dev/null
			wait "$SRV_PID" 2>/dev/null
			tokens_check "$W/tokens" "SIGKILL of the server (round $r)"
		fi
		wait $st
		rc=$?
		proxy_stop
		echo "# round $r seed $seed [$prof]${killsrv:+ server-kill=$killsrv}: id-read exit $rc"
		case $rc in
		0)
			got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id_number"])' \
			    "$W/rounds/idread-$seed.json" 2>/dev/null)
			[ -n "$want" ] && [ "$got" = "$want" ] ||
			    bad "round $r: I3 read succeeded with ID number '$got', want '$want'"
			;;
		1|5) ;;
		*)	bad "round $r: I3 id-read exit $rc under transport faults (want 0, 1 or 5)"
			sed 's/^/    /' "$W/rounds/idread-$seed.err" | tail -5 ;;
		esac
		if [ "$killsrv" = 1 ]; then
			server_start $((++nstarts)) || { bad "server restart"; break; }
		fi
		kill -0 "$SRV_PID" 2>/dev/null || { bad "round $r: I2 server died"; server_start $((++nstarts)); }
	done
	ok "(b) $RI ID-read rounds, one with the server SIGKILLed: no wrong ID data, no crash"

	clean_handshake "(b)"
fi

# ---- (c) banknote issuance ----
if [ "$RN" -gt 0 ] && "$STATION" issue --help >/dev/null 2>&1 &&
    [ -f "$top/scripts/issuance-env.sh" ] && [ -x "$B/tools/mintline-mkchip" ]; then
	(
	NOTES=${FAULT_NOTES:-60}
	# shellcheck source=scripts/issuance-env.sh
	source "$top/scripts/issuance-env.sh"
	unset SOFTHSM2_CONF
	ne_init "$W/iss" "$B" 4 || exit 77
	trap 'ne_server_stop; proxy_stop' EXIT
	ne_keys >/dev/null 2>&1 || { echo "FAIL - (c) key ceremony"; exit 1; }
	ne_chips $((NOTES + 8)) || exit 1
	ne_server_start || { echo "FAIL - (c) server did not start"; exit 1; }
	ne_provision "$NE_WORK/chips" --json >/dev/null 2>"$NE_WORK/provision.err" ||
	    { echo "FAIL - (c) provision"; exit 1; }
	ne_batch "$NOTES" FX >"$NE_WORK/batch.csv"
	tokens_backup "$NE_WORK/tokens"
	PORT=$NE_PORT
	sfail=0
	for ((i = 0; i < RN; i++)); do
		rr=$((r + i))
		seed=$((SEED * 1000 + rr))
		prof=${PROFILES[$((seed % ${#PROFILES[@]}))]}
		proxy_start "$seed" $prof || { echo "FAIL - (c) proxy"; sfail=1; continue; }
		conn=("${NE_CONN[@]}")
		conn[1]=127.0.0.1:$PXPORT
		"$NE_STATION" issue --line "$NE_LINE" --chips "$NE_WORK/chips" \
		    --issuer-key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" \
		    "${conn[@]}" --journal "$NE_JOURNAL" --batch "$NE_WORK/batch.csv" \
		    --json --no-progress --retry-secs 3 \
		    >"$W/rounds/issue-$seed.jsonl" 2>"$W/rounds/issue-$seed.err" &
		st=$!
		# SIGKILL the station (= note chip power cut on the inproc line)
		sleep "0.$(printf %02d $((seed * 29 % 40 + 5)))"
		kill -9 $st 2>/dev/null
		wait $st 2>/dev/null
		tokens_check "$NE_WORK/tokens" "SIGKILL of the station (round $rr)"
		if [ $((i % 2)) = 1 ]; then
			kill -9 "$NE_SERVER_PID" 2>/dev/null
			wait "$NE_SERVER_PID" 2>/dev/null
			NE_SERVER_PID=
			tokens_check "$NE_WORK/tokens" "SIGKILL of the server (round $rr)"
			ne_server_start || { echo "FAIL - (c) server restart"; sfail=1; break; }
		fi
		proxy_stop
		# I5 no acknowledged note lost: every note the station reported
		# (issued, completed, already registered) is in the registry,
		# on that chip, under that registration number, right now
		lost=0
		while IFS='|' read -r nid chip regid; do
			[ -n "$nid" ] || continue
			got=$(sqlite3 "$NE_DB" "select chip_serial || '|' || reg_id from note where note_id = '$nid'")
			[ "$got" = "$chip|$regid" ] || { lost=$((lost + 1)); echo "    $nid: acked on $chip as $regid, registry has '$got'"; }
		done < <(sed -n 's/.*"note":"\([^"]*\)".*"chip":"\([^"]*\)".*"result":"\(issued\|completed\|already_registered\)".*"reg_id":\([0-9]*\).*/\1|\2|\4/p' \
		    "$W/rounds/issue-$seed.jsonl")
		acked=$(grep -c '"reg_id"' "$W/rounds/issue-$seed.jsonl")
		[ "$lost" = 0 ] || { echo "FAIL - round $rr: I5 $lost acknowledged notes not (or differently) registered"; sfail=1; }
		echo "# round $rr seed $seed [$prof]: $acked acknowledged this round, all registered; $(sqlite3 "$NE_DB" 'select count(*) from note') registered"
	done
	# a clean run completes the batch (in-doubt notes resolved)
	ne_issue --batch "$NE_WORK/batch.csv" --json --no-progress >"$W/issue-final.jsonl" 2>"$W/issue-final.err"
	rc=$?
	[ "$rc" = 0 ] && echo "ok   - (c) clean run completes the batch" ||
	    { echo "FAIL - (c) clean run exit $rc"; tail -3 "$W/issue-final.err"; sfail=1; }
	reg=$(sqlite3 "$NE_DB" 'select count(*) from note')
	dist=$(sqlite3 "$NE_DB" 'select count(distinct note_id) from note')
	ack=$(sqlite3 "$NE_JOURNAL" 'select count(*) from issue_journal where state = 2')
	[ "$reg" = "$NOTES" ] && echo "ok   - I5 every note of the batch registered ($reg)" ||
	    { echo "FAIL - I5 $reg notes registered, want $NOTES"; sfail=1; }
	[ "$dist" = "$reg" ] && echo "ok   - I5 none registered twice" ||
	    { echo "FAIL - I5 duplicate registrations ($dist distinct of $reg)"; sfail=1; }
	[ "$ack" = "$NOTES" ] && echo "ok   - I5 every note acknowledged in the journal, none lost" ||
	    { echo "FAIL - I5 journal acknowledges $ack, want $NOTES"; sfail=1; }
	ne_verify --offline --chips "$NE_WORK/chips" --json >"$W/verify.jsonl" 2>/dev/null
	gen=$(grep -c '"verdict":"GENUINE"' "$W/verify.jsonl")
	blank=$(grep -c '"reason":"blank chip"' "$W/verify.jsonl")
	total=$(wc -l <"$W/verify.jsonl")
	[ "$gen" = "$NOTES" ] && echo "ok   - I5 every acknowledged note GENUINE on its chip" ||
	    { echo "FAIL - I5 $gen GENUINE chips, want $NOTES"; sfail=1; }
	[ $((gen + blank)) = "$total" ] && echo "ok   - I5 no chip half-written: $gen complete, $blank blank of $total" ||
	    { echo "FAIL - I5 $((total - gen - blank)) chips neither complete nor blank"; grep -v GENUINE "$W/verify.jsonl" | grep -v "blank chip" | head -3; sfail=1; }
	dup=$(sed -n 's/.*"note":"\([^"]*\)","verdict":"GENUINE".*/\1/p' "$W/verify.jsonl" | sort | uniq -d | wc -l)
	[ "$dup" = 0 ] && echo "ok   - I5 no note on two chips" || { echo "FAIL - I5 $dup notes on two chips"; sfail=1; }
	exit $sfail
	)
	rc=$?
	case $rc in
	0) pass=$((pass + 1)) ;;
	77) echo "skip - (c) issuance environment not available" ;;
	*) fail=$((fail + 1)) ;;
	esac
else
	[ "$RN" -gt 0 ] && echo "skip - (c) mintline-station issue / mintline-mkchip not built"
fi

if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
	kill -TERM "$SRV_PID"
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=""
fi
# I2 under the sanitizers: an ASan/UBSan report exits 1, which a round
# cannot tell from a refused session; look for the reports themselves
san=$(grep -rlE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$W" 2>/dev/null)
[ -z "$san" ] && ok "I2 no sanitizer report in any log" ||
    { bad "I2 sanitizer reports in: $san"; grep -hE -A12 "ERROR: (Address|Leak)Sanitizer|runtime error:" $san | head -40; }
echo "# $ROUNDS rounds, seed $SEED, $(( $(date +%s) - t_start )) s: $pass passed, $fail failed, $known known (SoftHSM2 tokens lost; (c) counts them in its own log)"
[ "$fail" = 0 ]
