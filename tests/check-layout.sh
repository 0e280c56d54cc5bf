#!/usr/bin/env bash
# The layout check (meson test suite 'lint'; CI runs it on a default build
# too):
#
#   tests/check-layout.sh SOURCE_DIR [BUILD_DIR]
#
# Fails (exit 1, one line per finding) when
#   1. a directory includes a header of (or compiles a source file of) a
#      directory in the same or a higher layer of LAYERS below;
#   2. a directory with C sources is not in LAYERS, or issuance/ exists;
#   3. BUILD_DIR is a default build (-Dtest_hooks=false) and one of its
#      installed programs or libraries contains a SEAMS string, or
#      BUILD_DIR is a -Dtest_hooks=true build and a SEAMS string marked
#      "+" is in none of them (so that the list stays true to the code).
set -Eeuo pipefail
trap 'err_rc=$?; [ "$BASH_SUBSHELL" -gt 0 ] || printf "%s: line %s: %s: exit %s\n" "${BASH_SOURCE[0]##*/}" "$LINENO" "${BASH_COMMAND%%[[:cntrl:]]*}" "$err_rc" >&2' ERR

# The directory layers, lowest first: a directory may use the headers and
# sources of the layers before its own, never of its own layer or above.
# Directories on one line form one layer and use nothing of each other.
LAYERS=(
	"common"
	"chip-applet"
	"chiplink"
	"keys"
	"hs"
	"note"
	"idread"
	"pkcs11"
	"server"
	"station"
	"tools"
	"tests"
)

# Test seams: strings that only a -Dtest_hooks=true build may contain in an
# installed program or library.  "+": such a build must contain it.
SEAMS=(
	"+MINTLINE_TEST_KEYLOG"	# transport-key log (hs/hs.c)
	"+hs_test_keylog"
	"+MINTLINE_TEST_WAKE_DELAY_US"	# late worker wake-up (server/srv_net.c)
	"+MINTLINE_TEST_CORE"	# a dumpable server (server/main.c)
	"+inject-loss"		# mintline-station id-read --inject-*
	"+inject-remove-after"
	"+loopback:"		# mintline-station id-read --server loopback:
	"+test_cut_after"	# chip power-cut hook (chip-applet/store.c)
	"+test_remove_after"	# card removal hook (idread/idr_reader.c)
	"note_uplink_local"	# the in-process note server (benchmark)
	"key_soft_"		# in-memory private keys (keys/key_soft.c:
				# tests, benchmarks, tools)
)
# Installed programs allowed to hold in-memory keys: the load generator's
# simulated readers (docs/operations.md).
SOFT_KEY_PROGRAMS="mintline-load"

