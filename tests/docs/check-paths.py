#!/usr/bin/env python3
"""Every file a document or a comment names must exist (OP-8).

Looks at README.md, docs/*.md and the project's sources (*.c, *.h, *.sh,
*.py, meson.build) for paths that start with a top-level directory of the
project (`server/reg_note.c`, `tests/check-apdu-doc.sh`,
`idread/idpkt.{c,h}`) and fails, naming file and line, for each one that
is not in the tree.  Moving or removing a file therefore means updating
what points at it.  Placeholders (upper-case words such as
tests/unit/test_NAME.c) are skipped.

Usage: check-paths.py SOURCE_DIR
"""
import os
import re
import sys

EXTS = 'c|h|sh|py|md|in|build|txt|conf|service'
SKIP_DIRS = {'.git', '__pycache__'}


def tops(src):
    return sorted(d for d in os.listdir(src)
                  if os.path.isdir(os.path.join(src, d)) and
                  not d.startswith(('.', 'build')) and d not in SKIP_DIRS)


def sources(src):
    yield os.path.join(src, 'README.md')
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        if rel == '.':
            dirs[:] = [d for d in dirs if not d.startswith(('.', 'build'))]
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for f in files:
            if (rel.split(os.sep)[0] == 'docs' and f.endswith('.md')) or \
                    f.endswith(('.c', '.h', '.sh', '.py')) or \
                    f == 'meson.build':
                yield os.path.join(root, f)


def main():
    src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else '.')
    top = '|'.join(re.escape(t) for t in tops(src))
    pat = re.compile(r'(?<![\w./$-])((?:%s)/[\w./-]*?[\w-]+)'
                     r'\.(\{[a-z,]+\}|(?:%s))(?![\w]|\.\w)' % (top, EXTS))
    bad = 0
    for path in sources(src):
        rel = os.path.relpath(path, src)
        with open(path, encoding='utf-8', errors='replace') as f:
            for n, line in enumerate(f, 1):
                for m in pat.finditer(line):
                    base, ext = m.group(1), m.group(2)
                    if re.search(r'[A-Z]{2,}|_X\b|\bNAME\b', base):
                        continue
                    exts = ext[1:-1].split(',') if ext.startswith('{') \
                        else [ext]
                    for e in exts:
                        p = f'{base}.{e}'
                        if not os.path.exists(os.path.join(src, p)):
                            print(f'{rel}:{n}: names {p}, which does not '
                                  'exist')
                            bad += 1
    if bad:
        print(f'{bad} reference(s) to files that do not exist')
        return 1
    print('every file named in docs and comments exists')
    return 0


if __name__ == '__main__':
    sys.exit(main())
