#!/usr/bin/env python3
"""Run the recipes of a document (OP-8: the docs' recipes run as written).

A recipe is a fenced block whose info string is `sh recipe`:

    ```sh recipe
    mintline-ca init --dir ca --cn "mint root"
    ```

Every recipe block of one document runs, in document order, in ONE bash
session (`set -Eeuo pipefail`), as a reader would type them into one
terminal: variables and files of one block are there in the next.  The
first command that fails stops the run and is reported with the document's
file and line.  Plain ```sh blocks (fragments, examples with placeholders)
are not run.

The session is private:
  - its working directory and $HOME are a fresh temporary directory;
  - the build tree's programs (every executable mintline-* under BUILD)
    come first on PATH, the checkout's scripts/ last;
  - the production paths a recipe names are moved under the temporary
    directory: /etc/mintline, /var/lib/mintline, /run/mintline;
  - the server port of the examples, 7443 (in HOST:7443), is a free
    port;
  - the installed PKCS#11 module path
    (/usr/lib/x86_64-linux-gnu/pkcs11/mintline-pkcs11.so) is the build
    tree's module;
  - SOFTHSM2_CONF, PCSCLITE_CSOCK_NAME and MINTLINE_* are unset, so a
    recipe gets only what it sets up itself;
  - MINTLINE_SOURCE_DIR is the source tree (for scripts a recipe sources
    from the checkout, e.g. scripts/private-pcscd.sh).
Whatever a recipe leaves running in the background is stopped at the end
(the session's process group).

Usage: run-recipes.py --build BUILD DOC.md
       run-recipes.py --check-listed DOCS_DIR PAGE...  (every page of
           DOCS_DIR with a recipe block is among PAGE...)
Exit 0: every recipe ran; 1: one failed; 77: the document has no recipe
or a program the recipes need is not installed (listed with
<!-- recipe-needs: prog ... --> anywhere in the document).
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

FENCE = re.compile(r'^\s{0,3}(`{3,})\s*sh\s+recipe\s*$')
FENCE_ANY = re.compile(r'^\s{0,3}(`{3,})[^`]*$')
NEEDS = re.compile(r'<!--\s*recipe-needs:\s*(.*?)\s*-->')
MODULE_INSTALLED = '/usr/lib/x86_64-linux-gnu/pkcs11/mintline-pkcs11.so'
MOVED = ('/etc/mintline', '/var/lib/mintline', '/run/mintline')
TIMEOUT = int(os.environ.get('MINTLINE_RECIPE_TIMEOUT', '600'))


def blocks(path):
    """[(first line number of the body, body text)] of the recipe blocks.

    Fences are followed as CommonMark does: a block opened by N backticks
    ends at a line of at least N backticks and nothing else, so a recipe
    shown inside a longer fence (an example) is not a recipe."""
    out, cur, fence, start, recipe = [], None, None, 0, False
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            text = line.rstrip('\n')
            if cur is None:
                m = FENCE_ANY.match(text)
                if m:
                    cur, fence, start = [], m.group(1), n + 1
                    recipe = FENCE.match(text) is not None
            elif re.fullmatch(r'\s{0,3}`{%d,}\s*' % len(fence), text):
                if recipe:
                    out.append((start, ''.join(cur)))
                cur = None
            else:
                cur.append(line)
    if cur is not None:
        sys.exit(f'{path}:{start - 1}: code block not closed')
    return out


def programs(build):
    """Directories of the build tree holding mintline-* executables."""
    dirs = []
    for root, subdirs, files in os.walk(build):
        subdirs[:] = [d for d in subdirs
                      if not d.startswith(('.', 'meson-')) and
                      not d.endswith('.p')]
        for f in files:
            p = os.path.join(root, f)
            if f.startswith('mintline-') and not f.endswith('.so') and \
                    os.access(p, os.X_OK) and os.path.isfile(p):
                if root not in dirs:
                    dirs.append(root)
    return sorted(dirs)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def find_module(build):
    for root, _, files in os.walk(build):
        if 'mintline-pkcs11.so' in files:
            return os.path.join(root, 'mintline-pkcs11.so')
    return None


def check_listed(docs, listed):
    """Every page of DOCS with a recipe block is one of LISTED."""
    bad = 0
    for f in sorted(os.listdir(docs)):
        if f.endswith('.md') and blocks(os.path.join(docs, f)) and \
                f[:-3] not in listed:
            print(f'docs/{f} has recipe blocks but no recipes-{f[:-3]} '
                  'test: add it to tests/docs/meson.build')
            bad += 1
    return 1 if bad else 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == '--check-listed':
        return check_listed(sys.argv[2], sys.argv[3:])
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', required=True)
    ap.add_argument('--keep', action='store_true',
                    help='keep the temporary directory')
    ap.add_argument('doc')
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    doc = os.path.abspath(a.doc)
    name = os.path.relpath(doc, os.path.dirname(os.path.dirname(doc)))
    src = os.path.dirname(os.path.dirname(doc))

    bl = blocks(doc)
    if not bl:
        print(f'SKIP: {name} has no recipe block')
        return 77
    with open(doc, encoding='utf-8') as f:
        needs = ' '.join(NEEDS.findall(f.read())).split()
    missing = [p for p in needs if shutil.which(p) is None and
               not os.path.exists(p)]
    if missing:
        print(f'SKIP: {name}: not installed: {" ".join(missing)}')
        return 77

    tmp = tempfile.mkdtemp(prefix='mintline-recipes-')
    work = os.path.join(tmp, 'work')
    os.makedirs(os.path.join(tmp, 'home'))
    os.makedirs(work)
    module = find_module(build) or MODULE_INSTALLED

    port = free_port()

    def localise(text):
        text = text.replace(MODULE_INSTALLED, module)
        text = re.sub(r'(?<=:)7443\b', str(port), text)
        for p in MOVED:
            text = re.sub(re.escape(p) + r'(?![\w.-])', tmp + p, text)
        return text

    # One file per block, sourced in order by a driver, so that LINENO in
    # the ERR trap is the line inside the block.
    drv = ['set -Eeuo pipefail',
           '_recipe_line=0',
           "trap 'rc=$?; echo \"RECIPE FAILED: " + name +
           ":$((_recipe_line + LINENO - 1)): $BASH_COMMAND (exit $rc)\" >&2;"
           " exit $rc' ERR"]
    for i, (start, body) in enumerate(bl):
        bf = os.path.join(tmp, f'block-{i:02d}.sh')
        with open(bf, 'w', encoding='utf-8') as f:
            f.write(localise(body))
        drv.append(f'echo "--- {name}:{start}" >&2')
        drv.append(f'_recipe_line={start}')
        drv.append(f'. {bf}')
    drv.append('trap - ERR')
    with open(os.path.join(tmp, 'recipes.sh'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(drv) + '\n')

    env = {k: v for k, v in os.environ.items()
           if not k.startswith('MINTLINE_') and
           k not in ('SOFTHSM2_CONF', 'PCSCLITE_CSOCK_NAME', 'OLDPWD')}
    env['HOME'] = os.path.join(tmp, 'home')
    env['PATH'] = ':'.join(programs(build) +
                           [env.get('PATH', '/usr/bin:/bin'),
                            os.path.join(src, 'scripts')])
    env['MINTLINE_SOURCE_DIR'] = src
    env['MINTLINE_BUILD_DIR'] = build
    env['TMPDIR'] = tmp

    print(f'{name}: {len(bl)} recipe block(s) in {tmp}', flush=True)
    t0 = time.monotonic()
    p = subprocess.Popen(['bash', os.path.join(tmp, 'recipes.sh')], cwd=work,
                         env=env, start_new_session=True)
    try:
        rc = p.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f'RECIPE FAILED: {name}: timed out after {TIMEOUT} s',
              file=sys.stderr)
        rc = 124
    # Stop what the recipes left running: the session's process group.
    try:
        os.killpg(p.pid, signal.SIGTERM)
        time.sleep(0.5)
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    dt = time.monotonic() - t0
    if rc == 0:
        print(f'{name}: every recipe ran ({dt:.1f} s)')
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    print(f'{name}: recipes failed (exit {rc}); kept {tmp}', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
