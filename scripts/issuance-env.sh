# shellcheck shell=bash
# The banknote issuance environment, shared by scripts/demo.sh and the
# issuance integration tests: a private SoftHSM2 token directory under the
# work directory holding the server's seal key and the station's issuer
# key (both P-256, generated inside the token, non-extractable), PIN files
# (0600; PINs travel by pin-source=, never on a command line), the issuer's
# feature key, blank note chip images, an in-process line, and the
# registration server.  Source it, then call ne_init WORK BUILD_DIR.

ne_die() { echo "issuance-env: $*" >&2; exit 1; }

ne_find_softhsm() {
	local p
	for p in /usr/lib/softhsm/libsofthsm2.so \
	    /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	    /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so; do
		[ -e "$p" ] && { echo "$p"; return 0; }
	done
	return 1
}

# ne_init WORK BUILD_DIR [POSITIONS]
ne_init() {
	NE_WORK=$1
	NE_BUILD=$2
	local positions=${3:-8}
	NE_STATION=${NE_STATION:-$NE_BUILD/issuance/mintline-station}
	[ -x "$NE_BUILD/station/mintline-station" ] && NE_STATION=$NE_BUILD/station/mintline-station
	NE_NOTESRV=$NE_BUILD/issuance/mintline-note-server
	NE_FAKE=$NE_BUILD/issuance/mintline-counterfeit
	NE_MKCHIP=$NE_BUILD/tools/mintline-mkchip
	NE_MODULE=$(ne_find_softhsm) || return 77
	command -v softhsm2-util >/dev/null || return 77
	command -v pkcs11-tool >/dev/null || return 77
	mkdir -p "$NE_WORK"/{tokens,pins,chips,line,run}
	chmod 700 "$NE_WORK" "$NE_WORK/pins" "$NE_WORK/run"
	export SOFTHSM2_CONF=$NE_WORK/softhsm2.conf
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
	    "$NE_WORK" >"$SOFTHSM2_CONF"
	echo "$positions" >"$NE_WORK/line/positions"
	NE_LINE=inproc:$NE_WORK/line
	NE_SOCK=$NE_WORK/run/note.sock
	NE_SERVER=unix:$NE_SOCK
	NE_DB=$NE_WORK/registry.db
	NE_JOURNAL=$NE_WORK/journal.db
	NE_FKEY=$NE_WORK/pins/feature.key
	NE_SOPIN=$NE_WORK/pins/chip-so.pin
	local m="module-path=$NE_MODULE"
	NE_SERVER_KEY="pkcs11:token=mintline-server;object=seal;type=private?$m&pin-source=file:$NE_WORK/pins/server.pin"
	NE_SERVER_PUB="pkcs11:token=mintline-server;object=seal;type=public?$m"
	NE_ISSUER_KEY="pkcs11:token=mintline-station;object=issuer;type=private?$m&pin-source=file:$NE_WORK/pins/station.pin"
	NE_ISSUER_PUB="pkcs11:token=mintline-station;object=issuer;type=public?$m"
	NE_ROGUE_KEY="pkcs11:token=mintline-rogue;object=issuer;type=private?$m&pin-source=file:$NE_WORK/pins/rogue.pin"
}

# ne_token LABEL KEYLABEL USAGE: a token with one P-256 key made inside.
ne_token() {
	local label=$1 key=$2 usage=$3 pin so
	pin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	so=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	(umask 077; printf '%s\n' "$pin" >"$NE_WORK/pins/${label#mintline-}.pin")
	softhsm2-util --init-token --free --label "$label" --so-pin "$so" \
	    --pin "$pin" >/dev/null
	pkcs11-tool --module "$NE_MODULE" --token-label "$label" --login \
	    --pin "$pin" --keypairgen --key-type EC:prime256v1 --label "$key" \
	    --id 01 "$usage" >/dev/null
}

# ne_keys: the server token (seal key, ECDH), the station token (issuer
# key, ECDSA), a rogue station token (an unauthorised key), the feature
# key and the chips' SO PIN.
ne_keys() {
	ne_token mintline-server seal --usage-derive
	ne_token mintline-station issuer --usage-sign
	ne_token mintline-rogue issuer --usage-sign
	(umask 077
	 od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$NE_FKEY"; echo >>"$NE_FKEY"
	 od -An -N8 -tx1 /dev/urandom | tr -d ' \n' >"$NE_SOPIN"; echo >>"$NE_SOPIN")
}

# ne_chips N [FIRST] [DIR]: blank note chip images NOTE%012d.chip.
ne_chips() {
	local n=$1 first=${2:-0} dir=${3:-$NE_WORK/chips} i s
	mkdir -p "$dir"
	for ((i = first; i < first + n; i++)); do
		printf -v s 'NOTE%012d' "$i"
		"$NE_MKCHIP" note "$s" "$dir/$s.chip" >/dev/null || return 1
	done
}

# ne_batch N [PREFIX] [FIRST] > file
ne_batch() {
	local n=$1 p=${2:-MX} first=${3:-1} i
	echo "# mintline demo batch"
	echo "prefix,serial"
	for ((i = first; i < first + n; i++)); do
		printf '%s,%08d\n' "$p" "$i"
	done
}

ne_server_start() {
	rm -f "$NE_SOCK"
	"$NE_NOTESRV" --socket "$NE_SOCK" --db "$NE_DB" \
	    --server-key "$NE_SERVER_KEY" --issuer-pub "$NE_ISSUER_PUB" \
	    --feature-key "$NE_FKEY" --pidfile "$NE_WORK/run/server.pid" \
	    "$@" 2>>"$NE_WORK/server.log" &
	NE_SERVER_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$NE_SOCK" ] && return 0
		kill -0 "$NE_SERVER_PID" 2>/dev/null || { cat "$NE_WORK/server.log" >&2; return 1; }
		sleep 0.1
	done
	return 1
}

ne_server_stop() {
	[ -n "${NE_SERVER_PID:-}" ] || return 0
	kill "$NE_SERVER_PID" 2>/dev/null || true
	wait "$NE_SERVER_PID" 2>/dev/null || true
	NE_SERVER_PID=
}

ne_provision() {
	"$NE_STATION" provision --line "$NE_LINE" --chips "${1:-$NE_WORK/chips}" \
	    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
	    --so-pin-source "file:$NE_SOPIN" --server "$NE_SERVER" "${@:2}"
}

ne_issue() {
	"$NE_STATION" issue --line "$NE_LINE" --chips "$NE_WORK/chips" \
	    --key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" \
	    --server "$NE_SERVER" --journal "$NE_JOURNAL" "$@"
}

ne_verify() {
	"$NE_STATION" verify --line "$NE_LINE" --issuer-pub "$NE_ISSUER_PUB" "$@"
}
