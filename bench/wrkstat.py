#!/usr/bin/env python3
"""Parse `wrk --latency` output (plus the `bench:` line printed by common.lua).

    wrkstat.py row NAME FILE...   one markdown table row: medians over FILEs
    wrkstat.py show FILE...       one line per FILE, for the log

Medians are taken per column independently: the median req/s, the median p50,
the median p99 over the runs. Non-2xx and socket errors are summed over runs.
"""
import re
import statistics
import sys

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsable latency {text!r}")
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    out = {"file": path}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if not m:
        raise SystemExit(f"wrkstat: no 'Requests/sec' in {path}: did wrk run?")
    out["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if not m:
            raise SystemExit(f"wrkstat: no {pct}% latency in {path}: was --latency given?")
        out["p" + pct] = to_ms(m.group(1))
    m = re.search(r"^\s+(\d+) requests in ([0-9.]+\w+)", text, re.M)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(
        r"^bench: responses=(\d+) non2xx=(\d+) by_status=(\S+) socket_errors=(\d+)",
        text, re.M)
    if not m:
        raise SystemExit(f"wrkstat: no 'bench:' line in {path}: did the Lua done() run?")
    out["responses"] = int(m.group(1))
    out["non2xx"] = int(m.group(2))
    out["by_status"] = m.group(3)
    out["sock"] = int(m.group(4))
    return out


def fmt_ms(v):
    return f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"


def main(argv):
    if len(argv) < 2 or argv[1] not in ("row", "show"):
        raise SystemExit(__doc__)
    if argv[1] == "show":
        for p in argv[2:]:
            r = parse(p)
            print(f"  {r['rps']:.0f} req/s  p50 {fmt_ms(r['p50'])}  p99 {fmt_ms(r['p99'])}  "
                  f"responses {r['responses']}  non-2xx {r['non2xx']} ({r['by_status']})  "
                  f"socket errors {r['sock']}")
        return
    name, files = argv[2], argv[3:]
    runs = [parse(p) for p in files]
    rps = statistics.median(r["rps"] for r in runs)
    p50 = statistics.median(r["p50"] for r in runs)
    p99 = statistics.median(r["p99"] for r in runs)
    non2xx = sum(r["non2xx"] for r in runs)
    responses = sum(r["responses"] for r in runs)
    sock = sum(r["sock"] for r in runs)
    statuses = {}
    for r in runs:
        if r["by_status"] != "-":
            for part in r["by_status"].split(","):
                code, n = part.split(":")
                statuses[code] = statuses.get(code, 0) + int(n)
    detail = ",".join(f"{c}:{n}" for c, n in sorted(statuses.items())) or "-"
    print(f"| {name} | {len(runs)} | {rps:,.0f} | {fmt_ms(p50)} | {fmt_ms(p99)} | "
          f"{non2xx} of {responses} ({detail}) | {sock} |")


if __name__ == "__main__":
    main(sys.argv)
