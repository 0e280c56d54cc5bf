#!/usr/bin/env bash
# The feature key (the keyed identification code's key) changes without a
# restart, and a station whose feature key the server does not accept
# writes nothing (OP-3, OP-5), on the in-process line, following
# docs/operations.md ("Changing the feature key"):
#   1. a station on a key the server does not list: the pre-check refuses
#      the first note, the line stops naming the feature key, every chip
#      stays blank, nothing is registered;
#   2. note-feature-key = NEW OLD, SIGHUP: stations on either key issue;
#      one audit row feature-key-add;
#   3. note-feature-key = NEW, SIGHUP: a station still on the old key
#      writes nothing (as in 1); the new key issues; one audit row
#      feature-key-retire; the notes issued under the old key still
#      verify GENUINE online; the same server process throughout.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / sqlite3.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/feature-key-rotate
command -v sqlite3 >/dev/null || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 2 || exit 77
cleanup() { ne_server_stop; wait 2>/dev/null; }
trap cleanup EXIT
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

ne_keys || { echo "key ceremony failed"; exit 1; }
OLD=$NE_FKEY
NEW=$W/pins/feature2.key
(umask 077; openssl rand -hex 32 >"$NEW") || { echo "new feature key"; exit 1; }
NE_SRV_WORKERS=2
ne_server_conf "$NE_ISSUER_PEM"
ne_server_start || { echo "server did not start"; cat "$W/server.log"; exit 1; }
pid=$NE_SERVER_PID
hup() { ne_server_reload || bad "no reload after SIGHUP"; sleep 0.2; }
ne_chips 12 0 "$W/chips" || exit 1
ne_provision "$W/chips" >/dev/null 2>&1
check $? 0 "12 chips personalised and enrolled"
for d in x a b c d e; do mkdir -p "$W/$d"; done
mv "$W/chips/NOTE00000000000"[0-2].chip* "$W/x/"	# 1: refused key
mv "$W/chips/NOTE00000000000"[3-4].chip* "$W/a/"	# 2: new key
mv "$W/chips/NOTE00000000000"[5-6].chip* "$W/b/"	# 2: old key
mv "$W/chips/NOTE00000000000"[7-8].chip* "$W/c/"	# 3: old key, refused
mv "$W/chips/NOTE0000000000"{09,10,11}.chip* "$W/d/"	# 3: new key

# issue_with KEY DIR PREFIX N: a station on feature key KEY, N notes
issue_with() {
	ne_batch "$4" "$3" >"$W/$3.csv"
	"$NE_STATION" issue --line "$NE_LINE" --chips "$2" --issuer-key "$NE_ISSUER_KEY" \
	    --feature-key "$1" "${NE_CONN[@]}" --journal "$W/j-$3.db" \
	    --batch "$W/$3.csv" --json --no-progress >"$W/$3.jsonl" 2>"$W/$3.err"
}
blank() { ne_verify --offline --chips "$1" --json 2>/dev/null | grep -c '"reason":"blank chip"'; }
registered() { sqlite3 "$NE_DB" "select count(*) from note where note_id like '$1%'"; }

# ---- 1. a feature key the server does not list: nothing written ----
issue_with "$NEW" "$W/x" FX 3
[ $? != 0 ] && ok "feature key not listed at the server: issue fails" || bad "issue succeeded"
grep -q "refuses the keyed identification code of note FX.*--feature-key $NEW is not one of the server's note-feature-key): line stopped" "$W/FX.err" &&
    ok "... the line stops naming the station's feature key" || { bad "no such message"; cat "$W/FX.err"; }
check "$(blank "$W/x")" 3 "... every chip still blank (the pre-check refused before any write)"
check "$(count '"result":"not_issued","reason":"line stopped before it' "$W/FX.jsonl")" 3 "... its 3 notes reported not issued: line stopped"
check "$(registered FX)" 0 "... nothing registered"
check "$(sqlite3 "$NE_DB" "select count(*) from note_reservation")" 0 "... no serial promised"

# ---- 2. both keys listed: either writes ----
NE_SRV_FKEYS="$NEW $OLD" ne_server_conf "$NE_ISSUER_PEM"
hup
grep -q 'note: SIGHUP: 2 feature key(s) in force' "$W/server.log" &&
    ok "SIGHUP: two feature keys in force" || bad "no reload of note-feature-key logged"
check "$(sqlite3 "$NE_DB" "select count(*) from audit where action = 'feature-key-add' and subject_kind = 'feature-key'")" 1 "audit: one feature-key-add row"
issue_with "$NEW" "$W/a" FA 2
check $? 0 "new key: 2 notes issued"
issue_with "$OLD" "$W/b" FB 2
check $? 0 "old key, still listed: 2 notes issued"
check "$(( $(registered FA) + $(registered FB) ))" 4 "... 4 notes registered"

# ---- 3. the old key retired ----
NE_SRV_FKEYS="$NEW" ne_server_conf "$NE_ISSUER_PEM"
hup
check "$(sqlite3 "$NE_DB" "select count(*) from audit where action = 'feature-key-retire' and subject_kind = 'feature-key'")" 1 "audit: one feature-key-retire row"
issue_with "$OLD" "$W/c" FC 2
[ $? != 0 ] && ok "retired feature key: issue fails" || bad "retired feature key: issue succeeded"
check "$(blank "$W/c")" 2 "... every chip still blank"
check "$(registered FC)" 0 "... nothing registered"
issue_with "$NEW" "$W/d" FD 3
check $? 0 "new key: 3 notes issued"
ne_verify_online --chips "$W/b" --json >"$W/vb.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/vb.jsonl")" 2 "notes issued under the retired key: GENUINE online"
ne_verify_online --chips "$W/d" --json >"$W/vd.jsonl" 2>/dev/null
check "$(count '"verdict":"GENUINE"' "$W/vd.jsonl")" 3 "notes issued under the new key: GENUINE online"
# the audit rows name the key by an id, never the key itself
for k in "$OLD" "$NEW"; do
	sqlite3 "$NE_DB" "select subject from audit where subject_kind = 'feature-key'" |
	    grep -qi "$(tr -d '\n ' <"$k")" && bad "audit: a feature key in clear"
done
ok "audit: the feature keys appear only as ids"
check "$NE_SERVER_PID" "$pid" "no restart: the same server process"
kill -0 "$pid" 2>/dev/null && ok "... alive" || bad "server gone"

[ $fail = 0 ] || { echo "--- server.log"; tail -30 "$W/server.log"; }
exit $((fail != 0))
