# shellcheck shell=bash
#
# pcsc-env.sh: a private pcscd with vpcd readers, for integration tests.
# Source it from bash; it never touches the system pcscd, its socket or its
# readers.
#
#   pcsc_env_require		exit 77 (meson: skipped) unless pcscd, the
#				vpcd driver and a way to isolate pcscd exist
#   pcsc_env_start DIR N	start pcscd with N vpcd readers; everything
#				lives under DIR.  The ports are picked at
#				random unless PCSC_ENV_PORT_BASE is set (to
#				restart on the ports of an earlier start).
#				Exports:
#				  PCSCLITE_CSOCK_NAME  the private socket
#				  VPCD_PORT_i          TCP port of reader i
#				  VPCD_READER_i        PC/SC name of reader i
#				  PCSC_ENV_PORT_FIRST  the first vpcd port
#				  PCSC_ENV_PID, PCSC_ENV_MODE
#   pcsc_env_track PID		stop PID too in pcsc_env_cleanup
#   pcsc_chip_insert [-n] READER IMAGE [CHIP-ARGS...]
#				present the chip image IMAGE in vpcd reader
#				READER: a $CHIP (mintline-chip) process on
#				its port, CHIP-ARGS before the image (such as
#				--latency FILE), stderr to DIR/chip.log; then
#				wait (15 s, $CHECK = pcsc_link_check) until
#				the reader sees it, unless -n.  Status 1 with
#				a message when it does not (a failed check,
#				`bad`, when check-lib.sh is loaded).  The
#				process id is PCSC_CHIP_PID[READER].
#   pcsc_chip_remove READER [SIGNAL]
#				take the chip out: stop its process (TERM, or
#				SIGNAL) and wait until the reader sees no
#				chip.  Status 1 with a message (`bad`, as
#				above) when it still does; 0 at once when no
#				chip is in READER.
#   pcsc_env_stop		stop pcscd
#   pcsc_env_cleanup		stop the chips, tracked processes and pcscd;
#				idempotent, for `trap pcsc_env_cleanup EXIT`
#
# The chip helpers need CHIP (the mintline-chip program) and CHECK (the
# pcsc_link_check program) set by the caller; each test keeps one home for
# inserting and removing chips here (OP-3: chips come and go on a line).
#
# How pcscd is kept private.  pcsc-lite 1.9.9 clients (libpcsclite) honour
# PCSCLITE_CSOCK_NAME, but the 1.9.9 daemon does not: it always creates
# /run/pcscd/pcscd.comm and /run/pcscd/pcscd.pid and scans the USB drivers
# directory for hot-plugged readers.  So the daemon runs in its own mount
# namespace (unshare; as root a plain one, otherwise a user namespace) where
#   - /run is a fresh tmpfs and DIR/run is bind-mounted on /run/pcscd, so the
#     socket and pid file land in DIR/run and nowhere else;
#   - the USB drivers directory is an empty tmpfs, so no real reader is
#     claimed.
# Where namespaces are not allowed (an unprivileged container), it falls
# back to systemd socket activation: systemd-socket-activate listens on
# DIR/run/pcscd.comm and, at the first connection (we make one), execs
# pcscd with the socket (sd_listen_fds), which then never touches
# /run/pcscd/pcscd.comm.  It still writes
# /run/pcscd/pcscd.pid, so the fallback is used only when no system pcscd
# is there (no /run/pcscd/pcscd.comm); otherwise the test is skipped.
#
# vpcd.  One reader.conf entry of the vpcd driver makes as many PC/SC
# readers as the driver has slots (vicc_max_slots: 2 in Debian's build),
# slot j listening on TCP port BASE+j, BASE being the number after ':' in
# DEVICENAME.  The driver keeps its per-slot state in static arrays indexed
# by slot only, so two entries loaded from the same .so would share it; each
# entry therefore loads its own copy of the driver (a different file is a
# different dlopen()).  The ports are picked free, consecutive, at random.

PCSC_ENV_PIDS=()
declare -gA PCSC_CHIP_PID=()
PCSC_ENV_PID=
PCSC_ENV_DIR=
_PCSC_RMDIR_RUN=

_pcsc_log() {
	echo "pcsc-env: $*" >&2
}

# A chip that does not come or go: a failed check of the test when it
# reports through check-lib.sh, else a log line.
_pcsc_chip_bad() {
	if declare -F bad >/dev/null; then
		bad "$*"
	else
		_pcsc_log "$*"
	fi
}

