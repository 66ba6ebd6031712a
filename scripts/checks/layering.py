#!/usr/bin/env python3
"""Layering checks of the Rust crates (run by scripts/test).

1. No module circle in any crate: module A "uses" module B when A's file mentions
   `crate::B` (or `super::B` / a sibling through `use super::…` inside a folder module). A cycle
   in that graph, between top-level modules or between the files of a folder module, fails.
2. No source file in services/*/src or shared/*/src is over 800 lines.

Prints every circle (with `-v`, the uses inside it) and every long file; exit status 1 when
there is any.
"""
import os
import re
import sys

MAX_LINES = 800
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def crates():
    for group in ("services", "shared", "cli", "bench", "tests"):
        base = os.path.join(ROOT, group)
        if not os.path.isdir(base):
            continue
        if os.path.isfile(os.path.join(base, "Cargo.toml")):
            yield group, os.path.join(base, "src")
            continue
        for name in sorted(os.listdir(base)):
            src = os.path.join(base, name, "src")
            if os.path.isdir(src):
                yield f"{group}/{name}", src


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def test_free(text):
    """The text without `#[cfg(test)] mod tests { … }` blocks (tests may reach anywhere)."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def modules(src):
    """{module path (tuple) -> file} for every .rs file of the crate."""
    found = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]) or (len(rel) == 1 and rel[0] == "bin"):
                continue
            if rel and rel[0] == "bin":
                continue
            found[tuple(rel)] = os.path.join(dirpath, f)
    return found


def edges(mods):
    """(from, to) between sibling modules: each module's references resolved to the sibling
    of its own parent that they enter."""
    out = set()
    names = set(mods)
    for path, file in mods.items():
        text = test_free(strip_comments(open(file, encoding="utf-8").read()))
        refs = set()
        for m in re.finditer(r"\bcrate::((?:\w+::)*\w+)", text):
            refs.add(tuple(m.group(1).split("::")))
        # `use crate::{a, b::c}` groups
        for m in re.finditer(r"\bcrate::\{([^;]*)\}", text):
            for part in re.split(r"[,{}\s]+", m.group(1)):
                if part:
                    refs.add(tuple(part.split("::")))
        parent = path[:-1]
        for m in re.finditer(r"\bsuper::((?:\w+::)*\w+)", text):
            refs.add(parent[:-0 or None] + tuple(m.group(1).split("::")) if False else
                     path[:-1] + tuple(m.group(1).split("::")))
        for m in re.finditer(r"\bsuper::\{([^;]*)\}", text):
            for part in re.split(r"[,{}\s]+", m.group(1)):
                if part:
                    refs.add(path[:-1] + tuple(part.split("::")))
        for ref in refs:
            # the deepest module the reference names
            target = None
            for k in range(len(ref), 0, -1):
                if ref[:k] in names:
                    target = ref[:k]
                    break
            if target is None or target == path:
                continue
            # compare at the level where the two paths part
            i = 0
            while i < min(len(path), len(target)) and path[i] == target[i]:
                i += 1
            if i >= len(path) or i >= len(target):
                continue  # a module reaching into its own children or its ancestors
            out.add((path[: i + 1], target[: i + 1]))
    return out


def cycles(graph_edges):
    graph = {}
    for a, b in graph_edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return comps


def main():
    failures = []
    for crate, src in crates():
        mods = modules(src)
        found = edges(mods)
        for comp in cycles(found):
            inside = sorted(
                f"{'::'.join(a)} -> {'::'.join(b)}"
                for a, b in found
                if a in comp and b in comp
            )
            failures.append(
                f"{crate}: module circle: "
                + " <-> ".join("::".join(c) for c in comp)
                + ("\n    " + "\n    ".join(inside) if "-v" in sys.argv else "")
            )
        if crate.startswith(("services/", "shared/")):
            for path, file in sorted(mods.items()):
                n = sum(1 for _ in open(file, encoding="utf-8"))
                if n > MAX_LINES:
                    failures.append(
                        f"{crate}: {os.path.relpath(file, ROOT)} has {n} lines (at most {MAX_LINES})"
                    )
    for f in failures:
        print(f)
    if failures:
        print(f"layering: {len(failures)} problem(s)")
        return 1
    print("layering: no module circle, no file over 800 lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
