#!/usr/bin/env bash
# Failover against a broker process that fences producers (tansu): the zombie
# scenario of tests/failover.rs (SIGSTOP the sync primary mid-write, promote the
# replica, write there, SIGCONT: the old primary acknowledges nothing more, no
# acknowledged write is lost, no refused one appears; the other failover tests
# run on the mock cluster in `cargo test`), then the zero-downtime upgrade walk
# with two processes of this build (bench/failover.sh in a short run).
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
ensure_tansu
KPORT=$(free_port)
WORK=$(mktemp -d)
cleanup() {
  kill "${BROKER_PID:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
start_tansu "$KPORT" "$WORK/tansu.log"
TASKLEDGER_FENCING_BROKER="127.0.0.1:$KPORT" \
  cargo test --test failover -- --ignored --test-threads=1 --nocapture || { tail -c 3000 "$WORK/tansu.log"; exit 1; }
echo "== the upgrade walk (bench/failover.sh, short): promote under writes, nothing lost"
cargo build --release --bin taskledger
bash bench/failover.sh --no-build DURATION=2 RUNS=1
echo "== failover end to end passed"
