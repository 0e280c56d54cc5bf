#!/bin/bash
#
# test-pkcs11-tool.sh [inproc|pcsc]: the PKCS#11 module under real clients.
#
#   OpenSC pkcs11-tool	-I -L -T -M -O, --init-token, --init-pin,
#			--change-pin, --login, --keypairgen EC:prime256v1,
#			--sign/--verify (ECDSA, ECDSA-SHA256), --derive,
#			--write-object/--read-object/--delete-object (data,
#			certificate, public key), --generate-random, --test
#   p11-kit		list-modules from a .module file in a private
#			configuration directory, and the same calls through
#			p11-kit-proxy.so
#   libp11		openssl pkeyutl -engine pkcs11 signs with a chip key;
#			plain openssl verifies against the exported key
#   sharing		-L, --sign and --verify while another process (and
#			its forked child) holds a session and signs in a loop
#
# inproc: chips on an in-process line in the build tree.  pcsc: the same
# chips behind a private pcscd + vpcd (tests/integration/pcsc-env.sh).
# Exit 77 (skipped) when pkcs11-tool (or, for pcsc, pcscd/vpcd) is missing.
# Nothing outside the work directory is touched: HOME, OPENSSL_CONF and
# p11-kit's user configuration all point into it.

set -uo pipefail

mode=${1:-inproc}
here=$(cd "$(dirname "$0")" && pwd)
build=${MINTLINE_BUILD_DIR:-$here/../../build}
MODULE=${MINTLINE_PKCS11_MODULE:-$build/pkcs11/mintline-pkcs11.so}
MKCHIP=${MINTLINE_MKCHIP:-$build/tools/mintline-mkchip}
CHIP=${MINTLINE_CHIP:-$build/chip-applet/mintline-chip}
CHECK=${PCSC_LINK_CHECK:-$build/tests/integration/pcsc_link_check}
HOLD=${P11_HOLD:-$build/tests/integration/test_pkcs11_negative}

SO_PIN=87654321
PIN=123456
NEW_PIN=654321
R_SERIAL=P11-RDR-0001
N_SERIAL=P11-NOTE-0001

# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

command -v pkcs11-tool >/dev/null || skip "pkcs11-tool (OpenSC) not installed"
command -v openssl >/dev/null || skip "openssl not installed"
for x in "$MODULE" "$MKCHIP" "$HOLD"; do
	[[ -e $x ]] || die "$x not built (set MINTLINE_BUILD_DIR)"
done

work=$build/tests/integration/pkcs11-$mode
rm -rf "$work"
mkdir -p "$work/line" "$work/home" || die "cannot create $work"
export HOME=$work/home
unset XDG_CONFIG_HOME
export MINTLINE_PKCS11_CONF=$work/none.conf

cleanup() {
	if [[ $mode == pcsc ]]; then
		pcsc_env_cleanup
	fi
	work_cleanup "$work"
}
trap cleanup EXIT

"$MKCHIP" reader "$R_SERIAL" "$work/reader.img" || die "mkchip reader"
"$MKCHIP" note "$N_SERIAL" "$work/note.img" || die "mkchip note"

case $mode in
inproc)
	ln -s "$work/reader.img" "$work/line/pos-00"
	ln -s "$work/note.img" "$work/line/pos-01"
	echo 2 >"$work/line/positions"
	export MINTLINE_PKCS11_TRANSPORT=inproc:$work/line
	;;
pcsc)
	. "$here/pcsc-env.sh"
	pcsc_env_require
	[[ -x $CHIP && -x $CHECK ]] || die "mintline-chip / pcsc_link_check not built"
	pcsc_env_start "$work/pcsc" 2 || die "private pcscd did not start"
	"$CHIP" --port "$VPCD_PORT_0" "$work/reader.img" >>"$work/chip-0.log" 2>&1 &
	pcsc_env_track $!
	"$CHIP" --port "$VPCD_PORT_1" "$work/note.img" >>"$work/chip-1.log" 2>&1 &
	pcsc_env_track $!
	"$CHECK" wait "pcsc:$VPCD_READER_0" 0 present 15000 >/dev/null ||
	    die "reader chip never appeared"
	"$CHECK" wait "pcsc:$VPCD_READER_1" 0 present 15000 >/dev/null ||
	    die "note chip never appeared"
	export MINTLINE_PKCS11_TRANSPORT=pcsc:
	;;
