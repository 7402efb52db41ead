#!/usr/bin/env python3
"""Compares two run directories' comparison.json with wall times left out.

Usage: scripts/same-results.py A B, each a run directory or a `--json` comparison file. Prints the number of runs compared and exits 1
with the first difference if the measurements differ (anything but wall seconds, timings
and the provenance)."""
import json
import sys

IGNORED = {"wall_seconds", "total_wall_seconds", "provenance", "wall_seconds_median"}


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in IGNORED and "wall" not in k}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def first_diff(a, b, path="$"):
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: present in one only"
            d = first_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def main():
    a, b = (
        json.load(open(p if p.endswith(".json") else f"{p}/comparison.json"))
        for p in sys.argv[1:3]
    )
    d = first_diff(strip(a), strip(b))
    runs = len(a.get("runs", []))
    if d:
        print(f"differ: {d}")
        sys.exit(1)
    print(f"identical: {runs} runs (wall times aside)")


if __name__ == "__main__":
    main()
