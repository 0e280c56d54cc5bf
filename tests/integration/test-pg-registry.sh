#!/usr/bin/env bash
# Integration test (ID-3, BN-7): the PostgreSQL registry back-end against a real
# PostgreSQL (Debian postgresql; private cluster under the build tree, see
# pg-lib.sh).
#   1. concurrent start-up: 6 processes migrate the same database at once
#   2. reader mapping / flags / risk records through the back-end
#   3. exactly-once: 2 processes x 4 threads register the same notes
#   4. kill -9 of one "server" under load, restart: nothing acknowledged
#      is missing, the restarted one gets the first reg ids back
#   5. PostgreSQL stopped mid-run: clear refusals, then recovery by itself
#   6. two real mintline-server instances on the same database: readers
#      enrolled once, handshakes through both at once (mintline-load)
# Exit 77 (skipped) when postgresql is not installed.
#
# Env (from meson): MINTLINE_BUILD_DIR, TEST_PG_REGISTRY, MINTLINE_SERVER,
# MINTLINE_CA, MINTLINE_LOAD.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/pg-lib.sh"
pg_find || exit 77
command -v python3 >/dev/null 2>&1 || { echo "skip: python3 missing"; exit 77; }

B=${MINTLINE_BUILD_DIR:-$(pwd)}
T=${TEST_PG_REGISTRY:-$B/tests/integration/test_pg_registry}
SERVER=${MINTLINE_SERVER:-$B/server/mintline-server}
CA=${MINTLINE_CA:-$B/tools/mintline-ca}
LOAD=${MINTLINE_LOAD:-$B/tools/mintline-load}
W=$B/tests/pg-integration
rm -rf "$W"
mkdir -p "$W"
cd "$W" || exit 1

# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

pg_init "$W/pg" || { echo "cannot start PostgreSQL"; exit 1; }
URL=$PG_URL
echo "# PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on $URL"

# 1. concurrent migrations
if "$T" migrate "$URL" 6 > migrate.log 2>&1; then
	v=$(pg_psql "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version")
	[ "$v" = "1,2,3,4" ] && ok "6 concurrent start-ups migrate once (schema_version $v)" ||
	    bad "schema_version after concurrent start-ups: $v"
else
	cat migrate.log; bad "concurrent migrations"
fi

# 1b. the same for the SQLite back-end (schema_version there too)
if "$T" migrate "$W/sq.db" 6 > migrate-sq.log 2>&1 &&
    [ "$(sqlite3 "$W/sq.db" 'SELECT group_concat(version) FROM (SELECT version FROM schema_version ORDER BY version)')" = 1,2,3,4 ]; then
	ok "SQLite: 6 concurrent start-ups migrate once (schema_version, user_version $(sqlite3 "$W/sq.db" 'PRAGMA user_version'))"
else
	cat migrate-sq.log; bad "SQLite concurrent migrations"
fi

# 2. readers
"$T" readers "$URL" > readers.log 2>&1 && ok "readers, flags, risk records" ||
    { cat readers.log; bad "readers"; }

# 2b. the audit trail: concurrent appends make one chain; the schema
# refuses changes
if "$T" audit "$URL" 100 > audit.log 2>&1; then
	ok "$(grep '^audit:' audit.log)"
else
	cat audit.log; bad "audit trail"
fi
for sql in "UPDATE audit SET outcome = 'forged' WHERE id = 1" \
    "DELETE FROM audit WHERE id = 2" "TRUNCATE audit"; do
	if pg_psql "$sql" >/dev/null 2>audit-sql.err; then
		bad "audit: '$sql' accepted"
	else
		grep -q 'append-only' audit-sql.err && ok "audit: '$sql' refused by the schema" ||
		    bad "audit: '$sql': $(cat audit-sql.err)"
	fi
done

# 3. exactly once under a race
if "$T" race "$URL" 2000 > race.log 2>&1; then
	ok "$(grep '^race:' race.log)"
else
	tail -20 race.log; bad "exactly-once race"
fi
n=$(pg_psql "SELECT count(*) FROM note")
d=$(pg_psql "SELECT count(*) - count(DISTINCT note_id) FROM note")
[ "$n" = 2000 ] && [ "$d" = 0 ] && ok "2000 rows, no duplicate note_id" ||
    bad "rows $n, duplicates $d"

# 4. kill -9 under load
"$T" load "$URL" ack.a 100000 3000 4 > load.a.log 2>&1 &
PA=$!
"$T" load "$URL" ack.b 200000 3000 4 > load.b.log 2>&1 &
PB=$!
sleep 1.5
kill -9 $PB
wait $PB 2>/dev/null
acked_before=$(wc -l < ack.b)
"$T" load "$URL" ack.b2 200000 3000 4 > load.b2.log 2>&1	# restart: same notes
wait $PA
if "$T" verify "$URL" ack.a ack.b ack.b2 > verify.log 2>&1; then
	ok "kill -9 after $acked_before acks: $(grep '^verify:' verify.log)"
else
	tail -5 verify.log; bad "acknowledged registrations missing after kill -9"
fi
# the restarted server answered the notes the killed one acknowledged with
# the same registration ids (ack.b lines are all in ack.b2)
if [ "$(sort ack.b | comm -23 - <(sort ack.b2) | wc -l)" = 0 ]; then
	ok "restarted server answers the same reg ids for the killed one's acks"
else
	bad "reg ids differ after restart"
fi