*)
	die "unknown mode $mode"
	;;
esac

P="pkcs11-tool --module $MODULE"
# Token labels carry the fixed-width serial (prefix-free labels).
RT="--token-label reader"
NT="--token-label note"

t() {		# NAME COMMAND...: run, keep the output in $out
	local name=$1
	shift
	if out=$("$@" 2>&1); then
		ok "$name"
		return 0
	fi
	bad "$name"
	echo "$out" | sed 's/^/    | /' >&2
	return 1
}
expect() {	# NAME PATTERN: $out of the last t matches
	if grep -Eq -- "$2" <<<"$out"; then
		ok "$1"
	else
		bad "$1 (no /$2/)"
		echo "$out" | sed 's/^/    | /' >&2
	fi
}

# ---- discovery ----
t "-I" $P -I && expect "-I manufacturer" "Manufacturer +mintline"
# Blank chips show as "uninitialized" in -L; their details come after
# --init-token below.
t "-L" $P -L && {
	expect "-L slot 0" "Slot 0 \\(0x0\\)"
	expect "-L slot 1" "Slot 1 \\(0x1\\)"
	expect "-L blank chips" "token state: +uninitialized"
}
t "-M" $P $RT -M && {
	expect "-M ECDSA" "^ +ECDSA,"
	expect "-M ECDSA-SHA256" "ECDSA-SHA256"
	expect "-M ECDH" "ECDH1-DERIVE"
	expect "-M AES-GCM" "AES-GCM"
	expect "-M keygen" "ECDSA-KEY-PAIR-GEN"
}

# Configuration: a file naming the transports, and the line directory
# fallback (MINTLINE_PKCS11_TRANSPORT unset for these two).
if [[ $mode == inproc ]]; then
	printf '# test\ntransport inproc:%s\n\n' "$work/line" >"$work/pkcs11.conf"
	t "config file" env -u MINTLINE_PKCS11_TRANSPORT MINTLINE_PKCS11_CONF="$work/pkcs11.conf" $P -L &&
	    expect "config file: slot 1" "Slot 1 \\(0x1\\)"
	t "MINTLINE_LINE_DIR" env -u MINTLINE_PKCS11_TRANSPORT MINTLINE_LINE_DIR="$work/line" $P -L &&
	    expect "line dir: slot 1" "Slot 1 \\(0x1\\)"
fi

# Concurrent C_Initialize (NULL and with CKF_OS_LOCKING_OK) from threads.
t "--test-threads" $P --test-threads INGISLT0 --test-threads ILGISLT1 --test-threads INGISLT0 &&
    expect "--test-threads clean" "all threads have ended with CKR_OK"

# ---- token and PIN administration ----
t "--init-token" $P $RT --init-token --label "Reader A" --so-pin $SO_PIN
RT="--token-label Reader A"
t "--init-pin" $P --token-label "Reader A" --init-pin --so-pin $SO_PIN --pin $PIN
t "-T" $P -T && {
	expect "-T label" "token label +: Reader A $R_SERIAL"
	expect "-T model" "token model +: mintline reader"
	expect "-T serial" "serial num +: $R_SERIAL"
	expect "-T flags" "token flags +: .*PIN initialized"
}
t "--change-pin" $P --token-label "Reader A" --login --pin $PIN --change-pin --new-pin $NEW_PIN
if $P --token-label "Reader A" --login --pin 000000 -O >/dev/null 2>&1; then
	bad "wrong PIN accepted"
