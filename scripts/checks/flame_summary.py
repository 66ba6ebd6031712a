#!/usr/bin/env python3
"""Summarises folded stacks (inferno-collapse-perf output) as a Markdown page: for each profile,
the frames that hold the most samples on their own (self) and in all (inclusive, each frame
counted once per stack), so that a flame graph's story can be read and diffed as text.

    flame_summary.py WORK/registration-get.folded ... > docs/bench/profile-summary.md
"""
import os
import re
import sys
from collections import Counter

TOP = 20
# Frames every stack of a tokio service passes through: they say nothing about where time goes.
GENERIC = re.compile(
    r"^(all|tokio-rt-worker|\[unknown\]|start_thread|clone3|__clone|main|_start|"
    r"__libc_start.*|std::.*|core::ops::function::.*|tokio::runtime::.*|"
    r"<?core::future::.*|.*::\{\{closure\}\}$|<.* as core::future::future::Future>::poll)$"
)


def short(frame):
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    return frame if len(frame) <= 110 else frame[:107] + "..."


def summarise(path):
    self_time, inclusive, total = Counter(), Counter(), 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [short(fr) for fr in stack.split(";")]
            self_time[frames[-1]] += n
            for frame in set(frames):
                if not GENERIC.match(frame):
                    inclusive[frame] += n
    return total, self_time, inclusive


def table(counter, total):
    rows = ["| % of weight | frame |", "|---:|---|"]
    for frame, n in counter.most_common(TOP):
        name = frame.replace("|", "\\|")
        rows.append(f"| {100 * n / total:.1f} | `{name}` |")
    return "\n".join(rows)


def main(paths):
    out = [
        "# Profiles: the heaviest frames",
        "",
        "Written by `scripts/profile` from the same perf samples as the flame graphs "
        "(`flame-<process>-<step>.svg` beside this page): 499 Hz, 32 requests in flight. "
        "Weights are perf's sample periods (CPU cycles), as in the flame graphs. "
        "*Self*: the weight of stacks whose innermost frame is this one. *Inclusive*: of "
        "stacks with this frame anywhere (tokio's and std's plumbing frames left out).",
    ]
    for path in sorted(paths):
        name = os.path.basename(path).removesuffix(".folded")
        total, self_time, inclusive = summarise(path)
        if total == 0:
            continue
        out += ["", f"## {name} (weight {total})", "", "Self:", "", table(self_time, total)]
        out += ["", "Inclusive:", "", table(inclusive, total)]
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
