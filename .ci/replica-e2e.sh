#!/usr/bin/env bash
# Replicas end to end (SPEC §12): a broker process (tansu), an S3 server process
# (moto), a primary and a replica process of taskledger. The replica bootstraps
# from an off-site copy of a backup plus the topic tail; after 1,000+ mixed
# writes, a restore on the primary, a kill -9 of the replica and a logout, its
# API state equals the primary's at equal lastEventId. Driven by replica_e2e.py.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
ensure_tansu
command -v moto_server >/dev/null 2>&1 || { echo "moto_server missing (.ci/run installs it)"; exit 1; }

cargo build --release --bin taskledger
BIN=target/release/taskledger

KPORT=$(free_port); SPORT=$(free_port); PPORT=$(free_port); RPORT=$(free_port)
WORK=$(mktemp -d)
cleanup() {
  for p in ${PRIMARY_PID:-} ${BROKER_PID:-} ${S3_PID:-}; do kill "$p" 2>/dev/null || true; done
  pkill -f "replica --addr 127.0.0.1:$RPORT" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_tansu "$KPORT" "$WORK/tansu.log"
moto_server -H 127.0.0.1 -p "$SPORT" >"$WORK/moto.log" 2>&1 &
S3_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$SPORT/" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf -X PUT "http://127.0.0.1:$SPORT/tl-replica" >/dev/null

export TASKLEDGER_ADMIN_PASSWORD=e2e-password KAFKA_BROKER="127.0.0.1:$KPORT" KAFKA_LOG_TOPIC=taskledger-log \
  S3_BUCKET_NAME=tl-replica AWS_ENDPOINT_URL="http://127.0.0.1:$SPORT" AWS_ACCESS_KEY_ID=test \
  AWS_SECRET_ACCESS_KEY=test AUTO_BACKUP_ENABLED=false RUST_LOG=info,librdkafka=warn

"$BIN" serve --addr "127.0.0.1:$PPORT" --data-dir "$WORK/p/storage" --backup-dir "$WORK/p/backups" \
  --restore-dir "$WORK/p/restore" >"$WORK/primary.log" 2>&1 &
PRIMARY_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PPORT/api/health" >/dev/null && break; sleep 0.2; done

# The driver starts (and kills, and restarts) the replica itself.
if ! TL_PRIMARY="http://127.0.0.1:$PPORT" TL_REPLICA_PORT="$RPORT" TL_BIN="$BIN" TL_WORK="$WORK" \
     python3 .ci/replica_e2e.py; then
  echo "--- primary log"; tail -30 "$WORK/primary.log"
  echo "--- replica log"; tail -40 "$WORK/replica.log" || true
  echo "--- tansu log"; tail -20 "$WORK/tansu.log"
  exit 1
fi