else
	ok "wrong PIN refused"
fi
t "-T after a wrong PIN" $P --token-label "Reader A" -T &&
    expect "PIN count low reported" "user PIN count low"
t "--login (resets the counter)" $P --token-label "Reader A" --login --pin $NEW_PIN -O
t "-T after login" $P --token-label "Reader A" -T
if grep -q "user PIN count low" <<<"$out"; then
	bad "PIN counter not reset by a good login"
else
	ok "PIN counter reset"
fi

L=(--token-label "Reader A" --login --pin "$NEW_PIN")
R=(--token-label "Reader A")

# ---- keys, signatures ----
t "--keypairgen" $P "${L[@]}" --keypairgen --key-type EC:prime256v1 --id 01 --label key1 &&
    expect "keypairgen object" "Private Key Object; EC"
t "-O" $P "${L[@]}" -O && {
	expect "-O private key" "Access: +sensitive, always sensitive, never extractable, local"
	expect "-O EC_POINT DER" "EC_POINT: +044104"
	expect "-O EC_PARAMS" "EC_PARAMS: +06082a8648ce3d030107"
}
head -c 1000 /dev/urandom >"$work/msg.bin"
openssl dgst -sha256 -binary "$work/msg.bin" >"$work/msg.sha256"
t "--read-object pubkey (generated)" $P "${R[@]}" --read-object --type pubkey --id 01 -o "$work/key1.der"
openssl pkey -pubin -inform DER -in "$work/key1.der" -out "$work/key1.pem" 2>/dev/null ||
    bad "exported public key is not a SubjectPublicKeyInfo"

t "--sign ECDSA-SHA256" $P "${L[@]}" --sign -m ECDSA-SHA256 --id 01 -i "$work/msg.bin" -o "$work/sig1.raw"
[[ $(stat -c %s "$work/sig1.raw" 2>/dev/null) == 64 ]] && ok "raw r||s is 64 bytes" ||
    bad "ECDSA signature is not raw r||s"
t "--verify ECDSA-SHA256" $P "${R[@]}" --verify -m ECDSA-SHA256 --id 01 -i "$work/msg.bin" --signature-file "$work/sig1.raw" &&
    expect "verify ECDSA-SHA256 valid" "Signature is valid"
t "--sign ECDSA (openssl format)" $P "${L[@]}" --sign -m ECDSA --id 01 -i "$work/msg.sha256" -o "$work/sig2.der" --signature-format openssl
t "openssl verifies the chip's ECDSA" openssl pkeyutl -verify -pubin -inkey "$work/key1.pem" -in "$work/msg.sha256" -sigfile "$work/sig2.der"
t "--sign ECDSA raw" $P "${L[@]}" --sign -m ECDSA --id 01 -i "$work/msg.sha256" -o "$work/sig3.raw"
t "--verify ECDSA" $P "${R[@]}" --verify -m ECDSA --id 01 -i "$work/msg.sha256" --signature-file "$work/sig3.raw" &&
    expect "verify ECDSA valid" "Signature is valid"

# ---- one chip, several processes (OP-3) ----
# One process holds a logged-in session and signs in a loop (and forks a
# child that initialises the module and signs too) while pkcs11-tool -L
# and --sign run against the same chip.
rm -f "$work/hold.ready" "$work/hold.stop"
"$HOLD" "$MODULE" hold "Reader A" "$NEW_PIN" key1 "$work/hold.ready" \
    "$work/hold.stop" >"$work/hold.log" 2>&1 &
holdpid=$!
for _ in $(seq 100); do
	[[ -e $work/hold.ready ]] && break
	kill -0 $holdpid 2>/dev/null || break
	sleep 0.1
done
[[ -e $work/hold.ready ]] && ok "shared: a process holds a session and signs" ||
    bad "shared: the holding process never signed ($(cat "$work/hold.log"))"
