#!/usr/bin/env python3
"""Prints the fault suite's ledger (JSON lines written by kg_tests::faults) as one table.

Exit status 1 when the ledger is missing or empty, or when any record was lost or duplicated.
"""
import json
import sys


def main(path: str) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        print(f"fault suite: no ledger at {path}")
        return 1
    if not rows:
        print("fault suite: the ledger is empty")
        return 1
    rows.sort(key=lambda r: (r["test"], r["fault"], r.get("backend", "")))
    head = ("TEST", "FAULT", "DATABASE", "LOAD", "FAULTS", "BAD INPUTS", "LOST", "DUPLICATES")
    table = [head] + [
        (r["test"], r["fault"], r.get("backend", "?"), str(r["load"]), str(r["faults"]),
         str(r["bad_inputs"]), str(r["lost"]), str(r["duplicates"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print("\nFault suite")
    for i, row in enumerate(table):
        print("  " + "  ".join(cell.ljust(widths[j]) if j < 3 else cell.rjust(widths[j])
                               for j, cell in enumerate(row)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    totals = {k: sum(r[k] for r in rows) for k in ("load", "faults", "bad_inputs", "lost", "duplicates")}
    print(f"\n  load held {totals['load']}, faults survived {totals['faults']}, "
          f"bad inputs tried {totals['bad_inputs']}, records lost {totals['lost']}, "
          f"duplicates {totals['duplicates']}")
    return 0 if totals["lost"] == 0 and totals["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "target/fault-report.jsonl"))
