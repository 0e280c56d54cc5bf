#!/usr/bin/env bash
# Banknote issuance end to end on the in-process line with SoftHSM2 and
# mintline-server (BN-1..BN-8):
#   1. provision + issue + verify (online and offline): every note GENUINE;
#   2. a station without an authorised key: every chip answers
#      reject-write, nothing is written, nothing registered;
#   3. SIGKILL the station and the server at random points of a batch,
#      restart, resume: every note registered exactly once or reported
#      not issued, none on two chips;
#   4. the audit trail (OP-5): one row per registration naming the
#      station, every enrolment, a refused enrolment naming chip, station
#      and reason, one row per online desk check with its verdict, the
#      station's transactions counted by `show`, `audit --verify` intact
#      and failing on the row an edit of the SQLite file changed.
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
# shellcheck source=tests/integration/check-lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check-lib.sh"

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

# ---- 4: the audit trail ----
q() { sqlite3 "$NE_DB" "$1"; }
check "$(q "select count(*) from audit where action = 'register' and outcome = 'ok'")" "$NOTES" "audit: one register row per registered note"
check "$(q "select count(*) from audit where action = 'register' and outcome = 'ok' and (actor <> 'STN-0001' or actor_certno = '')")" 0 "audit: every register row names station STN-0001 and its certificate number"
check "$(q "select count(distinct subject) from audit a join note n on n.note_id = a.subject where a.action = 'register' and a.outcome = 'ok' and a.detail = 'chip ' || n.chip_serial")" "$NOTES" "audit: each register row names its note and chip"
check "$(q "select count(*) from audit where action = 'enrol' and outcome = 'ok' and actor = 'STN-0001'")" $((NOTES + 30)) "audit: one enrol row per chip"
check "$(q "select count(*) from audit where action = 'desk-check' and outcome = 'ok' and actor = 'STN-0001'")" "$NOTES" "audit: one desk-check row with verdict ok per GENUINE note"
tx=$("$NE_SRV" show --registry "$NE_DB" STN-0001 | sed -n 's/^transactions //p')
check "$tx" "$NOTES" "show STN-0001: one transaction per registration"
first=$(q "select subject from audit where action = 'register' and outcome = 'ok' order by id limit 1")
"$NE_SRV" audit --registry "$NE_DB" --note "$first" >"$W/audit-note.txt"
check "$(grep -c " register by STN-0001.* note $first: ok" "$W/audit-note.txt")" 1 "audit --note $first: its registration"
# a chip with an enrolled serial and another key: the enrolment is refused
ne_chips 1 0 "$W/dup"
ne_provision "$W/dup" --json >/dev/null 2>&1
check "$(q "select count(*) from audit where action = 'enrol' and subject_kind = 'chip' and subject = 'NOTE000000000000' and outcome = 'enrol_conflict' and actor = 'STN-0001' and actor_certno <> '' and at > 0")" 1 "audit: refused enrolment names chip, station, certificate number and reason"
"$NE_SRV" audit --registry "$NE_DB" --verify >"$W/verify.out" 2>&1
check $? 0 "audit --verify: chain intact ($(cat "$W/verify.out"))"
ne_server_stop
# the schema refuses the edit; an attacker with the file drops the trigger
q "update audit set outcome = 'forged' where id = 7" 2>/dev/null &&
    bad "audit: the schema let an update through" ||
    ok "audit: the schema refuses an update"
q "drop trigger audit_no_update; update audit set outcome = 'forged' where id = 7"
"$NE_SRV" audit --registry "$NE_DB" --verify >"$W/verify-bad.out" 2>&1
check $? 1 "audit --verify fails after a tampered row"
grep -q "audit row 7" "$W/verify-bad.out" && ok "audit --verify names row 7" ||
    bad "audit --verify does not name row 7: $(cat "$W/verify-bad.out")"

exit $((fail != 0))