t "shared: -L beside it" $P -L && expect "shared: -L shows the token" "token label +: Reader A"
if [[ $mode == pcsc ]]; then
	# Another client resets the card twice: the holder re-selects and
	# logs in again with the PIN its session keeps (SCARD_W_RESET_CARD).
	t "shared: card reset by another client" "$CHECK" reset "$VPCD_READER_0" &&
	    sleep 0.3 &&
	    t "shared: second reset" "$CHECK" reset "$VPCD_READER_0"
fi
t "shared: --sign beside it" $P "${L[@]}" --sign -m ECDSA-SHA256 --id 01 -i "$work/msg.bin" -o "$work/sig5.raw"
t "shared: --verify beside it" $P "${R[@]}" --verify -m ECDSA-SHA256 --id 01 -i "$work/msg.bin" --signature-file "$work/sig5.raw" &&
    expect "shared: signature valid" "Signature is valid"
sleep 0.5
touch "$work/hold.stop"
if wait $holdpid; then
	ok "shared: the holder and its forked child signed throughout ($(tail -1 "$work/hold.log"))"
else
	bad "shared: the holder or its child failed"
	sed 's/^/    | /' "$work/hold.log" >&2
fi

printf 'x' | dd of="$work/sig3.raw" bs=1 seek=10 conv=notrunc 2>/dev/null
if $P "${R[@]}" --verify -m ECDSA --id 01 -i "$work/msg.sha256" --signature-file "$work/sig3.raw" 2>&1 | grep -q "Signature is valid"; then
	bad "tampered signature verified"
else
	ok "tampered signature refused"
fi

# ---- ECDH ----
openssl ecparam -name prime256v1 -genkey -noout -out "$work/peer.pem" 2>/dev/null
openssl pkey -in "$work/peer.pem" -pubout -outform DER -out "$work/peer.der" 2>/dev/null
t "--derive ECDH1-DERIVE" $P "${L[@]}" --derive -m ECDH1-DERIVE --id 01 --input-file "$work/peer.der" --output-file "$work/z1.bin"
openssl pkeyutl -derive -inkey "$work/peer.pem" -peerkey "$work/key1.pem" -out "$work/z2.bin" 2>/dev/null
cmp -s "$work/z1.bin" "$work/z2.bin" && ok "ECDH secret matches openssl" ||
    bad "ECDH secret differs from openssl's"

# ---- objects ----
printf 'feature info for a test' >"$work/data.bin"
t "--write-object data" $P "${L[@]}" --write-object "$work/data.bin" --type data --label data1 --application-label mintline-test
t "--read-object data" $P "${L[@]}" --read-object --type data --label data1 -o "$work/data2.bin"
cmp -s "$work/data.bin" "$work/data2.bin" && ok "data object round trip" || bad "data object differs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/c.key" -out "$work/c.pem" -subj /CN=mintline-test -days 1 2>/dev/null
openssl x509 -in "$work/c.pem" -outform DER -out "$work/c.der"
t "--write-object cert" $P "${L[@]}" --write-object "$work/c.der" --type cert --id 02 --label cert2
t "--read-object cert" $P "${R[@]}" --read-object --type cert --id 02 -o "$work/c2.der"
cmp -s "$work/c.der" "$work/c2.der" && ok "certificate round trip" || bad "certificate differs"
t "-O cert subject" $P "${R[@]}" -O --type cert && expect "certificate subject derived" "subject: +DN: CN=mintline-test"
openssl pkey -in "$work/c.key" -pubout -outform DER -out "$work/cpub.der" 2>/dev/null
t "--write-object pubkey" $P "${L[@]}" --write-object "$work/cpub.der" --type pubkey --id 03 --label pub3
t "--read-object pubkey" $P "${R[@]}" --read-object --type pubkey --id 03 -o "$work/cpub2.der"
cmp -s "$work/cpub.der" "$work/cpub2.der" && ok "public key round trip" || bad "public key differs"
for spec in "data --label data1" "cert --id 02" "pubkey --id 03"; do
	# shellcheck disable=SC2086
	t "--delete-object $spec" $P "${L[@]}" --delete-object --type $spec
