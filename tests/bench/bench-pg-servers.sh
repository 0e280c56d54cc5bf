#!/usr/bin/env bash
# bench-pg-servers: scale-out of registration (BN-7) on one PostgreSQL.
# Two stations issue at once, first both through ONE mintline-server, then
# one through each of TWO servers sharing the database (same run, same
# chips per phase); then what the registry holds per note: heap and index
# bytes of the note tables and the WAL written per note.
#   NOTES=300 POSITIONS=8 tests/bench/bench-pg-servers.sh [BUILD_DIR]
# NOTES per station per phase; PROFILE=default gives the chips a secure
# element's latency (docs/benchmarks.md), instant chips otherwise.
# Exit 77 (skipped) without postgresql, SoftHSM2, OpenSC.
# shellcheck disable=SC2119
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${1:-${MINTLINE_BUILD_DIR:-$top/build}}" && pwd) || exit 1
W=$B/tests/bench-pg-servers
NOTES=${NOTES:-300}
POSITIONS=${POSITIONS:-8}
PROFILE=${PROFILE:-}
. "$top/tests/integration/pg-lib.sh"
pg_find || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" "$POSITIONS" || exit 77
pg_init "$W-pg" || { echo "bench-pg-servers: cannot start PostgreSQL" >&2; exit 1; }
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; pg_stop immediate; pg_cleanup; }
trap stop_all EXIT
ne_keys || exit 1
"$NE_SRV" enroll --registry "$PG_URL" --factory "mint line 1" "$W/station.pem" >/dev/null || exit 1
cat >"$W/server.conf" <<CONF
ca               = $W/ca/root.pem
cert             = $W/server.pem
key              = $NE_SERVER_KEY_HS
module           = $NE_MODULE
registry         = $PG_URL
registry-pool    = 8
workers          = 2
max-unauth-per-addr = 1024
note-issuers     = $NE_ISSUER_PUB
note-feature-key = $NE_FKEY
note-seal-key    = $NE_SERVER_KEY
CONF
start_srv() {	# name port
	"$NE_SRV" --config "$W/server.conf" --listen "127.0.0.1:$2" >>"$W/$1.log" 2>&1 &
	eval "PID_$1=$!"
	PIDS+=($!)
	for _ in $(seq 100); do
		grep -q "listening on 127.0.0.1:$2" "$W/$1.log" 2>/dev/null && return 0
		sleep 0.1
	done
	tail -5 "$W/$1.log" >&2
	return 1
}
PA=$(pg_free_port); PB=$(pg_free_port)
start_srv A "$PA" && start_srv B "$PB" || exit 1
HZ=$(getconf CLK_TCK)
conn() {	# port
	echo --server "127.0.0.1:$1" --ca "$W/ca/root.pem" --cert "$W/station.pem" \
	    --module "$NE_MODULE" \
	    --key "pkcs11:token=mintline-station;object=channel?pin-source=file:$W/pins/station.pin"
}
ticks() {	# pid...: CPU ticks of these processes and their children
	local p t=0 f
	for p in "$@" $(for q in "$@"; do pgrep -P "$q"; done); do
		f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + ${f% *} + ${f#* }))
	done
	echo "$t"
}
first=1
LETTERS=ABCDEFGH
prep() {	# name port: a line with NOTES provisioned chips
	local n=$1
	mkdir -p "$W/$n" "$W/$n-chips"
	echo "$POSITIONS" >"$W/$n/positions"
	ne_chips "$NOTES" "$first" "$W/$n-chips" || exit 1
	# shellcheck disable=SC2046
	"$NE_STATION" provision --line "inproc:$W/$n" --chips "$W/$n-chips" \
	    --issuer-pub "$NE_ISSUER_PUB" --server-pub "$NE_SERVER_PUB" \
	    --so-pin-source "file:$NE_SOPIN" $(conn "$2") >/dev/null 2>&1 || exit 1
	# prefixes are two letters: one per station
	ne_batch "$NOTES" "M${LETTERS:$((first / NOTES)):1}" "$first" >"$W/$n.csv"
	[ -n "$PROFILE" ] && echo "$PROFILE" >"$W/$n/latency"
	first=$((first + NOTES))
}
issue() {	# name port
	# shellcheck disable=SC2046
	"$NE_STATION" issue --line "inproc:$W/$1" --chips "$W/$1-chips" \
	    --issuer-key "$NE_ISSUER_KEY" --feature-key "$NE_FKEY" $(conn "$2") \
	    --journal "$W/$1.journal" --batch "$W/$1.csv" --json --no-progress \
	    --workers "$POSITIONS" >"$W/$1.jsonl" 2>"$W/$1.err"
}
phase() {	# label portX portY
	local x=s$((first)) y t0 t1 c0 c1 w0 w1 rows
	prep "$x" "$2"; y=s$first; prep "$y" "$3"
	w0=$(pg_psql "SELECT pg_current_wal_lsn()")
	rows=$(pg_psql "SELECT count(*) FROM note")
	c0=$(ticks "$PID_A" "$PID_B")
	t0=$(date +%s.%N)
	issue "$x" "$2" & local p1=$!
	# two processes loading keys from one SoftHSM2 directory at the same
	# instant can fail: the second starts at the first's first answer
	for _ in $(seq 200); do [ -s "$W/$x.jsonl" ] && break; sleep 0.02; done
	issue "$y" "$3" & local p2=$!
	wait "$p1" "$p2"
	t1=$(date +%s.%N)
	c1=$(ticks "$PID_A" "$PID_B")
	w1=$(pg_psql "SELECT pg_current_wal_lsn()")
	rows=$(( $(pg_psql "SELECT count(*) FROM note") - rows ))
	WAL=$(pg_psql "SELECT pg_wal_lsn_diff('$w1', '$w0')")
	awk -v l="$1" -v n="$rows" -v a="$t0" -v b="$t1" -v c="$((c1 - c0))" \
	    -v hz="$HZ" -v wal="$WAL" 'BEGIN {
		printf "| %-28s | %5d | %8.0f | %9.0f us | %7.0f B |\n", l, n,
		    n / (b - a), 1e6 * c / hz / n, wal / n }'
	grep -h '^issue:' "$W/$x.err" "$W/$y.err" | sed 's/^/  # /'
}
echo "bench-pg-servers: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), 2 stations x $NOTES notes x $POSITIONS positions, chips: ${PROFILE:-instant}"
echo "| servers | notes | notes/s | server CPU/note | WAL/note |"
echo "| --- | ---: | ---: | ---: | ---: |"
phase "1 server (both stations -> A)" "$PA" "$PA"
phase "2 servers (A and B)" "$PA" "$PB"
echo
echo "registry in PostgreSQL $(pg_psql 'SHOW server_version'): per note"
for t in note note_chip; do
	pg_psql "VACUUM ANALYZE $t" >/dev/null
	pg_psql "SELECT '$t', count(*), pg_relation_size('$t'), pg_indexes_size('$t') FROM $t" |
	    awk -F'|' '{ printf "  %-9s rows %6d  heap %6.0f B/row  indexes %6.0f B/row\n", $1, $2, $3 / $2, $4 / $2 }'
done
pg_psql "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes WHERE relname IN ('note','note_chip')" |
    awk -F'|' '{ printf "  index %-22s %9d B\n", $1, $2 }'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
