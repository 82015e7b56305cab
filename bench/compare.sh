#!/usr/bin/env bash
# A/B of server binaries on bench/run.sh's scenarios (create, get, get_group),
# interleaved round by round so that a noisy machine hits every binary alike.
#
#   bench/compare.sh [ROUNDS=3] [DURATION=10] NAME=BINARY NAME=BINARY ...
#
# Examples:
#   # how close taskledger is to the in-memory ceiling (bench/ceiling.rs)
#   cargo build --release --bin taskledger --example ceiling
#   bench/compare.sh taskledger=target/release/taskledger ceiling=target/release/examples/ceiling
#   # a change against main: build main's binary into /tmp/main-taskledger first
#   bench/compare.sh before=/tmp/main-taskledger after=target/release/taskledger
#
# Prints, per scenario, each binary's median req/s and p99 over the rounds and
# its ratio to the first binary. Exit 1 if any run failed or saw a non-2xx.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=3
DURATION=10
NAMES=()
BINS=()
for a in "$@"; do
    case "$a" in
        ROUNDS=*) ROUNDS=${a#ROUNDS=} ;;
        DURATION=*) DURATION=${a#DURATION=} ;;
        *=*) NAMES+=("${a%%=*}"); BINS+=("$(realpath "${a#*=}")") ;;
        *) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
((${#NAMES[@]} >= 2)) || { echo "compare.sh: give at least two NAME=BINARY" >&2; exit 2; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/taskledger-compare.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

for ((r = 1; r <= ROUNDS; r++)); do
    for i in "${!NAMES[@]}"; do
        echo "[compare $(date +%H:%M:%S)] round $r/$ROUNDS: ${NAMES[$i]}" >&2
        if ! BIN=${BINS[$i]} "$BENCH_DIR/run.sh" RUNS=1 "DURATION=$DURATION" >"$OUT/${NAMES[$i]}-$r.txt" 2>&1; then
            tail -n 30 "$OUT/${NAMES[$i]}-$r.txt" >&2
            echo "compare.sh: run failed (${NAMES[$i]}, round $r)" >&2
            exit 1
        fi
    done
done

python3 - "$OUT" "$ROUNDS" "${NAMES[@]}" <<'EOF'
import re, statistics, sys
out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def ms(v):
    v = v.strip()
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)

rows = {}  # (scenario, name) -> [(rps, p99_ms)]
for n in names:
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{n}-{r}.txt"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 7 and cells[0] in ("create", "get", "get_group"):
                rows.setdefault((cells[0], n), []).append(
                    (float(cells[2].replace(",", "")), ms(cells[4])))
                if not cells[5].startswith("0 of"):
                    print(f"{n} round {r}: {cells[0]} had non-2xx answers: {cells[5]}")
                    sys.exit(1)
print(f"medians of {rounds} rounds; ratio = req/s / {names[0]}'s")
print()
print("| scenario | " + " | ".join(f"{n} req/s | p99" for n in names[:1]) + " | "
      + " | ".join(f"{n} req/s | p99 | ratio" for n in names[1:]) + " |")
print("|---|" + "---|---|" * 1 + "---|---|---|" * (len(names) - 1))
for sc in ("create", "get", "get_group"):
    base = statistics.median(x[0] for x in rows[(sc, names[0])])
    cells = []
    for i, n in enumerate(names):
        rps = statistics.median(x[0] for x in rows[(sc, n)])
        p99 = statistics.median(x[1] for x in rows[(sc, n)])
        cells.append(f"{rps:,.0f} | {p99:.2f} ms" + ("" if i == 0 else f" | {rps / base:.2f}×"))
    print(f"| {sc} | " + " | ".join(cells) + " |")
EOF