done
t "-O after deletes" $P "${L[@]}" -O
if grep -Eq "data1|cert2|pub3" <<<"$out"; then
	bad "deleted objects still listed"
else
	ok "deleted objects gone"
fi

# ---- random, self test ----
t "--generate-random" $P "${R[@]}" --generate-random 1000 -o "$work/rnd.bin"
[[ $(stat -c %s "$work/rnd.bin" 2>/dev/null) == 1000 ]] && ok "1000 random bytes" || bad "random size"
t "--test" $P "${L[@]}" --test && expect "--test clean" "No errors"

# ---- the note token ----
t "note --init-token" $P $NT --init-token --label "Note" --so-pin $SO_PIN
t "note --init-pin" $P --token-label "Note" --init-pin --so-pin $SO_PIN --pin $PIN
t "note -T" $P -T && {
	expect "note model" "token model +: mintline note"
	expect "note label" "token label +: Note $N_SERIAL"
}
t "note -O" $P --token-label "Note" --login --pin $PIN -O
t "note -M" $P --token-label "Note" -M && expect "note vendor mechanism" "mechtype-0xCD4C0001|0xcd4c0001"

# ---- p11-kit ----
if command -v p11-kit >/dev/null; then
	mkdir -p "$HOME/.config/pkcs11/modules"
	# The .module file meson installs (install tag "pkcs11", into a
	# private DESTDIR), with its module path pointed at that copy.
	inst=$work/inst
	modfile=
	if command -v meson >/dev/null &&
	    meson install -C "$build" --no-rebuild --tags pkcs11 \
	    --destdir "$inst" >"$work/install.log" 2>&1; then
		modfile=$(find "$inst" -name mintline.module | head -1)
	fi
	if [[ -n $modfile ]]; then
		instso=$(find "$inst" -name mintline-pkcs11.so | head -1)
		grep -q "^module: .*mintline-pkcs11.so" "$modfile" &&
		    ok "installed mintline.module names the module" ||
		    bad "installed mintline.module has no module: line"
		sed "s|^module: .*|module: $instso|" "$modfile" \
		    >"$HOME/.config/pkcs11/modules/mintline.module"
	else
		echo "note: meson install --tags pkcs11 failed; using a written .module"
		echo "module: $MODULE" >"$HOME/.config/pkcs11/modules/mintline.module"
	fi
	# p11-kit reads user configuration only for a non-root caller: as
	# root, run the p11-kit parts in a user namespace (uid "nobody").
	asuser=()
	if [[ $(id -u) == 0 ]]; then
		if unshare --user true 2>/dev/null; then
			asuser=(unshare --user)
		else
			asuser=(skip)
		fi
	fi
	if [[ ${asuser[0]:-} == skip ]]; then
		echo "note: cannot leave root for p11-kit's user configuration; p11-kit checks skipped"
	else
	t "p11-kit list-modules" "${asuser[@]}" p11-kit list-modules && {
		expect "p11-kit sees the module" "mintline-pkcs11|mintline"
		expect "p11-kit sees the token" "model: +mintline reader"
	}
	proxy=$(pkg-config --variable=proxy_module p11-kit-1 2>/dev/null)
	[[ -e $proxy ]] || proxy=/usr/lib/$(gcc -print-multiarch 2>/dev/null)/p11-kit-proxy.so
	if [[ -e $proxy ]]; then
		PP="${asuser[*]} pkcs11-tool --module $proxy"
		t "proxy -L" $PP -L && expect "proxy lists the token" "Reader A $R_SERIAL"
		t "proxy --sign" $PP "${L[@]}" --sign -m ECDSA-SHA256 --id 01 -i "$work/msg.bin" -o "$work/sig4.raw"
		t "proxy --verify" $PP "${R[@]}" --verify -m ECDSA-SHA256 --id 01 -i "$work/msg.bin" --signature-file "$work/sig4.raw" &&
		    expect "proxy verify valid" "Signature is valid"
		t "proxy --derive" $PP "${L[@]}" --derive -m ECDH1-DERIVE --id 01 --input-file "$work/peer.der" --output-file "$work/z3.bin"
		cmp -s "$work/z3.bin" "$work/z2.bin" && ok "proxy ECDH matches" || bad "proxy ECDH differs"
	else
		echo "note: p11-kit-proxy.so not found; proxy checks skipped"
	fi
	fi
	rm -f "$HOME/.config/pkcs11/modules/mintline.module"
