# shellcheck shell=bash
# shellcheck disable=SC2034,SC2086,SC2120
# The banknote issuance environment, shared by scripts/demo.sh and the
# issuance integration tests: a private SoftHSM2 token directory under the
# work directory holding the server's seal key and the station's issuer
# key (both P-256, generated inside the token, non-extractable), PIN files
# (0600; PINs travel by pin-source=, never on a command line), the issuer's
# feature key, blank note chip images, an in-process line, and the
# registration server (mintline-server with the note application, a CA
# and certificates for the authenticated channel).  Source it, then call ne_init WORK BUILD_DIR.

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

# ne_softhsm DIR: a private SoftHSM2 token directory DIR/tokens, its
# configuration exported in SOFTHSM2_CONF, the module in NE_MODULE.
# Status 77 with a "skip:" line when softhsm2-util, pkcs11-tool, python3
# or the module are missing.  ne_init calls it; tests that need only an
# HSM (not the issuance environment) call it alone.
ne_softhsm() {
	local t
	for t in softhsm2-util pkcs11-tool python3; do
		command -v "$t" >/dev/null 2>&1 || { echo "skip: $t missing"; return 77; }
	done
	NE_MODULE=$(ne_find_softhsm) || { echo "skip: libsofthsm2.so missing"; return 77; }
	mkdir -p "$1/tokens" || return 1
	export SOFTHSM2_CONF=$1/softhsm2.conf
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
	    "$1" >"$SOFTHSM2_CONF"
}

# ne_srv_cert CA PINFILE CN: in the current directory, a SoftHSM2 token
# "server" (user PIN: the first line of PINFILE, an absolute path) holding
# the P-256 key "srvkey" made inside it, a test CA in ca/ named CN (CA: the
# mintline-ca program) and the server's certificate srv.pem over that key;
# SRVKEY is the key's pkcs11: URI.  After ne_softhsm.
ne_srv_cert() {
	local pin
	pin=$(head -1 "$2") &&
	softhsm2-util --init-token --free --label server --so-pin 12345678 \
	    --pin "$pin" >/dev/null &&
	pkcs11-tool --module "$NE_MODULE" --token-label server --login \
	    --pin "$pin" --keypairgen --key-type EC:prime256v1 --id 01 \
	    --label srvkey >/dev/null 2>&1 || return 1
	SRVKEY="pkcs11:token=server;object=srvkey?pin-source=file:$2"
	"$1" init --dir ca --cn "$3" >/dev/null &&
	"$1" issue --dir ca --role server --p11 "$SRVKEY" \
	    --module "$NE_MODULE" --out srv.pem >/dev/null
}

