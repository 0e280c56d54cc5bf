#!/usr/bin/env bash
# A full registry disk (docs/operations.md, "Disk full"): the server's
# registries live on a small tmpfs made for the test under the build tree;
# once the chips are enrolled the tmpfs is filled, and the station issues.
#
#   - server: one clear line per failed write ("write failed: disk full"),
#     never SQLite's "cannot rollback - no transaction is active";
#   - station: "server refused: registry write failed (disk full)", never
#     "server unreachable"; the note stays in doubt in the journal;
#   - the space freed, a re-run completes the note in doubt and issues the
#     rest: every note of the batch registered once, nothing lost.
#
# Mounting needs root (else exit 77); SoftHSM2 / OpenSC too.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/registry-full
N=6
command -v python3 >/dev/null || exit 77
command -v sqlite3 >/dev/null || exit 77
[ "$(id -u)" = 0 ] || { echo "skip: mounting a tmpfs needs root"; exit 77; }
if mountpoint -q "$W/full" 2>/dev/null; then umount "$W/full"; fi
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 4 || exit 77
mkdir -p "$W/full"
mount -t tmpfs -o size=2m,mode=0700 mintline-test-full "$W/full" ||
    { echo "skip: cannot mount a tmpfs here"; exit 77; }
cleanup() {
	ne_server_stop
	umount "$W/full" 2>/dev/null
}
trap cleanup EXIT
fail=0
ok()  { echo "ok - $*"; }
bad() { echo "FAIL - $*"; fail=1; }

# both registry files on the small file system (one file once the note
# registry is folded into the server's)
ln -s full/registry.db "$W/registry.db"
ln -s full/server-registry.db "$W/server-registry.db"
ne_keys || { echo "key ceremony failed"; exit 1; }
ne_chips "$N" || exit 1
ne_batch "$N" >"$W/batch.csv"
ne_server_start || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" >/dev/null 2>"$W/provision.err" || { echo "provision failed"; cat "$W/provision.err"; exit 1; }

# the disk fills up
dd if=/dev/zero of="$W/full/filler" bs=4k 2>/dev/null
sync
df -k "$W/full" | tail -1 | sed 's/^/# /'
ne_issue --batch "$W/batch.csv" --no-progress --retry-secs 3 >"$W/issue1.out" 2>"$W/issue1.err"
rc=$?
sed 's/^/# station: /' "$W/issue1.err" | head -8
[ $rc != 0 ] && ok "issue on a full registry disk stops (exit $rc)" || bad "issue on a full disk exited 0"
grep -q 'server refused: registry write failed (disk full)' "$W/issue1.err" "$W/issue1.out" &&
    ok "station: server refused: registry write failed (disk full)" ||
    bad "station does not report the full disk"
grep -qi 'unreachable' "$W/issue1.err" "$W/issue1.out" &&
    bad "station says unreachable: $(grep -hi unreachable "$W/issue1.err" "$W/issue1.out" | head -2)" ||
    ok "station never says unreachable"
grep -q 'note left in doubt' "$W/issue1.err" "$W/issue1.out" &&
    ok "station: the note is left in doubt" || bad "station: no note in doubt"
grep 'disk full\|rollback' "$W/server.log" | head -4 | sed 's/^/# server: /'
grep -q 'write failed: disk full' "$W/server.log" &&
    ok "server: one clear line (write failed: disk full)" || bad "server log has no disk-full line"
grep -q 'cannot rollback\|database or disk is full' "$W/server.log" &&
    bad "server log: $(grep -m1 'cannot rollback\|database or disk is full' "$W/server.log")" ||
    ok "server log: no 'database or disk is full' / 'cannot rollback' noise"
n_doubt=$(grep -c 'note left in doubt' "$W/issue1.err" "$W/issue1.out" | awk -F: '{ s += $2 } END { print s }')

# space again: the re-run completes what is in doubt, issues the rest
rm -f "$W/full/filler"
ne_issue --batch "$W/batch.csv" --no-progress >"$W/issue2.out" 2>"$W/issue2.err"
rc=$?
[ $rc = 0 ] && ok "re-run after space was freed (exit 0)" || { bad "re-run: exit $rc"; sed 's/^/    /' "$W/issue2.err" | tail -5; }
db=$W/full/registry.db
[ -s "$W/full/server-registry.db" ] && sqlite3 "$W/full/server-registry.db" 'select 1 from note limit 0' 2>/dev/null &&
    db=$W/full/server-registry.db
notes=$(sqlite3 "$db" 'select count(*) from note')
dist=$(sqlite3 "$db" 'select count(distinct note_id) from note')
[ "$notes" = "$N" ] && [ "$dist" = "$N" ] &&
    ok "every note of the batch registered exactly once ($notes of $N; $n_doubt had been in doubt)" ||
    bad "registry holds $notes notes ($dist distinct), want $N"
kill -0 "$NE_SERVER_PID" 2>/dev/null && ok "server still running" || bad "server died"
[ $fail = 0 ] || { echo "# server log (tail):"; tail -8 "$W/server.log"; }
exit $fail