[ $# -ge 1 ] || { echo "usage: $0 SOURCE_DIR [BUILD_DIR]" >&2; exit 2; }
src=$(cd "$1" && pwd)
build=${2:-}
fail=0
finding() { echo "check-layout: $*"; fail=1; }

# ---- 1, 2: the directory graph ----
if [ -e "$src/issuance" ]; then
	finding "issuance/ exists (the banknote domain lives in note/, station/ and server/)"
fi

layers=$(printf '%s\n' "${LAYERS[@]}")
python3 - "$src" "$layers" <<'PY' || fail=1
import os, re, subprocess, sys

src, layers_text = sys.argv[1], sys.argv[2]
layer = {}
for i, line in enumerate(layers_text.splitlines()):
    for d in line.split():
        layer[d] = i

try:
    files = subprocess.run(["git", "-C", src, "ls-files"], check=True,
                           capture_output=True, text=True).stdout.split()
except (OSError, subprocess.CalledProcessError):
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build"))]
        files += [os.path.relpath(os.path.join(root, n), src) for n in names]
files = [f for f in files if os.path.exists(os.path.join(src, f))]

def top(path):
    return path.split("/", 1)[0] if "/" in path else ""

headers = {}
for f in files:
    if f.endswith(".h"):
        headers.setdefault(os.path.basename(f), set()).add(top(f))

findings = []
edges = {}		# (from, to) -> first example
inc_re = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
src_re = re.compile(r"'((?:\.\./)+[^']+\.[ch])'")
for f in files:
    d = top(f)
    if d == "":
        continue
    if f.endswith((".c", ".h")):
        if d not in layer:
            findings.append(f"{f}: directory {d}/ has C sources but is not in LAYERS")
            continue
        with open(os.path.join(src, f), errors="replace") as fh:
            for n, text in enumerate(fh, 1):
                m = inc_re.match(text)
                if not m:
                    continue
                name = m.group(1)
                if "/" in name:
                    p = os.path.normpath(os.path.join(os.path.dirname(f), name))
                    targets = {top(p)} if os.path.exists(os.path.join(src, p)) else set()
                elif os.path.exists(os.path.join(src, os.path.dirname(f), name)):
                    targets = {d}
                else:
                    targets = headers.get(name, set())
                    if d in targets:
                        targets = {d}
                for t in targets:
                    if t != d and t in layer:
                        edges.setdefault((d, t), f"{f}:{n} includes {name}")
    elif os.path.basename(f) == "meson.build" and d in layer:
        # a source file of another directory compiled here
        with open(os.path.join(src, f), errors="replace") as fh:
            for n, text in enumerate(fh, 1):
                if text.lstrip().startswith("#"):
                    continue
                for m in src_re.finditer(text):
                    p = os.path.normpath(os.path.join(os.path.dirname(f), m.group(1)))
                    t = top(p)
                    if t != d and t in layer:
                        edges.setdefault((d, t), f"{f}:{n} compiles {m.group(1)}")

# Up or beside: a directory using one of a layer not below its own.
for (a, b), where in sorted(edges.items()):
    if layer[b] > layer[a]:
        findings.append(f"{a}/ uses {b}/, a layer above it ({where})")
    elif layer[b] == layer[a]:
        findings.append(f"{a}/ uses {b}/, of its own layer ({where})")

for f in findings:
    print("check-layout: " + f)
sys.exit(1 if findings else 0)
PY

# ---- 3: test seams in the installed programs and libraries ----
if [ -n "$build" ]; then
	info=$build/meson-info
	[ -f "$info/intro-buildoptions.json" ] || {
		echo "check-layout: $build is not a configured meson build directory" >&2
		exit 2
	}
	hooks=$(python3 -c '
import json, sys
for o in json.load(open(sys.argv[1])):
    if o["name"] == "test_hooks":
        print("true" if o["value"] else "false")
        break
else:
    print("false")' "$info/intro-buildoptions.json")
	mapfile -t bins < <(python3 -c '
import json, sys
for t in json.load(open(sys.argv[1])):
    if t.get("installed") and t["type"] in ("executable", "shared library", "shared module"):
        for f in t["filename"]:
            print(f)' "$info/intro-targets.json")
	[ ${#bins[@]} -gt 0 ] || finding "no installed program in $build"
	# strings(1) of each file once (grep -q on a pipe would end strings
	# with SIGPIPE, which pipefail counts as "not found")
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-layout.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	for i in "${!bins[@]}"; do
		if [ -f "${bins[$i]}" ]; then
			strings -a "${bins[$i]}" >"$tmp/$i"
		else
			finding "${bins[$i]}: not built (ninja -C $build first)"
		fi
	done
	top_build=$(cd "$build" && pwd)
	for s in "${SEAMS[@]}"; do
		want=${s#+}
		where=()
		for i in "${!bins[@]}"; do
			b=${bins[$i]}
			[ -f "$tmp/$i" ] || continue
			case "$want" in
			key_soft*)
				[[ " $SOFT_KEY_PROGRAMS " == *" ${b##*/} "* ]] && continue ;;
			esac
			if grep -qF -- "$want" "$tmp/$i"; then
				where+=("${b#"$top_build"/}")
			fi
		done
		if [ "$hooks" = false ] && [ ${#where[@]} -gt 0 ]; then
			finding "test seam \"$want\" in a default build: ${where[*]}"
		elif [ "$hooks" = true ] && [ "$s" != "$want" ] && [ ${#where[@]} -eq 0 ]; then
			finding "test seam \"$want\" not found in a -Dtest_hooks=true build: the SEAMS list is stale"
		fi
	done
	echo "check-layout: ${#bins[@]} installed file(s) of $build checked for ${#SEAMS[@]} test seam(s) (test_hooks=$hooks)"
fi

if [ "$fail" != 0 ]; then
	exit 1
fi
echo "check-layout: ok"
