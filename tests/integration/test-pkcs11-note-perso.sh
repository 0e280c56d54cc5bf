#!/bin/bash
#
# test-pkcs11-note-perso.sh: a blank banknote chip personalised with
# nothing but OpenSC pkcs11-tool against the mintline PKCS#11 module
# (docs/admin.md, "Personalising a note with pkcs11-tool"; the mappings are
# in docs/pkcs11.md, vendor extensions):
#
#   --init-token, --init-pin, --keypairgen EC:prime256v1 --label chip,
#   --write-object issuer.pub.der --type pubkey --label issuer (SO),
#   --write-object server.pub.der --type pubkey --label server (SO),
#   --write-object lock.txt --type data --application-label mintline-lock (SO)
#
# then proves it end to end with note_perso_check (the chip is locked; an
# AUTHORIZE WRITE by the installed issuer key is confirmed, one by another
# key is rejected; the sealed upload is signed by the chip key and opens
# with the server key), and that every personalisation mapping is refused
# once the note is locked.  A second note is personalised by the SO alone
# (no user PIN; the chip key generated in a SO session; two issuer keys).  Chips on the in-process line.  Exit 77 when
# pkcs11-tool or openssl is missing.

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${MINTLINE_BUILD_DIR:-$here/../../build}
MODULE=${MINTLINE_PKCS11_MODULE:-$build/pkcs11/mintline-pkcs11.so}
MKCHIP=${MINTLINE_MKCHIP:-$build/tools/mintline-mkchip}
CHECK=${NOTE_PERSO_CHECK:-$build/tests/integration/note_perso_check}

SO_PIN=87654321
PIN=123456
SERIAL=P11-PERSO-0001

# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

command -v pkcs11-tool >/dev/null || skip "pkcs11-tool (OpenSC) not installed"
command -v openssl >/dev/null || skip "openssl not installed"
for x in "$MODULE" "$MKCHIP" "$CHECK"; do
	[[ -e $x ]] || die "$x not built (set MINTLINE_BUILD_DIR)"
done

work=$build/tests/integration/pkcs11-note-perso
rm -rf "$work"
mkdir -p "$work/line" "$work/home" || die "cannot create $work"
export HOME=$work/home
unset XDG_CONFIG_HOME
export MINTLINE_PKCS11_CONF=$work/none.conf
cleanup() {
	work_cleanup "$work"
}
trap cleanup EXIT

"$MKCHIP" note "$SERIAL" "$work/note.img" || die "mkchip note"
ln -s "$work/note.img" "$work/line/pos-00"
echo 1 >"$work/line/positions"
export MINTLINE_PKCS11_TRANSPORT=inproc:$work/line

# Software issuer and server key pairs (the station's and the server's
# keys would be on tokens; only their public halves go to the chip).
for k in issuer server other k5; do
	openssl ecparam -name prime256v1 -genkey -noout -out "$work/$k.pem" &&
	openssl ec -in "$work/$k.pem" -pubout -outform DER \
	    -out "$work/$k.pub.der" 2>/dev/null || die "openssl $k key"
done
echo "mintline lock" >"$work/lock.txt"

p11() { pkcs11-tool --module "$MODULE" --slot-index 0 "$@"; }
so() { p11 --login --login-type so --so-pin "$SO_PIN" "$@"; }
run() {	# run NAME CMD...: pass if CMD succeeds
	local name=$1; shift
	if "$@" >"$work/out" 2>&1; then
		ok "$name"
	else
		bad "$name"; cat "$work/out" >&2
	fi
}
refused() {	# refused NAME CKR CMD...: pass if CMD fails with CKR
	local name=$1 ckr=$2; shift 2
	if "$@" >"$work/out" 2>&1; then
		bad "$name: accepted"
	elif grep -q "$ckr" "$work/out"; then
		ok "$name (${ckr//\\|/ or })"
	else
		bad "$name: not $ckr"; cat "$work/out" >&2
	fi
}

# ---- personalisation, pkcs11-tool only ----
run "init-token" p11 --init-token --label "note $SERIAL" --so-pin "$SO_PIN"
run "init-pin" so --init-pin --pin "$PIN"
# Before the chip key: LOCK is refused by the chip (nothing installed).
refused "lock before keys" "CKR_FUNCTION_FAILED" \
    so --write-object "$work/lock.txt" --type data \
    --application-label mintline-lock --label lock