_pcsc_skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# The vpcd driver shipped with the system (path on stdout).
_pcsc_vpcd_driver() {
	local f
	if [[ -n ${VPCD_DRIVER:-} ]]; then
		[[ -r $VPCD_DRIVER ]] && echo "$VPCD_DRIVER"
		return
	fi
	if [[ -r /etc/reader.conf.d/vpcd ]]; then
		f=$(awk '$1 == "LIBPATH" { print $2; exit }' /etc/reader.conf.d/vpcd)
		if [[ -n $f && -r $f ]]; then
			echo "$f"
			return
		fi
	fi
	for f in /usr/lib/pcsc/drivers/serial/libifdvpcd.so* \
	    /usr/lib/*/pcsc/drivers/serial/libifdvpcd.so* \
	    /usr/local/lib/pcsc/drivers/serial/libifdvpcd.so*; do
		if [[ -r $f ]]; then
			echo "$f"
			return
		fi
	done
}

# Slots per vpcd reader entry: the driver's exported vicc_max_slots byte
# (read from the ELF file: the driver cannot be dlopen()ed outside pcscd),
# else 2.
_pcsc_vpcd_slots() {
	local n
	n=$(python3 - "$1" 2>/dev/null <<'EOF'
import struct, sys
d = open(sys.argv[1], 'rb').read()
if d[:4] != b'\x7fELF':
    sys.exit(1)
b64 = d[4] == 2
e = '<' if d[5] == 1 else '>'
if b64:
    shoff, = struct.unpack_from(e + 'Q', d, 0x28)
    shentsize, shnum = struct.unpack_from(e + 'HH', d, 0x3A)
    shfmt, symfmt, symsize = e + 'IIQQQQIIQQ', e + 'IBBHQQ', 24
else:
    shoff, = struct.unpack_from(e + 'I', d, 0x20)
    shentsize, shnum = struct.unpack_from(e + 'HH', d, 0x2E)
    shfmt, symfmt, symsize = e + 'IIIIIIIIII', e + 'IIIBBH', 16
# section: name type flags addr offset size link info align entsize
secs = [struct.unpack_from(shfmt, d, shoff + i * shentsize)
        for i in range(shnum)]
for s in secs:
    if s[1] != 11:  # SHT_DYNSYM
        continue
    strtab = secs[s[6]]
    for k in range(s[5] // symsize):
        f = struct.unpack_from(symfmt, d, s[4] + k * symsize)
        name, shndx, value = (f[0], f[3], f[4]) if b64 else (f[0], f[5], f[1])
        start = strtab[4] + name
        if d[start:d.index(b'\0', start)] != b'vicc_max_slots':
            continue
        if 0 < shndx < len(secs):
            t = secs[shndx]
            print(d[value - t[3] + t[4]])
            sys.exit(0)
sys.exit(1)
EOF
	)
	if [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 16 ]]; then
		echo "$n"
	else
		echo 2
	fi
}

# How pcscd can be isolated here: ns-root, ns-user, sockact or nothing.
_pcsc_isolation() {
	if [[ ${PCSC_ENV_FORCE_MODE:-} ]]; then
		echo "$PCSC_ENV_FORCE_MODE"
		return
	fi
	if command -v unshare >/dev/null; then
		if [[ $(id -u) == 0 ]] &&
		    unshare --mount --propagation private true 2>/dev/null; then
			echo ns-root
			return
		fi
		if unshare --user --map-root-user --mount --propagation private \
		    true 2>/dev/null; then
			echo ns-user
			return
		fi
	fi
	if command -v systemd-socket-activate >/dev/null &&
	    [[ ! -e /run/pcscd/pcscd.comm ]] &&
	    { [[ -w /run/pcscd ]] || [[ ! -e /run/pcscd && -w /run ]]; }; then
		echo sockact
		return
	fi
	echo none
}

pcsc_env_require() {
	PCSCD=${PCSCD:-$(command -v pcscd || echo /usr/sbin/pcscd)}
	[[ -x $PCSCD ]] || _pcsc_skip "pcscd not installed"
	[[ -n $(_pcsc_vpcd_driver) ]] ||
	    _pcsc_skip "vpcd driver (vsmartcard-vpcd) not installed"
	command -v python3 >/dev/null || _pcsc_skip "python3 not found"
	[[ $(_pcsc_isolation) != none ]] ||
	    _pcsc_skip "cannot run a private pcscd here (no mount namespace," \
	    "and a system pcscd socket exists or /run is not writable)"
}

# N consecutive TCP ports that vpcd can bind (INADDR_ANY, SO_REUSEADDR, as
# vpcd does), starting at $2 if given, else at random.
_pcsc_free_ports() {
	python3 - "$1" "${2:-}" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
fixed = int(sys.argv[2]) if sys.argv[2] else None
rng = random.SystemRandom()
for _ in range(1 if fixed else 500):
    base = fixed or rng.randrange(20000, 60000 - n)
    held = []
    try:
        for p in range(base, base + n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", p))
    except OSError:
        continue
    finally:
        for s in held:
            s.close()
    print(base)
    sys.exit(0)
sys.exit(1)
EOF
}

_pcsc_wait_for() {	# TIMEOUT_S COMMAND...: poll every 0.1 s
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 0.1
	done
}

_pcsc_listening() {	# PORT...
	local p
	command -v ss >/dev/null || return 0
	for p in "$@"; do
		[[ -n $(ss -Hltn "sport = :$p" 2>/dev/null) ]] || return 1
	done
}

pcsc_env_start() {
	local dir=$1 n=$2 drv slots entries base k j i ports=() mode opts usbdir

	[[ -n $dir && $n =~ ^[0-9]+$ && $n -ge 1 ]] || {
		_pcsc_log "usage: pcsc_env_start DIR NREADERS"
		return 2
	}
	pcsc_env_require
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd)
	PCSC_ENV_DIR=$dir
	rm -rf "$dir/run" "$dir/reader.conf.d" "$dir/drivers"
	mkdir -p "$dir/run" "$dir/reader.conf.d" "$dir/drivers"

	drv=$(_pcsc_vpcd_driver)
	slots=$(_pcsc_vpcd_slots "$drv")
	entries=$(((n + slots - 1) / slots))
	base=$(_pcsc_free_ports $((entries * slots)) "${PCSC_ENV_PORT_BASE:-}") || {
		_pcsc_log "no free TCP ports${PCSC_ENV_PORT_BASE:+ at $PCSC_ENV_PORT_BASE}"
		return 1
	}
	: >"$dir/reader.conf.d/mintline-vpcd"
	for ((k = 0; k < entries; k++)); do
		cp "$drv" "$dir/drivers/libifdvpcd-$k.so"
		cat >>"$dir/reader.conf.d/mintline-vpcd" <<-EOF
			FRIENDLYNAME "mintline-vpcd-$k"
			DEVICENAME   /dev/null:$((base + k * slots))
			LIBPATH      $dir/drivers/libifdvpcd-$k.so
			CHANNELID    $((base + k * slots))

		EOF
		for ((j = 0; j < slots; j++)); do
			i=$((k * slots + j))
			ports+=($((base + i)))
			((i < n)) || continue
			export "VPCD_PORT_$i=$((base + i))"
			export "VPCD_READER_$i=$(printf 'mintline-vpcd-%d 00 %02X' "$k" "$j")"
		done
	done

	opts=(--foreground)
	if [[ ${PCSC_ENV_DEBUG:-} ]]; then
		opts+=(--debug --apdu)
	else
		opts+=(--info)
	fi
	# pcsc-lite 2.x with polkit refuses unprivileged clients by default.
	if "$PCSCD" --help 2>&1 | grep -q -- --disable-polkit; then
		opts+=(--disable-polkit)
	fi
	opts+=(--config "$dir/reader.conf.d")
	usbdir=$("$PCSCD" --version 2>/dev/null |
	    sed -n 's/.*usbdropdir=\([^ ]*\).*/\1/p')
	usbdir=${usbdir:-/usr/lib/pcsc/drivers}

	mode=$(_pcsc_isolation)
	PCSC_ENV_MODE=$mode
	export PCSCLITE_CSOCK_NAME=$dir/run/pcscd.comm
	case $mode in
	ns-root | ns-user)
		local ns=(unshare --mount --propagation private)
		[[ $mode == ns-user ]] &&
		    ns=(unshare --user --map-root-user --mount --propagation private)
		# No fork anywhere: $! is pcscd itself.
		# shellcheck disable=SC2016 # expanded by the inner sh
		"${ns[@]}" -- /bin/sh -c '
			set -e
			mount -t tmpfs -o mode=0755 mintline-run /run
			mkdir /run/pcscd
			mount --bind "$1" /run/pcscd
			if [ -d "$2" ]; then
				mount -t tmpfs -o mode=0755 mintline-nousb "$2"
			fi
			shift 2
			exec "$@"' sh "$dir/run" "$usbdir" "$PCSCD" "${opts[@]}" \
		    >"$dir/pcscd.log" 2>&1 &
		;;
	sockact)
		# pcscd will mkdir /run/pcscd for its pid file; if it was
		# not there before, take it away again in pcsc_env_stop.
		[[ -e /run/pcscd ]] || _PCSC_RMDIR_RUN=1
		systemd-socket-activate --listen="$dir/run/pcscd.comm" \
		    "$PCSCD" "${opts[@]}" >"$dir/pcscd.log" 2>&1 &
		;;
	*)
		_pcsc_skip "cannot isolate pcscd"
		;;
	esac
	PCSC_ENV_PID=$!
	echo "$PCSC_ENV_PID" >"$dir/pcscd.pid"

	# The socket appears after the readers are loaded; then their ports
	# must be listening.
	if _pcsc_wait_for 15 test -S "$dir/run/pcscd.comm" &&
	    [[ $mode == sockact ]]; then
		# systemd-socket-activate execs pcscd at the first connection.
		python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()' \
		    "$dir/run/pcscd.comm" 2>/dev/null
	fi
	if ! _pcsc_wait_for 15 test -S "$dir/run/pcscd.comm" ||
	    ! _pcsc_wait_for 5 _pcsc_listening "${ports[@]}"; then
		_pcsc_log "pcscd did not come up; log:"
		sed 's/^/  | /' "$dir/pcscd.log" >&2
		pcsc_env_stop
		return 1
	fi
	export PCSC_ENV_PID PCSC_ENV_MODE PCSC_ENV_DIR
	export PCSC_ENV_PORT_FIRST=$base
	_pcsc_log "pcscd $PCSC_ENV_PID ($mode), socket $PCSCLITE_CSOCK_NAME," \
	    "vpcd ports $base..$((base + entries * slots - 1))"
}

