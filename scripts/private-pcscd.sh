#!/usr/bin/env bash
# private-pcscd.sh: a pcscd of your own with virtual (vpcd) readers, for
# trying PC/SC lines and readers without touching the system pcscd, its
# socket or real readers (docs/idcard.md, "A private pcscd").
#
#   scripts/private-pcscd.sh start DIR [N]   start pcscd with N (default 2)
#       vpcd readers; everything lives under DIR.  Prints the environment
#       to use it, as shell assignments (also written to DIR/env):
#         PCSCLITE_CSOCK_NAME   the private socket (PC/SC clients use it)
#         VPCD_PORT_i           TCP port of reader i (mintline-chip --port)
#         VPCD_READER_i         PC/SC name of reader i
#         PRIVATE_PCSCD_PID     the daemon
#   scripts/private-pcscd.sh stop DIR        stop it again
#
# Use:  eval "$(scripts/private-pcscd.sh start /tmp/pcsc 2)"
#
# Needs pcscd and the vpcd driver (Debian: pcscd, vsmartcard-vpcd), and
# either a mount namespace (root, or unprivileged user namespaces) or no
# system pcscd running.  The mechanics are those of the integration tests
# (tests/integration/pcsc-env.sh); exit 77 when it cannot run here.
set -Eeuo pipefail
trap 'err_rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] || printf "%s: line %s: %s: exit %s\n" "${BASH_SOURCE[0]##*/}" "$LINENO" "${BASH_COMMAND%%[[:cntrl:]]*}" "$err_rc" >&2' ERR

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/integration/pcsc-env.sh
. "$here/../tests/integration/pcsc-env.sh"

usage() {
	echo "usage: $0 start DIR [NREADERS] | stop DIR" >&2
	exit 2
}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
fi
[[ $# -ge 2 ]] || usage
cmd=$1
dir=$2
case $cmd in
start)
	n=${3:-2}
	pcsc_env_start "$dir" "$n" >&2
	dir=$(cd "$dir" && pwd)
	{
		echo "export PCSCLITE_CSOCK_NAME=$PCSCLITE_CSOCK_NAME"
		for ((i = 0; i < n; i++)); do
			p=VPCD_PORT_$i
			r=VPCD_READER_$i
			echo "export $p=${!p}"
			printf 'export %s=%q\n' "$r" "${!r}"
		done
		echo "export PRIVATE_PCSCD_PID=$PCSC_ENV_PID"
	} >"$dir/env"
	cat "$dir/env"
	;;
stop)
	[[ -r $dir/pcscd.pid ]] || {
		echo "$0: no $dir/pcscd.pid: nothing started there" >&2
		exit 1
	}
	PCSC_ENV_PID=$(cat "$dir/pcscd.pid")
	[[ $PCSC_ENV_PID =~ ^[0-9]+$ ]] || {
		echo "$0: $dir/pcscd.pid: not a process id" >&2
		exit 1
	}
	pcsc_env_stop
	rm -f "$dir/pcscd.pid"
	;;
*)
	usage
	;;
esac
