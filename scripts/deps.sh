#!/usr/bin/env bash
# Install the Debian 12 packages mintline builds and tests with, when any is
# missing (`--list` prints them instead).  Idempotent; uses sudo when not root.  Never touches running
# system services: tests start their own pcscd, SoftHSM2 tokens and
# PostgreSQL under the build tree.
set -Eeuo pipefail
trap 'err_rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] || printf "%s: line %s: %s: exit %s\n" "${BASH_SOURCE[0]##*/}" "$LINENO" "${BASH_COMMAND%%[[:cntrl:]]*}" "$err_rc" >&2' ERR

PKGS=(
	build-essential meson ninja-build pkg-config clang libclang-rt-dev
	libssl-dev openssl check valgrind gdb
	p11-kit libp11-kit-dev libp11-dev libengine-pkcs11-openssl
	opensc softhsm2
	pcscd libpcsclite-dev vsmartcard-vpcd pcsc-tools
	sqlite3 libsqlite3-dev libpq-dev postgresql
	python3 xxd
	libmicrohttpd-dev
	chromium chromium-driver python3-selenium
)

# `deps.sh --list`: the list, one line (.ci/run installs it with apt-get).
if [ "${1:-}" = --list ]; then
	echo "${PKGS[*]}"
	exit 0
fi

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# policy-rc.d keeps package scripts from starting system-wide daemons
# (pcscd, postgresql) on a fresh machine; we never use those instances.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
