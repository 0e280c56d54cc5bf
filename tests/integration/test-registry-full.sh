#!/usr/bin/env bash
# A full registry disk (docs/operations.md, "Disk full"), on SQLite and on
# a private PostgreSQL (pg-lib.sh): the registry's notes live on a small
# tmpfs made for the test; once the chips are enrolled the tmpfs is filled,
# and the station issues.
#
#   - server: one clear line per failed write ("write failed: disk full"),
#     never SQLite's "database or disk is full" / "cannot rollback - no
#     transaction is active";
#   - station: "server refused: registry write failed (disk full)", never
#     "server unreachable"; the note stays in doubt in the journal;
#   - the space freed, a re-run completes the notes in doubt and issues the
#     rest: every note of the batch registered once, nothing lost.
#
# SQLite: both registry files on the tmpfs.  PostgreSQL: the note table
# moved to a tablespace on the tmpfs (the WAL stays on the cluster's disk,
# as on a server whose data volume fills up: SQLSTATE 53100).  Mounting
# needs root: otherwise the test runs itself again in a user and mount
# namespace of its own (unshare -rm; the PostgreSQL part is skipped there,
# its cluster owner cannot be mapped), or exits 77 when that is not
# allowed either.  SoftHSM2 / OpenSC needed; the PostgreSQL part is skipped
# without postgresql.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/integration
B=${MINTLINE_BUILD_DIR:-$top/build}
W0=$B/tests/registry-full
N=6
command -v python3 >/dev/null || exit 77
command -v sqlite3 >/dev/null || exit 77
if [ "$(id -u)" != 0 ]; then
	if [ -z "${REGFULL_USERNS:-}" ] && unshare -rm true 2>/dev/null; then
		REGFULL_USERNS=1 exec unshare -rm "$0" "$@"
	fi
	echo "skip: mounting a tmpfs needs root or a user namespace"
	exit 77
