#!/usr/bin/env bash
# Banknote issuance end to end on the in-process line with SoftHSM2 and
# mintline-server (BN-1..BN-8):
#   1. provision + issue + verify (online and offline): every note GENUINE;
#   2. a station without an authorised key: every chip answers
#      reject-write, nothing is written, nothing registered;
#   3. SIGKILL the station and the server at random points of a batch,
#      restart, resume: every note registered exactly once or reported
#      not issued, none on two chips.
# Exit 77 (skipped) without SoftHSM2 / OpenSC / sqlite3.
# shellcheck disable=SC2119
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${MINTLINE_BUILD_DIR:-$top/build}
W=$B/tests/issuance
NOTES=${NOTES:-300}
command -v sqlite3 >/dev/null || exit 77
rm -rf "$W"
# shellcheck source=scripts/issuance-env.sh
source "$top/scripts/issuance-env.sh"
ne_init "$W" "$B" 6 || exit 77
trap ne_server_stop EXIT
fail=0
ok()  { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fail=1; }
check() { if [ "$1" = "$2" ]; then ok "$3"; else bad "$3 (got $1, want $2)"; fi; }

ne_keys || { echo "key ceremony failed"; exit 1; }
ne_chips $((NOTES + 30)) || exit 1
ne_server_start || { echo "server did not start"; exit 1; }
ne_provision "$W/chips" --json >/dev/null
check $? 0 "provision: every chip personalised and enrolled"
check "$(sqlite3 "$NE_DB" 'select count(*) from note_chip')" $((NOTES + 30)) "chip keys enrolled"

# ---- 2 first: a rogue station key on a fresh line, nothing written ----
ne_batch 10 RG >"$W/rogue.csv"
"$NE_STATION" issue --line "$NE_LINE" --chips "$W/chips" \
    --issuer-key "$NE_ROGUE_KEY" --feature-key "$NE_FKEY" "${NE_CONN[@]}" \
    --journal "$W/rogue-journal.db" --batch "$W/rogue.csv" --json \
    --no-progress >"$W/rogue.jsonl" 2>"$W/rogue.err"
check $? 2 "rogue key: issue exit 2 (nothing issued)"
check "$(grep -c '"result":"reject_write"' "$W/rogue.jsonl")" 10 "rogue key: every chip answered reject-write"
check "$(grep -c '"result":"issued"' "$W/rogue.jsonl")" 0 "rogue key: nothing issued"
check "$(sqlite3 "$NE_DB" 'select count(*) from note')" 0 "rogue key: nothing registered"
ne_verify --offline --chips "$W/chips" --json >"$W/v0.jsonl" 2>/dev/null
check "$(grep -c '"reason":"blank chip"' "$W/v0.jsonl")" $((NOTES + 30)) "rogue key: every chip still blank"

# ---- 3: crash and resume ----
ne_batch "$NOTES" >"$W/batch.csv"
# one station per journal
exec 9>"$NE_JOURNAL.lock"; flock 9
ne_issue --batch "$W/batch.csv" --no-progress >/dev/null 2>"$W/locked.err"
check $? 1 "a second station on the same journal is refused"
exec 9>&-
for round in 1 2 3 4 5; do
	NE_EXEC=1 ne_issue --batch "$W/batch.csv" --json --no-progress --retry-secs 20 \
	    >>"$W/issue-$round.jsonl" 2>>"$W/issue.err" &
	st=$!
	sleep "0.$((RANDOM % 3 + 1))$((RANDOM % 10))"
	kill -9 "$st" 2>/dev/null
	wait "$st" 2>/dev/null
	if [ $((round % 2)) = 0 ]; then
		kill -9 "$NE_SERVER_PID" 2>/dev/null
		wait "$NE_SERVER_PID" 2>/dev/null
		NE_SERVER_PID=
		ne_server_start || { bad "server restart"; break; }
	fi
	echo "# round $round: $(sqlite3 "$NE_DB" 'select count(*) from note') registered"
done
# One more: the station dies while the server is down and comes back.
NE_EXEC=1 ne_issue --batch "$W/batch.csv" --json --no-progress --retry-secs 30 \
    >"$W/issue-srv.jsonl" 2>>"$W/issue.err" &
st=$!
sleep 0.3
kill -9 "$NE_SERVER_PID" 2>/dev/null; wait "$NE_SERVER_PID" 2>/dev/null; NE_SERVER_PID=
sleep 1
ne_server_start || bad "server restart"
wait "$st"
rc=$?
echo "# station survived a server restart: exit $rc"
ne_issue --batch "$W/batch.csv" --json --no-progress >"$W/issue-final.jsonl" 2>>"$W/issue.err"
rc=$?
echo "# in-doubt notes completed after a crash: $(cat "$W"/issue-*.jsonl | grep -c '"result":"completed"')," \
    "repeated uploads answered with the first registration: $(cat "$W"/issue-*.jsonl | grep -c '"result":"already_registered"')"
check "$rc" 0 "final run: every note of the batch issued (exit 0)"
reg=$(sqlite3 "$NE_DB" 'select count(*) from note')
check "$reg" "$NOTES" "every note registered"
check "$(sqlite3 "$NE_DB" 'select count(distinct note_id) from note')" "$reg" "registered exactly once"
check "$(sqlite3 "$W/journal.db" 'select count(*) from issue_journal where state = 2')" "$NOTES" "journal: every note acknowledged"
ne_verify_online --chips "$W/chips" --json >"$W/v1.jsonl" 2>"$W/v1.err"
check "$(grep -c '"verdict":"GENUINE"' "$W/v1.jsonl")" "$NOTES" "online: every issued note GENUINE"
check "$(sed -n 's/.*"note":"\([^"]*\)","verdict":"GENUINE".*/\1/p' "$W/v1.jsonl" | sort | uniq -d | wc -l)" 0 "no note on two chips"
check "$(grep -c '"verdict":"COUNTERFEIT"' "$W/v1.jsonl")" 0 "no COUNTERFEIT"
check "$(grep -c '"verdict":"BLANK"' "$W/v1.jsonl")" \
    "$(grep -c '"reason":"blank chip"' "$W/v1.jsonl")" "every other chip BLANK"
ne_verify --offline --chips "$W/chips" --json >"$W/v2.jsonl" 2>/dev/null
check "$(grep -c '"verdict":"GENUINE"' "$W/v2.jsonl")" "$NOTES" "offline: every issued note GENUINE"

exit $fail
