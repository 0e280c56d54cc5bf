#!/usr/bin/env bash
# Errors name the object and the cause: mintline-station run with bad
# paths, bad values, a wrong reader-chip PIN and a server that refuses
# connections; each message must contain the path (or address, or reader
# position) and the errno text (or SW meaning, or PIN tries left).
#   part 1: files, values, the reader chip (no HSM needed);
#   part 2: a server that is not listening (SoftHSM2 keys; skipped, with
#           a note, when SoftHSM2 / OpenSC are missing).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
S=${MINTLINE_STATION:-$B/station/mintline-station}
FIXTURE=${IDREAD_FIXTURE:-$B/tests/integration/idread_fixture}
W=$B/tests/error-messages
rm -rf "$W"
mkdir -p "$W/line"
chmod 700 "$W"
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

# expect DESC WANT-RC NEEDLE... -- CMD...: exit status and every needle in
# stderr (fixed strings)
expect() {
	local desc=$1 want=$2 needles=() rc n
	shift 2
	while [ "$1" != "--" ]; do needles+=("$1"); shift; done
	shift
	"$@" >"$W/out" 2>"$W/err"
	rc=$?
	if [ "$rc" != "$want" ]; then
		bad "$desc: exit $rc, want $want"
		sed 's/^/    /' "$W/err" | head -5
		return
	fi
	for n in "${needles[@]}"; do
		if ! grep -qF -- "$n" "$W/err"; then
			bad "$desc: stderr lacks \"$n\""
			sed 's/^/    /' "$W/err" | head -5
			return
		fi
	done
	ok "$desc: $(grep -F -- "${needles[0]}" "$W/err" | head -1)"
}

# no_bare_io DESC: the last command's stderr has no "I/O error" without
# its object and cause
no_bare_io() {
	if grep -q ": I/O error$" "$W/err"; then
		bad "$1: a bare I/O error: $(grep ": I/O error$" "$W/err" | head -1)"
	fi
}

