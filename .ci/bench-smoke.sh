#!/usr/bin/env bash
# The footprint benchmarks stay runnable: a tiny side-by-side fill against a real
# PocketBase process (bench/peer.py: installs it from PyPI once, fills both over
# HTTP, restarts both) and a one-second A/B against the in-memory ceiling server
# (bench/compare.sh). Their numbers mean nothing at this size; the README's come
# from full runs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin taskledger --example ceiling
python3 bench/peer.py --no-build TASKS=400 GROUPS=4 WRITERS=4
bash bench/compare.sh ROUNDS=1 DURATION=1 taskledger=target/release/taskledger ceiling=target/release/examples/ceiling
echo "== bench smoke passed"
