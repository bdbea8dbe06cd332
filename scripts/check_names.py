#!/usr/bin/env python3
"""
check_names — lists every non-static function defined in src/**/*.c whose
name does not start with hd_<file>_ (STYLE.md: a file's name matches its
symbols' prefix). Allowed besides: hd_<dir>_<file>_; hd_<dir>_ for a one-file module (a
folder of one .c file); hd_<dir>_ and hd_<dir>s_ in a folder split behind a
private <name>_impl.h (store/, http/server*, webhook/: the files implement
the folder's public header together); the allocator, clock and error
families (hd_malloc*, hd_calloc, hd_realloc, hd_strdup*, hd_now_*,
hd_mono_*, hd_error_*, hd_err_* in core/alloc.c, core/clock.c,
core/err.c); and main.c.

Usage: scripts/check_names.py [SRC_DIR] [--skip PATH ...]
Prints `path:line name` per finding; exits 1 when there is one.
"""
import os
import re
import sys

DEF = re.compile(
    r"^(?!static\b|extern\b|typedef\b|struct\s+\w+\s*\{|enum\b|union\b|#|/|\*|\}|\{)"
    r"[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(([^;{}()]|\([^;{}()]*\))*\)\s*"
    r"(__attribute__\s*\(\(.*?\)\)\s*)?\{",
    re.M)
FAMILIES = ("hd_malloc", "hd_calloc", "hd_realloc", "hd_strdup", "hd_strndup", "hd_free",
            "hd_now_", "hd_mono_", "hd_error_", "hd_err_")


def split(path):
    d = os.path.dirname(path)
    return any(n.endswith("_impl.h") for n in os.listdir(d))


def allowed(path, name, ncfiles):
    base = os.path.splitext(os.path.basename(path))[0]
    folder = os.path.basename(os.path.dirname(path))
    if base == "main":
        return True
    if name.startswith("hd_%s_" % base) or name == "hd_%s" % base:
        return True
    if name.startswith("hd_%s_%s_" % (folder, base)):   # the folder named too: hd_push_payload_*
        return True
    if ncfiles.get(os.path.dirname(path), 0) == 1 and name.startswith("hd_%s_" % folder):
        return True
    if split(path) and name.startswith(("hd_%s_" % folder, "hd_%ss_" % folder)):
        return True
    if base in ("alloc", "clock", "err") and name.startswith(FAMILIES):
        return True
    return False


def main():
    args = sys.argv[1:]
    skip = []
    if "--skip" in args:
        i = args.index("--skip")
        skip, args = args[i + 1:], args[:i]
    root = args[0] if args else "src"
    files = []
    for d, _, names in os.walk(root):
        files += [os.path.join(d, n) for n in names if n.endswith(".c")]
    ncfiles = {}
    for f in files:
        ncfiles[os.path.dirname(f)] = ncfiles.get(os.path.dirname(f), 0) + 1
    bad = 0
    for f in sorted(files):
        rel = os.path.relpath(f, root)
        if any(rel == s or rel.startswith(s.rstrip("/") + "/") for s in skip):
            continue
        text = open(f, encoding="utf-8", errors="replace").read()
        for m in DEF.finditer(text):
            name = m.group(1)
            if name in ("if", "while", "for", "switch", "return", "sizeof"):
                continue
            if not allowed(f, name, ncfiles):
                print("%s:%d %s" % (f, text.count("\n", 0, m.start()) + 1, name))
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
