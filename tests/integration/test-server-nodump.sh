#!/usr/bin/env bash
# Threat model "read secrets from a core dump or ptrace" (BN-7, ID-12):
# mintline-server (network process) and its mintline-monitor (the HSM
# session) mark themselves non-dumpable (prctl(PR_SET_DUMPABLE, 0)) and
# set RLIMIT_CORE to 0.  The whole server is started as an unprivileged
# user (nobody, via setpriv, so no uid change inside the server resets
# the flag for it), then, as that same user:
#   - ptrace(PTRACE_ATTACH) of the server and of the monitor -> EPERM,
#   - open(/proc/PID/mem) of each -> EACCES,
# while both succeed against an ordinary process of that user (positive
# control: the same probe is allowed on a dumpable process).  As root:
# /proc/PID/mem of each is owned by root although the process runs as the
# user (the kernel's mark of a non-dumpable process), and "Max core file
# size" is 0.  Exit 77 (skipped) without root, setpriv, SoftHSM2, OpenSC.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/server-nodump
[ "$(id -u)" = 0 ] || { echo "skip: needs root to start the server as another user"; exit 77; }
command -v setpriv >/dev/null || exit 77
PY=/usr/bin/python3	# not a per-user shim the user cannot run
[ -x $PY ] || exit 77
RUNAS=${NODUMP_USER:-nobody}
getent passwd "$RUNAS" >/dev/null || exit 77
RUID=$(id -u "$RUNAS"); RGID=$(id -g "$RUNAS")
asuser() { setpriv --reuid="$RUID" --regid="$RGID" --clear-groups "$@"; }
# the user must reach the build tree (binaries, libraries)
asuser test -x "$B/server/mintline-server" || { echo "skip: $RUNAS cannot execute $B/server/mintline-server"; exit 77; }
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 2 || exit 77
CTRL_PID=
cleanup() { ne_server_stop; [ -n "$CTRL_PID" ] && kill "$CTRL_PID" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

ne_keys || { echo "key ceremony failed"; exit 1; }
ne_chips 2 || exit 1
chown -R "$RUID:$RGID" "$W"
# the server, whole, as the user
cat >"$W/srv-as-user" <<WRAP
#!/bin/sh
exec setpriv --reuid=$RUID --regid=$RGID --clear-groups "$NE_SRV" "\$@"
WRAP
chmod 755 "$W/srv-as-user"
NE_SRV=$W/srv-as-user
ne_server_start || { echo "server did not start"; cat "$W/server.log"; exit 1; }
SRV=$NE_SERVER_PID
MON=
for _ in $(seq 50); do
	MON=$(pgrep -P "$SRV" -f mintline-monitor | head -1)
	[ -n "$MON" ] && break
	sleep 0.1
done
[ -n "$MON" ] || { bad "no mintline-monitor under server $SRV"; exit 1; }
# positive control: an ordinary process of the same user
setpriv --reuid="$RUID" --regid="$RGID" --clear-groups sleep 300 &
CTRL_PID=$!
sleep 0.2

uid_of() { awk '/^Uid:/ {print $2}' "/proc/$1/status"; }
for p in "server:$SRV" "monitor:$MON" "control:$CTRL_PID"; do
	n=${p%%:*} pid=${p#*:}
	u=$(uid_of "$pid")
	[ "$u" = "$RUID" ] && ok "$n (pid $pid) runs as $RUNAS (uid $u)" || bad "$n runs as uid $u, want $RUID"
done

# the probe, as the user: ptrace attach and /proc/PID/mem
cat >"$W/probe.py" <<'PY'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
pid = int(sys.argv[1])
r = libc.ptrace(PTRACE_ATTACH, pid, None, None)
if r == 0:
    os.waitpid(pid, 0)
    libc.ptrace(PTRACE_DETACH, pid, None, None)
    pt = "ok"
else:
    pt = errno.errorcode.get(ctypes.get_errno(), "?")
try:
    os.close(os.open("/proc/%d/mem" % pid, os.O_RDONLY))
    mem = "ok"
except OSError as e:
    mem = errno.errorcode.get(e.errno, "?")
print(pt, mem)
PY
chmod 644 "$W/probe.py"
read -r pt mem < <(asuser $PY "$W/probe.py" "$CTRL_PID")
[ "$pt" = ok ] && ok "(control) $RUNAS can ptrace its own ordinary process" || bad "(control) ptrace of own process: $pt"
[ "$mem" = ok ] && ok "(control) $RUNAS can open /proc/PID/mem of its own ordinary process" || bad "(control) /proc/PID/mem of own process: $mem"
[ "$(stat -c %u "/proc/$CTRL_PID/mem")" = "$RUID" ] && ok "(control) /proc/PID/mem of a dumpable process owned by $RUNAS" || bad "(control) /proc/$CTRL_PID/mem owner $(stat -c %u "/proc/$CTRL_PID/mem")"
for p in "server:$SRV" "monitor:$MON"; do
	n=${p%%:*} pid=${p#*:}
	read -r pt mem < <(asuser $PY "$W/probe.py" "$pid")
	[ "$pt" = EPERM ] && ok "$n: ptrace attach by the same user refused (EPERM)" || bad "$n: ptrace attach by the same user: $pt"
	[ "$mem" = EACCES ] && ok "$n: /proc/PID/mem not readable by the same user (EACCES)" || bad "$n: /proc/PID/mem open by the same user: $mem"
	o=$(stat -c %u "/proc/$pid/mem")
	[ "$o" = 0 ] && ok "$n: /proc/PID/mem owned by root (non-dumpable)" || bad "$n: /proc/PID/mem owned by uid $o (dumpable)"
	c=$(awk '/^Max core file size/ {print $5 "/" $6}' "/proc/$pid/limits")
	[ "$c" = 0/0 ] && ok "$n: core file size limit 0 (soft/hard)" || bad "$n: core file size limit $c"
	kill -0 "$pid" 2>/dev/null && ok "$n still running after the probes" || bad "$n died"
done
# the server still serves (the probes did not disturb it): provision
# enrols the chip keys over the authenticated channel, the monitor signs
ne_provision "$W/chips" >"$W/provision.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "server and monitor serve after the probes (provision over the channel: exit 0)" || bad "provision after the probes: exit $rc ($(tail -2 "$W/provision.out"))"
exit $((fail != 0))
