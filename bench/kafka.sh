#!/usr/bin/env bash
# Kafka relay benchmark against a local tansu broker. See bench/README.md.
#   bench/kafka.sh [EVENTS=1000000] [RATE=200] [SECONDS_LOAD=20]
# 1. Fills a data dir with EVENTS task creations (examples/fill.rs), starts the
#    server with Kafka enabled and times how long the relay takes to publish the
#    whole backlog (lag 0): relay throughput in events/s.
# 2. Under moderate load (RATE creates/s) measures end-to-end latency from the
#    2xx answer to the message arriving at a kafka-python consumer (an upper
#    bound of 2xx -> broker ack), p50 and p99.
set -euo pipefail
for a in "$@"; do export "${a?}"; done
EVENTS=${EVENTS:-1000000}
RATE=${RATE:-200}
SECONDS_LOAD=${SECONDS_LOAD:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TANSU=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
[ -x "$TANSU" ] || { echo "tansu is not installed: cargo install tansu --features dynostore"; exit 1; }
cargo build --release --bin taskledger --example fill >/dev/null
BIN=target/release/taskledger
WORK=$(mktemp -d /tmp/taskledger-kafka-bench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KPORT=$(free_port); HPORT=$(free_port)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "fill: $(target/release/examples/fill "$WORK/storage" "$EVENTS")"
"$TANSU" broker --listener-url tcp://127.0.0.1:$KPORT --advertised-listener-url tcp://127.0.0.1:$KPORT \
  --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
PIDS+=($!)
sleep 1
T0=$(date +%s.%N)
TASKLEDGER_ADMIN_PASSWORD=bench-password KAFKA_ENABLED=true KAFKA_BROKER=127.0.0.1:$KPORT \
AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false RUST_LOG=warn \
  $BIN serve --addr 127.0.0.1:$HPORT --data-dir "$WORK/storage" --backup-dir "$WORK/backups" \
  --restore-dir "$WORK/restore" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
B=http://127.0.0.1:$HPORT
until curl -sf $B/api/health >/dev/null; do sleep 0.05; done
while :; do
  LAG=$(curl -s $B/api/health | python3 -c 'import json,sys;print(json.load(sys.stdin)["kafka"]["lag"])')
  [ "$LAG" = 0 ] && break
  sleep 0.2
done
T1=$(date +%s.%N)
python3 -c "print(f'relay backlog: {$EVENTS} events published in {$T1-$T0:.1f} s = {$EVENTS/($T1-$T0):,.0f} events/s (from server start, incl. topic creation)')"
TL_BASE=$B TL_BROKER=127.0.0.1:$KPORT RATE=$RATE SECONDS_LOAD=$SECONDS_LOAD python3 bench/kafka_latency.py
