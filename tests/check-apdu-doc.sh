#!/usr/bin/env bash
# docs/apdu.md embeds the INS tables printed by mintline-apdu-doc; fail when
# they differ, so the reference cannot drift from the dispatcher's tables.
set -Eeuo pipefail
trap 'err_rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] || printf "%s: line %s: %s: exit %s\n" "${BASH_SOURCE[0]##*/}" "$LINENO" "${BASH_COMMAND%%[[:cntrl:]]*}" "$err_rc" >&2' ERR
gen=$1
doc=$2
want=$("$gen")
have=$(sed -n '/<!-- BEGIN GENERATED: mintline-apdu-doc -->/,/<!-- END GENERATED -->/p' "$doc" | sed '1d;$d')
if [ "$want" != "$have" ]; then
	echo "docs/apdu.md is out of date; regenerate its tables with mintline-apdu-doc:" >&2
	diff <(echo "$have") <(echo "$want") >&2 || true
	exit 1
fi
echo "docs/apdu.md tables match the INS tables"