ENOENT="No such file or directory"
(umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$W/feature.key")
echo >>"$W/feature.key"
cp "$W/feature.key" "$W/open.key"
chmod 644 "$W/open.key"
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null |
    openssl ec -pubout -out "$W/issuer.pem" 2>/dev/null ||
    { echo "openssl cannot make a P-256 key"; exit 1; }
printf 'prefix,serial\n' >"$W/header-only.csv"
: >"$W/empty.csv"
printf '\xEF\xBB\xBFprefix,serial\r\nMX,00000001\r\n' >"$W/bom.csv"
DUMMY=(--server 127.0.0.1:1 --ca "$W/none.pem" --cert "$W/none.pem"
    --key "pkcs11:token=none;object=none")
issue() {
	"$S" issue --line "inproc:$W/line" --issuer-key "pkcs11:token=none" \
	    --journal "$W/journal.db" --no-progress "$@"
}

# ---- part 1: files and values ----
expect "--feature-key missing" 1 "/nope.key: $ENOENT" -- \
    issue --feature-key /nope.key "${DUMMY[@]}"
expect "--feature-key readable by others" 1 "$W/open.key" "mode 0644" "chmod 600" -- \
    issue --feature-key "$W/open.key" "${DUMMY[@]}"
(umask 077; echo "not a key" >"$W/text.key")
expect "--feature-key not a key" 1 "$W/text.key" "want 64 hex digits" -- \
    issue --feature-key "$W/text.key" "${DUMMY[@]}"
expect "--batch missing" 1 "batch: /nope.csv: $ENOENT" -- \
    issue --feature-key "$W/feature.key" --batch /nope.csv "${DUMMY[@]}"
mkdir -p "$W/batch-dir"
expect "--batch a directory" 1 "batch: $W/batch-dir: cannot read: Is a directory" -- \
    issue --feature-key "$W/feature.key" --batch "$W/batch-dir" "${DUMMY[@]}"
expect "--batch empty" 1 "$W/empty.csv: no notes in it" -- \
    issue --feature-key "$W/feature.key" --batch "$W/empty.csv" "${DUMMY[@]}"
expect "--batch with only a header" 1 "$W/header-only.csv: no notes in it" -- \
    issue --feature-key "$W/feature.key" --batch "$W/header-only.csv" "${DUMMY[@]}"
# a spreadsheet's BOM: the batch is read, the run goes on to the issuer key
expect "--batch with a UTF-8 BOM is read" 1 "issue: issuer key: pkcs11:token=none: no such token" -- \
    issue --feature-key "$W/feature.key" --batch "$W/bom.csv" "${DUMMY[@]}"
if grep -q "batch line" "$W/out"; then
	bad "BOM batch: a line was reported malformed: $(cat "$W/out")"
fi
expect "--journal in a missing directory" 1 "/nope-dir/j.db" "$ENOENT" -- \
    "$S" issue --line "inproc:$W/line" --issuer-key "pkcs11:token=none" \
    --feature-key "$W/feature.key" --batch "$W/bom.csv" \
    --journal /nope-dir/j.db "${DUMMY[@]}"
expect "--issuer-pub missing" 1 "issuer key 1: /nope.pem: $ENOENT" -- \
    "$S" verify --line "inproc:$W/line" --offline --issuer-pub /nope.pem
expect "--issuer-pub not a key" 1 "$W/empty.csv: not a PEM" -- \
    "$S" verify --line "inproc:$W/line" --offline --issuer-pub "$W/empty.csv"
ISS9=()
for i in 1 2 3 4 5 6 7 8 9; do ISS9+=(--issuer-pub "$W/issuer.pem"); done
expect "--issuer-pub over the limit" 1 "verify: at most 8 issuer keys" -- \
    "$S" verify --line "inproc:$W/line" --offline "${ISS9[@]}"
expect "--line directory missing" 1 "/nope-line: $ENOENT" -- \
    "$S" verify --line inproc:/nope-line --offline --issuer-pub "$W/issuer.pem"
expect "--line transport unknown" 1 "chip link 'usb:x'" "inproc:DIR" -- \
    "$S" verify --line usb:x --offline --issuer-pub "$W/issuer.pem"
expect "--line pcsc: without pcscd" 1 "pcscd: SCardEstablishContext: " "(0x8010001D)" -- \
    env PCSCLITE_CSOCK_NAME="$W/no-pcscd.sock" "$S" verify --line pcsc:x \
    --offline --issuer-pub "$W/issuer.pem"
expect "--server bare IPv6" 1 "'::1:7443'" "[v6-address]:port" -- \
    issue --feature-key "$W/feature.key" --server ::1:7443
expect "--server bad port" 1 "'[::1]:99999'" "1 to 65535" -- \
    issue --feature-key "$W/feature.key" --server '[::1]:99999'
expect "--workers out of range" 1 "--workers: '999'" "from 0 to 256" -- \
    issue --feature-key "$W/feature.key" --workers 999 "${DUMMY[@]}"
expect "--timeout not a number" 1 "--timeout: '10s'" -- \
    issue --feature-key "$W/feature.key" --timeout 10s "${DUMMY[@]}"

# ---- part 1: the server's registry file ----
echo "not a database, not at all" >"$W/not-a.db"
expect "server enroll: registry not a database" 1 "$W/not-a.db" "file is not a database" -- \
    "$B/server/mintline-server" enroll --registry "$W/not-a.db" --factory x /dev/null
# the top level's last line says it too, not a bare "I/O error"
if ! tail -1 "$W/err" | grep -qF "$W/not-a.db"; then
	bad "server enroll: the final message does not name the registry: $(tail -1 "$W/err")"
fi

expect "server show: a serial not enrolled" 1 "RDR-NOPE: no reader or station of that serial" -- \
    "$B/server/mintline-server" show --registry "$W/reg.db" RDR-NOPE

# ---- part 1: the tools ----
expect "mintline-ca issue: --pub missing" 1 "/nope.der: $ENOENT" -- \
    "$B/tools/mintline-ca" issue --dir "$W/no-ca" --role server --pub /nope.der --out "$W/o.pem"
expect "mintline-ca issue: --pub not a key" 1 "$W/empty.csv: not a P-256 public key" -- \
    "$B/tools/mintline-ca" issue --dir "$W/no-ca" --role server --pub "$W/empty.csv" --out "$W/o.pem"
expect "mintline-ca issue: no CA in --dir" 1 "$W/no-ca/root.key: $ENOENT" -- \
    "$B/tools/mintline-ca" issue --dir "$W/no-ca" --role server --pub "$W/issuer.pem" --out "$W/o.pem"
expect "mintline-mkchip: image in a missing directory" 1 "/nope-dir/x.chip.key: $ENOENT" -- \
    "$B/tools/mintline-mkchip" note NOTE1 /nope-dir/x.chip
no_bare_io "mintline-mkchip: image in a missing directory"
(umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$W/sam.key"; echo >>"$W/sam.key")
expect "mintline-mkidcard: image in a missing directory" 1 "/nope-dir/c.chip.key: $ENOENT" -- \
    "$B/tools/mintline-mkidcard" --sam-key "$W/sam.key" /nope-dir/c.chip
no_bare_io "mintline-mkidcard: image in a missing directory"

# ---- part 1: the reader chip (ID-card line) ----
if "$FIXTURE" init-reader "$W/line" multi >/dev/null 2>&1; then
	expect "--pin-source missing" 1 "pin-source /nonexist: $ENOENT" -- \
	    "$S" id-read --link "inproc:$W/line" --pin-source file:/nonexist \
	    "${DUMMY[@]:0:6}"
	expect "--pin-source env: unset" 1 "env:ML_NO_SUCH_PIN" "not set" -- \
	    env -u ML_NO_SUCH_PIN "$S" id-read --link "inproc:$W/line" \
	    --pin-source env:ML_NO_SUCH_PIN "${DUMMY[@]:0:6}"
	echo 00000000 >"$W/wrong.pin"
	expect "wrong reader PIN: tries left" 1 "PIN incorrect, " "tries left (SW 63C" "position 0" -- \
	    "$S" id-read --link "inproc:$W/line" --pin-source "file:$W/wrong.pin" \
	    "${DUMMY[@]:0:6}"
	# the right PIN (from an environment variable) resets the counter
	ML_TEST_READER_PIN=$(head -1 "$W/line/pin") \
	    expect "reader PIN from env: the run goes past the PIN" 1 "CA root" "$W/none.pem: $ENOENT" -- \
	    "$S" id-read --link "inproc:$W/line" --pin-source env:ML_TEST_READER_PIN \
	    "${DUMMY[@]:0:6}"
else
	bad "idread_fixture init-reader failed"
fi

# ---- part 2: a server that refuses connections ----
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W/ne" "$B" 2
rc=$?
if [ "$rc" = 77 ]; then
	echo "# part 2 skipped: no SoftHSM2 / OpenSC"
elif [ "$rc" != 0 ] || ! ne_keys || ! ne_chips 1; then
	bad "key ceremony for part 2"
else
	expect "handshake: server not listening" 1 \
	    "cannot connect to 127.0.0.1 port $NE_PORT: Connection refused" -- \
	    "$NE_STATION" handshake --kind station "${NE_CONN[@]}"
	expect "provision: server not listening" 1 \
	    "127.0.0.1 port $NE_PORT: Connection refused" -- ne_provision
	no_bare_io "provision: server not listening"
	expect "verify online: server not listening" 1 \
	    "127.0.0.1 port $NE_PORT: Connection refused" -- \
	    ne_verify_online --chips "$NE_WORK/chips"
	no_bare_io "verify online: server not listening"
	expect "--ca missing" 5 "CA root: /nope-ca.pem: $ENOENT" -- \
	    "$NE_STATION" handshake --kind station "${NE_CONN[@]}" --ca /nope-ca.pem
	expect "--cert missing" 1 "/nope-cert.pem: $ENOENT" -- \
	    "$NE_STATION" handshake --kind station "${NE_CONN[@]}" --cert /nope-cert.pem
	echo 0000 >"$W/wrong-hsm.pin"
	expect "issuer key: wrong PIN" 1 "token=mintline-station" "login refused" "$W/wrong-hsm.pin" -- \
	    "$NE_STATION" issue --line "$NE_LINE" --issuer-key \
	    "pkcs11:token=mintline-station;object=issuer;type=private?module-path=$NE_MODULE&pin-source=file:$W/wrong-hsm.pin" \
	    --feature-key "$NE_FKEY" "${NE_CONN[@]}" --journal "$W/j2.db" \
	    --batch "$W/bom.csv" --no-progress
	# server start-up
	srv() {
		timeout 20 "$NE_SRV" --ca "$NE_WORK/ca/root.pem" \
		    --cert "$NE_WORK/server.pem" --key "$NE_SERVER_KEY_HS" \
		    --module "$NE_MODULE" --registry "$W/srv-registry.db" "$@"
	}
	expect "server: --cert missing" 1 "certificate chain: /nope-srv.pem: $ENOENT" -- \
	    srv --listen "127.0.0.1:$NE_PORT" --cert /nope-srv.pem
	expect "server: registry in a missing directory" 1 "registry: /nope-dir/r.db" "$ENOENT" -- \
	    srv --listen "127.0.0.1:$NE_PORT" --registry /nope-dir/r.db
	expect "server: key pin-source missing" 1 "pin-source /nope-srv.pin: $ENOENT" -- \
	    srv --listen "127.0.0.1:$NE_PORT" \
	    --key "pkcs11:token=mintline-server;object=channel;type=private?pin-source=file:/nope-srv.pin"
	expect "server: a note-feature-key file missing" 1 \
	    "note-feature-key 2: /nope-f.key: $ENOENT" -- \
	    srv --listen "127.0.0.1:$NE_PORT" --note-issuers "$NE_ISSUER_PEM" \
	    --note-feature-key "$NE_FKEY /nope-f.key"
	python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
time.sleep(10)' "$NE_PORT" &
holder=$!
	sleep 0.5
	expect "server: port in use" 1 "cannot listen on 127.0.0.1:$NE_PORT: Address already in use" -- \
	    srv --listen "127.0.0.1:$NE_PORT"
	kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
	# the last line is the top level's: the listen error, not the SAM
	# warning (a handled failure) before it
	if ! tail -1 "$W/err" | grep -qF "cannot listen on 127.0.0.1:$NE_PORT"; then
		bad "server: the final message is not the listen error: $(tail -1 "$W/err")"
	fi
	expect "server: bare IPv6 listen address" 2 "'::1:$NE_PORT'" "brackets" -- \
	    srv --listen "::1:$NE_PORT"
	expect "key pin-source missing" 1 "pin-source /nope.pin: $ENOENT" -- \
	    "$NE_STATION" handshake --kind station "${NE_CONN[@]}" \
	    --key "pkcs11:token=mintline-station;object=channel?pin-source=file:/nope.pin"
fi

[ "$fail" = 0 ] && echo "# all messages name the object and the cause"
exit $((fail != 0))