else
	echo "note: p11-kit not installed; p11-kit checks skipped"
fi

# ---- libp11 (OpenSSL engine) ----
engine=$(ls /usr/lib/*/engines-3/pkcs11.so /usr/lib/engines-3/pkcs11.so 2>/dev/null | head -1)
if [[ -n $engine ]]; then
	cat >"$work/openssl.cnf" <<-EOF
	openssl_conf = openssl_init
	[openssl_init]
	engines = engine_section
	[engine_section]
	pkcs11 = pkcs11_section
	[pkcs11_section]
	engine_id = pkcs11
	dynamic_path = $engine
	MODULE_PATH = $MODULE
	init = 0
	EOF
	uri="pkcs11:token=Reader%20A%20$R_SERIAL;object=key1;type=private?pin-value=$NEW_PIN"
	if out=$(env OPENSSL_CONF="$work/openssl.cnf" openssl pkeyutl -engine pkcs11 -keyform engine \
	    -inkey "$uri" -sign -in "$work/msg.sha256" -out "$work/sig5.der" 2>&1); then
		ok "libp11 pkeyutl -sign"
		t "openssl verifies the libp11 signature" openssl pkeyutl -verify -pubin -inkey "$work/key1.pem" \
		    -in "$work/msg.sha256" -sigfile "$work/sig5.der"
	elif grep -q "Unable to load module" <<<"$out" && [[ -z ${MINTLINE_P11_STRICT:-} ]]; then
		# Known: with the pkcs11 ENGINE as the process default for EC,
		# common/ml_ossl's EVP_PKEY_CTX_new_from_name(libctx, "EC") is
		# routed to the ENGINE and ml_ossl_init() fails (docs/pkcs11.md,
		# "Known issues").  Reported, not counted; MINTLINE_P11_STRICT=1
		# counts it.
		echo "XFAIL: libp11 pkeyutl -sign: module C_Initialize fails under an ENGINE default (known issue)"
	else
		bad "libp11 pkeyutl -sign"
		echo "$out" | sed 's/^/    | /' >&2
	fi
else
	echo "note: libp11 engine not installed; libp11 checks skipped"
fi

# An ID card (locked at manufacture, no INIT TOKEN) is an initialised
# token, not "uninitialized", in -L: on its own in-process line.
MKIDCARD=${MINTLINE_MKIDCARD:-$build/tools/mintline-mkidcard}
if [[ $mode == inproc && -x $MKIDCARD ]]; then
	mkdir -p "$work/idline"
	"$MKIDCARD" --sam-key "$work/sam.key" "$work/idcard.img" >/dev/null 2>&1 ||
	    die "mkidcard"
	ln -s "$work/idcard.img" "$work/idline/pos-00"
	echo 1 >"$work/idline/positions"
	MINTLINE_PKCS11_TRANSPORT=inproc:$work/idline t "-L ID card" $P -L && {
		expect "-L ID card: token initialized" "token flags +:.*token initialized"
		if echo "$out" | grep -q "token state: +uninitialized"; then
			bad "-L ID card: shown as uninitialized"
		else
			ok "-L ID card: not shown as uninitialized"
		fi
	}
fi

echo "$fail failure(s)"
[[ $fail -eq 0 ]]
