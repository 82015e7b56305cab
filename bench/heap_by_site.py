#!/usr/bin/env python3
"""Sums a dhat-heap.json (from `examples/heapprofile.rs`) per allocation site:
the bytes and blocks live at the end of the load, biggest first, each named by
its first frames in taskledger, imbl or serde (the record type being built).

    python3 bench/heap_by_site.py dhat-heap.json [TOP=20]
"""
import json
import re
import sys


def site(frames):
    names = []
    for f in frames:
        m = re.search(r": (.*) \(", f)
        name = m.group(1) if m else f
        if any(s in name for s in ("dhat::", "alloc::alloc", "alloc::raw_vec", "__rust", "mi_")):
            continue
        names.append(name)
    keep = [n for n in names if "taskledger::" in n or "imbl::" in n]
    picked = (keep or names)[:2]
    return " <- ".join(re.sub(r"<[^<>]*>", "", p)[:90] for p in picked)


def main():
    d = json.load(open(sys.argv[1]))
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    ft = d["ftbl"]
    total = sum(pp["eb"] for pp in d["pps"])
    rows = sorted(d["pps"], key=lambda pp: -pp["eb"])[:top]
    print(f"live at the end: {total / 2**20:.1f} MB")
    print("| MB | blocks | bytes/block | site |")
    print("|---|---|---|---|")
    for pp in rows:
        if pp["ebk"] == 0:
            continue
        print(f"| {pp['eb'] / 2**20:.1f} | {pp['ebk']:,} | {pp['eb'] // pp['ebk']} | "
              f"{site([ft[i] for i in pp['fs']])} |")


if __name__ == "__main__":
    main()
