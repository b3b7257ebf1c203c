#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check a library's section-3 man pages against what it exports.

Fails unless every function the shared library exports (nm -D) has an
installed man page of its own name (a page, or an alias ".so man3/<page>.3"
made by meson), is named in the NAME section of the page that documents
it, and has its prototype, exactly as the public header declares it, in
that page's SYNOPSIS. Also fails on a name in NAME that is neither an
exported function nor a macro of the header, on a page of the source
directory that meson does not install, and on a page (aliases included)
that groff renders with a warning. Missing inputs fail: never a vacuous
pass.

usage: check-man.py LIB HEADER PREFIX --pages PAGE... --aliases ALIAS...
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

errors = []


def fail(msg):
    errors.append(msg)


def die(msg):
    print(f"check-man: {msg}", file=sys.stderr)
    sys.exit(1)


def exported_functions(lib, prefix):
    if not os.path.isfile(lib):
        die(f"{lib}: no such file")
    nm = shutil.which("nm")
    if not nm:
        die("nm not found (binutils)")
    out = subprocess.run([nm, "-D", "--defined-only", lib], capture_output=True, text=True)
    if out.returncode != 0:
        die(f"nm failed on {lib}: {out.stderr.strip()}")
    funcs = set()
    for line in out.stdout.splitlines():
        f = line.split()
        # A private version node (MPG_PRIVATE_0.1) is no public API.
        if len(f) == 3 and f[1] in ("T", "W", "i") and "_PRIVATE" not in f[2]:
            funcs.add(f[2].split("@")[0])
    funcs = {f for f in funcs if f.startswith(prefix)}
    if not funcs:
        die(f"{lib} exports no function named {prefix}*")
    return funcs


def header_decls(header):
    """Prototypes of exported functions (normalized) and function-like macros."""
    if not os.path.isfile(header):
        die(f"{header}: no such file")
    text = open(header, encoding="utf-8").read()
    code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    protos = {}
    for m in re.finditer(r"\b[A-Z]+_EXPORT\s+([^;{}]*?\))\s*(?:[A-Z_]+\([^()]*\))?\s*;", code, re.S):
        decl = m.group(1)
        name = re.search(r"(\w+)\s*\(", decl).group(1)
        protos[name] = normalize(decl)
    macros = set(re.findall(r"^\s*#\s*define\s+(\w+)\(", code, re.M))
    if not protos:
        die(f"{header}: no exported prototype found")
    return protos, macros


def normalize(s):
    return re.sub(r"\s+", "", s)


def unescape(s):
    s = re.sub(r"\\f(\[[^]]*\]|.)", "", s)
    s = s.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "").replace("\\ ", " ")
    return s.replace("\\(aq", "'").replace("\\(dq", '"')


def macro_args(rest):
    """Arguments of a roff macro line: words, or double-quoted strings."""
    args, i = [], 0
    while i < len(rest):
        if rest[i] in " \t":
            i += 1
        elif rest[i] == '"':
            j, buf = i + 1, []
            while j < len(rest):
                if rest[j] == '"' and rest[j + 1 : j + 2] == '"':
                    buf.append('"')
                    j += 2
                elif rest[j] == '"':
                    break
                else:
                    buf.append(rest[j])
                    j += 1
            args.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < len(rest) and rest[j] not in " \t":
                j += 1
            args.append(rest[i:j])
            i = j
    return args


class Page:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)[: -len(".3")]
        self.lines = open(path, encoding="utf-8").read().splitlines()
        self.title = None
        self.sections = {}
        cur = None
        for line in self.lines:
            if line.startswith(".TH "):
                self.title = macro_args(line[4:])
            elif line.startswith(".SH "):
                cur = " ".join(macro_args(line[4:]))
                self.sections[cur] = []
            elif cur:
                self.sections[cur].append(line)

    def text(self, section):
        out = []
        for line in self.sections.get(section, []):
            if line.startswith((".\\\"", "'\\\"")):
                continue
            if line.startswith("."):
                m = re.match(r"\.(\w+)\s*(.*)", line)
                if m and m.group(1) in ("B", "I", "BI", "IB", "BR", "RB", "IR", "RI"):
                    out.append("".join(macro_args(m.group(2))))
                continue
            out.append(line)
        return unescape("\n".join(out))

    def names(self):
        head = self.text("NAME").replace("\n", " ")
        if " - " not in head:
            return None
        return [n.strip() for n in head.split(" - ", 1)[0].split(",") if n.strip()]