fi
for m in "$W0"/*/full "$W0"/pg/db/full; do
	mountpoint -q "$m" 2>/dev/null && umount "$m"
done
rm -rf "$W0"
mkdir -p "$W0"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
# shellcheck source=tests/integration/pg-lib.sh
source "$here/pg-lib.sh"
MOUNTS=()
cleanup() {	# the cluster holds files on its tablespace: stop it first
	ne_server_stop
	[ -n "${PG_DIR:-}" ] && pg_stop immediate
	for m in "${MOUNTS[@]}"; do
		umount "$m" 2>/dev/null
	done
	[ -n "${PG_DIR:-}" ] && pg_cleanup
}
trap cleanup EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

small_fs() {	# DIR [OWNER]: a 2 MiB tmpfs on DIR
	mkdir -p "$1"
	mount -t tmpfs -o "size=2m,mode=0700${2:+,uid=$(id -u "$2")}" \
	    mintline-test-full "$1" || return 1
	MOUNTS+=("$1")
}

# the scenario, once the server runs and the chips are enrolled; FULL is
# the tmpfs to fill; count_notes prints the registered notes
scenario() {	# NAME FULL
	local name=$1 full=$2 rc notes dist n_doubt
	dd if=/dev/zero of="$full/filler" bs=4k 2>/dev/null
	sync
	ne_issue --batch "$W/batch.csv" --no-progress --retry-secs 3 >"$W/issue1.out" 2>"$W/issue1.err"
	rc=$?
	sed 's/^/# station: /' "$W/issue1.err" | head -4
	[ $rc != 0 ] && ok "$name: issue on a full registry disk stops (exit $rc)" ||
	    bad "$name: issue on a full disk exited 0"
	grep -q 'server refused: registry write failed (disk full)' "$W/issue1.err" "$W/issue1.out" &&
	    ok "$name: station: server refused: registry write failed (disk full)" ||
	    bad "$name: station does not report the full disk"
	grep -qi 'unreachable' "$W/issue1.err" "$W/issue1.out" &&
	    bad "$name: station says unreachable: $(grep -hi unreachable "$W/issue1.err" "$W/issue1.out" | head -2)" ||
	    ok "$name: station never says unreachable"
	# The pre-check (OP-3) takes a serial reservation, a registry write:
	# on a full disk it is refused before AUTHORIZE WRITE and the chips
	# stay blank.  A note written before the disk filled stays in doubt.
	if grep -q 'note left in doubt' "$W/issue1.err" "$W/issue1.out"; then
		ok "$name: station: the note written before the disk filled is left in doubt"
	elif grep -q ' 0 issued, .* 0 error(s)\| 0 issued, .*error(s), 6 not issued' "$W/issue1.err"; then
		ok "$name: station: nothing written while the disk is full (pre-check refused)"
	else
		bad "$name: station: neither a note in doubt nor every chip left unwritten"
	fi
	grep 'disk full' "$W/server.log" | head -2 | sed 's/^/# server: /'
	grep -q 'write failed: disk full' "$W/server.log" &&
	    ok "$name: server: one clear line (write failed: disk full)" ||
	    bad "$name: server log has no disk-full line"
	grep -q 'cannot rollback\|database or disk is full' "$W/server.log" &&
	    bad "$name: server log: $(grep -m1 'cannot rollback\|database or disk is full' "$W/server.log")" ||
	    ok "$name: server log: no 'database or disk is full' / 'cannot rollback' noise"
	n_doubt=$(cat "$W/issue1.err" "$W/issue1.out" | grep -c 'note left in doubt')

	# space again: the re-run completes what is in doubt, issues the rest
	rm -f "$full/filler"
	ne_issue --batch "$W/batch.csv" --no-progress >"$W/issue2.out" 2>"$W/issue2.err"
	rc=$?
	[ $rc = 0 ] && ok "$name: re-run after space was freed (exit 0)" ||
	    { bad "$name: re-run: exit $rc"; sed 's/^/    /' "$W/issue2.err" | tail -5; }
	read -r notes dist <<<"$(count_notes)"
	[ "$notes" = "$N" ] && [ "$dist" = "$N" ] &&
	    ok "$name: every note of the batch registered exactly once ($notes of $N; $n_doubt had been in doubt)" ||
	    bad "$name: registry holds $notes notes ($dist distinct), want $N"
	kill -0 "$NE_SERVER_PID" 2>/dev/null && ok "$name: server still running" || bad "$name: server died"
	[ $fail = 0 ] || { echo "# server log (tail):"; tail -8 "$W/server.log"; }
}

# ---- SQLite: the server's one registry file on the small file system ----
W=$W0/sqlite
ne_init "$W" "$B" 4 || exit 77
small_fs "$W/full" || { echo "skip: cannot mount a tmpfs here"; exit 77; }
ln -s full/registry.db "$W/registry.db"
ne_keys || { echo "key ceremony failed"; exit 1; }
ne_chips "$N" || exit 1
ne_batch "$N" >"$W/batch.csv"
ne_server_start || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" >/dev/null 2>"$W/provision.err" ||
    { echo "provision failed"; cat "$W/provision.err"; exit 1; }
count_notes() {
	sqlite3 "$W/full/registry.db" 'select count(*), count(distinct note_id) from note' | tr '|' ' '
}
scenario sqlite "$W/full"
ne_server_stop

# ---- PostgreSQL: the note table on a tablespace on the small fs ----
if [ -n "${REGFULL_USERNS:-}" ]; then
	echo "skip - PostgreSQL part: in a user namespace (no cluster owner)"
	exit $((fail != 0))
fi
if ! pg_find; then
	echo "skip - PostgreSQL part: postgresql not installed"
	exit $((fail != 0))
fi
W=$W0/pg
NE_PORT=
ne_init "$W" "$B" 4 || exit 77
pg_init "$W/db" || { bad "cannot start PostgreSQL"; exit 1; }
trap cleanup EXIT	# pg_init set its own
small_fs "$PG_DIR/full" "${PG_RUNAS:-nobody}" || { bad "tmpfs for the tablespace"; exit 1; }
ne_keys || { echo "key ceremony failed"; exit 1; }
"$NE_SRV" enroll --registry "$PG_URL" --factory "mint line 1" "$W/station.pem" >/dev/null ||
    { bad "enroll in PostgreSQL"; exit 1; }
ne_chips "$N" || exit 1
ne_batch "$N" >"$W/batch.csv"
ne_server_start --registry "$PG_URL" || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" >/dev/null 2>"$W/provision.err" ||
    { echo "provision failed"; cat "$W/provision.err"; exit 1; }
pg_psql "CREATE TABLESPACE small LOCATION '$PG_DIR/full'" &&
pg_psql "ALTER TABLE note SET TABLESPACE small" || { bad "tablespace on the tmpfs"; exit 1; }
count_notes() {
	pg_psql 'SELECT count(*), count(DISTINCT note_id) FROM note' | tr '|' ' '
}
scenario postgresql "$PG_DIR/full"
grep -q 'SQLSTATE 53100' "$W/server.log" && ok "postgresql: the server names SQLSTATE 53100" ||
    bad "postgresql: no SQLSTATE 53100 in the server log"
exit $((fail != 0))