pcsc_env_track() {
	PCSC_ENV_PIDS+=("$1")
}

# Stop one process we started: TERM, then KILL after 5 s.
_pcsc_stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

pcsc_env_stop() {
	if [[ -n $PCSC_ENV_PID ]]; then
		_pcsc_stop_pid "$PCSC_ENV_PID"
		PCSC_ENV_PID=
	fi
	if [[ ${_PCSC_RMDIR_RUN:-} ]]; then
		rmdir /run/pcscd 2>/dev/null || true
		_PCSC_RMDIR_RUN=
	fi
}

pcsc_chip_insert() {
	local wait=1 port rd
	if [[ ${1:-} == -n ]]; then
		wait=
		shift
	fi
	port=VPCD_PORT_$1 rd=VPCD_READER_$1
	[[ -n ${!port:-} ]] || {
		_pcsc_log "pcsc_chip_insert: no vpcd reader $1"
		return 2
	}
	"$CHIP" -p "${!port}" "${@:3}" "$2" 2>>"$PCSC_ENV_DIR/chip.log" &
	PCSC_CHIP_PID[$1]=$!
	[[ -n $wait ]] || return 0
	"$CHECK" wait "pcsc:${!rd}" 0 present 15000 >/dev/null || {
		_pcsc_chip_bad "reader $1 (${!rd}) does not see the chip $2"
		return 1
	}
}

pcsc_chip_remove() {
	local rd=VPCD_READER_$1 pid=${PCSC_CHIP_PID[$1]:-}
	[[ -n $pid ]] || return 0
	kill "-${2:-TERM}" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "PCSC_CHIP_PID[$1]"
	"$CHECK" wait "pcsc:${!rd}" 0 absent 15000 >/dev/null || {
		_pcsc_chip_bad "reader $1 (${!rd}) still sees a chip"
		return 1
	}
}

pcsc_env_cleanup() {
	local pid
	for pid in "${PCSC_CHIP_PID[@]}"; do
		_pcsc_stop_pid "$pid"
	done
	PCSC_CHIP_PID=()
	for pid in "${PCSC_ENV_PIDS[@]}"; do
		_pcsc_stop_pid "$pid"
	done
	PCSC_ENV_PIDS=()
declare -gA PCSC_CHIP_PID=()
	pcsc_env_stop
}
