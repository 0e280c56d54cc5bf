#!/usr/bin/env bash
# The desk's and the line's pages in a real browser (OP-1, BN-8): Debian's
# chromium driven headless by python3-selenium (pages_test.py).
#   desk: verify --follow --ui on the in-process line with the demo's
#         chips: a genuine note, each counterfeit of tools/mintline-
#         counterfeit (forged writer, clone, altered record), a blank
#         chip; the server killed: connection lost, then no verdict;
#         history, filter and CSV hold every check;
#   line: issue --follow --ui: a batch runs, counters and positions move,
#         pause stops the writes (the journal does not move), resume goes on.
# No JavaScript console error; screenshots in build/tests/browser/*.png.
# Exit 77 (skipped) without chromium, chromedriver, selenium, SoftHSM2 or
# sqlite3.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/browser
command -v chromium >/dev/null || { echo "# no chromium"; exit 77; }
command -v chromedriver >/dev/null || { echo "# no chromedriver"; exit 77; }
command -v sqlite3 >/dev/null || exit 77
PY=
for p in /usr/bin/python3 python3; do	# Debian's python has python3-selenium
	if "$p" -c 'import selenium' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "# no python3-selenium"; exit 77; }
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 4 || exit 77
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	ne_server_stop
}
trap cleanup EXIT
fail=0
ok()  { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fail=1; }
check() { if [ "$1" = "$2" ]; then ok "$3"; else bad "$3 (got $1, want $2)"; fi; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {	# wait_for SECONDS CMD...
	local n=$(( $1 * 10 )); shift
	while ((n-- > 0)); do "$@" && return 0; sleep 0.1; done
	return 1
}

ne_keys || { echo "key ceremony failed"; exit 1; }
ne_chips 6 || exit 1
ne_server_start || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" --json >/dev/null
check $? 0 "provision: 6 chips personalised and enrolled"
ne_batch 4 >"$W/batch.csv"
ne_issue --batch "$W/batch.csv" --no-progress --json >"$W/issue.jsonl" 2>"$W/issue.err"
check $? 0 "issue: the batch of 4 issued (2 chips left blank)"
mapfile -t issued < <(sed -n 's/.*"chip":"\([^"]*\)","result":"issued".*/\1/p' "$W/issue.jsonl" | sort)
mapfile -t blank < <(comm -23 <(cd "$W/chips" && ls -- *.chip | sed 's/\.chip$//' | sort) \
    <(printf '%s\n' "${issued[@]}"))
check "${#issued[@]}/${#blank[@]}" 4/2 "four notes issued, two chips blank"

# the demo's counterfeits (tests/integration/test-counterfeit-desk.sh)
C=$W/chips
"$NE_MKCHIP" note FORGED0000000001 "$C/FORGED0000000001.chip" >/dev/null &&
"$NE_FAKE" forge "$C/${issued[2]}.chip" "$C/FORGED0000000001.chip" MX 77777777 >/dev/null
check $? 0 "forged-writer chip made"
"$NE_FAKE" clone "$C/${issued[3]}.chip" "$C/${blank[0]}.chip" >/dev/null
check $? 0 "clone of ${issued[3]} made on ${blank[0]}"
"$NE_FAKE" alter "$C/${issued[1]}.chip" >/dev/null
check $? 0 "feature record of ${issued[1]} altered"

# ---- the desk's page ----
port=$(free_port)
rm -f "$W"/line/pos-*
"$NE_STATION" verify --follow --ui "127.0.0.1:$port" --line "$NE_LINE" \
    --issuer-pub "$NE_ISSUER_PUB" "${NE_CONN[@]}" >"$W/desk.out" 2>"$W/desk.err" &
desk=$!; pids+=("$desk")
wait_for 20 grep -qs "ui: desk page at http://127.0.0.1:$port/" "$W/desk.err" ||
    { bad "desk: no page announced"; cat "$W/desk.err"; exit 1; }
DESK_URL=http://127.0.0.1:$port/ LINE_DIR=$W/line SHOTS=$W \
    GENUINE=$C/${issued[0]}.chip FORGED=$C/FORGED0000000001.chip \
    CLONE=$C/${blank[0]}.chip ALTERED=$C/${issued[1]}.chip BLANK=$C/${blank[1]}.chip \
    SERVER_PID=$NE_SERVER_PID \
    GENUINE_NOTE=$(sed -n "s/.*\"note\":\"\([^\"]*\)\".*\"chip\":\"${issued[0]}\".*/\1/p" "$W/issue.jsonl") \
    "$PY" "$top/tests/browser/pages_test.py" desk || fail=1
kill -TERM "$desk"; wait "$desk"
check $? 1 "desk: SIGTERM stops it (exit 1: one note got no verdict)"
check "$(grep -c '^COUNTERFEIT' "$W/desk.out")" 3 "desk: the terminal has the same 3 COUNTERFEIT"
NE_SERVER_PID=	# killed by the desk test

# ---- the line's page ----
ne_server_start || { echo "server did not restart"; exit 1; }
ne_chips 10 100 "$W/lchips" || exit 1
ne_provision "$W/lchips" >/dev/null 2>&1
check $? 0 "line: 10 more chips personalised and enrolled"
mkdir -p "$W/feed" "$W/line2"
echo 4 >"$W/line2/positions"
for i in 100 101 102 103; do mv "$W/lchips/NOTE000000000$i.chip"* "$W/feed/"; done
ne_batch 10 LN >"$W/line.csv"
port=$(free_port)
"$NE_STATION" issue --follow --ui "127.0.0.1:$port" --line "inproc:$W/line2" \
    --chips "$W/feed" --issuer-key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" \
    "${NE_CONN[@]}" --journal "$W/j-line.db" --batch "$W/line.csv" --json \
    >"$W/line.jsonl" 2>"$W/line.err" &
line=$!; pids+=("$line")
wait_for 20 grep -qs "ui: line page at http://127.0.0.1:$port/" "$W/line.err" ||
    { bad "line: no page announced"; cat "$W/line.err"; exit 1; }
LINE_URL=http://127.0.0.1:$port/ FEED=$W/feed MORE=$W/lchips JOURNAL=$W/j-line.db \
    SHOTS=$W "$PY" "$top/tests/browser/pages_test.py" line || fail=1
kill -TERM "$line"; wait "$line"
check $? 0 "line: SIGTERM stops it (exit 0: the whole batch issued)"
check "$(grep -c '"result":"issued"' "$W/line.jsonl")" 10 "line: 10 notes issued"
check "$(grep -c '"event":"hold","by":"page"' "$W/line.jsonl")" 1 "line: paused once from the page"
check "$(grep -c '"event":"release","by":"page"' "$W/line.jsonl")" 1 "line: resumed once from the page"

# ---- what the server refuses ----
"$NE_STATION" verify --follow --ui 192.0.2.1:8080 --line "$NE_LINE" --offline \
    --issuer-pub "$NE_ISSUER_PUB" >/dev/null 2>"$W/nonloop.err"
check $? 1 "a non-loopback --ui without a certificate is refused"
check "$(grep -c 'not a loopback address.*--ui-cert' "$W/nonloop.err")" 1 "... saying why and what to give"
"$NE_STATION" verify --ui 127.0.0.1:0 --line "$NE_LINE" --offline \
    --issuer-pub "$NE_ISSUER_PUB" >/dev/null 2>"$W/nofollow.err"
check $? 1 "--ui without --follow is refused"
# HTTPS (libmicrohttpd's TLS) with a certificate and key: what any
# non-loopback address needs; here on loopback so that the test binds no
# outside address
if command -v curl >/dev/null; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout "$W/ui-key.pem" -out "$W/ui-cert.pem" -days 1 -subj /CN=localhost 2>/dev/null
	"$NE_STATION" verify --follow --offline --ui 127.0.0.1:0 --ui-cert "$W/ui-cert.pem" \
	    --ui-key "$W/ui-key.pem" --line "$NE_LINE" --issuer-pub "$NE_ISSUER_PUB" \
	    >/dev/null 2>"$W/tls.err" &
	tls=$!; pids+=("$tls")
	wait_for 20 grep -qs 'desk page at https://' "$W/tls.err" || bad "https: no page announced"
	url=$(sed -n 's/.*page at \(https[^ ]*\)/\1/p' "$W/tls.err")
	curl -sk -D "$W/tls.hdr" -o "$W/tls.html" "$url"
	check "$(grep -c '^HTTP/1.1 200\|^Content-Security-Policy: default-src' "$W/tls.hdr")" 2 "https: the page over TLS, with its policy"
	curl -s -o /dev/null "${url/https:/http:}"
	[ $? != 0 ] && ok "https: no plain HTTP on that port" || bad "https: plain HTTP answered"
	kill "$tls"; wait "$tls"
fi
ls "$W"/*.png
exit $fail