def render(groff, path, cwd=None):
    r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", path], cwd=cwd,
                       capture_output=True, text=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
    msg = (r.stderr.strip() or f"exit status {r.returncode}") if r.returncode or r.stderr else None
    if msg:
        fail(f"{path}: groff: {msg}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib")
    ap.add_argument("header")
    ap.add_argument("prefix")
    ap.add_argument("--pages", nargs="+", required=True)
    ap.add_argument("--aliases", nargs="*", default=[])
    a = ap.parse_args()

    funcs = exported_functions(a.lib, a.prefix)
    protos, macros = header_decls(a.header)
    groff = shutil.which("groff")
    if not groff:
        die("groff not found: install groff-base (./dev does)")

    pages = {}
    for p in a.pages:
        if not os.path.isfile(p) or not p.endswith(".3"):
            die(f"{p}: no such page")
        page = Page(p)
        pages[page.name] = page
    srcdirs = {os.path.dirname(os.path.abspath(p)) for p in a.pages}
    for d in srcdirs:
        for f in sorted(os.listdir(d)):
            if f.endswith(".3") and f[:-2] not in pages:
                fail(f"{os.path.join(d, f)}: not installed (missing from meson.build)")

    # Every installed name, and the page that documents it.
    documented_by = {}
    for name, page in pages.items():
        if not page.title or page.title[0] != name.upper() or page.title[1:2] != ["3"]:
            fail(f"{page.path}: .TH should be '{name.upper()} 3 ...', is {page.title}")
        names = page.names()
        if not names:
            fail(f"{page.path}: no NAME line of the form 'name, ... \\- what'")
            continue
        if not name.startswith("lib") and names[0] != name:
            fail(f"{page.path}: NAME should start with {name}")
        documented_by[name] = page
        for n in names:
            if n != name and n not in funcs and n not in macros:
                fail(f"{page.path}: NAME lists {n}, which is neither exported nor a macro of {a.header}")
        for sec in ("SYNOPSIS", "DESCRIPTION", "HISTORY", "SEE ALSO"):
            if sec not in page.sections:
                fail(f"{page.path}: no {sec} section")
        render(groff, page.path)

    for p in a.aliases:
        if not os.path.isfile(p):
            die(f"{p}: no such alias page")
        alias = os.path.basename(p)[: -len(".3")]
        body = open(p, encoding="utf-8").read()
        m = re.fullmatch(r"\.so man3/(\w+)\.3\n", body)
        if not m or m.group(1) not in pages:
            fail(f"{p}: not '.so man3/<page>.3' of an installed page: {body!r}")
            continue
        if alias in documented_by:
            fail(f"{p}: {alias} has two pages")
            continue
        target = pages[m.group(1)]
        if alias not in (target.names() or []):
            fail(f"{p}: points to {target.path}, whose NAME does not list {alias}")
        documented_by[alias] = target

    # Named in a page's NAME: must have a page of its own name.
    for page in pages.values():
        for n in page.names() or []:
            if n not in documented_by:
                fail(f"{page.path}: {n} is in NAME but has no page or alias of its own")

    for f in sorted(funcs):
        page = documented_by.get(f)
        if not page:
            fail(f"{f}: exported by {a.lib}, but no man page or alias")
            continue
        if f not in (page.names() or []):
            fail(f"{f}: {page.path} does not list it in NAME")
        if f not in protos:
            fail(f"{f}: exported, but not declared in {a.header}")
        elif protos[f] + ";" not in normalize(page.text("SYNOPSIS")):
            fail(f"{f}: the SYNOPSIS of {page.path} lacks its prototype as in {a.header}")

    # Aliases render as installed: man3/<alias>.3 reading man3/<page>.3.
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, "man3"))
        for page in pages.values():
            os.symlink(os.path.abspath(page.path), os.path.join(tmp, "man3", page.name + ".3"))
        for p in a.aliases:
            dst = os.path.join(tmp, "man3", os.path.basename(p))
            if not os.path.exists(dst):
                os.symlink(os.path.abspath(p), dst)
                render(groff, os.path.join("man3", os.path.basename(p)), cwd=tmp)

    for e in errors:
        print(f"check-man: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"{a.lib}: {len(funcs)} exported functions, {len(pages)} pages, "
          f"{len(a.aliases)} aliases: all documented, all render cleanly")


if __name__ == "__main__":
    main()
