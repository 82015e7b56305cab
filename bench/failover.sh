#!/usr/bin/env bash
# Failover benchmark (SPEC §12), one run. See bench/README.md.
#
#   bench/failover.sh [--no-build] [DURATION=15] [RUNS=3] [CONNS=64]
#
# Against tansu (a Kafka-protocol broker process, memory storage), release build:
#   1. creates/s and p99 with KAFKA_COMMIT=async vs sync (wrk, medians of RUNS,
#      interleaved), each primary publishing to its own log topic;
#   2. the upgrade walk in sync mode (.ci/upgrade_walk.py): a new node as a
#      replica, live, promoted while 8 clients write, the old one stopped: the
#      promotion time, the time to the first write on the new primary, the
#      longest pause a client saw, and that no acknowledged write was lost.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN="${TASKLEDGER_BIN:-$ROOT/target/release/taskledger}"
BUILD=1
for a in "$@"; do
  case "$a" in
    --no-build) BUILD=0 ;;
    DURATION=*|RUNS=*|CONNS=*) export "${a?}" ;;
    *) echo "failover.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
DURATION=${DURATION:-15}; RUNS=${RUNS:-3}; CONNS=${CONNS:-64}; THREADS=2
. "$ROOT/.ci/lib.sh"
ensure_tansu
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
[[ $BUILD == 1 ]] && (cd "$ROOT" && cargo build --release --bin taskledger)

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf '[failover-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

KPORT=$(free_port)
start_tansu "$KPORT" "$WORK/tansu.log"
PIDS+=("$BROKER_PID")
export TASKLEDGER_ADMIN_PASSWORD=bench-password AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false \
  KAFKA_BROKER="127.0.0.1:$KPORT" RUST_LOG=warn

# start NAME ROLE PORT [env...]: a taskledger process on its own dirs; sets LAST_PID
start() {
  local name=$1 role=$2 port=$3; shift 3
  env "$@" "$BIN" "$role" --addr "127.0.0.1:$port" --data-dir "$WORK/$name/storage" \
    --backup-dir "$WORK/$name/backups" --restore-dir "$WORK/$name/restore" >"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && return; sleep 0.1; done
  echo "$name did not start"; tail "$WORK/$name.log"; exit 1
}
health() { curl -s "http://127.0.0.1:$1/api/health" | python3 -c "import json,sys;print(json.load(sys.stdin)$2)"; }
until_health() { for _ in $(seq 600); do [[ "$(health "$1" "$2")" == "$3" ]] && return; sleep 0.1; done; echo "port $1: $2 never became $3"; exit 1; }
token() { curl -s "http://127.0.0.1:$1/api/auth/login" -d '{"username":"admin","password":"bench-password"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])'; }
group() { curl -s -H "Authorization: Bearer $2" "http://127.0.0.1:$1/api/groups" -d "{\"name\":\"$3\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["group"]["_id"])'; }
wrk_run() {
  BENCH_TOKEN=$4 BENCH_GROUP_ID=$5 BENCH_THREADS=$THREADS \
    wrk "-t$THREADS" "-c$CONNS" "-d${6}s" --latency -s "$BENCH_DIR/$2" "http://127.0.0.1:$3" >"$WORK/wrk-$1.txt" 2>&1
}

log "1. creates/s, KAFKA_COMMIT=async vs sync ($RUNS x ${DURATION}s each, interleaved)"
AS=$(free_port); SY=$(free_port)
start async serve "$AS" KAFKA_LOG_TOPIC=bench-async KAFKA_COMMIT=async
start sync serve "$SY" KAFKA_LOG_TOPIC=bench-sync KAFKA_COMMIT=sync
until_health "$AS" '["logTopic"]["connected"]' True
until_health "$SY" '["logTopic"]["connected"]' True
T_AS=$(token "$AS"); T_SY=$(token "$SY")
G_AS=$(group "$AS" "$T_AS" a); G_SY=$(group "$SY" "$T_SY" s)
for r in $(seq "$RUNS"); do
  wrk_run "async-$r" create.lua "$AS" "$T_AS" "$G_AS" "$DURATION"
  wrk_run "sync-$r" create.lua "$SY" "$T_SY" "$G_SY" "$DURATION"
done

log "2. upgrade walk (sync): new node as replica, live, promoted under writes, old one stopped"
OLD=$(free_port); NEW=$(free_port)
start old serve "$OLD" KAFKA_LOG_TOPIC=bench-walk KAFKA_COMMIT=sync
OLD_PID=$LAST_PID
until_health "$OLD" '["logTopic"]["connected"]' True
start new replica "$NEW" KAFKA_LOG_TOPIC=bench-walk KAFKA_COMMIT=sync PRIMARY_URL="http://127.0.0.1:$OLD"
until_health "$NEW" '["state"]' live
WALK=$(python3 "$ROOT/.ci/upgrade_walk.py" "$OLD" "$NEW" bench-password 3 3 8)
kill "$OLD_PID"; wait "$OLD_PID" 2>/dev/null || true
[[ "$(health "$NEW" '["role"]')" == primary ]] || { echo "the new node is not primary"; exit 1; }

row() { python3 "$BENCH_DIR/wrkstat.py" row "$1" "${@:2}"; }
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%d)"
echo
echo "| scenario | runs | req/s (median) | p50 | p99 | non-2xx | socket errors |"
echo "|---|---|---|---|---|---|---|"
row "create, KAFKA_COMMIT=async" "$WORK"/wrk-async-*.txt
row "create, KAFKA_COMMIT=sync" "$WORK"/wrk-sync-*.txt
echo
echo "upgrade walk: $WALK"