# ne_init WORK BUILD_DIR [POSITIONS]
ne_init() {
	NE_WORK=$1
	NE_BUILD=$2
	NE_SERVER_CONF=
	local positions=${3:-8}
	NE_STATION=${NE_STATION:-$NE_BUILD/station/mintline-station}
	if [ -z "${NE_STATION_FORCE:-}" ]; then [ -x "$NE_BUILD/station/mintline-station" ] && NE_STATION=$NE_BUILD/station/mintline-station; fi
	NE_SRV=$NE_BUILD/server/mintline-server
	NE_CA=$NE_BUILD/tools/mintline-ca
	NE_FAKE=$NE_BUILD/tools/mintline-counterfeit
	NE_MKCHIP=$NE_BUILD/tools/mintline-mkchip
	ne_softhsm "$NE_WORK" || return
	mkdir -p "$NE_WORK"/{pins,chips,line}
	chmod 700 "$NE_WORK" "$NE_WORK/pins"
	echo "$positions" >"$NE_WORK/line/positions"
	NE_LINE=inproc:$NE_WORK/line
	NE_PORT=${NE_PORT:-$(ne_free_port)}
	NE_CONN=(--server "127.0.0.1:$NE_PORT" --ca "$NE_WORK/ca/root.pem"
	    --cert "$NE_WORK/station.pem" --module "$NE_MODULE"
	    --key "pkcs11:token=mintline-station;object=channel?pin-source=file:$NE_WORK/pins/station.pin")
	NE_DB=$NE_WORK/registry.db	# the server's one registry: readers, chips, notes
	NE_JOURNAL=$NE_WORK/journal.db
	NE_FKEY=$NE_WORK/pins/feature.key
	NE_SOPIN=$NE_WORK/pins/chip-so.pin
	local m="module-path=$NE_MODULE"
	NE_SERVER_KEY="pkcs11:token=mintline-server;object=seal;type=private?$m&pin-source=file:$NE_WORK/pins/server.pin"
	NE_SERVER_KEY_HS="pkcs11:token=mintline-server;object=channel;type=private?pin-source=file:$NE_WORK/pins/server.pin"
	NE_SERVER_PUB="pkcs11:token=mintline-server;object=seal;type=public?$m"
	NE_ISSUER_KEY="pkcs11:token=mintline-station;object=issuer;type=private?$m&pin-source=file:$NE_WORK/pins/station.pin"
	NE_ISSUER_PUB="pkcs11:token=mintline-station;object=issuer;type=public?$m"
	NE_ROGUE_KEY="pkcs11:token=mintline-rogue;object=issuer;type=private?$m&pin-source=file:$NE_WORK/pins/rogue.pin"
	# The server's copy of the authorised issuer key (BN-4): a PEM file,
	# as a deployment has it -- the server never opens the station's
	# token (SoftHSM2 rewrites token.object in place at a login, so a
	# second process reading it at that instant finds no key).
	NE_ISSUER_PEM=$NE_WORK/issuer-pub.pem
}

# ne_token LABEL KEYLABEL USAGE [KEYLABEL2 USAGE2]: a token with P-256
# keys made inside.
ne_token() {
	local label=$1 key=$2 usage=$3 pin so
	pin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	so=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	(umask 077; printf '%s\n' "$pin" >"$NE_WORK/pins/${label#mintline-}.pin")
	softhsm2-util --init-token --free --label "$label" --so-pin "$so" \
	    --pin "$pin" >/dev/null
	pkcs11-tool --module "$NE_MODULE" --token-label "$label" --login \
	    --pin "$pin" --keypairgen --key-type EC:prime256v1 --label "$key" \
	    --id 01 $usage >/dev/null
	if [ -n "${4:-}" ]; then
		pkcs11-tool --module "$NE_MODULE" --token-label "$label" --login \
		    --pin "$pin" --keypairgen --key-type EC:prime256v1 \
		    --label "$4" --id 02 $5 >/dev/null
	fi
}

