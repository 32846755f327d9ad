#!/usr/bin/env python3
"""Find import circles between the files of one crate.

For every .rs file of a crate, collect the modules it names through
`crate::a::b...` and `super::x` paths (in `use` items and inline), resolve
each to the file of the longest existing module prefix, and report any
cycle in the resulting file graph. A module's own `mod x;` declarations
are not imports. Usage: check_imports.py CRATE_DIR...
"""
import os
import re
import sys

PATH = re.compile(r'\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)')


def modules(src):
    """Map module path tuple -> file for every file under src."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ('lib', 'main', 'mod'):
                parts = parts[:-1]
            out[tuple(parts)] = os.path.join(root, f)
    return out


def resolve(mods, path):
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def strip_comments(text):
    return '\n'.join(line.split('//', 1)[0] for line in text.split('\n'))


def graph(src):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = strip_comments(open(f).read())
        # A file with mod.rs/lib.rs is module m; its `super` is m[:-1].
        is_dir_mod = os.path.basename(f) in ('mod.rs', 'lib.rs', 'main.rs')
        here = m if is_dir_mod else m
        parent = here[:-1]
        for kind, rest in PATH.findall(text):
            names = [p for p in rest.split('::') if p]
            if kind == 'crate':
                target = resolve(mods, names)
            else:
                target = resolve(mods, list(parent) + names)
            if target is not None and target != m and target != ():
                edges[m].add(target)
    return mods, edges


def cycles(edges):
    found = []
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in sorted(edges.get(n, ())):
            if state.get(t) == 1:
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    return found


def main():
    bad = False
    for crate in sys.argv[1:]:
        mods, edges = graph(os.path.join(crate, 'src'))
        for c in cycles(edges):
            bad = True
            print(f"{crate}: import circle: {' -> '.join('::'.join(m) or 'lib' for m in c)}")
    if bad:
        sys.exit(1)
    print(f"check_imports: no import circles in {', '.join(sys.argv[1:])}")


if __name__ == '__main__':
    main()
