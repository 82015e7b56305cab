#!/usr/bin/env bash
# End-to-end Kafka test: tansu (a Kafka-compatible broker, separate process),
# taskledger (separate process) and kafka-python (independent client).
# Builds tansu only when it is missing (about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
ensure_tansu
python3 -c "import kafka" 2>/dev/null || python3 -m pip install -q kafka-python

cargo build --release --bin taskledger
BIN=target/release/taskledger

KPORT=$(free_port)
HPORT=$(free_port)
WORK=$(mktemp -d)
cleanup() {
  [ -n "${TL_PID:-}" ] && kill "$TL_PID" 2>/dev/null || true
  [ -n "${BROKER_PID:-}" ] && { kill -CONT "$BROKER_PID" 2>/dev/null; kill "$BROKER_PID" 2>/dev/null; } || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_tansu "$KPORT" "$WORK/tansu.log"

TASKLEDGER_ADMIN_PASSWORD=e2e-password KAFKA_ENABLED=true KAFKA_BROKER="127.0.0.1:$KPORT" \
AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false RUST_LOG=info \
  "$BIN" serve --addr "127.0.0.1:$HPORT" --data-dir "$WORK/storage" --backup-dir "$WORK/backups" \
  --restore-dir "$WORK/restore" >"$WORK/taskledger.log" 2>&1 &
TL_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HPORT/api/health" >/dev/null && break; sleep 0.2; done

if ! TL_BASE="http://127.0.0.1:$HPORT" TL_BROKER="127.0.0.1:$KPORT" TL_BROKER_PID=$BROKER_PID \
     PAUSE="${PAUSE:-60}" python3 .ci/kafka_e2e.py; then
  echo "--- taskledger log"; tail -40 "$WORK/taskledger.log"
  echo "--- tansu log"; tail -40 "$WORK/tansu.log"
  exit 1
fi
grep -E "Kafka (un)?reachable|created Kafka topic" "$WORK/taskledger.log" | sed 's/\x1b\[[0-9;]*m//g' || true