# The issuer key needs the SO, not the user.
refused "issuer as user" "CKR_USER_NOT_LOGGED_IN" \
    p11 --login --pin "$PIN" --write-object "$work/issuer.pub.der" \
    --type pubkey --label issuer
run "keypairgen chip" p11 --login --pin "$PIN" --keypairgen \
    --key-type EC:prime256v1 --label chip --id 01
refused "second chip key" "CKR_FUNCTION_FAILED" \
    p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 \
    --label chip --id 02
run "write issuer (SO)" so --write-object "$work/issuer.pub.der" \
    --type pubkey --label issuer
run "write server (SO)" so --write-object "$work/server.pub.der" \
    --type pubkey --label server
run "lock (SO)" so --write-object "$work/lock.txt" --type data \
    --application-label mintline-lock --label lock

# ---- after LOCK every mapping is refused ----
refused "issuer after lock" "0x1b\|CKR_ACTION_PROHIBITED" \
    so --write-object "$work/other.pub.der" --type pubkey --label issuer
refused "server after lock" "0x1b\|CKR_ACTION_PROHIBITED" \
    so --write-object "$work/other.pub.der" --type pubkey --label server
refused "lock after lock" "0x1b\|CKR_ACTION_PROHIBITED" \
    so --write-object "$work/lock.txt" --type data \
    --application-label mintline-lock --label lock
refused "chip key after lock" "0x1b\|CKR_ACTION_PROHIBITED" \
    p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 \
    --label chip --id 03
# Nothing was stored for the installs: the token lists the chip key and
# the installed issuer key read back from the chip (GET DATA 04, "issuer
# 0", BN-4), never a server key or a lock object.
if p11 -O >"$work/out" 2>&1 && grep -q "label: *chip" "$work/out" &&
    [ "$(grep -c "label: *issuer" "$work/out")" = 1 ] &&
    grep -q "label: *issuer 0" "$work/out" &&
    ! grep -q "label: *server" "$work/out" &&
    ! grep -q "mintline-lock" "$work/out"; then
	ok "objects after personalisation: chip key and issuer 0"
else
	bad "objects after personalisation"; cat "$work/out" >&2
fi

# ---- a second note, SO only (no user PIN): the chip key made as SO ----
"$MKCHIP" note P11-PERSO-0002 "$work/note2.img" || die "mkchip note 2"
ln -s "$work/note2.img" "$work/line/pos-01"
echo 2 >"$work/line/positions"
p2() { pkcs11-tool --module "$MODULE" --slot-index 1 "$@"; }
so2() { p2 --login --login-type so --so-pin "$SO_PIN" "$@"; }
run "note 2: init-token" p2 --init-token --label "note 2" --so-pin "$SO_PIN"
if so2 --keypairgen --key-type EC:prime256v1 --label chip --id 01 \
    >"$work/out" 2>&1 && ! grep -qi "warning\|error" "$work/out" &&
    grep -q "Private Key Object" "$work/out"; then
	ok "note 2: keypairgen chip as SO"
else
	bad "note 2: keypairgen chip as SO"; cat "$work/out" >&2
fi
run "note 2: issuer 1" so2 --write-object "$work/issuer.pub.der" \
    --type pubkey --label issuer-1
refused "note 2: same issuer twice" "CKR_FUNCTION_FAILED" \
    so2 --write-object "$work/issuer.pub.der" --type pubkey --label issuer-1
run "note 2: issuer 2" so2 --write-object "$work/other.pub.der" \
    --type pubkey --label issuer-2
run "note 2: server" so2 --write-object "$work/server.pub.der" \
    --type pubkey --label server
run "note 2: lock" so2 --write-object "$work/lock.txt" --type data \
    --application-label mintline-lock --label lock

# ---- end to end: issuer authorises, server opens, chip key signs ----
run "note_perso_check" "$CHECK" "$work/note.img" "$work/issuer.pem" \
    "$work/server.pem" "$work/other.pem"
cat "$work/out"
# Note 2 has "other" installed as its second issuer: that one authorises.
run "note_perso_check (note 2)" "$CHECK" "$work/note2.img" \
    "$work/other.pem" "$work/server.pem" "$work/k5.pem"
cat "$work/out"

if [[ $fail -gt 0 ]]; then
	echo "$fail failure(s)" >&2
	exit 1
fi
echo "all passed"