# 5. PostgreSQL stopped mid-run
# (stopped once the load is under way: a fixed sleep let a quiet machine
# finish the whole load before the stop)
"$T" load "$URL" ack.c 300000 20000 4 > load.c.log 2>&1 &
PC=$!
for _ in $(seq 200); do
	[ "$(wc -l < ack.c 2>/dev/null || echo 0)" -ge 500 ] && break
	sleep 0.05
done
pg_stop fast
stopped_at=$(wc -l < ack.c)
sleep 3
grep -q "unavailable\|connection lost\|going away" load.c.log &&
    ok "database down: clear errors ($(grep -c 'registry:' load.c.log) registry lines, e.g. \"$(grep -m1 'unavailable; refusing' load.c.log | cut -c1-80)\")" ||
    { tail -5 load.c.log; bad "no clear error while the database is down"; }
during=$(wc -l < ack.c)
[ "$during" = "$stopped_at" ] && ok "nothing acknowledged while down ($during before)" ||
    bad "acks while down: $stopped_at -> $during"
pg_start || bad "restart PostgreSQL"
if wait $PC; then
	grep -q "reachable again" load.c.log && ok "recovered by itself: $(grep '^load: [0-9]' load.c.log)" ||
	    bad "no recovery message"
else
	bad "load did not finish after the database came back"
fi
"$T" verify "$URL" ack.a ack.b ack.b2 ack.c > verify2.log 2>&1 &&
    ok "after the outage: $(grep '^verify:' verify2.log)" ||
    { tail -5 verify2.log; bad "acknowledged registrations missing after the outage"; }

# 6. two mintline-server instances on one database
if [ -x "$LOAD" ] && [ -x "$SERVER" ] && [ -x "$CA" ] && "$HERE/test-pg-servers.sh" "$URL" > servers.log 2>&1; then
	grep '^ok' servers.log | sed 's/^ok   - //' | while read -r l; do echo "ok   - servers: $l"; done
	pass=$((pass + $(grep -c '^ok' servers.log)))
else
	rc=$?
	if grep -q '^skip' servers.log 2>/dev/null; then
		echo "# servers part skipped: $(grep '^skip' servers.log)"
	else
		cat servers.log; bad "two mintline-server instances (rc $rc)"
	fi
fi

# 7. the one-shot import of an older server's SQLite note file into a
# PostgreSQL registry (docs/operations.md, "Upgrading: one registry")
if [ -x "$SERVER" ]; then
	psql -q -h "$PG_DIR/sock" -p "$PG_PORT" -U mintline -d postgres \
	    -c "CREATE DATABASE mintline_import" >/dev/null
	URL2=${URL%/mintline}/mintline_import
	rm -f old-notes.db
	sqlite3 old-notes.db "
	  CREATE TABLE note_chip (chip_serial TEXT PRIMARY KEY, chip_pub BLOB NOT NULL CHECK (length(chip_pub) = 65), enrolled_at INTEGER NOT NULL);
	  CREATE TABLE note (reg_id INTEGER PRIMARY KEY, note_id TEXT NOT NULL UNIQUE, chip_serial TEXT NOT NULL UNIQUE REFERENCES note_chip, feature BLOB NOT NULL, challenge BLOB NOT NULL, station_sig BLOB NOT NULL, issuer_pub BLOB NOT NULL, registered_at INTEGER NOT NULL);
	  CREATE TABLE note_flag (note_id TEXT NOT NULL, chip_serial TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (note_id, chip_serial));
	  CREATE TABLE note_reject (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
	  INSERT INTO note_chip VALUES ('CIMP000000000001', zeroblob(65), 10), ('CIMP000000000002', zeroblob(65), 11);
	  INSERT INTO note VALUES (7, 'IM00000007', 'CIMP000000000001', x'0a0b', zeroblob(16), zeroblob(64), zeroblob(65), 20);
	  INSERT INTO note_flag VALUES ('IM00000007', 'CIMP000000000002', 'serial presented by two chips', 30);
	  INSERT INTO note_reject VALUES ('chip_sig', 5);"
	out=$("$SERVER" import-notes --registry "$URL2" old-notes.db 2>&1)
	q() { psql -qAt -h "$PG_DIR/sock" -p "$PG_PORT" -U mintline -d mintline_import -c "$1"; }
	if echo "$out" | grep -q "2 chip(s), 1 note(s), 1 flag(s), 1 refusal" &&
	   [ "$(q "SELECT reg_id || ' ' || registered_at || ' ' || encode(feature, 'hex') FROM note")" = "7 20 0a0b" ] &&
	   [ "$(q "SELECT count FROM note_reject WHERE reason = 'chip_sig'")" = 5 ]; then
		ok "import-notes into PostgreSQL: ids, times and rows kept ($out)"
	else
		bad "import-notes into PostgreSQL: $out"
	fi
	# the sequence moved past the imported ids; a second import is refused
	[ "$(q "SELECT nextval(pg_get_serial_sequence('note', 'reg_id'))")" = 8 ] &&
	    ok "import-notes: the reg_id sequence continues after the imported ids" ||
	    bad "reg_id sequence not moved"
	if out=$("$SERVER" import-notes --registry "$URL2" old-notes.db 2>&1); then
		bad "second import accepted: $out"
	else
		[ "$(q "SELECT count(*) FROM note")" = 1 ] &&
		    ok "a second import-notes is refused and changes nothing" ||
		    bad "second import changed the registry"
	fi
fi

echo "# $pass passed, $fail failed"
[ $fail -eq 0 ]
