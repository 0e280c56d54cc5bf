#!/usr/bin/env python3
"""Memory-snapshot scanner for test-secrets.sh (secret hygiene, ID-12).

  test_secrets_scan.py PID[,PID...] LABEL=HEX [LABEL=HEX ...]

For each PID (a process and its helpers, e.g. the server's HSM monitor):
stops it (SIGSTOP), reads every readable mapping of it through
/proc/PID/mem (the same bytes gcore would write), resumes it (SIGCONT),
and prints one line per needle: "found LABEL at MAPPING+OFFSET" or
"absent LABEL".  Exit 0 after a scan, 77 when the process memory cannot
be read (no ptrace permission: Yama ptrace_scope, containers), 1 on
other errors.
"""
import os
import re
import signal
import sys


def regions(pid):
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            perms = parts[1]
            name = parts[5].strip() if len(parts) > 5 else ""
            if perms[0] != "r" or name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            yield lo, hi, name or "anon"


def main():
    needles = []
    for a in sys.argv[2:]:
        label, hexv = a.split("=", 1)
        needles.append((label, bytes.fromhex(hexv)))
    found = {}
    for pid in (int(x) for x in sys.argv[1].split(",") if x):
        rc = scan(pid, needles, found)
        if rc != 0:
            return rc
    for label, _ in needles:
        if label in found:
            print("found %s at %s" % (label, ", ".join(found[label][:4])))
        else:
            print("absent %s" % label)
    return 0


def scan(pid, needles, found):
    try:
        mem = open("/proc/%d/mem" % pid, "rb", buffering=0)
    except OSError as e:
        print("cannot open memory of %d: %s" % (pid, e))
        return 77
    total = 0
    os.kill(pid, signal.SIGSTOP)
    try:
        for lo, hi, name in regions(pid):
            try:
                mem.seek(lo)
                buf = mem.read(hi - lo)
            except OSError:
                continue
            total += len(buf)
            for label, n in needles:
                for m in re.finditer(re.escape(n), buf):
                    found.setdefault(label, []).append(
                        "pid %d %s+0x%x" % (pid, os.path.basename(name), m.start()))
    finally:
        os.kill(pid, signal.SIGCONT)
    if total == 0:
        print("no memory of %d could be read" % pid)
        return 77
    print("# scanned %d bytes of pid %d" % (total, pid))
    mem.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
