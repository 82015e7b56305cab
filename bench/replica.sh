#!/usr/bin/env bash
# Replica benchmark (SPEC §12), one run, side by side. See bench/README.md.
#
#   bench/replica.sh [--no-build] [DURATION=15] [RUNS=3] [LOAD_SECS=60] [CONNS=64]
#
# Against tansu (a Kafka-protocol broker process, memory storage), release build:
#   1. creates/s on a primary with KAFKA_LOG_TOPIC off vs on (wrk, medians of RUNS);
#   2. replica lag while the primary takes creates at full speed for LOAD_SECS:
#      lagSeconds sampled every 100 ms (p50/p99), and the time from the last write
#      until the replica has applied it;
#   3. GET task and GET group of 20 tasks on the replica vs the primary (wrk).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN="$ROOT/target/release/taskledger"
BUILD=1
for a in "$@"; do
  case "$a" in
    --no-build) BUILD=0 ;;
    DURATION=*|RUNS=*|LOAD_SECS=*|CONNS=*) export "${a?}" ;;
    *) echo "replica.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
DURATION=${DURATION:-15}; RUNS=${RUNS:-3}; LOAD_SECS=${LOAD_SECS:-60}; CONNS=${CONNS:-64}; THREADS=2
TANSU=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
[[ -x "$TANSU" ]] || { echo "tansu is not installed (cargo install tansu --features dynostore)"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
[[ $BUILD == 1 ]] && (cd "$ROOT" && cargo build --release --bin taskledger)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf '[replica-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

KPORT=$(free_port)
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
  --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$KPORT") 2>/dev/null && break; sleep 0.2; done
export TASKLEDGER_ADMIN_PASSWORD=bench-password AUTO_BACKUP_ENABLED=false AUTO_RESTORE_ENABLED=false \
  KAFKA_BROKER="127.0.0.1:$KPORT" RUST_LOG=warn

# start NAME ROLE PORT [env...]: a taskledger process on its own dirs
start() {
  local name=$1 role=$2 port=$3; shift 3
  env "$@" "$BIN" "$role" --addr "127.0.0.1:$port" --data-dir "$WORK/$name/storage" \
    --backup-dir "$WORK/$name/backups" --restore-dir "$WORK/$name/restore" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && return; sleep 0.1; done
  echo "$name did not start"; tail "$WORK/$name.log"; exit 1
}
token() { curl -s "http://127.0.0.1:$1/api/auth/login" -d '{"username":"admin","password":"bench-password"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])'; }
group() { curl -s -H "Authorization: Bearer $2" "http://127.0.0.1:$1/api/groups" -d "{\"name\":\"$3\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["group"]["_id"])'; }
# wrk_run NAME LUA PORT TOKEN GID TID SECS
wrk_run() {
  BENCH_TOKEN=$4 BENCH_GROUP_ID=$5 BENCH_TASK_ID=$6 BENCH_GROUP20_ID=$5 BENCH_THREADS=$THREADS \
    wrk "-t$THREADS" "-c$CONNS" "-d${7}s" --latency -s "$BENCH_DIR/$2" "http://127.0.0.1:$3" >"$WORK/wrk-$1.txt" 2>&1
}

log "1. creates/s with the log topic off vs on ($RUNS x ${DURATION}s each, interleaved)"
OFF=$(free_port); ON=$(free_port)
start off serve "$OFF"
start on serve "$ON" KAFKA_LOG_TOPIC=bench-log
T_OFF=$(token "$OFF"); T_ON=$(token "$ON")
G_OFF=$(group "$OFF" "$T_OFF" off); G_ON=$(group "$ON" "$T_ON" on)
for r in $(seq "$RUNS"); do
  wrk_run "create-off-$r" create.lua "$OFF" "$T_OFF" "$G_OFF" "" "$DURATION"
  wrk_run "create-on-$r" create.lua "$ON" "$T_ON" "$G_ON" "" "$DURATION"
done

log "2. a replica following the 'on' primary while it takes creates for ${LOAD_SECS}s"
RP=$(free_port)
start replica replica "$RP" KAFKA_LOG_TOPIC=bench-log PRIMARY_URL="http://127.0.0.1:$ON"
python3 - "$ON" "$RP" <<'PY' || { echo "the replica did not catch up"; tail "$WORK/replica.log"; exit 1; }
import json, sys, time, urllib.request
p, r = sys.argv[1], sys.argv[2]
h = lambda port: json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health"))
end = time.time() + 300
while h(r).get("appliedSeq") != h(p)["lastEventId"] or h(r)["state"] != "live":
    assert time.time() < end
    time.sleep(0.2)
PY
python3 - "$ON" "$RP" "$LOAD_SECS" >"$WORK/lag.txt" <<'PY' &
import json, sys, time, urllib.request
p, r, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
h = lambda port: json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health"))
lags, end = [], time.time() + secs
while time.time() < end:
    lags.append(h(r)["lagSeconds"]); time.sleep(0.1)
# The load has stopped: how long until the replica has the last write.
last, t0 = h(p)["lastEventId"], time.time()
while h(r)["appliedSeq"] < last:
    time.sleep(0.005)
done = time.time() - t0
lags.sort()
q = lambda f: lags[min(len(lags) - 1, int(f * len(lags)))]
print(f"{q(0.5):.3f} {q(0.99):.3f} {max(lags):.3f} {done:.3f} {len(lags)}")
PY
SAMPLER=$!
wrk_run load create.lua "$ON" "$T_ON" "$G_ON" "" "$LOAD_SECS"
wait "$SAMPLER"

log "3. GET task and GET group of 20 on the replica vs the primary"
TID=""
G20=$(group "$ON" "$T_ON" twenty)
for i in $(seq 20); do
  TID=$(curl -s -H "Authorization: Bearer $T_ON" "http://127.0.0.1:$ON/api/groups/$G20/tasks" -d "{\"name\":\"t$i\",\"description\":\"$(printf 'x%.0s' $(seq 200))\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["task"]["_id"])')
done
SEQ=$(curl -s "http://127.0.0.1:$ON/api/health" | python3 -c 'import json,sys;print(json.load(sys.stdin)["lastEventId"])')
curl -sf -o /dev/null -H "Authorization: Bearer $T_ON" -H "X-Taskledger-Min-Seq: $SEQ" "http://127.0.0.1:$RP/api/groups/$G20"
for r in $(seq "$RUNS"); do
  wrk_run "get-primary-$r" get.lua "$ON" "$T_ON" "$G20" "$TID" "$DURATION"
  wrk_run "get-replica-$r" get.lua "$RP" "$T_ON" "$G20" "$TID" "$DURATION"
  wrk_run "group-primary-$r" get_group.lua "$ON" "$T_ON" "$G20" "$TID" "$DURATION"
  wrk_run "group-replica-$r" get_group.lua "$RP" "$T_ON" "$G20" "$TID" "$DURATION"
done

row() { python3 "$BENCH_DIR/wrkstat.py" row "$1" "${@:2}"; }
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%d)"
echo
echo "| scenario | runs | req/s (median) | p50 | p99 | non-2xx | socket errors |"
echo "|---|---|---|---|---|---|---|"
row "create, log topic off" "$WORK"/wrk-create-off-*.txt
row "create, log topic on" "$WORK"/wrk-create-on-*.txt
row "GET task, primary" "$WORK"/wrk-get-primary-*.txt
row "GET task, replica" "$WORK"/wrk-get-replica-*.txt
row "GET group of 20, primary" "$WORK"/wrk-group-primary-*.txt
row "GET group of 20, replica" "$WORK"/wrk-group-replica-*.txt
read -r P50 P99 MAX DONE N <"$WORK/lag.txt"
LOADRATE=$(python3 "$BENCH_DIR/wrkstat.py" show "$WORK/wrk-load.txt" | head -1)
echo
echo "replica lag under ${LOAD_SECS}s of creates at full speed ($LOADRATE): lagSeconds p50 $P50 s, p99 $P99 s, max $MAX s ($N samples); last write applied on the replica ${DONE} s after the load stopped"