# ne_keys: the server token (the chips' seal key, ECDH only; the
# server's channel key), the station token (issuer key, ECDSA; channel
# key), a rogue station token (an unauthorised key), the feature key and
# the chips' SO PIN; then (hs transport) a CA, the server's and the
# station's certificates, and the station enrolled in the server registry.
ne_keys() {
	ne_token mintline-server seal --usage-derive channel "--usage-sign --usage-derive"
	ne_token mintline-station issuer --usage-sign channel "--usage-sign --usage-derive"
	ne_token mintline-rogue issuer --usage-sign
	pkcs11-tool --module "$NE_MODULE" --token-label mintline-station \
	    --read-object --type pubkey --label issuer \
	    -o "$NE_WORK/issuer-pub.der" >/dev/null 2>&1 &&
	openssl pkey -pubin -inform DER -in "$NE_WORK/issuer-pub.der" \
	    -out "$NE_ISSUER_PEM" || return 1
	(umask 077
	 od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$NE_FKEY"; echo >>"$NE_FKEY"
	 od -An -N8 -tx1 /dev/urandom | tr -d ' \n' >"$NE_SOPIN"; echo >>"$NE_SOPIN")
	"$NE_CA" init --dir "$NE_WORK/ca" --cn "mintline demo root" >/dev/null &&
	"$NE_CA" issue --dir "$NE_WORK/ca" --role server --p11 "$NE_SERVER_KEY_HS" \
	    --module "$NE_MODULE" --out "$NE_WORK/server.pem" >/dev/null &&
	"$NE_CA" issue --dir "$NE_WORK/ca" --role station --serial STN-0001 \
	    --p11 "pkcs11:token=mintline-station;object=channel?pin-source=file:$NE_WORK/pins/station.pin" \
	    --module "$NE_MODULE" --out "$NE_WORK/station.pem" >/dev/null &&
	"$NE_SRV" enroll --registry "$NE_DB" \
	    --factory "mint line 1" "$NE_WORK/station.pem" >/dev/null
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

# ne_server_conf ISSUERS [LINE...]: the settings ne_server_start passes on
# its command line, written to $NE_WORK/server.conf instead, with
# note-issuers = ISSUERS and each LINE after them ("crl = FILE"); from then
# on ne_server_start starts the server from that file, so that a SIGHUP
# (ne_server_reload) re-reads it (OP-6: keys change without downtime).
# Call it again to change the file.  NE_SRV_FKEYS: note-feature-key's
# files (default $NE_FKEY).
ne_server_conf() {
	local l
	{
		echo "listen = 127.0.0.1:$NE_PORT"
		echo "ca = $NE_WORK/ca/root.pem"
		echo "cert = $NE_WORK/server.pem"
		echo "key = $NE_SERVER_KEY_HS"
		echo "module = $NE_MODULE"
		echo "registry = $NE_DB"
		echo "note-issuers = $1"
		echo "note-feature-key = ${NE_SRV_FKEYS:-$NE_FKEY}"
		echo "note-seal-key = $NE_SERVER_KEY"
		echo "workers = ${NE_SRV_WORKERS:-4}"
		for l in "${@:2}"; do
			echo "$l"
		done
	} >"$NE_WORK/server.conf"
	NE_SERVER_CONF=$NE_WORK/server.conf
}

# ne_server_start [ARGS]: mintline-server with the note application (from
# $NE_SERVER_CONF once ne_server_conf wrote it); waits until it listens.
ne_server_start() {
	local r=0
	if [ -n "${NE_SERVER_CONF:-}" ]; then
		ne_spawn "$NE_WORK/server.log" "$NE_SRV" --config "$NE_SERVER_CONF" "$@" || r=1
	else
		ne_spawn "$NE_WORK/server.log" "$NE_SRV" --listen "127.0.0.1:$NE_PORT" \
		    --ca "$NE_WORK/ca/root.pem" \
		    --cert "$NE_WORK/server.pem" --key "$NE_SERVER_KEY_HS" \
		    --module "$NE_MODULE" --registry "$NE_DB" \
		    --note-issuers "$NE_ISSUER_PEM" --note-feature-key "$NE_FKEY" \
		    --note-seal-key "$NE_SERVER_KEY" \
		    --workers "${NE_SRV_WORKERS:-4}" "$@" || r=1
	fi
	NE_SERVER_PID=$NE_SPAWN_PID
	return $r
}

# ne_spawn LOG CMD...: a server (any program that logs "listening") started
# in the background, its output appended to LOG; waits (10 s) until LOG
# holds one more "listening" line than before.  NE_SPAWN_PID is its pid.
# Status 1, with the last lines of LOG, when it exits first or does not
# listen in time (then it is stopped).  Every test that starts a server
# starts it here.
ne_spawn() {
	local log=$1 before j
	shift
	before=$(ne_count listening "$log")
	"$@" >>"$log" 2>&1 &
	NE_SPAWN_PID=$!
	for ((j = 0; j < 100; j++)); do
		[ "$(ne_count listening "$log")" -gt "$before" ] && return 0
		kill -0 "$NE_SPAWN_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "issuance-env: ${1##*/} not listening after start; last lines of $log:" >&2
	tail -5 "$log" >&2
	kill "$NE_SPAWN_PID" 2>/dev/null && wait "$NE_SPAWN_PID" 2>/dev/null
	return 1
}

# ne_count PATTERN FILE: how many lines of FILE match (0 when FILE does not
# exist yet; grep -c would exit 2 then, and 1 on no match, which ends a
# `set -e` caller).
ne_count() {
	local n
	n=$(grep -c -- "$1" "$2" 2>/dev/null) || true
	echo "${n:-0}"
}

# ne_log_wait PATTERN N [SECONDS]: wait (10 s) until server.log holds more
# than N lines matching PATTERN; status 1 when it does not.
ne_log_wait() {
	local j
	for ((j = 0; j < ${3:-10} * 10; j++)); do
		[ "$(ne_count "$1" "$NE_WORK/server.log")" -gt "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# ne_server_signal SIGNAL PATTERN: send SIGNAL to the server and wait until
# it logs one more PATTERN line; status 1 with a message when it does not.
ne_server_signal() {
	local before
	before=$(ne_count "$2" "$NE_WORK/server.log")
	kill "-$1" "$NE_SERVER_PID" || return 1
	ne_log_wait "$2" "$before" || {
		echo "issuance-env: no \"$2\" in $NE_WORK/server.log after SIG$1" >&2
		return 1
	}
}

# ne_server_reload: SIGHUP; waits for "configuration reloaded".
ne_server_reload() {
	ne_server_signal HUP 'configuration reloaded'
}

# ne_server_stats: SIGUSR1; prints the new "stats:" line.
ne_server_stats() {
	ne_server_signal USR1 'stats:' || return 1
	grep 'stats:' "$NE_WORK/server.log" | tail -1
}

# ne_free_port: a free TCP port on 127.0.0.1.
ne_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
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
	    --so-pin-source "file:$NE_SOPIN" "${NE_CONN[@]}" "${@:2}"
}

# NE_EXEC=1: exec the station (so that $! of "ne_issue ... &" is its pid).
ne_issue() {
	${NE_EXEC:+exec} "$NE_STATION" issue --line "$NE_LINE" --chips "$NE_WORK/chips" \
	    --issuer-key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" \
	    "${NE_CONN[@]}" --journal "$NE_JOURNAL" "$@"
}

# ne_conn_as VAR CERT: VAR=( NE_CONN with --cert CERT ), the channel of
# another certificate whose key is the station token's channel key.
ne_conn_as() {
	local -n ne_to=$1
	local a
	ne_to=()
	for a in "${NE_CONN[@]}"; do
		[ "$a" = "$NE_WORK/station.pem" ] && a=$2
		ne_to+=("$a")
	done
}

# ne_hold OUT MS HANDSHAKE-ARGS...: a channel held open MS ms, then 3
# pings (ID-5: it outlives a SIGHUP); stdout to OUT, the pid in
# NE_HELD_PID.  Returns once the channel is up (OUT says "channel ok"), so
# that the next login to the station's token does not race this one
# (SoftHSM2 rewrites token.object in place at a login).
ne_hold() {
	local out=$1 ms=$2 j
	shift 2
	"$NE_STATION" handshake "$@" --timeout 10000 --hold "$ms" \
	    --then-count 3 >"$out" 2>"$out.err" &
	NE_HELD_PID=$!
	for ((j = 0; j < 300; j++)); do
		grep -qs 'channel ok' "$out" && return 0
		kill -0 "$NE_HELD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "issuance-env: held channel: no handshake ($out.err: $(tail -1 "$out.err"))" >&2
	return 1
}

ne_verify() {
	"$NE_STATION" verify --line "$NE_LINE" --issuer-pub "$NE_ISSUER_PUB" "$@"
}

ne_verify_online() {
	ne_verify "${NE_CONN[@]}" "$@"
}
